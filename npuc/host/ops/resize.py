"""RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR on the host: source coordinates computed at compile time.

The size input must be constant, so every output row and column has a
fixed source, which this module computes the way TFLite's reference kernels
do at run time and hands to the kernels as tables:

* bilinear, float kernel (float32, uint8): scale ``in / out`` in float32
  (``(in - 1) / (out - 1)`` with ``align_corners``), source ``y * scale`` or
  ``(y + 0.5) * scale - 0.5`` with ``half_pixel_centers``, its floor (at
  least 0), its ceiling (at most in - 1) and the float32 fraction above the
  floor;
* bilinear, integer kernel (int8, int16): the same in fixed point with 10
  fractional bits, the scale rounded to nearest;
* nearest neighbor: ``floor((y + offset) * scale)``, or rounded half away
  from zero with ``align_corners``, clamped to the input, where the offset
  is 0.5 with ``half_pixel_centers``.

TFLite refuses a bilinear resize with both flags set; the nearest-neighbor
one takes them together.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import Floats, HostOp, Ints, Types
from ..fixedpoint import round_half_away
from ..kernels import resize
from ..kernels.resize import FRACTION_BITS, trunc_div
from .common import Params, constant_ints, fail, input_tensor, output_tensor, require_shape, require_type, same_type

#: Types of the bilinear kernels: TFLite's float one, and its integer one.
BILINEAR_FLOAT_TYPES = ("float32", "uint8")
BILINEAR_INTEGER_TYPES = ("int8", "int16")
#: Types RESIZE_NEAREST_NEIGHBOR takes.
NEAREST_TYPES = ("float32", "uint8", "int8", "int16", "int32", "bool")


def _geometry(graph: Graph, op: Op, types: tuple[str, ...]) -> tuple[Tensor, Tensor, bool, bool]:
    """Input and output (NHWC, output sized by the constant size input) and the two flags."""
    x, size, y = input_tensor(graph, op, 0, "input"), input_tensor(graph, op, 1, "size"), output_tensor(graph, op)
    require_type(op, x, "input", types)
    same_type(op, x, y)
    if len(x.shape) != 4 or 0 in x.shape:
        raise fail(op, f"input {x.describe()} must be non-empty and 4-D")
    sizes = constant_ints(op, size, "size")
    if len(sizes) != 2 or min(sizes) <= 0:
        raise fail(op, f"size {size.describe()} must hold two positive values")
    require_shape(op, y, (x.shape[0], *sizes, x.shape[3]), "output")
    return x, y, bool(op.options.get("align_corners", False)), bool(op.options.get("half_pixel_centers", False))


def _float_scale(in_size: int, out_size: int, align_corners: bool) -> np.float32:
    if align_corners and out_size > 1:
        return np.float32(in_size - 1) / np.float32(out_size - 1)
    return np.float32(in_size) / np.float32(out_size)


def _float_axis(in_size: int, out_size: int, align: bool, half: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = _float_scale(in_size, out_size, align)
    v = np.arange(out_size, dtype=np.float32)
    source = (v + np.float32(0.5)) * scale - np.float32(0.5) if half else v * scale
    lower = np.maximum(np.floor(source), 0).astype(np.int32)
    upper = np.minimum(np.ceil(source), in_size - 1).astype(np.int32)
    return lower, upper, (source - lower.astype(np.float32)).astype(np.float32)


def _integer_axis(in_size: int, out_size: int, align: bool, half: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    one = 1 << FRACTION_BITS
    if align and out_size > 1:
        scale = (one * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale = (one * in_size + out_size // 2) // out_size
    v = np.arange(out_size, dtype=np.int64)
    source = v * scale + scale // 2 - one // 2 if half else v * scale
    lower = np.maximum(trunc_div(source, one), 0)
    upper = np.minimum(trunc_div(source + one - 1, one), in_size - 1)
    return lower.astype(np.int32), upper.astype(np.int32), source.astype(np.int32)


#: The source table of one axis: (in_size, out_size, align_corners, half_pixel_centers) -> (lower, upper, position).
AxisTable = Callable[[int, int, bool, bool], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _bilinear(graph: Graph, op: Op, types: tuple[str, ...], axis: AxisTable, position: str) -> Params:
    x, y, align, half = _geometry(graph, op, types)
    if align and half:
        raise fail(op, "align_corners and half_pixel_centers cannot both be set")
    params: Params = {}
    for name, in_size, out_size in (("y", x.shape[1], y.shape[1]), ("x", x.shape[2], y.shape[2])):
        lower, upper, where = axis(in_size, out_size, align, half)
        if lower.max() > in_size - 1:
            raise fail(op, f"resizing {in_size} to {out_size} reads outside the input")
        params.update({f"{name}_lower": lower, f"{name}_upper": upper, f"{name}_{position}": where})
    return params


def _bilinear_float(graph: Graph, op: Op) -> Params:
    return _bilinear(graph, op, BILINEAR_FLOAT_TYPES, _float_axis, "fraction")


def _bilinear_integer(graph: Graph, op: Op) -> Params:
    return _bilinear(graph, op, BILINEAR_INTEGER_TYPES, _integer_axis, "position")


def _nearest_axis(in_size: int, out_size: int, align: bool, half: bool) -> np.ndarray:
    scale = _float_scale(in_size, out_size, align)
    source = (np.arange(out_size, dtype=np.float32) + np.float32(0.5 if half else 0.0)) * scale
    index = np.minimum((round_half_away(source) if align else np.floor(source)).astype(np.int64), in_size - 1)
    return np.maximum(index, 0).astype(np.int32)


def _nearest(graph: Graph, op: Op) -> Params:
    x, y, align, half = _geometry(graph, op, NEAREST_TYPES)
    return {"rows": _nearest_axis(x.shape[1], y.shape[1], align, half),
            "cols": _nearest_axis(x.shape[2], y.shape[2], align, half)}


_FLOAT_TABLES = tuple(p for a in "yx" for p in (Ints(f"{a}_lower", 0), Ints(f"{a}_upper", 0), Floats(f"{a}_fraction")))
_INTEGER_TABLES = tuple(p for a in "yx" for p in (Ints(f"{a}_lower", 0), Ints(f"{a}_upper", 0), Ints(f"{a}_position")))

OPS = (
    HostOp("RESIZE_BILINEAR", _FLOAT_TABLES, _bilinear_float, resize.resize_bilinear,
           types=Types(BILINEAR_FLOAT_TYPES)),
    HostOp("RESIZE_BILINEAR_INT", _INTEGER_TABLES, _bilinear_integer, resize.resize_bilinear_integer,
           opcode="RESIZE_BILINEAR", types=Types(BILINEAR_INTEGER_TYPES)),
    HostOp("RESIZE_NEAREST_NEIGHBOR", (Ints("rows", 0), Ints("cols", 0)), _nearest, resize.resize_nearest_neighbor),
)
