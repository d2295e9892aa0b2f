"""QUANTIZE and DEQUANTIZE on the host: scales and zero points as TFLite's kernels use them.

QUANTIZE has two kernels: from float32 (the float32 scale TFLite divides by
and the zero point, one pair per tensor or one per channel along ``axis``)
and between integer types (a requantizing multiplier and shift, in double
from the two scales).  DEQUANTIZE has one for the integer types (per tensor
or per channel) and one for float16.
"""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import Floats, HostOp, Int, Ints, Types
from ..fixedpoint import quantize_multiplier
from ..kernels import quantize
from .common import Params, fail, input_tensor, output_tensor, per_tensor, require_type

#: The requantizations TFLite's QUANTIZE runs, by input type: the output types it takes.
REQUANTIZE_OUTPUTS = {"uint8": ("uint8", "int8", "int16"), "int8": ("uint8", "int8", "int16"),
                      "int16": ("int8", "int16", "int32"), "int32": ("int8", "int16")}
#: Types a float32 tensor quantizes to; integer types DEQUANTIZE takes (per channel: the 8-bit ones).
QUANTIZED_TYPES = ("uint8", "int8", "int16")
PER_CHANNEL_DEQUANTIZE = ("uint8", "int8")


def _same_shape(op: Op, x: Tensor, y: Tensor) -> None:
    if tuple(x.shape) != tuple(y.shape):
        raise fail(op, f"input {x.describe()} and output {y.describe()} differ in shape")


def _int16_zero_point(op: Op, t: Tensor, zero_points: np.ndarray, what: str) -> None:
    if t.dtype == "int16" and np.any(zero_points != 0):
        raise fail(op, f"int16 {what} {t.describe()} needs zero point 0")


def _channels(op: Op, t: Tensor, what: str) -> tuple[np.ndarray, np.ndarray, int]:
    """float32 scales, zero points and axis of a tensor quantized per tensor (axis 0) or per channel."""
    q = t.quant
    if q is None or q.scale.size == 0:
        raise fail(op, f"{what} {t.describe()} is not quantized")
    scales = q.scale.astype(np.float32)
    if not np.all((scales > 0) & np.isfinite(scales)):
        raise fail(op, f"{what} {t.describe()} has a scale that is not positive and finite")
    if not q.per_channel:
        return scales[:1], q.zero_point[:1].astype(np.int32), 0
    axis = q.axis or 0
    if not 0 <= axis < len(t.shape) or t.shape[axis] != scales.size or q.zero_point.size != scales.size:
        raise fail(op, f"{what} {t.describe()} has {scales.size} scales for axis {axis}")
    return scales, q.zero_point.astype(np.int32), axis


def _operands(graph: Graph, op: Op, output_types: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """The input and output, of one shape, the output of one of ``output_types``."""
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, y, "output", output_types)
    _same_shape(op, x, y)
    return x, y


def _requantize(graph: Graph, op: Op) -> Params:
    x = input_tensor(graph, op, 0, "input")
    require_type(op, x, "input", tuple(REQUANTIZE_OUTPUTS))
    x, y = _operands(graph, op, REQUANTIZE_OUTPUTS[x.dtype])
    in_scale, in_zp = per_tensor(op, x, "input")
    out_scale, out_zp = per_tensor(op, y, "output")
    for t, zp, what in ((x, in_zp, "input"), (y, out_zp, "output")):
        _int16_zero_point(op, t, np.array([zp]), what)
    multiplier, shift = quantize_multiplier(in_scale / out_scale)
    return {"input_zero_point": in_zp, "output_zero_point": out_zp,
            "output_multiplier": multiplier, "output_shift": shift}


def _quantize_float(graph: Graph, op: Op) -> Params:
    _, y = _operands(graph, op, QUANTIZED_TYPES)
    scales, zero_points, axis = _channels(op, y, "output")
    _int16_zero_point(op, y, zero_points, "output")
    return {"scale": scales, "zero_point": zero_points, "axis": axis}


def _dequantize(graph: Graph, op: Op) -> Params:
    x, _ = _operands(graph, op, ("float32",))
    scales, zero_points, axis = _channels(op, x, "input")
    if scales.size > 1:
        require_type(op, x, "per-channel input", PER_CHANNEL_DEQUANTIZE)
    _int16_zero_point(op, x, zero_points, "input")
    return {"scale": scales, "zero_point": zero_points, "axis": axis}


def _dequantize_float16(graph: Graph, op: Op) -> Params:
    _operands(graph, op, ("float32",))
    return {}


#: Zero points of every integer type QUANTIZE reads or writes.
_ZERO_POINT = (-(1 << 31), (1 << 31) - 1)
#: Per-tensor (one value, axis 0) or per-channel scales and zero points.
_CHANNELS = (Floats("scale"), Ints("zero_point", -32768, 65535), Int("axis", 0, 5))

OPS = (
    HostOp("QUANTIZE", (Int("input_zero_point", *_ZERO_POINT), Int("output_zero_point", -32768, 65535),
                        Int("output_multiplier", 0), Int("output_shift", -31, 31)), _requantize, quantize.requantize,
           types=Types(tuple(REQUANTIZE_OUTPUTS), "input")),
    HostOp("QUANTIZE_F32", _CHANNELS, _quantize_float, quantize.quantize_float, opcode="QUANTIZE",
           types=Types(("float32",), "input")),
    HostOp("DEQUANTIZE", _CHANNELS, _dequantize, quantize.dequantize, types=Types(QUANTIZED_TYPES, "input")),
    HostOp("DEQUANTIZE_F16", (), _dequantize_float16, quantize.dequantize_float16, opcode="DEQUANTIZE",
           types=Types(("float16",), "input")),
)
