"""Requantization for the NN cores: scales to post multiplier/shift, zero points to bias words.

The NN core scales every 32-bit accumulator by ``(1 + m / 2**bits) *
2**(base - 127 - shift)`` (``bits`` = ``target.post_multiplier_bits``, ``base``
= ``target.post_shift_base``; on v7 this is ``(2**15 + m) / 2**shift``,
vipnano-nn.md 3.3), adds the output zero point and saturates to 8 bits.  The
multiplier has only ``bits`` fraction bits, so the real scale has to be
rounded; two rules exist:

* ``TRUNCATE`` (Mesa): the scale is computed in float32 and the top ``bits``
  mantissa bits are kept, always rounding down (up to 2**-15 relative low).
* ``NEAREST`` (npuc's default): the scale is computed as TFLite computes it (the
  product of input and weight scales in float32, divided in double) and rounded
  to the nearest multiplier; a mantissa that rounds up to 2.0 carries into the
  exponent.  docs/mesa-differences.md gives the measured effect on the
  MobileNets (this rule is closer to TFLite on every model).

Zero points: the MAC array multiplies ``(w - coef_zero_point)`` by the stored
input byte minus ``target.mac_input_offset`` (0 on v7), so the bias word of a
kernel is its TFLite bias plus ``sum(w - coef_zp) * (mac_input_offset - in_zp)``,
in 32-bit two's complement (:func:`bias_words`).  The cores compute on unsigned
bytes: int8 activations and weights are stored + 128 and so are their zero
points (``jobs.INT8_OFFSET``), which leaves every difference ``q - zp`` as
TFLite's.  Mesa's v7 writer keeps int8 weights unshifted while storing their
zero point + 128 (vipnano-nn.md 3.1), which makes every negative weight read as
a large positive one; npuc shifts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..hw.descriptors import NN_DESCRIPTOR
from .npu_program import INT8_OFFSET, npu_bytes, npu_quant, shifted_on_npu
from ..hw.target import Target
from ..errors import LimitError
from ..ir import Tensor

TRUNCATE = "truncate"
NEAREST = "nearest"
#: The rule npuc uses (see the module docstring and docs/mesa-differences.md).
DEFAULT_RULE = NEAREST

#: IEEE-754 single precision: exponent bias and mantissa bits (the scale's exponent is the
#: hardware's shift reference, vipnano-nn.md 3.3).
_F32_EXPONENT_BIAS = 127
_F32_MANTISSA_BITS = 23
_INT32_WRAP = 1 << 32


@dataclass(frozen=True)
class PostScale:
    """The two descriptor values that encode one requantization scale."""

    multiplier: int   # post_multiplier_value: fraction bits of the mantissa
    shift: int        # post_shift_value

    def factor(self, target: Target) -> float:
        """The real scale these values apply on ``target``."""
        bits = target.post_multiplier_bits
        return (1.0 + self.multiplier / (1 << bits)) * 2.0 ** (target.post_shift_base - _F32_EXPONENT_BIAS
                                                               - self.shift)

    def fields(self) -> dict[str, int]:
        return {"post_multiplier_value": self.multiplier, "post_shift_value": self.shift}


def encode_scale(scale: float, target: Target, rule: str = DEFAULT_RULE, what: str = "requantization") -> PostScale:
    """Post multiplier and shift for a positive ``scale``; LimitError if the shift field cannot hold it.

    With ``TRUNCATE`` the scale is taken as a float32 and its mantissa truncated
    (Mesa); with ``NEAREST`` the double is rounded to the nearest representable
    multiplier.
    """
    if not (math.isfinite(scale) and scale > 0):
        raise LimitError(f"{what}: scale {scale!r} is not a positive finite number")
    bits = target.post_multiplier_bits
    if rule == TRUNCATE:
        raw = int(np.float32(scale).view(np.uint32))
        exponent = raw >> _F32_MANTISSA_BITS
        multiplier = (raw & ((1 << _F32_MANTISSA_BITS) - 1)) >> (_F32_MANTISSA_BITS - bits)
    elif rule == NEAREST:
        fraction, e = math.frexp(scale)                    # scale = fraction * 2**e, fraction in [0.5, 1)
        multiplier = math.floor((2.0 * fraction - 1.0) * (1 << bits) + 0.5)
        exponent = e - 1 + _F32_EXPONENT_BIAS
        if multiplier == 1 << bits:                        # rounded up to 2.0: carry into the exponent
            multiplier, exponent = 0, exponent + 1
    else:
        raise ValueError(f"unknown rounding rule {rule!r}")
    shift = target.post_shift_base - exponent
    limit = 1 << NN_DESCRIPTOR.composite("post_shift_value").width
    if not 0 <= shift < limit:
        raise LimitError(f"{what}: scale {scale:.6g} needs a post shift of {shift}, outside 0..{limit - 1}")
    return PostScale(multiplier, shift)


def conv_scale(input_scale: float, weight_scale: float, output_scale: float, rule: str = DEFAULT_RULE) -> float:
    """input_scale * weight_scale / output_scale in the arithmetic of ``rule``'s reference.

    TFLite multiplies the two float32 scales in float32 and divides in double;
    Mesa does all of it in float32.
    """
    product = np.float32(input_scale) * np.float32(weight_scale)
    if rule == TRUNCATE:
        return float(product / np.float32(output_scale))
    return float(product) / float(np.float32(output_scale))


def stored_zero_point(tensor: Tensor) -> int:
    """The zero point of a per-tensor quantized 8-bit tensor as the NPU sees it (int8: + INT8_OFFSET)."""
    if tensor.quant is None or not tensor.quant.zero_point.size:
        return INT8_OFFSET if shifted_on_npu(tensor) else 0
    return int(npu_quant(tensor).zero_point[0])


def stored_bytes(tensor: Tensor) -> np.ndarray:
    """A constant 8-bit tensor's values as the NN cores read them (int8: + INT8_OFFSET)."""
    return npu_bytes(np.asarray(tensor.data))


def bias_words(bias: np.ndarray, weights: np.ndarray, coef_zero_point: int, input_zero_point: int,
               target: Target) -> np.ndarray:
    """The 32-bit bias word of every kernel: TFLite's bias with the input zero point folded in.

    ``weights`` are the stored kernels [slots][z][y][x]; the hardware computes
    ``sum((w - coef_zp) * (x - mac_input_offset)) + word`` and TFLite
    ``sum((w - coef_zp) * (x - in_zp)) + bias``.  Arithmetic wraps at 32 bits as
    on the hardware.
    """
    flat = weights.reshape(weights.shape[0], -1)
    taps = flat.sum(axis=1, dtype=np.int64) - coef_zero_point * flat.shape[1]
    words = np.asarray(bias, dtype=np.int64) + taps * (target.mac_input_offset - input_zero_point)
    return (words % _INT32_WRAP).astype(np.uint32)
