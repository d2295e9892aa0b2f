"""Quantized MEAN and ARG_MAX, as TFLite's reference kernels compute them.

MEAN sums over the reduced axes,
removes the input zero point and requantizes with a multiplier into which the
compiler already folded 1 / (number of reduced elements), exactly as TFLite's
``QuantizedMeanOrSum`` adapts its multiplier at run time.  ARG_MAX returns the
first index of the largest value along one axis, as TFLite's strict comparison
does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fixedpoint import multiply_by_quantized_multiplier, wrap_int32
from .kernel import store


def mean(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Quantized mean over the axes in ``axes``, requantized to the output's scale and zero point."""
    x, out = inputs[0], outputs[0]
    axes = tuple(int(a) for a in p["axes"])
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    total = x.astype(np.int64).sum(axis=axes) - p["input_zero_point"] * count
    scaled = multiply_by_quantized_multiplier(wrap_int32(total), p["output_multiplier"], p["output_shift"])
    store(out, scaled + p["output_zero_point"], p["act_min"], p["act_max"])


def arg_max(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Index of the first largest value along ``axis`` (int32 or int64 output)."""
    out = outputs[0]
    out[...] = np.argmax(inputs[0], axis=p["axis"]).reshape(out.shape).astype(out.dtype)
