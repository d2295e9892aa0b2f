"""Mesa's space-to-depth (RESHUFFLE) TP descriptors, reproduced with Mesa's H/W mix-ups.

npuc's own builders live in ``npuc.backend_vip.tp_jobs``; they match Mesa's
descriptors wherever Mesa's are right (tests/test_tp_jobs.py checks that on
square maps) and differ where Mesa's are wrong.  What stays here is only what
the simulator tests need to show what Mesa's own parameters do on non-square
and narrow maps (tests/test_sim_tp.py).  Written from the facts in
../shared/docs/vipnano-tp-cmdstream-uapi.md section 2.4, checked against Mesa's
source.  Shapes are TFLite's (H, W, C).  Mesa names dims[1] (H) "width" and
dims[2] (W) "height"; where that changes a value for non-square maps, the
builder reproduces Mesa exactly.

The builder returns one field dict per TP core (``TP_DESCRIPTOR.pack`` fills
Mesa's defaults), in the order the cores are kicked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Fields = dict[str, int]


@dataclass(frozen=True)
class Reshuffle:
    """Geometry of a stride-2 space-to-depth: output planes of wo x ho, 4 per input channel."""

    wo: int
    ho: int
    pad_x: int  # SAME padding before the first column / row, as TFLite computes it
    pad_y: int


def reshuffle_geometry(h: int, w: int, kernel: int, same: bool) -> Reshuffle:
    extra = (2 if kernel == 5 else 1) if same else 0
    before = (lambda n: ((math.ceil(n / 2) - 1) * 2 + kernel - n) // 2) if same else (lambda n: 0)
    return Reshuffle(math.ceil(w / 2) + extra, math.ceil(h / 2) + extra, before(w), before(h))


def reshuffle_cores(h: int, c: int, tp_cores: int) -> int:
    """Mesa's core count for a reshuffle (its "input_width" is dims[1] = H)."""
    if (h in (224, 320) and c == 3) or not (h > 8 or c > 1):
        return 1
    return tp_cores


def split_reshuffle(h: int, w: int, c: int, kernel: int, same: bool, core: int,
                    cores: int) -> tuple[int, list[int], list[int], int, int]:
    """Mesa's split of a reshuffle: (split dim, in dims, out dims, pad x, pad y) of ``core``."""
    g = reshuffle_geometry(h, w, kernel, same)
    in_dims, out_dims = [w, h, c], [g.wo, g.ho, c]
    dim = 0
    if c >= out_dims[0]:
        if out_dims[1] >= out_dims[0]:
            dim = 1
        if out_dims[2] >= out_dims[dim]:
            dim = 2
    # Mesa takes the x padding's parity from dims[1] (H) and the y one from dims[2] (W).
    odd_x, odd_y = h % 2, w % 2
    remaining_in, remaining_out = in_dims[dim], out_dims[dim]
    pad_x = pad_y = 0
    for i in range(core + 1):
        size = -(-remaining_out // (cores - i))
        pad_x = pad_y = 0
        if same:
            if kernel == 5:
                pad_x += i == 0 or dim != 0
                pad_y += i == 0 or dim != 1
            pad_x += bool(odd_x) and (i == 0 or dim != 0)
            pad_y += bool(odd_y) and (i == 0 or dim != 1)
        if i < cores - 1:
            in_dims[dim] = size * (2 if dim != 2 else 1) - (pad_x if dim == 0 else pad_y if dim == 1 else 0)
            remaining_in -= in_dims[dim]
        else:
            in_dims[dim] = remaining_in
        out_dims[dim] = size
        remaining_out -= size
    return dim, in_dims, out_dims, pad_x, pad_y


def reshuffle(h: int, w: int, c: int, zp: int, kernel: int, same: bool, src: int, dst: int,
              tp_cores: int) -> list[Fields]:
    """Stride-2 space-to-depth of a planar [C][H][W] tensor into [4C][ho][wo]."""
    g = reshuffle_geometry(h, w, kernel, same)
    cores = reshuffle_cores(h, c, tp_cores)
    out = []
    for core in range(cores):
        _, in_dims, out_dims, pad_x, pad_y = split_reshuffle(h, w, c, kernel, same, core, cores)
        src_core, dst_core = src, dst
        for i in range(core):
            dim, ind, outd, _, _ = split_reshuffle(h, w, c, kernel, same, i, cores)
            if dim == 0:
                src_core, dst_core = src_core + ind[0], dst_core + outd[0]
            elif dim == 1:
                # Mesa advances the output by its swapped "output_height" (= ho) per row, not wo.
                src_core, dst_core = src_core + w * ind[1], dst_core + g.ho * outd[1]
            else:
                src_core, dst_core = src_core + w * h * ind[2], dst_core + outd[2] * 4 * out_dims[0] * out_dims[1]
        f = {  # Mesa's C bit-fields truncate a negative share (tiny inputs) to 16 bits
            "in_image_x_size": in_dims[0] & 0xFFFF, "in_image_y_size": in_dims[1] & 0xFFFF,
            "in_image_z_size": in_dims[2] & 0xFFFF,
            "in_image_stride": w, "in_image_slice": w * h,
            "in_window_x_start": -pad_x, "in_window_y_start": -pad_y,
            "in_window_x_end": 2 * out_dims[0] - 1 - pad_x, "in_window_y_end": 2 * out_dims[1] - 1 - pad_y,
            "in_tile_x_size": 2 * out_dims[0], "in_tile_x_inc": 2 * out_dims[0],
            "in_tile_y_size": 2 * out_dims[1], "in_tile_y_inc": 2 * out_dims[1],
            "in_image_base_address": src_core, "out_image_base_address": dst_core,
            "out_loop_1_reset": 1, "out_loop_3_reset": 1,
            "out_loop_0_inc": g.wo * g.ho, "out_loop_0_count": 2,
            "out_loop_1_inc": 1, "out_loop_1_count": out_dims[0],
            "out_loop_2_inc": 2 * g.wo * g.ho, "out_loop_2_count": 2,
            "out_loop_3_inc": g.wo, "out_loop_3_count": out_dims[1],
            "out_loop_6_inc": 4 * g.wo * g.ho,
            "in_zp": zp, "out_zp": zp,
            "no_flush": int(cores > 1 and core < cores - 1),
        }
        out.append(f)
    return out
