"""Encoder of TP jobs: layout conversions, space-to-depth, constant padding and LUT activations.

Each builder turns one request over tensors of a :class:`Program` into a
:class:`TPJob`: one descriptor field dict per TP core, in kick order, holding
every field except the three addresses (the emitter relocates
``TPCore.input``/``output`` and the LUT), and leaving out fields equal to
``TP_DESCRIPTOR``'s defaults.  The builders return the job; the caller appends it.

The parameter sets are Mesa's (../shared/docs/vipnano-tp-cmdstream-uapi.md
section 2.4), the only ones validated on hardware, and so are Mesa's rules for
splitting a job over the TP cores wherever they give the right result.  Where
they do not (the space-to-depth's H/W mix-ups on non-square maps, empty or
out-of-image shares on narrow maps, idle cores, unprogrammed z padding), the
builders do what the TP traversal (docs/simulator.md, "TP jobs") needs instead;
docs/mesa-differences.md ("TP jobs") lists each change.  Every descriptor is
packed once here, so that a shape the 16-bit fields cannot hold is an
:class:`UnsupportedError` naming the operator rather than a wrapped value.

Only uint8 tensors are accepted: the NPU works on unsigned bytes, and the
lowering hands TP jobs the uint8 version of an int8 tensor (jobs.INT8_OFFSET).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedError
from ..ir import Tensor
from ..hw import fp21
from ..hw.descriptors import (TP_DESCRIPTOR, TP_MAX_Z_OVERFETCH, TP_PWL_INDEX_SHIFT, TP_PWL_LUT_ENTRIES,
                          TP_PWL_TILE_X, TP_PWL_TILE_Y)
from ..hw.fields import LayoutError
from ..passes.npu_program import NHWC, PLANAR, Program, Ref, TPOp
from .jobs import TPCore, TPJob
from ..passes.pwl_fit import PwlTable
from ..hw.target import Target

#: The space-to-depth block: reshuffles serve stride-2 convolutions only (Mesa's weight reshape asserts it).
STRIDE = 2

#: Activations a PWL LUT job computes.
LUT_KINDS = ("relu", "abs", "logistic")

# Mesa's core-count rules (tp notes 2.4), kept because they are what ran on hardware:
# a reshuffle runs on one core when H is one of these and C == 3 (a TODO in Mesa) ...
_RESHUFFLE_ONE_CORE_HEIGHTS = (224, 320)
_RESHUFFLE_ONE_CORE_CHANNELS = 3
# ... or when H <= 8 and C == 1;
_RESHUFFLE_SPLIT_MIN_HEIGHT = 9
# a PAD runs on one core when H == 1; RELU and LOGISTIC when H < 6.
_PAD_ONE_CORE_HEIGHT = 1
_PWL_SPLIT_MIN_HEIGHT = 6
_PWL_ONE_CORE_KINDS = ("relu", "logistic")


# -- operands ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Operand:
    """A [1, H, W, C] uint8 tensor as a TP job sees it."""

    tensor: Tensor
    h: int
    w: int
    c: int
    zero_point: int
    scale: float | None  # None for a tensor without quantization


def _label(program: Program, op: int) -> str:
    """How errors name the operator a job serves."""
    found = [o for o in program.graph.ops if o.index == op]
    return f"operator {found[0].name}" if found else f"operator #{op}"


def _operand(program: Program, t: int, layout: str | None, what: str) -> _Operand:
    """Check that tensor ``t`` is something a TP job can move, and record its layout."""
    tensor = program.graph.tensors[t]
    if len(tensor.shape) != 4 or tensor.shape[0] != 1 or min(tensor.shape) < 1:
        raise UnsupportedError(f"{what}: TP jobs take [1, H, W, C] tensors, not {tensor.describe()}")
    if tensor.dtype != "uint8":
        raise UnsupportedError(f"{what}: TP jobs take uint8 tensors, not {tensor.describe()}")
    q = tensor.quant
    if q is not None and q.per_channel:
        raise UnsupportedError(f"{what}: TP jobs need per-tensor quantization, not {tensor.describe()}")
    if layout is not None:
        program.set_layout(t, layout)
    _, h, w, c = tensor.shape
    if q is None or not q.scale.size:
        return _Operand(tensor, h, w, c, 0, None)
    return _Operand(tensor, h, w, c, q.single_zero_point, q.single_scale)


def _layout_of(program: Program, t: int) -> str:
    layout = program.layouts.get(t)
    if layout is None:
        raise ValueError(f"tensor {program.graph.tensors[t].describe()} has no storage layout yet")
    return layout


def _same_shape(a: _Operand, b: _Operand, kind: str) -> None:
    if a.tensor.shape != b.tensor.shape:
        raise ValueError(f"TP {kind} needs equal shapes: {a.tensor.describe()} -> {b.tensor.describe()}")


def _tp_cores(target: Target, what: str) -> int:
    if target.tp_cores < 1:
        raise UnsupportedError(f"{what}: target {target.name} has no TP cores")
    return target.tp_cores


def _job(what: str, op: int, kind: str, cores: list[TPCore], lut: bytes | None = None, note: str = "") -> TPJob:
    """Chain the cores (all but the last are kicked with no_flush) and check every field fits the descriptor."""
    for i, core in enumerate(cores):
        if i < len(cores) - 1:
            core.desc["no_flush"] = 1
        try:
            TP_DESCRIPTOR.pack(core.desc)
        except LayoutError as e:
            raise UnsupportedError(f"{what}: TP {kind} cannot be described to the TP cores ({e})") from None
    return TPJob(name=f"{what} {kind}", op=op, kind=kind, cores=cores, lut=lut, note=note)


def _ceil_split(total: int, parts: int) -> list[int]:
    """Mesa's split: each part takes the ceiling of what is left over the parts left."""
    out = []
    for i in range(parts):
        out.append(-(-total // (parts - i)))
        total -= out[-1]
    return out


# -- layout conversions ---------------------------------------------------------------------


def _layout_change(program: Program, op: int, src: int, dst: int, target: Target, src_layout: str,
                   dst_layout: str, kind: str) -> tuple[str, _Operand]:
    """Check a layout change of ``src`` into ``dst`` (same shape); returns the operator's label and src."""
    what = _label(program, op)
    _tp_cores(target, what)
    a, b = _operand(program, src, src_layout, what), _operand(program, dst, dst_layout, what)
    _same_shape(a, b, kind)
    return what, a


def transpose(program: Program, op: int, src: int, dst: int, target: Target) -> TPJob:
    """NHWC ``src`` -> planar ``dst`` (same shape), on one TP core (Mesa's TRANSPOSE).

    The input is read as x = C, y = W, z = H with one tile column per channel,
    so the element number is ((h*C + c)*W + w); output loops W (inc 1), C (inc
    H*W) and H (inc W) turn it into the planar offset (c*H + h)*W + w.
    """
    what, a = _layout_change(program, op, src, dst, target, NHWC, PLANAR, "transpose")
    h, w, c = a.h, a.w, a.c
    desc = {
        "in_image_x_size": c, "in_image_y_size": w, "in_image_z_size": h,
        "in_image_stride": c, "in_image_slice": w * c,
        "in_window_x_end": c - 1, "in_window_y_end": w - 1,
        "in_tile_y_size": w, "in_tile_y_inc": w,
        "out_loop_0_count": w, "out_loop_1_inc": h * w, "out_loop_1_count": c,
        "out_loop_2_inc": w, "out_loop_2_count": h,
        "in_zp": a.zero_point, "out_zp": a.zero_point,
    }
    return _job(what, op, "transpose", [TPCore(desc, Ref(src), Ref(dst))])


def detranspose(program: Program, op: int, src: int, dst: int, target: Target) -> TPJob:
    """Planar ``src`` -> NHWC ``dst`` (same shape), on one TP core (Mesa's DETRANSPOSE).

    The planar tensor is read contiguously, cut into rows of H bytes as Mesa
    cuts it (the row length does not matter: stride equals width, so the
    element number is the planar offset (c*H + h)*W + w whatever the cut);
    output loops W (inc C), H (inc W*C) and C (inc 1) give the NHWC offset.
    """
    what, a = _layout_change(program, op, src, dst, target, PLANAR, NHWC, "detranspose")
    h, w, c = a.h, a.w, a.c
    desc = {
        "in_image_x_size": h, "in_image_y_size": w * c, "in_image_z_size": 1,
        "in_image_stride": h, "in_image_slice": h * w * c,
        "in_window_x_end": h - 1, "in_window_y_end": w * c - 1,
        "in_tile_y_size": 1, "in_tile_y_inc": 1,
        "out_loop_0_inc": c, "out_loop_0_count": w, "out_loop_1_inc": 0, "out_loop_1_count": 1,
        "out_loop_2_inc": w * c, "out_loop_2_count": h, "out_loop_3_inc": 1, "out_loop_3_count": c,
        "out_loop_4_inc": h * w * c,
        "in_zp": a.zero_point, "out_zp": a.zero_point,
    }
    return _job(what, op, "detranspose", [TPCore(desc, Ref(src), Ref(dst))])


# -- space-to-depth -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Axis:
    """One axis of a reshuffle, in input positions (x: columns, y: rows, z: channels)."""

    name: str
    size: int   # input extent
    out: int    # output extent (per phase plane)
    pad: int    # padding before the first input position
    step: int   # input positions per output position (STRIDE, or 1 for channels)


@dataclass(frozen=True)
class _Share:
    """The part of an axis one TP core covers: outputs [first, first + count)."""

    first: int
    count: int
    base: int    # input position the core's image starts at
    start: int   # window start relative to base: minus the padding the window still reads before it
    image: int   # input positions of the core's image from base


def _share(axis: _Axis, first: int, count: int, last: bool) -> _Share:
    """Where a core's window lies: it reads ``count * step`` positions from ``first * step - pad``.

    The image starts at the first position inside the tensor and ends where the
    window ends (the last core: where the tensor ends), so that every position
    the window reads outside the tensor is border, never a neighbour's byte.
    """
    lo = first * axis.step - axis.pad
    base = max(lo, 0)
    image = axis.size - base if last else lo + count * axis.step - base
    return _Share(first, count, base, lo - base, image)


def _split(axis: _Axis, cores: int) -> list[_Share] | None:
    """Mesa's split of ``axis`` over ``cores``, or None when a core would get no output or no input pixel."""
    shares, first = [], 0
    for i, count in enumerate(_ceil_split(axis.out, cores)):
        shares.append(_share(axis, first, count, i == cores - 1))
        first += count
    if all(s.count >= 1 and s.image >= 1 and s.base < axis.size for s in shares):
        return shares
    return None


def _split_axis(axes: tuple[_Axis, _Axis, _Axis]) -> int:
    """Mesa's choice of the axis to split: x, unless there are at least as many channels as columns."""
    x, y, z = (a.out for a in axes)
    dim = 0
    if z >= x:
        if y >= x:
            dim = 1
        if z >= (x, y)[dim]:
            dim = 2
    return dim


def _reshuffle_cores(h: int, c: int, target: Target, what: str) -> int:
    """Mesa's core count for a reshuffle (the builder may then use fewer, see ``_split``)."""
    available = _tp_cores(target, what)
    if (h in _RESHUFFLE_ONE_CORE_HEIGHTS and c == _RESHUFFLE_ONE_CORE_CHANNELS) or \
            (h < _RESHUFFLE_SPLIT_MIN_HEIGHT and c == 1):
        return 1
    return available


def reshuffle(program: Program, op: int, src: int, dst: int, kernel_h: int, kernel_w: int,
              pad_top: int, pad_left: int, target: Target) -> TPJob:
    """Space-to-depth of planar ``src`` [1, H, W, C] into planar ``dst`` [1, Ho, Wo, 4C] for a stride-2 convolution.

    Contract: for every y < Ho, x < Wo, c < C and phases py, px in {0, 1},

        dst[0, y, x, 4c + 2*py + px] = src[0, 2y + py - pad_top, 2x + px - pad_left, c]

    where a source pixel outside the tensor reads as the input zero point (real
    zero, the convolution's padding); dst has src's quantization.  The caller
    creates dst and so decides Ho and Wo: a stride-2 convolution with a k x k
    kernel and TFLite's padding before (pad_top, pad_left) equals a stride-1
    convolution with a ceil(k/2) kernel over dst when dst covers every input
    pixel the convolution reads; Mesa uses Ho = ceil(H/2) + p with p = 0
    (VALID), 1 (SAME 3x3), 2 (SAME 5x5), likewise Wo.  The paddings must be
    smaller than the kernel (``kernel_h`` x ``kernel_w``), as any TFLite
    padding is.

    The job is split over the TP cores along x, y or channels as Mesa splits it
    (one core for 224/320-high 3-channel inputs and for small one-channel ones);
    unlike Mesa, x takes pad_left and y pad_top, each core's output starts at
    its own row of Wo, and the core count drops until every core has outputs
    and input pixels (Mesa's shares go empty or negative on narrow maps).
    """
    what = _label(program, op)
    a, b = _operand(program, src, PLANAR, what), _operand(program, dst, PLANAR, what)
    phases = STRIDE * STRIDE
    if b.c != phases * a.c or (b.zero_point, b.scale) != (a.zero_point, a.scale):
        raise ValueError(f"TP reshuffle of {a.tensor.describe()} needs {phases * a.c} output channels and the "
                         f"same quantization, not {b.tensor.describe()}")
    for side, pad, kernel in (("top", pad_top, kernel_h), ("left", pad_left, kernel_w)):
        if not 0 <= pad < kernel:
            raise UnsupportedError(f"{what}: space-to-depth padding {side} of {pad} for a kernel of {kernel}: "
                                   f"needs 0 <= padding < kernel")
    axes = (_Axis("x", a.w, b.w, pad_left, STRIDE), _Axis("y", a.h, b.h, pad_top, STRIDE), _Axis("z", a.c, a.c, 0, 1))
    dim = _split_axis(axes)
    mesa_cores = _reshuffle_cores(a.h, a.c, target, what)
    cores, shares = next((n, s) for n in range(mesa_cores, 0, -1) if (s := _split(axes[dim], n)) is not None)
    plane = b.h * b.w
    src_steps, dst_steps = (1, a.w, a.w * a.h), (1, b.w, phases * plane)
    jobs = []
    for share in shares:
        sx, sy, sz = (share if i == dim else _share(ax, 0, ax.out, True) for i, ax in enumerate(axes))
        desc = {
            "in_image_x_size": sx.image, "in_image_y_size": sy.image, "in_image_z_size": sz.image,
            "in_image_stride": a.w, "in_image_slice": a.w * a.h,
            "in_window_x_start": sx.start, "in_window_y_start": sy.start,
            "in_window_x_end": sx.start + STRIDE * sx.count - 1, "in_window_y_end": sy.start + STRIDE * sy.count - 1,
            "in_tile_x_size": STRIDE * sx.count, "in_tile_x_inc": STRIDE * sx.count,
            "in_tile_y_size": STRIDE * sy.count, "in_tile_y_inc": STRIDE * sy.count,
            # One tile per plane; loops 0-1 split its column into (phase x, column / 2), loops
            # 2-3 its row into (phase y, row / 2), loop 6 counts planes: channel 4c + 2py + px.
            "out_loop_1_reset": 1, "out_loop_3_reset": 1,
            "out_loop_0_inc": plane, "out_loop_0_count": STRIDE,
            "out_loop_1_inc": 1, "out_loop_1_count": sx.count,
            "out_loop_2_inc": STRIDE * plane, "out_loop_2_count": STRIDE,
            "out_loop_3_inc": b.w, "out_loop_3_count": sy.count,
            "out_loop_6_inc": phases * plane,
            "in_zp": a.zero_point, "out_zp": a.zero_point,
        }
        in_off = sum(s.base * step for s, step in zip((sx, sy, sz), src_steps))
        out_off = sum(s.first * step for s, step in zip((sx, sy, sz), dst_steps))
        jobs.append(TPCore(desc, Ref(src, in_off), Ref(dst, out_off)))
    note = (f"space-to-depth for a {kernel_h}x{kernel_w} stride-{STRIDE} convolution, "
            f"{cores} TP core{'s' if cores > 1 else ''} split along {axes[dim].name}")
    if cores < mesa_cores:
        note += f" (Mesa would use {mesa_cores}: its shares would leave a core without outputs or input)"
    return _job(what, op, "reshuffle", jobs, note=note)


# -- constant padding -----------------------------------------------------------------------


def pad(program: Program, op: int, src: int, dst: int,
        pads: tuple[tuple[int, int], tuple[int, int], tuple[int, int]], target: Target) -> TPJob:
    """Constant padding of ``src`` into ``dst``: ``pads`` is ((top, bottom), (left, right), (front, back)).

    As TFLite's PAD: dst = numpy.pad(src, ((0, 0), *pads)) over the stored
    bytes, which are copied unchanged whatever the two quantizations, with
    dst's zero point as the padding value.  Both zero point fields hold dst's
    zero point: the border then reads it, and the ALU's (q - zp) + zp keeps
    every byte.  The axes follow the tensors' storage layout (planar: x = W,
    y = H, z = C; NHWC: x = C, y = W, z = H; both must be stored alike).  x and
    y take any padding; z padding is over-fetched planes, at most
    ``TP_MAX_Z_OVERFETCH`` per side (the only value Mesa programs).  Split
    over the cores along z as Mesa does (one core when H == 1), but never onto
    more cores than planes, and with the z padding programmed on one core too
    (Mesa drops it there).
    """
    what = _label(program, op)
    layout = _layout_of(program, src)
    a, b = _operand(program, src, layout, what), _operand(program, dst, layout, what)
    if any(n < 0 for side in pads for n in side):
        raise UnsupportedError(f"{what}: negative padding {pads}")
    (hb, ha), (wb, wa), (cb, ca) = pads
    if b.tensor.shape != (1, a.h + hb + ha, a.w + wb + wa, a.c + cb + ca):
        raise ValueError(f"TP pad {pads} of {a.tensor.describe()} cannot give {b.tensor.describe()}")
    if layout == PLANAR:
        (x, xb, xa), (y, yb, ya), (z, zb, za) = (a.w, wb, wa), (a.h, hb, ha), (a.c, cb, ca)
        z_name = "channel"
    else:
        (x, xb, xa), (y, yb, ya), (z, zb, za) = (a.c, cb, ca), (a.w, wb, wa), (a.h, hb, ha)
        z_name = "row"
    if max(zb, za) > TP_MAX_Z_OVERFETCH:
        raise UnsupportedError(f"{what}: {z_name} padding {(zb, za)} of a {layout} tensor: a TP core adds at most "
                               f"{TP_MAX_Z_OVERFETCH} plane per side")
    available = _tp_cores(target, what)
    cores = 1 if a.h == _PAD_ONE_CORE_HEIGHT else available
    ox, oy = x + xb + xa, y + yb + ya
    shares = _ceil_split(z, min(cores, z))
    jobs = []
    for i, share in enumerate(shares):
        first, last = i == 0, i == len(shares) - 1
        z0 = sum(shares[:i])
        desc = {
            "in_image_x_size": x, "in_image_y_size": y, "in_image_z_size": share,
            "in_image_stride": x, "in_image_slice": x * y,
            "in_window_x_start": -xb, "in_window_y_start": -yb,
            "in_window_x_end": x - 1 + xa, "in_window_y_end": y - 1 + ya,
            "in_tile_x_size": ox, "in_tile_x_inc": ox, "in_tile_y_size": oy, "in_tile_y_inc": oy,
            "in_window_z_start_overfetch": zb if first else 0, "in_window_z_end_overfetch": za if last else 0,
            # One tile per plane: loops 1 and 2 walk its columns and rows, loop 6 the planes.
            "out_loop_0_inc": 0, "out_loop_0_count": 1, "out_loop_1_inc": 1, "out_loop_1_count": ox,
            "out_loop_2_inc": ox, "out_loop_2_count": oy, "out_loop_3_inc": 0, "out_loop_3_count": 1,
            "out_loop_6_inc": ox * oy,
            "in_zp": b.zero_point, "out_zp": b.zero_point,
        }
        out_planes = 0 if first else z0 + zb  # core 0 starts with its over-fetched planes
        jobs.append(TPCore(desc, Ref(src, x * y * z0), Ref(dst, ox * oy * out_planes)))
    return _job(what, op, "pad", jobs, note=f"{layout} padding {pads} on {len(jobs)} TP core(s)")


# -- LUT activations ------------------------------------------------------------------------


def _post_scale(scale: float, what: str) -> dict[str, int]:
    """The ALU's output multiplier (1 + m / 2**bits) * 2**-shift nearest to ``scale`` (ties to even m)."""
    bits = TP_DESCRIPTOR["alu_output_post_multiplier"].width
    shift_field = TP_DESCRIPTOR.composite("alu_output_postshift_value")
    frac, exp = math.frexp(scale)  # scale = frac * 2**exp, frac in [0.5, 1)
    m = round((2 * frac - 1) * (1 << bits))  # Python rounds ties to even
    if m == 1 << bits:
        m, exp = 0, exp + 1
    shift = 1 - exp
    limit = 1 << (shift_field.width - 1)  # the hardware reads the shift as signed
    if not -limit <= shift < limit:
        raise UnsupportedError(f"{what}: output scale factor {scale:g} is out of the TP multiplier's range")
    return {"alu_output_post_multiplier": m, shift_field.name: shift & ((1 << shift_field.width) - 1)}


def _lut_bytes(kind: str, in_scale: float) -> bytes:
    """The PWL table: entry i holds f(v) at the input v whose fp21 code is i << TP_PWL_INDEX_SHIFT.

    The TP looks an input up by its fp21 code's top bits and interpolates
    linearly to the next entry, so sampling f at the entry points is all it
    needs.  Inputs are ``q - in_zp``; RELU and ABS keep them (the multiplier
    rescales to the output), LOGISTIC gives real values in [0, 1] (the
    multiplier is 1/out_scale).
    """
    v = fp21.decode(np.arange(TP_PWL_LUT_ENTRIES, dtype=np.int64) << TP_PWL_INDEX_SHIFT)
    if kind == "relu":
        f = np.maximum(v, 0.0)
    elif kind == "abs":
        f = np.abs(v)
    else:
        with np.errstate(over="ignore"):  # exp overflows to inf for very negative inputs: sigmoid 0
            f = 1.0 / (1.0 + np.exp(-in_scale * v))
    return fp21.encode(f).astype("<u4").tobytes()


def lut(program: Program, op: int, src: int, dst: int, kind: str, target: Target) -> TPJob:
    """Element-wise RELU, ABS or LOGISTIC of ``src`` into ``dst`` through the TP's PWL LUT (``TPJob.lut``).

    dst = TFLite's ``kind`` of src requantized to dst's quantization (RELU and
    ABS exact up to the 15-bit output multiplier, LOGISTIC within the LUT's
    interpolation); src and dst share shape and storage layout, which the job
    ignores: it walks the bytes as stored (x = C, y = W, z = H, tiles of
    TP_PWL_TILE_X x TP_PWL_TILE_Y) as Mesa does.  Split over the cores along z
    as Mesa (one core for RELU and LOGISTIC when H < 6), never onto more cores
    than H.
    """
    what = _label(program, op)
    if kind not in LUT_KINDS:
        raise ValueError(f"TP LUT kind {kind!r} is not one of {LUT_KINDS}")
    a, b = _lut_operands(program, op, src, dst, kind)
    if a.scale is None or b.scale is None:
        raise UnsupportedError(f"{what}: TP {kind} needs quantized tensors: {a.tensor.describe()} -> "
                               f"{b.tensor.describe()}")
    scale = 1.0 / b.scale if kind == "logistic" else a.scale / b.scale
    one_core = kind in _PWL_ONE_CORE_KINDS and a.h < _PWL_SPLIT_MIN_HEIGHT
    return _pwl_job(program, op, src, dst, kind, _post_scale(scale, what), a.zero_point, b.zero_point,
                    _lut_bytes(kind, a.scale), one_core, target)


def table_lut(program: Program, op: int, src: int, dst: int, table: PwlTable, kind: str, target: Target) -> TPJob:
    """Element-wise ``dst[i] = f(src[i])`` for the byte function ``table`` fits (pwl_fit): multiplier 1, zero point 0.

    The walk and the split over the TP cores are ``lut``'s (never more cores than H).
    """
    _lut_operands(program, op, src, dst, kind)
    return _pwl_job(program, op, src, dst, kind, {}, table.in_zp, 0, table.lut, False, target)


def _lut_operands(program: Program, op: int, src: int, dst: int, kind: str) -> tuple[_Operand, _Operand]:
    what = _label(program, op)
    layout = _layout_of(program, src)
    a, b = _operand(program, src, layout, what), _operand(program, dst, layout, what)
    _same_shape(a, b, kind)
    return a, b


def _pwl_job(program: Program, op: int, src: int, dst: int, kind: str, scale_fields: dict[str, int], in_zp: int,
             out_zp: int, table: bytes, one_core: bool, target: Target) -> TPJob:
    what = _label(program, op)
    a = _operand(program, src, None, what)
    alu = {"alu_pwl_enable": 1, "alu_load_pwl_lut": 1, "alu_load_pwl_lut_global_mem": 1, "alu_pwl_sign_support": 1,
           **scale_fields}
    h, w, c = a.h, a.w, a.c
    cores = 1 if one_core else _tp_cores(target, what)
    shares = _ceil_split(h, min(cores, h))
    jobs = []
    for i, share in enumerate(shares):
        desc = {
            "in_image_x_size": c, "in_image_y_size": w, "in_image_z_size": share,
            "in_image_stride": c, "in_image_slice": c * w,
            "in_window_x_end": c - 1, "in_window_y_end": w - 1,
            "in_tile_x_size": TP_PWL_TILE_X, "in_tile_x_inc": TP_PWL_TILE_X,
            "in_tile_y_size": TP_PWL_TILE_Y, "in_tile_y_inc": TP_PWL_TILE_Y,
            **alu,
            # Loops 1-2: column and row in the tile (sized by it), 3-4: tile column and row, 6: plane.
            "out_loop_1_reset": 1, "out_loop_2_reset": 1,
            "out_loop_0_count": 1, "out_loop_0_inc": 0, "out_loop_1_count": 0, "out_loop_1_inc": 1,
            "out_loop_2_count": 0, "out_loop_2_inc": c,
            "out_loop_3_count": -(-c // TP_PWL_TILE_X), "out_loop_3_inc": TP_PWL_TILE_X,
            "out_loop_4_count": -(-w // TP_PWL_TILE_Y), "out_loop_4_inc": TP_PWL_TILE_Y * c,
            "out_loop_6_inc": c * w,
            "in_zp": in_zp, "out_zp": out_zp,
        }
        offset = c * w * sum(shares[:i])
        jobs.append(TPCore(desc, Ref(src, offset), Ref(dst, offset)))
    return _job(what, op, kind, jobs, lut=table, note=f"PWL LUT on {len(jobs)} TP core(s)")


def encode_tp(program: Program, step: TPOp, target: Target) -> TPJob:
    """The encoded TP job of a TP operation: split over the TP cores, every descriptor field filled."""
    src, dst, p = step.src, step.dst, step.params
    if step.table is not None:
        return table_lut(program, step.op, src, dst, step.table, step.kind, target)
    if step.kind == "transpose":
        return transpose(program, step.op, src, dst, target)
    if step.kind == "detranspose":
        return detranspose(program, step.op, src, dst, target)
    if step.kind == "reshuffle":
        return reshuffle(program, step.op, src, dst, p["kernel_h"], p["kernel_w"], p["pad_top"], p["pad_left"], target)
    if step.kind == "pad":
        return pad(program, step.op, src, dst, p["pads"], target)
    return lut(program, step.op, src, dst, step.kind, target)
