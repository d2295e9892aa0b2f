"""L2_NORMALIZATION and LOCAL_RESPONSE_NORMALIZATION, as TFLite's reference kernels compute them.

L2_NORMALIZATION works along the last axis.  float32 divides each value by
``max(sqrt(sum of squares), 1e-6)``, the squares summed left to right.  The
8-bit kernels take TFLite's fixed-point inverse square root
(``GetInvSqrtQuantizedMultiplierExp``: Newton-Raphson in Q3.28) of the int32
sum of squared offsets from the zero point and rescale each offset by it to
the output scale 1/128, uint8 and int8 with their own rounding steps.

LOCAL_RESPONSE_NORMALIZATION (float32) multiplies each value by
``(bias + alpha * sum)^-beta``, the sum of squares running left to right over
the channels ``[c - radius, c + radius)`` as TFLite's reference kernel bounds
them.  TFLite keeps bias, alpha and beta as doubles, so the power is taken
in double (the C library's ``pow``) and rounded to float32; a double pow
within one ULP gives the same float32 (the two can only differ when the
exact power lies within one double ULP of a float32 rounding boundary).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fixedpoint import (count_leading_zeros_u32, multiply_by_quantized_multiplier, rounding_divide_by_pot,
                          saturating_rounding_doubling_high_mul, saturating_rounding_multiply_by_pot, wrap_int32)
from .kernel import store
from .reduce import sequential_sum

#: The float kernel's floor for the norm (TFLite's epsilon).
L2_EPSILON = np.float32(1e-6)
#: int8 output scale 2^-7 (TFLite's kOutputScale).
_INT8_OUTPUT_SHIFT = 7


def l2_normalization_f32(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float32: each value divided by max(sqrt(sum of squares of its row), 1e-6)."""
    x, out = inputs[0], outputs[0]
    rows = x.reshape(-1, x.shape[-1])
    with np.errstate(all="ignore"):
        norm = np.sqrt(sequential_sum(rows * rows))[:, None]
        norm = np.where(norm < L2_EPSILON, L2_EPSILON, norm)
        out[...] = (rows / norm).reshape(out.shape)


def _inv_sqrt(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's GetInvSqrtQuantizedMultiplierExp(sum, -1): (multiplier, left shift) with x * it ~ x / sqrt(sum).

    Newton-Raphson on 1/sqrt in Q3.28 after bringing the input into
    [2^27, 2^29) by shifts of two bits; sums of 0 or 1 give (INT32_MAX, 0).
    """
    s = sums.astype(np.int64)
    tiny = s <= 1
    big = s >= 1 << 29                       # an int32 is below 2^31: one step of two bits is enough
    s = np.where(big, s // 4, s)
    shift = 11 + big.astype(np.int64)
    pairs = (count_leading_zeros_u32(np.maximum(s, 1)) - 1) // 2 - 1
    shift -= pairs
    s = s << (2 * np.maximum(pairs, 0))
    half_input = rounding_divide_by_pot(s >> 1, 1)
    x = np.full(s.shape, 1 << 28, dtype=np.int64)
    three_halves = (1 << 28) + (1 << 27)
    for _ in range(5):
        x3 = _rescale_q3(saturating_rounding_doubling_high_mul(saturating_rounding_doubling_high_mul(x, x), x), 9)
        x = _rescale_q3(wrap_int32(saturating_rounding_doubling_high_mul(three_halves, x)
                                   - saturating_rounding_doubling_high_mul(half_input, x3)), 6)
    x = saturating_rounding_doubling_high_mul(x, 1518500250)          # sqrt(2) / 2 in Q0.31
    x = np.where(shift < 0, wrap_int32(x << np.maximum(-shift, 0)), x)
    shift = np.maximum(shift, 0)
    return np.where(tiny, (1 << 31) - 1, x), np.where(tiny, 0, -shift)


def _rescale_q3(raw: np.ndarray, integer_bits: int) -> np.ndarray:
    """gemmlowp's Rescale<3> of a raw with ``integer_bits`` integer bits (a saturating left shift)."""
    return saturating_rounding_multiply_by_pot(raw, integer_bits - 3)


def l2_normalization(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """uint8/int8: each offset from the zero point times the inverse norm of its row, at output scale 1/128."""
    x, out = inputs[0], outputs[0]
    diff = x.reshape(-1, x.shape[-1]).astype(np.int64) - p["input_zero_point"]
    multiplier, shift = (v[:, None] for v in _inv_sqrt(wrap_int32((diff * diff).sum(axis=1))))
    if out.dtype == np.uint8:
        scaled = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(128 * diff, multiplier), -shift)
        store(out, scaled + 128, 0, 255)
    else:
        store(out, multiply_by_quantized_multiplier(diff, multiplier, shift + _INT8_OUTPUT_SHIFT), -128, 127)


def local_response_normalization(inputs: list[np.ndarray | None], outputs: list[np.ndarray],
                                 p: dict[str, Any]) -> None:
    """float32: x * (bias + alpha * sum of squares over channels [c - radius, c + radius))^-beta."""
    x, out = inputs[0], outputs[0]
    depth = x.shape[-1]
    radius = min(int(p["radius"]), depth)       # a wider window covers the same channels
    padded = np.zeros(x.shape[:-1] + (depth + 2 * radius,), dtype=np.float32)
    total = np.zeros(x.shape, dtype=np.float32)
    with np.errstate(all="ignore"):
        padded[..., radius:radius + depth] = x * x
        for offset in range(2 * radius):     # window element c - radius + offset, zero outside the row
            total = total + padded[..., offset:offset + depth]
        base = np.float64(p["bias"]) + np.float64(p["alpha"]) * total.astype(np.float64)
        out[...] = x * np.power(base, -np.float64(p["beta"])).astype(np.float32)
