"""TP descriptors built the way Mesa's etnaviv driver builds them, for the simulator's tests.

Written from the facts in ../shared/docs/vipnano-tp-cmdstream-uapi.md section 2.4
(and Mesa's parameter choices checked against its source): the simulator must
give the documented result for these parameter sets without knowing their role.
Shapes are TFLite's (H, W, C).  Mesa names dims[1] (H) "width" and dims[2] (W)
"height"; where that mix-up changes a value for non-square maps, the builder
reproduces Mesa exactly and ``fixed=True`` gives the value the role needs, so a
test can show both what Mesa's parameters do and that the traversal is right.

Every builder returns one field dict per TP core (``TP_DESCRIPTOR.pack`` fills
Mesa's defaults), in the order the cores are kicked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Fields = dict[str, int]


def transpose(h: int, w: int, c: int, zp: int, src: int, dst: int) -> list[Fields]:
    """NHWC -> planar [C][H][W]: one core, x = C, y = W, z = H."""
    return [{
        "in_image_x_size": c, "in_image_y_size": w, "in_image_z_size": h,
        "in_image_stride": c, "in_image_slice": w * c,
        "in_window_x_end": c - 1, "in_window_y_end": w - 1,
        "in_tile_y_size": w, "in_tile_y_inc": w,
        "in_image_base_address": src, "out_image_base_address": dst,
        "out_loop_0_count": w, "out_loop_1_inc": h * w, "out_loop_1_count": c,
        "out_loop_2_inc": w, "out_loop_2_count": h,
        "in_zp": zp, "out_zp": zp,
    }]


def detranspose(h: int, w: int, c: int, zp: int, src: int, dst: int) -> list[Fields]:
    """Planar -> NHWC: one core; Mesa uses H (dims[1]) as the x size and stride of the planar input."""
    return [{
        "in_image_x_size": h, "in_image_y_size": w * c, "in_image_z_size": 1,
        "in_image_stride": h, "in_image_slice": h * w * c,
        "in_window_x_end": h - 1, "in_window_y_end": w * c - 1,
        "in_tile_y_size": 1, "in_tile_y_inc": 1,
        "in_image_base_address": src, "out_image_base_address": dst,
        "out_loop_0_inc": c, "out_loop_0_count": w, "out_loop_1_inc": 0, "out_loop_1_count": 1,
        "out_loop_2_inc": w * c, "out_loop_2_count": h, "out_loop_3_inc": 1, "out_loop_3_count": c,
        "out_loop_4_inc": h * w * c,
        "in_zp": zp, "out_zp": zp,
    }]


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


def split_reshuffle(h: int, w: int, c: int, kernel: int, same: bool, core: int, cores: int,
                     fixed: bool) -> tuple[int, list[int], list[int], int, int]:
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
    odd_x, odd_y = (w % 2, h % 2) if fixed else (h % 2, w % 2)
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
              tp_cores: int, fixed: bool = False) -> list[Fields]:
    """Stride-2 space-to-depth of a planar [C][H][W] tensor into [4C][ho][wo]."""
    g = reshuffle_geometry(h, w, kernel, same)
    cores = reshuffle_cores(h, c, tp_cores)
    out = []
    for core in range(cores):
        _, in_dims, out_dims, pad_x, pad_y = split_reshuffle(h, w, c, kernel, same, core, cores, fixed)
        src_core, dst_core = src, dst
        for i in range(core):
            dim, ind, outd, _, _ = split_reshuffle(h, w, c, kernel, same, i, cores, fixed)
            if dim == 0:
                src_core, dst_core = src_core + ind[0], dst_core + outd[0]
            elif dim == 1:
                # Mesa advances the output by its swapped "output_height" (= ho) per row, not wo.
                src_core, dst_core = src_core + w * ind[1], dst_core + (g.wo if fixed else g.ho) * outd[1]
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


def _split_z(total: int, core: int, cores: int) -> tuple[int, list[int]]:
    """Mesa's z split: (this core's share, shares of every core so far)."""
    shares, remaining = [], total
    for i in range(core + 1):
        size = -(-remaining // (cores - i))
        share = size if i < cores - 1 else remaining
        remaining -= share
        shares.append(share)
    return shares[-1], shares


def pad(shape: tuple[int, int, int], pads: tuple[tuple[int, int], tuple[int, int], tuple[int, int]],
        in_zp: int, out_zp: int, planar: bool, src: int, dst: int, tp_cores: int) -> list[Fields]:
    """PAD of an (H, W, C) tensor stored planar (x = W, y = H, z = C) or NHWC (x = C, y = W, z = H)."""
    h, w, c = shape
    (hb, ha), (wb, wa), (cb, ca) = pads
    if planar:
        (x, xb, xa), (y, yb, ya), (z, zb, za) = (w, wb, wa), (h, hb, ha), (c, cb, ca)
    else:
        (x, xb, xa), (y, yb, ya), (z, zb, za) = (c, cb, ca), (w, wb, wa), (h, hb, ha)
    cores = 1 if h == 1 else tp_cores
    ox, oy = x + xb + xa, y + yb + ya
    out = []
    for core in range(cores):
        share, shares = _split_z(z, core, cores)
        src_core = src + x * y * sum(shares[:-1])
        dst_core = dst + ox * oy * (sum(shares[:-1]) + (zb if core > 0 else 0))
        f = {
            "in_image_x_size": x, "in_image_y_size": y, "in_image_z_size": share,
            "in_image_stride": x, "in_image_slice": x * y,
            "in_window_x_start": -xb, "in_window_y_start": -yb,
            "in_window_x_end": x - 1 + xa, "in_window_y_end": y - 1 + ya,
            "in_tile_x_size": ox, "in_tile_x_inc": ox, "in_tile_y_size": oy, "in_tile_y_inc": oy,
            "in_image_base_address": src_core, "out_image_base_address": dst_core,
            "out_loop_0_inc": 0, "out_loop_0_count": 1, "out_loop_1_inc": 1, "out_loop_1_count": ox,
            "out_loop_2_inc": ox, "out_loop_2_count": oy, "out_loop_3_inc": 0, "out_loop_3_count": 1,
            "out_loop_6_inc": ox * oy,
            "in_zp": in_zp, "out_zp": out_zp,
            "no_flush": int(cores > 1 and core < cores - 1),
        }
        if cores > 1:
            f["in_window_z_start_overfetch"] = int(bool(zb) and core == 0)
            f["in_window_z_end_overfetch"] = int(bool(za) and core == cores - 1)
        out.append(f)
    return out


PWL_KINDS = ("RELU", "ABS", "LOGISTIC")


def pwl_cores(kind: str, h: int, tp_cores: int) -> int:
    return 1 if kind in ("RELU", "LOGISTIC") and h < 6 else tp_cores


def _f32_bits(v: float) -> int:
    return int(np.array(v, dtype=np.float32).view(np.uint32))


def pwl(kind: str, h: int, w: int, c: int, in_zp: int, out_zp: int, in_scale: float, out_scale: float,
        src: int, dst: int, lut: int, tp_cores: int) -> list[Fields]:
    """Element-wise LUT activation over the bytes as stored: x = C, y = W, z = H."""
    cores = pwl_cores(kind, h, tp_cores)
    scale = 1.0 / out_scale if kind == "LOGISTIC" else np.float32(in_scale) / np.float32(out_scale)
    bits = _f32_bits(scale)
    if (bits >> 7) & 1 and bits & 0x17F:
        bits += 0x100
    shift = (0x7F - (bits >> 23)) & 0x7F
    out = []
    for core in range(cores):
        share, shares = _split_z(h, core, cores)
        f = {
            "in_image_x_size": c, "in_image_y_size": w, "in_image_z_size": share,
            "in_image_stride": c, "in_image_slice": c * w,
            "in_window_x_end": c - 1, "in_window_y_end": w - 1,
            "in_tile_x_size": 64, "in_tile_x_inc": 64, "in_tile_y_size": 16, "in_tile_y_inc": 16,
            "alu_pwl_enable": 1, "alu_load_pwl_lut": 1, "alu_load_pwl_lut_global_mem": 1,
            "alu_pwl_sign_support": 1, "alu_load_pwl_lut_address": lut,
            "in_image_base_address": src + c * w * sum(shares[:-1]),
            "out_image_base_address": dst + c * w * sum(shares[:-1]),
            "out_loop_1_reset": 1, "out_loop_2_reset": 1,
            "out_loop_0_count": 1, "out_loop_0_inc": 0, "out_loop_1_count": 0, "out_loop_1_inc": 1,
            "out_loop_2_count": 0, "out_loop_2_inc": c,
            "out_loop_3_count": -(-c // 64), "out_loop_3_inc": 64,
            "out_loop_4_count": -(-w // 16), "out_loop_4_inc": 16 * c,
            "out_loop_6_inc": c * w,
            "in_zp": in_zp, "out_zp": out_zp,
            "alu_output_post_multiplier": (bits >> 8) & 0x7FFF, "alu_output_postshift_value": shift,
            "no_flush": int(cores > 1 and core < cores - 1),
        }
        out.append(f)
    return out


# -- the 1024-entry fp21 LUTs -------------------------------------------------------------

def fp21(v: float) -> int:
    """float32 -> fp21 as Mesa converts LUT samples (round to nearest even, saturating)."""
    b = _f32_bits(v)
    s, e, m = b >> 31, (b >> 23) & 0xFF, b & 0x7FFFFF
    if e == 0:
        return s << 20
    new_e = e - 127
    if new_e < -14:
        return (s << 20) | int(np.rint(np.float32(1 << 24) * np.float32(abs(v))))
    if new_e > 15:
        return (s << 20) | (0x1E << 15) | 0x7FFF
    # Mesa ORs a mantissa that rounded up to 0x8000 into the exponent field; so do we.
    return (s << 20) | ((new_e + 15) << 15) | int(np.rint(np.float32(m) / np.float32(256)))


def fp32(bits: int) -> np.float32:
    """fp21 -> float32 the way Mesa's LUT builder reads its sample points."""
    u = ((bits & 0xFFFFF) << 8) | ((bits & 0x100000) << 11)
    return np.array((u + 0x38000000) & 0xFFFFFFFF, dtype=np.uint32).view(np.float32)[()]


def relu_lut() -> np.ndarray:
    i = np.arange(1024)
    return np.where(i < 16, 0, np.where(i < 496, 0x8000 + (i - 16) * 0x800,
                                        np.where(i < 512, 0xF7FFF, 0x100000))).astype(np.uint32)


def abs_lut() -> np.ndarray:
    i = np.arange(1024)
    pos = relu_lut()[:512]
    neg = np.where(i[:512] < 16, 0x100000, pos)
    return np.concatenate([pos, neg]).astype(np.uint32)


def logistic_lut(in_scale: float) -> np.ndarray:
    def sig(point: int) -> int:
        val = fp32(point) * np.float32(in_scale) * np.float32(-1.0)
        with np.errstate(over="ignore"):  # expf overflows to inf for large negative inputs, giving 0
            return fp21(np.float32(1.0) / (np.exp(np.float32(val)) + np.float32(1.0)))
    entries = [fp21(0.5)] * 16
    entries += [sig(p) for p in range(0x8000, 0xF8000, 0x800)]
    entries += [fp21(1.0)] * 16 + [fp21(0.5)] * 17
    entries += [sig(p) for p in range(0x108800, 0x1F8000, 0x800)]
    entries += [fp21(0.0)] * 16
    assert len(entries) == 1024
    return np.array(entries, dtype=np.uint32)


LUTS = {"RELU": lambda s: relu_lut(), "ABS": lambda s: abs_lut(), "LOGISTIC": logistic_lut}
