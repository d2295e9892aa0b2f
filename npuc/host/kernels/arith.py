"""Binary arithmetic ADD, SUB, MUL, DIV and FLOOR_DIV, with TFLite's broadcasting, as its reference kernels compute.

Inputs broadcast numpy-style against each other to the output's shape, as
TFLite's ``Broadcast*Slow`` kernels do.  What each kernel computes depends on
the tensors' type:

* 8-bit ADD and SUB follow TFLite's scheme: both inputs are offset, shifted
  left by ``left_shift`` (20) for headroom, scaled to a common scale (twice the
  larger input scale), added or subtracted, and scaled to the output;
* 8-bit MUL multiplies the offset inputs and rescales the int32 product once;
* int32 arithmetic wraps as two's-complement C does, float32 arithmetic is
  IEEE single precision; both then clamp to the fused activation's range
  (which for float32 turns an infinity into the largest finite value, as
  TFLite's clamp does);
* FLOOR_DIV (int32) rounds towards minus infinity and, like TFLite, refuses a
  zero divisor.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...errors import InputError
from ..fixedpoint import multiply_by_quantized_multiplier, wrap_int32
from .kernel import store

_QUANTIZED = (np.uint8, np.int8)


def _rescaled_operands(a: np.ndarray, b: np.ndarray, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Both 8-bit inputs offset, shifted left and brought to the common scale."""
    def rescaled(x: np.ndarray, which: str) -> np.ndarray:
        shifted = (x.astype(np.int64) + p[f"{which}_offset"]) << p["left_shift"]
        return multiply_by_quantized_multiplier(shifted, p[f"{which}_multiplier"], p[f"{which}_shift"])

    return rescaled(a, "input1"), rescaled(b, "input2")


def _store_quantized_sum(total: np.ndarray, out: np.ndarray, p: dict[str, Any]) -> None:
    scaled = multiply_by_quantized_multiplier(wrap_int32(total), p["output_multiplier"], p["output_shift"])
    store(out, scaled + p["output_offset"], p["act_min"], p["act_max"])


def _plain(op: Callable[[np.ndarray, np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray, out: np.ndarray,
           p: dict[str, Any]) -> None:
    """int32 (wrapping) or float32 arithmetic, clamped to the activation range."""
    if out.dtype == np.float32:
        with np.errstate(all="ignore"):
            result = op(a, b)
        out[...] = np.clip(result, np.float32(p["act_min"]), np.float32(p["act_max"]))
    else:
        store(out, wrap_int32(op(a.astype(np.int64), b.astype(np.int64))), p["act_min"], p["act_max"])


def add(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Addition with broadcasting: 8-bit quantized, int32 or float32."""
    a, b, out = inputs[0], inputs[1], outputs[0]
    if out.dtype in _QUANTIZED:
        x, y = _rescaled_operands(a, b, p)
        _store_quantized_sum(x + y, out, p)
    else:
        _plain(np.add, a, b, out, p)


def sub(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Subtraction with broadcasting: 8-bit quantized, int32 or float32."""
    a, b, out = inputs[0], inputs[1], outputs[0]
    if out.dtype in _QUANTIZED:
        x, y = _rescaled_operands(a, b, p)
        _store_quantized_sum(x - y, out, p)
    else:
        _plain(np.subtract, a, b, out, p)


def mul(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Multiplication with broadcasting: 8-bit quantized (one rescale of the product), int32 or float32."""
    a, b, out = inputs[0], inputs[1], outputs[0]
    if out.dtype in _QUANTIZED:
        product = (a.astype(np.int64) + p["input1_offset"]) * (b.astype(np.int64) + p["input2_offset"])
        scaled = multiply_by_quantized_multiplier(product, p["output_multiplier"], p["output_shift"])
        store(out, scaled + p["output_offset"], p["act_min"], p["act_max"])
    else:
        _plain(np.multiply, a, b, out, p)


def div(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float32 division with broadcasting, clamped to the activation range."""
    _plain(np.divide, inputs[0], inputs[1], outputs[0], p)


def floor_div(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """int32 division rounded towards minus infinity, with broadcasting; a zero divisor is an InputError."""
    a, b, out = inputs[0], inputs[1], outputs[0]
    if np.any(b == 0):
        raise InputError("FLOOR_DIV: division by zero")
    out[...] = wrap_int32(np.floor_divide(a.astype(np.int64), b.astype(np.int64))).astype(out.dtype)
