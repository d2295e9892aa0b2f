"""Quantized SOFTMAX (uint8 and int8), as TFLite's reference kernel computes it.

Not the lookup-table version TFLite's optimized kernels use: the reference one
works in gemmlowp fixed point.  Along the last axis, each input's difference to
the row maximum is scaled by beta * input_scale (``input_multiplier`` and
``input_left_shift``, Q5.26), exponentiated, summed in Q12.19, and each
exponential multiplied by the sum's reciprocal; differences below ``diff_min``
count as exp() == 0.  The output has scale 1/256 and the type's lowest value as
zero point.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fixedpoint import (exp_on_negative_values, get_reciprocal, rounding_divide_by_pot,
                         saturating_rounding_doubling_high_mul, saturating_rounding_multiply_by_pot)
from .kernel import store

#: Integer bits of the scaled input differences (TFLite's kScaledDiffIntegerBits).
SCALED_DIFF_INTEGER_BITS = 5
#: Integer bits of the sum of exponentials (TFLite's kAccumulationIntegerBits).
ACCUMULATION_INTEGER_BITS = 12


def softmax(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Quantized softmax over the last axis in gemmlowp fixed point (TFLite reference, not the LUT)."""
    x, out = inputs[0], outputs[0]
    depth = x.shape[-1]
    rows = x.reshape(-1, depth).astype(np.int64)
    diff = rows - rows.max(axis=1, keepdims=True)
    used = diff >= p["diff_min"]
    # MultiplyByQuantizedMultiplierGreaterThanOne; diff_min keeps the left shift within int32.
    scaled = saturating_rounding_doubling_high_mul(np.where(used, diff, 0) << p["input_left_shift"],
                                                   p["input_multiplier"])
    exps = exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS)
    terms = saturating_rounding_multiply_by_pot(exps, -ACCUMULATION_INTEGER_BITS)   # Q0.31 -> Q12.19
    sum_of_exps = np.where(used, terms, 0).sum(axis=1, keepdims=True)
    reciprocal, bits_over_unit = get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
    info = np.iinfo(out.dtype)
    unsat = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(reciprocal, exps),
                                   bits_over_unit + 31 - 8 * out.dtype.itemsize)
    result = np.where(used, unsat + info.min, info.min)
    store(out, result, int(info.min), int(info.max))
