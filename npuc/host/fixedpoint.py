"""TFLite's integer arithmetic, bit for bit, vectorized over numpy int64 arrays.

The host kernels must reproduce TFLite's reference kernels exactly, so every
rounding step they take is reproduced here once: gemmlowp's saturating
rounding doubling high multiply and rounding right shift, TFLite's
``MultiplyByQuantizedMultiplier`` (the double-rounding form TFLite builds by
default), the gemmlowp fixed-point ``exp``, reciprocal, logistic and tanh that
the quantized softmax (int32 raws) and the integer LSTM (int16 raws) use, and
``QuantizeMultiplier``, which turns a real scale into an int32 multiplier and a
power-of-two shift at compile time.

Values are int32 (or int16) quantities carried in int64 arrays: products of
two of them then fit without overflow, and C's truncating division and
two's-complement wrapping are reproduced explicitly where TFLite relies on them.
The gemmlowp functions take the raw width as ``bits`` (32 or 16): gemmlowp
writes each constant once as an int32 raw and rounds it to the narrower type.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

ArrayLike = np.ndarray | int


def as_i64(x: ArrayLike) -> np.ndarray:
    """``x`` as an int64 array (a copy only when the dtype differs)."""
    return np.asarray(x, dtype=np.int64)


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Wrap int64 values to int32 as two's-complement C arithmetic would."""
    return wrap_bits(x, 32)


def wrap_bits(x: ArrayLike, bits: int) -> np.ndarray:
    """Wrap int64 values to a ``bits``-wide signed integer as two's-complement C arithmetic would."""
    half = 1 << (bits - 1)
    return ((as_i64(x) + half) & ((1 << bits) - 1)) - half


def int_limits(bits: int) -> tuple[int, int]:
    """(min, max) of a ``bits``-wide signed integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def round_half_away(x: np.ndarray | float) -> np.ndarray:
    """``std::round``: nearest integer, halves away from zero (numpy rounds halves to even).

    ``|x| - floor(|x|)`` is exact in binary floating point, so the comparison
    with one half decides ties exactly as the C library does.
    """
    x = np.asarray(x)
    a = np.abs(x)
    f = np.floor(a)
    return np.copysign(f + (a - f >= 0.5), x)


# -- gemmlowp primitives --------------------------------------------------------------

def saturating_rounding_doubling_high_mul(a: ArrayLike, b: ArrayLike, bits: int = 32) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul: (a*b + 2^30) / 2^31, saturated at INT32_MIN*INT32_MIN.

    gemmlowp nudges by +2^30 or 1-2^30 by sign and then truncates towards
    zero; for negative products that truncation adds 2^31-1 before flooring,
    so both cases reduce to one floor shift of a*b + 2^30.  The only product
    that overflows int32 (2^62) is clamped to INT32_MAX as gemmlowp does.
    With ``bits=16`` it is the int16 version: (a*b + 2^14) / 2^15.
    """
    return np.minimum((as_i64(a) * as_i64(b) + (1 << (bits - 2))) >> (bits - 1), int_limits(bits)[1])


def rounding_divide_by_pot(x: ArrayLike, exponent: ArrayLike) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero.

    gemmlowp rounds up when the remainder exceeds half (or, for negative x,
    half plus one); adding half (less one for negative x) and flooring is the
    same thing.
    """
    x = as_i64(x)
    exponent = as_i64(exponent)
    half = (np.int64(1) << exponent) >> 1
    return (x + half - ((x < 0) & (exponent > 0))) >> exponent


def saturating_rounding_multiply_by_pot(x: ArrayLike, exponent: int, bits: int = 32) -> np.ndarray:
    """gemmlowp's SaturatingRoundingMultiplyByPOT: x * 2^exponent, saturating up, rounding down."""
    x = as_i64(x)
    if exponent <= 0:
        return rounding_divide_by_pot(x, -exponent)
    lo, hi = int_limits(bits)
    threshold = (1 << (bits - 1 - exponent)) - 1
    return np.where(x > threshold, hi, np.where(x < -threshold, lo, x << exponent))


def multiply_by_quantized_multiplier(x: ArrayLike, multiplier: ArrayLike, shift: ArrayLike) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier(int32 x, multiplier, shift); shift > 0 shifts left.

    ``multiplier`` and ``shift`` broadcast against ``x`` (per-channel arrays on
    the last axis).  The left shift is done in int32 as in C, hence the wrap.
    """
    x = as_i64(x)
    shift = as_i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap_int32(x << left) if np.any(left) else x
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


# -- gemmlowp fixed-point transcendental functions --------------------------------------
#
# A gemmlowp FixedPoint<intN, I> is an N-bit raw value r meaning r / 2^(N-1-I).
# Products of two fixed-point numbers are SaturatingRoundingDoublingHighMul of the
# raws (integer bits add up); sums and negations are plain N-bit additions and
# negations of the raws, which wrap in two's complement.

def _fp_one(integer_bits: int, bits: int = 32) -> int:
    """Raw value of 1.0 with ``integer_bits`` integer bits (saturated for 0 integer bits)."""
    return int_limits(bits)[1] if integer_bits == 0 else 1 << (bits - 1 - integer_bits)


def _constant(raw32: int, bits: int) -> int:
    """gemmlowp's RescaleConstantInitializer: an int32-raw constant rounded to a ``bits``-wide raw."""
    return raw32 if bits == 32 else int(rounding_divide_by_pot(raw32, 32 - bits))


def _rescale(raw: np.ndarray, src_bits: int, dst_bits: int, bits: int = 32) -> np.ndarray:
    """gemmlowp's Rescale: change the number of integer bits, saturating or rounding."""
    return saturating_rounding_multiply_by_pot(raw, src_bits - dst_bits, bits)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray, bits: int) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), 0 integer bits in and out: Taylor series around -1/8."""
    def mul(x: np.ndarray, y: ArrayLike) -> np.ndarray:
        return saturating_rounding_doubling_high_mul(x, y, bits)

    exp_minus_one_eighth = _constant(1895147668, bits)
    one_third = _constant(715827883, bits)
    x = wrap_bits(a + (1 << (bits - 4)), bits)          # a + 1/8
    x2 = mul(x, x)
    x3 = mul(x2, x)
    x4 = mul(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2, bits)
    poly = saturating_rounding_multiply_by_pot(wrap_bits(mul(wrap_bits(x4_over_4 + x3, bits), one_third) + x2, bits),
                                               -1, bits)
    total = exp_minus_one_eighth + mul(exp_minus_one_eighth, wrap_bits(x + poly, bits))
    if bits == 16:                                       # gemmlowp's AddSaturatingIf16Bit
        return np.clip(total, *int_limits(bits))
    return wrap_bits(total, bits)


#: exp(-2^k) as int32 raws with 0 integer bits for k = -2 .. 4, the factors of gemmlowp's barrel shifter.
_EXP_OF_MINUS_POWERS_OF_TWO = {
    -2: 1672461947, -1: 1302514674, 0: 790015084, 1: 290630308, 2: 39332535, 3: 720401, 4: 242,
}


def exp_on_negative_values(a: ArrayLike, integer_bits: int, bits: int = 32) -> np.ndarray:
    """gemmlowp's exp_on_negative_values: exp(a) for a <= 0 with ``integer_bits`` integer bits; 0 integer bits out.

    Only up to 5 integer bits (softmax uses exactly 5): with more, gemmlowp
    also flushes inputs below -32 to zero, which is not reproduced here.
    """
    if integer_bits > 5:
        raise ValueError(f"exp_on_negative_values supports at most 5 integer bits, not {integer_bits}")
    a = as_i64(a)
    fractional_bits = bits - 1 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_quarter = wrap_bits((a & (one_quarter - 1)) - one_quarter, bits)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _rescale(a_mod_quarter_minus_quarter, integer_bits, 0, bits), bits)
    remainder = wrap_bits(a_mod_quarter_minus_quarter - a, bits)
    for exponent, factor in _EXP_OF_MINUS_POWERS_OF_TWO.items():
        if integer_bits > exponent:
            bit = (remainder >> (fractional_bits + exponent)) & 1
            result = np.where(bit != 0, saturating_rounding_doubling_high_mul(result, _constant(factor, bits), bits),
                              result)
    return np.where(a == 0, _fp_one(0, bits), result)


def _newton_reciprocal_of_half_denominator(a: np.ndarray, bits: int) -> np.ndarray:
    """x ~ 1 / ((1 + a) / 2) with 2 integer bits, from a with 0 integer bits, by three Newton-Raphson steps.

    The shared core of gemmlowp's 1 / (1 + a) and (1 - a) / (1 + a).
    """
    def mul(x: np.ndarray, y: ArrayLike) -> np.ndarray:
        return saturating_rounding_doubling_high_mul(x, y, bits)

    total = a + _fp_one(0, bits)
    half_denominator = np.where(total >= 0, (total + 1) >> 1, -((-(total - 1)) >> 1))   # RoundingHalfSum
    forty_eight_over_17 = _constant(1515870810, bits)         # 48/17 with 2 integer bits
    minus_thirty_two_over_17 = _constant(-1010580540, bits)   # -32/17 with 2 integer bits
    x = wrap_bits(forty_eight_over_17 + mul(half_denominator, minus_thirty_two_over_17), bits)
    for _ in range(3):
        one_minus_half_denominator_times_x = wrap_bits(_fp_one(2, bits) - mul(half_denominator, x), bits)
        x = wrap_bits(x + _rescale(mul(x, one_minus_half_denominator_times_x), 4, 2, bits), bits)
    return x


def one_over_one_plus_x_for_x_in_0_1(a: ArrayLike, bits: int = 32) -> np.ndarray:
    """gemmlowp's 1 / (1 + a) for a in [0, 1), 0 integer bits in and out."""
    x = _newton_reciprocal_of_half_denominator(as_i64(a), bits)
    return _rescale(x, 1, 0, bits)         # x / 2: the 2-integer-bit raw read with 1 integer bit


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: ArrayLike, bits: int = 32) -> np.ndarray:
    """gemmlowp's (1 - a) / (1 + a) for a in [0, 1), 0 integer bits in and out."""
    x = _newton_reciprocal_of_half_denominator(as_i64(a), bits)
    return _rescale(wrap_bits(x - _fp_one(2, bits), bits), 2, 0, bits)


def logistic(a: ArrayLike, integer_bits: int, bits: int = 32) -> np.ndarray:
    """gemmlowp's logistic: 1 / (1 + exp(-a)) from ``integer_bits`` integer bits to 0 integer bits."""
    a = as_i64(a)
    positive = a > 0
    abs_a = np.where(positive, a, wrap_bits(-a, bits))
    if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap_bits(-abs_a, bits), integer_bits, bits),
                                                   bits)
    if_negative = wrap_bits(_fp_one(0, bits) - if_positive, bits)
    return np.where(a == 0, _constant(1 << 30, bits), np.where(positive, if_positive, if_negative))


def tanh(a: ArrayLike, integer_bits: int, bits: int = 32) -> np.ndarray:
    """gemmlowp's tanh from ``integer_bits`` integer bits to 0 integer bits, via exp(-2|a|)."""
    a = as_i64(a)
    negative = a < 0
    minus_abs_a = np.where(negative, a, wrap_bits(-a, bits))
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(minus_abs_a, integer_bits + 1, bits), bits)
    return np.where(a == 0, 0, np.where(negative, wrap_bits(-t, bits), t))


def count_leading_zeros_u32(x: ArrayLike) -> np.ndarray:
    """Leading zero bits of non-negative values below 2^32 (exact: frexp of an integer < 2^53)."""
    x = as_i64(x)
    _, bit_length = np.frexp(x.astype(np.float64))
    return np.where(x == 0, 32, 32 - bit_length).astype(np.int64)


def get_reciprocal(x: ArrayLike, x_integer_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's GetReciprocal: (Q0.31 raw of 1/x scaled into [0.5, 1), num_bits_over_unit)."""
    x = as_i64(x)
    headroom_plus_one = count_leading_zeros_u32(x)
    num_bits_over_unit = x_integer_bits - headroom_plus_one
    shifted_sum_minus_one = wrap_int32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


# -- compile-time scale folding ------------------------------------------------------

def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: (int32 multiplier, shift) with real == multiplier * 2^(shift - 31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(round_half_away(q * (1 << 31)))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift
