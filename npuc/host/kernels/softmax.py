"""SOFTMAX and LOG_SOFTMAX along the last axis, as TFLite's reference kernels compute them.

The 8-bit SOFTMAX is not the lookup-table version TFLite's optimized kernels
use but the reference one, in gemmlowp fixed point: each input's difference
to the row maximum is scaled by beta * input_scale (``input_multiplier`` and
``input_left_shift``, Q5.26), exponentiated, summed in Q12.19, and each
exponential multiplied by the sum's reciprocal; differences below
``diff_min`` count as exp() == 0.  The output (uint8, int8 or int16) is
offset by its type's lowest value, which is its zero point.

The int16 SOFTMAX looks exp() and 1/(1 + x) up in two 513-entry tables with
linear interpolation (TFLite's LUTLookup); the compiler builds the tables as
TFLite's Prepare does and passes them as parameters.  float32 SOFTMAX is
``expf((x - max) * beta) / sum`` and LOG_SOFTMAX ``x - max - logf(sum)``, sums
taken left to right.  TFLite's ``std::exp`` and ``std::log`` on floats are
glibc's ``expf`` and ``logf``, which are not correctly rounded (``logf`` is off
by up to 0.82 ULP), so numpy's own functions, or a float64 result rounded to
float32, differ from them on a fraction of inputs.  :func:`expf` and
:func:`logf` reproduce glibc's algorithms (in glibc since 2.27) operation for
operation in float64: a table of 2^(i/32), or of 1/c and log(c) for 16
sub-intervals, and a short polynomial.  Each step is one IEEE multiplication
or addition, so the results are the same bits on every machine, and the C
runtime computes them the same way.

The 8-bit LOG_SOFTMAX sums the same Q5.26 exponentials, takes gemmlowp's
fixed-point log of the sum (``log_x_for_x_greater_than_or_equal_to_1``, Q5.26
out) and writes ``(diff - log) / 2^22`` at scale 16/256 from the type's
highest value down; differences at or below ``adjusted_diff_min`` (the point
where the result would leave Q5.26) give the type's lowest value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fixedpoint import (count_leading_zeros_u32, exp_on_negative_values, get_reciprocal,
                          multiply_by_quantized_multiplier, one_over_one_plus_x_for_x_in_0_1, rounding_divide_by_pot,
                          saturating_rounding_doubling_high_mul, saturating_rounding_multiply_by_pot, wrap_int32)
from .kernel import store
from .reduce import sequential_sum

#: Integer bits of the scaled input differences (TFLite's kScaledDiffIntegerBits).
SCALED_DIFF_INTEGER_BITS = 5
#: Integer bits of the sum of exponentials (TFLite's kAccumulationIntegerBits).
ACCUMULATION_INTEGER_BITS = 12
#: Integer bits of LOG_SOFTMAX's output before the final shift (TFLite's kOutputIntegerBits).
LOG_OUTPUT_INTEGER_BITS = 4
#: Entries of the int16 lookup tables (512 segments and their end).
LUT_ENTRIES = 513

_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
U32, U64, F64 = np.uint32, np.uint64, np.float64


# -- glibc's expf and logf, operation for operation -----------------------------------------------------------

#: 2^(i/32) as float64 bits, less i << 47, so that adding k << 47 gives 2^(k/32) (glibc's __exp2f_data.tab).
EXP2_TABLE = np.array([
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540], dtype=np.uint64)
_EXP2_STEPS = 32
#: 2^(r/32) ~ 1 + C2 r + C1 r^2 + C0 r^3 for |r| <= 1/2.
EXPF_POLY = (float.fromhex("0x1.c6af84b912394p-5") / _EXP2_STEPS ** 3,
             float.fromhex("0x1.ebfce50fac4f3p-3") / _EXP2_STEPS ** 2,
             float.fromhex("0x1.62e42ff0c52d6p-1") / _EXP2_STEPS)
EXPF_INV_LN2 = float.fromhex("0x1.71547652b82fep0") * _EXP2_STEPS
#: Adding and subtracting it rounds a float64 below 2^51 in magnitude to an integer (ties to even).
ROUND_SHIFT = float.fromhex("0x1.8p52")
#: expf's limits: above the first it is +inf, below the second the smallest subnormal, below the third 0.
EXPF_LIMITS = (float.fromhex("0x1.62e42ep6"), float.fromhex("-0x1.9d1d9ep6"), float.fromhex("-0x1.9fe368p6"))

#: (1/c, log(c)) for c near the centre of each of 16 sub-intervals of [0.7, 1.4) (glibc's __logf_data.tab).
LOGF_TABLE = np.array([[float.fromhex(v) for v in pair] for pair in (
    ("0x1.661ec79f8f3bep+0", "-0x1.57bf7808caadep-2"), ("0x1.571ed4aaf883dp+0", "-0x1.2bef0a7c06ddbp-2"),
    ("0x1.49539f0f010bp+0", "-0x1.01eae7f513a67p-2"), ("0x1.3c995b0b80385p+0", "-0x1.b31d8a68224e9p-3"),
    ("0x1.30d190c8864a5p+0", "-0x1.6574f0ac07758p-3"), ("0x1.25e227b0b8eap+0", "-0x1.1aa2bc79c81p-3"),
    ("0x1.1bb4a4a1a343fp+0", "-0x1.a4e76ce8c0e5ep-4"), ("0x1.12358f08ae5bap+0", "-0x1.1973c5a611cccp-4"),
    ("0x1.0953f419900a7p+0", "-0x1.252f438e10c1ep-5"), ("0x1p+0", "0x0p+0"),
    ("0x1.e608cfd9a47acp-1", "0x1.aa5aa5df25984p-5"), ("0x1.ca4b31f026aap-1", "0x1.c5e53aa362eb4p-4"),
    ("0x1.b2036576afce6p-1", "0x1.526e57720db08p-3"), ("0x1.9c2d163a1aa2dp-1", "0x1.bc2860d22477p-3"),
    ("0x1.886e6037841edp-1", "0x1.1058bc8a07ee1p-2"), ("0x1.767dcf5534862p-1", "0x1.4043057b6ee09p-2"))])
#: log1p(r) ~ r + A2 r^2 + A1 r^3 + A0 r^4.
LOGF_POLY = (float.fromhex("-0x1.00ea348b88334p-2"), float.fromhex("0x1.5575b0be00b6ap-2"),
             float.fromhex("-0x1.ffffef20a4123p-2"))
LN2 = float.fromhex("0x1.62e42fefa39efp-1")
#: Float bits of 0.7 or so, where the 16 sub-intervals of logf's table start.
LOGF_OFFSET = 0x3f330000


def expf(x: np.ndarray) -> np.ndarray:
    """glibc's expf of float32 values: x / ln2 = k/32 + r/32, 2^(k/32) from the table times a cubic in r."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(all="ignore"):
        z = EXPF_INV_LN2 * x.astype(F64)
        shifted = z + ROUND_SHIFT
        r = z - (shifted - ROUND_SHIFT)
        k = shifted.view(U64)
        scale = (EXP2_TABLE[k % U64(_EXP2_STEPS)] + (k << U64(47))).view(F64)
        c = EXPF_POLY
        y = ((c[0] * r + c[1]) * (r * r) + (c[2] * r + 1.0)) * scale
        y = y.astype(np.float32)
        overflow, tiny, underflow = (np.float32(v) for v in EXPF_LIMITS)
        y = np.where(x > overflow, np.float32(np.inf), y)
        y = np.where(x < tiny, np.float32(2.0 ** -149), y)
        y = np.where(x < underflow, np.float32(0), y)
        return np.where(np.isnan(x), x, y)


def logf(x: np.ndarray) -> np.ndarray:
    """glibc's logf of float32 values: x = 2^k z, log(z) = log(c) + log1p(z/c - 1) for the table's nearest c."""
    x = np.asarray(x, dtype=np.float32)
    ix = x.view(U32)
    with np.errstate(all="ignore"):
        subnormal = ((x * np.float32(2.0 ** 23)).view(U32)) - U32(23 << 23)      # exponent lowered to match
        bits = np.where(ix < U32(0x00800000), subnormal, ix)
        tmp = bits - U32(LOGF_OFFSET)
        invc, logc = LOGF_TABLE[(tmp >> U32(19)) % U32(16)].T
        top = tmp & U32(0xff800000)
        z = (bits - top).view(np.float32).astype(F64)
        r = z * invc - 1.0
        y0 = logc + (top.view(np.int32) >> 23).astype(F64) * LN2
        a = LOGF_POLY
        r2 = r * r
        y = (a[0] * r2 + (a[1] * r + a[2])) * r2 + (y0 + r)
        y = y.astype(np.float32)
        y = np.where(ix == U32(0x3f800000), np.float32(0), y)
        y = np.where(ix >= U32(0x7f800000), np.float32(np.nan), y)        # NaN and negative numbers
        y = np.where(ix == U32(0x7f800000), np.float32(np.inf), y)
        return np.where((ix << U32(1)) == 0, np.float32(-np.inf), y)


def _rows(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, x.shape[-1])


def _scaled_exps(diff: np.ndarray, used: np.ndarray, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """exp(beta * scale * diff) in Q0.31 and the row sums of the used ones in Q12.19.

    The rows are short enough (the folds see to it) for the sums to stay
    below 2^32, where TFLite's int32 sum and its unsigned reading agree.
    """
    scaled = saturating_rounding_doubling_high_mul(wrap_int32(np.where(used, diff, 0) << p["input_left_shift"]),
                                                   p["input_multiplier"])
    exps = exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS)
    terms = saturating_rounding_multiply_by_pot(exps, -ACCUMULATION_INTEGER_BITS)   # Q0.31 -> Q12.19
    return exps, np.where(used, terms, 0).sum(axis=1, keepdims=True)


def softmax(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """uint8/int8 input, 8- or 16-bit output: softmax over the last axis in gemmlowp fixed point."""
    x, out = inputs[0], outputs[0]
    rows = _rows(x).astype(np.int64)
    diff = rows - rows.max(axis=1, keepdims=True)
    used = diff >= p["diff_min"]
    exps, sum_of_exps = _scaled_exps(diff, used, p)
    reciprocal, bits_over_unit = get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS)
    info = np.iinfo(out.dtype)
    unsat = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(reciprocal, exps),
                                   bits_over_unit + 31 - 8 * out.dtype.itemsize)
    store(out, np.where(used, unsat + info.min, info.min), int(info.min), int(info.max))


def lut_lookup(value: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """TFLite's int16 LUTLookup: segment ``256 + value >> 7``, linear interpolation over the low 7 bits."""
    value = np.asarray(value, dtype=np.int64)
    index = 256 + (value >> 7)
    base = lut[index]
    slope = (lut[index + 1] - base).astype(np.int16).astype(np.int64)      # stored as int16, as in C++
    return (base + ((slope * (value & 0x7f) + 64) >> 7)).astype(np.int16).astype(np.int64)


def softmax_int16(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """int16: exp of the scaled differences and the sum's reciprocal from the tables, output in Q0.15."""
    x, out = inputs[0], outputs[0]
    exp_lut = np.asarray(p["exp_lut"], dtype=np.int64)
    reciprocal_lut = np.asarray(p["reciprocal_lut"], dtype=np.int64)
    rows = _rows(x).astype(np.int64)
    diff = rows - rows.max(axis=1, keepdims=True)
    scaled = multiply_by_quantized_multiplier(diff, p["input_multiplier"], p["input_shift"])
    exps = lut_lookup(np.clip(scaled + 32767, -32768, 32767), exp_lut)
    total = exps.sum(axis=1, keepdims=True)          # below 2^31: rows are at most 2^16 long
    headroom_plus_one = count_leading_zeros_u32(total)
    shifted = ((total << (headroom_plus_one - 1)) + (1 << 13)) >> 14
    reciprocal = lut_lookup(np.clip(shifted - (1 << 15) - (1 << 16), -32768, 32767), reciprocal_lut)
    right_shift = 31 - headroom_plus_one
    result = (exps * reciprocal + (np.int64(1) << (right_shift - 1))) >> right_shift
    store(out, wrap_int32(result), 0, 32767)


def _row_max(rows: np.ndarray) -> np.ndarray:
    """``std::max`` from the lowest float: NaNs never win, and a row of -inf gives the lowest float."""
    skipped = np.where(np.isnan(rows), np.float32(-np.inf), rows).max(axis=1, keepdims=True)
    return np.maximum(skipped, np.finfo(np.float32).min)


def softmax_f32(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float32: expf((x - max) * beta) / (their sum, left to right)."""
    x, out = inputs[0], outputs[0]
    rows = _rows(x)
    with np.errstate(all="ignore"):
        exps = expf((rows - _row_max(rows)) * np.float32(p["beta"]))
        out[...] = (exps / sequential_sum(exps)[:, None]).reshape(out.shape)


def log_softmax_f32(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float32: x - max - logf(sum of expf(x - max), left to right)."""
    x, out = inputs[0], outputs[0]
    rows = _rows(x)
    with np.errstate(all="ignore"):
        centred = rows - _row_max(rows)
        out[...] = (centred - logf(sequential_sum(expf(centred)))[:, None]).reshape(out.shape)


# -- gemmlowp's fixed-point log, for the 8-bit LOG_SOFTMAX ----------------------------------------------------------

_LOG_2 = 1488522236                  # log(2) in Q0.31
_SQRT_SQRT_HALF = 1805811301         # 0.5^(1/4)
_SQRT_HALF = 1518500250              # 0.5^(1/2)
_ALPHA_N = 117049297                 # the rational approximation's coefficients, Q0.31
_ALPHA_D = 127690142
_ALPHA_I = 1057819769
_ALPHA_F = 638450708


def _mul(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    return saturating_rounding_doubling_high_mul(a, b)


def _shift_left_saturating(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """TFLite's SaturatingRoundingMultiplyByPOTParam for exponents >= 0 (per element)."""
    x, exponent = np.asarray(x, dtype=np.int64), np.asarray(exponent, dtype=np.int64)
    threshold = (np.int64(1) << (31 - exponent)) - 1
    return np.where(x > threshold, _INT32_MAX, np.where(x < -threshold, _INT32_MIN, x << exponent))


def _log_pow2_adjust(integer_bits: int, headroom: np.ndarray, accum_integer_bits: int) -> np.ndarray:
    """(integer_bits - headroom) as a raw with ``accum_integer_bits`` integer bits."""
    return _shift_left_saturating(integer_bits - headroom, 31 - accum_integer_bits)


def log_x_for_x_at_least_1(raw: np.ndarray, input_integer_bits: int, output_integer_bits: int) -> np.ndarray:
    """gemmlowp-style log(x) for x >= 1, as TFLite's log_x_for_x_greater_than_or_equal_to_1 computes it.

    x is split into a power of two and a mantissa r in [sqrt(1/2), 1) (trying
    both rounding ways and keeping the better); log(r) comes from a rational
    approximation around 0.5^(1/4).
    """
    accum_bits = output_integer_bits + 1
    quarter = rounding_divide_by_pot(1 << 29, accum_bits)                   # 1/4 with accum_bits integer bits
    headroom_a = count_leading_zeros_u32(raw)
    r_a = _shift_left_saturating(_mul(_shift_left_saturating(raw, headroom_a - 1), _SQRT_HALF), 1)
    pow2_a = np.clip(_log_pow2_adjust(input_integer_bits, headroom_a, accum_bits) + quarter, _INT32_MIN, _INT32_MAX)
    headroom_b = count_leading_zeros_u32(_mul(raw, _SQRT_HALF)) - 1
    r_b = _shift_left_saturating(raw, headroom_b)
    pow2_b = np.clip(_log_pow2_adjust(input_integer_bits, headroom_b, accum_bits) - quarter, _INT32_MIN, _INT32_MAX)
    r = np.minimum(r_a, r_b)
    pow2 = np.maximum(pow2_a, pow2_b)
    total = r + _SQRT_SQRT_HALF
    p = np.where(total >= 0, (total + 1) >> 1, -((1 - total) >> 1))      # RoundingHalfSum
    q = wrap_int32(2 * wrap_int32(r - _SQRT_SQRT_HALF))
    common_sq = _mul(q, q)
    num = wrap_int32(_mul(q, r) + _mul(_mul(q, common_sq), _ALPHA_N))
    denominator_minus_one = wrap_int32(_mul(p, wrap_int32(_ALPHA_I + q + _mul(_ALPHA_D, common_sq)))
                                       + _mul(_ALPHA_F, q))
    reciprocal = one_over_one_plus_x_for_x_in_0_1(denominator_minus_one)
    total_log = wrap_int32(_mul(pow2, _LOG_2) + _mul(rounding_divide_by_pot(num, accum_bits), reciprocal))
    return saturating_rounding_multiply_by_pot(total_log, accum_bits - output_integer_bits)


def log_softmax(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """uint8/int8: log-softmax over the last axis in gemmlowp fixed point, output scale 16/256 from the top."""
    x, out = inputs[0], outputs[0]
    info = np.iinfo(out.dtype)
    rows = _rows(x).astype(np.int64)
    diff = rows - rows.max(axis=1, keepdims=True)
    used = diff >= p["diff_min"]
    _, sum_of_exps = _scaled_exps(diff, used, p)
    log_sum = log_x_for_x_at_least_1(sum_of_exps, ACCUMULATION_INTEGER_BITS, SCALED_DIFF_INTEGER_BITS)
    reverse = multiply_by_quantized_multiplier(log_sum + _INT32_MIN, p["reverse_scaling_divisor"],
                                               -p["reverse_scaling_right_shift"])
    kept = diff > np.maximum(p["diff_min"] - 1, reverse)
    scaled = saturating_rounding_doubling_high_mul(wrap_int32(np.where(kept, diff, 0) << p["input_left_shift"]),
                                                   p["input_multiplier"])
    shifted = rounding_divide_by_pot(wrap_int32(scaled - log_sum),
                                     31 - SCALED_DIFF_INTEGER_BITS - LOG_OUTPUT_INTEGER_BITS)
    store(out, np.where(kept, shifted + int(info.max), info.min), int(info.min), int(info.max))
