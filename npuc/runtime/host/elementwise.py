"""Element-wise quantized ADD, QUANTIZE, DEQUANTIZE, and the data-movement RESHAPE/SQUEEZE.

ADD follows TFLite's 8-bit scheme: both inputs are offset, shifted left by
``left_shift`` (20) for headroom, scaled to a common scale (twice the larger
input scale), summed and scaled to the output.  QUANTIZE from float rounds
``x / scale`` (float32 division) half away from zero; from an integer type it
requantizes with ``MultiplyByQuantizedMultiplier``.  DEQUANTIZE computes
``scale * (q - zero_point)`` in double and rounds to float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fixedpoint import multiply_by_quantized_multiplier, round_half_away, wrap_int32
from .kernel import HostKernel, kernel, store


def add(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Quantized addition of two tensors of the same shape."""
    a, b, out = inputs[0], inputs[1], outputs[0]

    def rescaled(x: np.ndarray, offset: int, multiplier: int, shift: int) -> np.ndarray:
        shifted = (x.astype(np.int64) + offset) << p["left_shift"]
        return multiply_by_quantized_multiplier(shifted, multiplier, shift)

    total = (rescaled(a, p["input1_offset"], p["input1_multiplier"], p["input1_shift"])
             + rescaled(b, p["input2_offset"], p["input2_multiplier"], p["input2_shift"]))
    scaled = multiply_by_quantized_multiplier(wrap_int32(total), p["output_multiplier"], p["output_shift"])
    store(out, scaled + p["output_offset"], p["act_min"], p["act_max"])


def quantize(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Float to 8-bit (affine quantization) or 8-bit to 8-bit (requantization), per tensor."""
    x, out = inputs[0], outputs[0]
    info = np.iinfo(out.dtype)
    if x.dtype == np.float32:
        q = round_half_away(x / np.float32(p["scale"])).astype(np.int64) + p["output_zero_point"]
    else:
        q = multiply_by_quantized_multiplier(x.astype(np.int64) - p["input_zero_point"],
                                             p["output_multiplier"], p["output_shift"]) + p["output_zero_point"]
    store(out, q, int(info.min), int(info.max))


def dequantize(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """8-bit to float32: scale * (q - zero_point), computed in double."""
    x, out = inputs[0], outputs[0]
    out[...] = (np.float64(p["scale"]) * (x.astype(np.int64) - p["zero_point"])).astype(np.float32)


def reshape(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Copy the elements unchanged into the output's shape (RESHAPE and SQUEEZE)."""
    outputs[0][...] = inputs[0].reshape(outputs[0].shape)


KERNELS: tuple[HostKernel, ...] = (
    kernel("ADD", add),
    kernel("QUANTIZE", quantize),
    kernel("DEQUANTIZE", dequantize),
    kernel("RESHAPE", reshape),
    kernel("SQUEEZE", reshape),
)
