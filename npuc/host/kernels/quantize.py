"""QUANTIZE and DEQUANTIZE, as TFLite's reference kernels compute them.

QUANTIZE from float rounds ``x / scale`` (float32 division) half away from
zero; from an integer type it requantizes with ``MultiplyByQuantizedMultiplier``.
DEQUANTIZE computes ``scale * (q - zero_point)`` in double and rounds to float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fixedpoint import multiply_by_quantized_multiplier, round_half_away
from .kernel import store


def quantize_float(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float32 to 8-bit: zero_point + round(x / scale), the division in float32."""
    x, out = inputs[0], outputs[0]
    info = np.iinfo(out.dtype)
    q = round_half_away(x / np.float32(p["scale"])).astype(np.int64) + p["output_zero_point"]
    store(out, q, int(info.min), int(info.max))


def requantize(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """8-bit to 8-bit: the offset input rescaled with a multiplier and shift, per tensor."""
    x, out = inputs[0], outputs[0]
    info = np.iinfo(out.dtype)
    q = multiply_by_quantized_multiplier(x.astype(np.int64) - p["input_zero_point"],
                                         p["output_multiplier"], p["output_shift"]) + p["output_zero_point"]
    store(out, q, int(info.min), int(info.max))


def dequantize(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """8-bit to float32: scale * (q - zero_point), computed in double."""
    x, out = inputs[0], outputs[0]
    out[...] = (np.float64(p["scale"]) * (x.astype(np.int64) - p["zero_point"])).astype(np.float32)
