"""QUANTIZE and DEQUANTIZE, as TFLite's reference kernels compute them.

QUANTIZE from float32 rounds ``x / scale`` (float32 division) half away from
zero, converts it to int32 as x86 does (out of range or NaN: INT32_MIN), adds
the zero point with int32 wrap-around and clamps to the output type, per
tensor or per channel.  Between integer types it requantizes the offset input
(int32 arithmetic) with ``MultiplyByQuantizedMultiplier``.  DEQUANTIZE
computes ``scale * (q - zero_point)`` in double and rounds it to float32 for a
per-tensor input; per channel, TFLite computes it in float32.  float16 widens
to float32 exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fixedpoint import multiply_by_quantized_multiplier, round_half_away, wrap_int32
from .kernel import store

#: int32's range as float, and what x86 makes of a float outside it.
_INT32_LIMIT = 2.0 ** 31
_INT32_MIN = -(1 << 31)


def to_int32(rounded: np.ndarray) -> np.ndarray:
    """C's conversion of integral floats to int32 on x86 (cvttsd2si): out of range or NaN gives INT32_MIN."""
    inside = (rounded >= -_INT32_LIMIT) & (rounded < _INT32_LIMIT)
    return np.where(inside, np.where(inside, rounded, 0).astype(np.int64), _INT32_MIN)


def _along(values: np.ndarray, x: np.ndarray, axis: int) -> np.ndarray:
    """Per-channel ``values`` shaped to broadcast along ``axis`` of ``x`` (one value broadcasts everywhere)."""
    shape = [1] * x.ndim
    if values.size > 1:
        shape[axis] = values.size
    return values.reshape(shape)


def _limits(out: np.ndarray) -> tuple[int, int]:
    info = np.iinfo(out.dtype)
    return int(info.min), int(info.max)


def quantize_float(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float32 to uint8/int8/int16: zero_point + round(x / scale), per tensor or per channel."""
    x, out = inputs[0], outputs[0]
    scale = _along(np.asarray(p["scale"], dtype=np.float32), x, p["axis"])
    zero_point = _along(np.asarray(p["zero_point"], dtype=np.int64), x, p["axis"])
    with np.errstate(all="ignore"):                      # NaN and infinities are converted as in C
        q = to_int32(round_half_away(x / scale))
    store(out, wrap_int32(q + zero_point), *_limits(out))


def requantize(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Integer to integer: the offset input rescaled with a multiplier and shift, per tensor."""
    x, out = inputs[0], outputs[0]
    offset = wrap_int32(x.astype(np.int64) - p["input_zero_point"])
    q = multiply_by_quantized_multiplier(offset, p["output_multiplier"], p["output_shift"])
    store(out, wrap_int32(q + p["output_zero_point"]), *_limits(out))


def dequantize(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Integer to float32: scale * (q - zero_point), in double per tensor and in float32 per channel."""
    x, out = inputs[0], outputs[0]
    scale = np.asarray(p["scale"], dtype=np.float32)
    offset = x.astype(np.int64) - _along(np.asarray(p["zero_point"], dtype=np.int64), x, p["axis"])
    if scale.size > 1:
        out[...] = _along(scale, x, p["axis"]) * offset.astype(np.float32)
    else:
        out[...] = (np.float64(scale[0]) * offset).astype(np.float32)


def dequantize_float16(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float16 to float32, exactly."""
    outputs[0][...] = inputs[0].astype(np.float32)
