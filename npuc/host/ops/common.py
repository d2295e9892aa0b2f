"""What every host operator's fold shares: operand access, type checks, quantization and activation ranges.

Each helper either returns what TFLite's Prepare would compute or raises an
:class:`UnsupportedError` whose one-line message names the operator (and the
tensor at fault), so a folder only states its operator's rules.
"""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from ...ir import Graph, Op, Tensor
from ..decl import Params
from ..fixedpoint import round_half_away

__all__ = ["Params"]

#: The 8-bit types the quantized kernels take.
QUANTIZED_TYPES = ("uint8", "int8")
#: Types whose elements the data-movement and conversion kernels handle.
NUMERIC_TYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float32")


def fail(op: Op, msg: str) -> UnsupportedError:
    return UnsupportedError(f"operator {op.name}: {msg}")


def input_tensor(graph: Graph, op: Op, i: int, what: str) -> Tensor:
    if len(op.inputs) <= i or op.inputs[i] is None:
        raise fail(op, f"missing {what} (input {i})")
    return graph.tensors[op.inputs[i]]


def optional_input(graph: Graph, op: Op, i: int) -> Tensor | None:
    return graph.tensors[op.inputs[i]] if len(op.inputs) > i and op.inputs[i] is not None else None


def output_tensor(graph: Graph, op: Op) -> Tensor:
    if not op.outputs:
        raise fail(op, "has no output")
    return graph.tensors[op.outputs[0]]


def require_type(op: Op, t: Tensor, what: str, types: tuple[str, ...] = QUANTIZED_TYPES) -> None:
    if t.dtype not in types:
        raise fail(op, f"{what} {t.describe()} has type {t.dtype}; the host kernel takes {'/'.join(types)}")


def per_tensor(op: Op, t: Tensor, what: str) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized tensor, as TFLite's float and int32."""
    q = t.quant
    if q is None or q.scale.size == 0:
        raise fail(op, f"{what} {t.describe()} is not quantized")
    if q.per_channel:
        raise fail(op, f"{what} {t.describe()} is quantized per channel; the host kernel needs one scale")
    scale = float(np.float32(q.single_scale))
    if not 0 < scale < float("inf"):
        raise fail(op, f"{what} {t.describe()} has scale {scale}; a scale must be positive and finite")
    return scale, q.single_zero_point


def same_type(op: Op, a: Tensor, b: Tensor) -> None:
    if a.dtype != b.dtype:
        raise fail(op, f"{a.describe()} and {b.describe()} differ in type")


def require_shape(op: Op, t: Tensor, shape: tuple[int, ...] | list[int], what: str) -> None:
    """Refuse ``t`` unless it has exactly ``shape``: kernels trust the shapes they are compiled for."""
    if tuple(t.shape) != tuple(shape):
        raise fail(op, f"{what} {t.describe()} should have shape {list(shape)}")


#: Element types of the integer tensors TFLite reads axes, sizes and paddings from.
INDEX_TYPES = ("int8", "int16", "int32", "int64", "uint8")


def constant_ints(op: Op, t: Tensor, what: str) -> list[int]:
    """The values of a constant integer tensor (an axis, a size, paddings), flattened."""
    if not t.is_constant or t.dtype not in INDEX_TYPES:
        raise fail(op, f"{what} {t.describe()} must be a constant integer tensor")
    return [int(v) for v in np.asarray(t.data).reshape(-1)]


def constant_int(op: Op, t: Tensor, what: str) -> int:
    """The one value of a constant integer tensor (an axis)."""
    values = constant_ints(op, t, what)
    if len(values) != 1:
        raise fail(op, f"{what} {t.describe()} must hold one value")
    return values[0]


def normalized_axis(op: Op, axis: int, rank: int) -> int:
    """``axis`` counted from the front, as TFLite resolves a negative axis against ``rank`` dimensions."""
    resolved = axis + rank if axis < 0 else axis
    if not 0 <= resolved < rank:
        raise fail(op, f"axis {axis} is out of range for {rank} dimensions")
    return resolved


def leading_padding(op: Op, in_size: int, out_size: int, k: int, stride: int, dilation: int) -> int:
    """TFLite's leading padding for one axis of a window (SAME or VALID): half the total, rounded down."""
    padding = op.options.get("padding", "VALID")
    if padding not in ("SAME", "VALID"):
        raise fail(op, f"padding {padding} has no host kernel")
    total = (out_size - 1) * stride + (k - 1) * dilation + 1 - in_size
    return max(total, 0) // 2


def quantize_value(value: float, scale: float, zero_point: int) -> int:
    """TFLite's zero_point + round(value / scale) with float32 division, as its activation ranges use."""
    return zero_point + int(round_half_away(np.float32(value) / np.float32(scale)))


#: Clamp bounds (in real units) of TFLite's fused activations; None = the type's limit.
ACTIVATION_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "NONE": (None, None),
    "RELU": (0.0, None),
    "RELU6": (0.0, 6.0),
    "RELU_N1_TO_1": (-1.0, 1.0),
}


def _activation_bounds(op: Op) -> tuple[float | None, float | None]:
    act = op.options.get("fused_activation_function", "NONE")
    if act not in ACTIVATION_BOUNDS:
        raise fail(op, f"fused activation {act} has no host kernel")
    return ACTIVATION_BOUNDS[act]


def activation_range(op: Op, out: Tensor) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized for the op's fused activation and output quantization."""
    lo_real, hi_real = _activation_bounds(op)
    info = np.iinfo(out.dtype)
    scale, zero_point = per_tensor(op, out, "output")
    lo = info.min if lo_real is None else max(int(info.min), quantize_value(lo_real, scale, zero_point))
    hi = info.max if hi_real is None else min(int(info.max), quantize_value(hi_real, scale, zero_point))
    return int(lo), int(hi)


def plain_activation_range(op: Op, out: Tensor) -> tuple[int, int] | tuple[float, float]:
    """TFLite's CalculateActivationRange for an int32 or float32 output: the bounds themselves, else the type's.

    For float32 the type's limits are the largest finite values, so TFLite's
    clamp turns an infinite result into them.
    """
    lo_real, hi_real = _activation_bounds(op)
    if out.dtype == "int32":
        info = np.iinfo(np.int32)
        return (int(info.min) if lo_real is None else int(lo_real), int(info.max) if hi_real is None else int(hi_real))
    finfo = np.finfo(np.float32)
    return (float(finfo.min) if lo_real is None else lo_real, float(finfo.max) if hi_real is None else hi_real)
