"""Element-wise binary arithmetic with numpy broadcasting, as TFLite's reference kernels compute it.

Inputs broadcast against each other to the output's shape.  What a kernel
computes depends on its variant (:mod:`npuc.host.ops.arith`):

* quantized ADD and SUB (uint8, int8, int16) offset both inputs, shift them
  left for headroom, scale them to a common scale, add or subtract in int32
  and scale the result to the output; MUL rescales the offset product once;
  int8 SQUARED_DIFFERENCE squares the difference of the rescaled inputs;
* quantized DIV (uint8, int8) divides in fixed point: the dividend shifted
  left by its headroom times the divisor's reciprocal (gemmlowp's Newton
  iteration), then one rounding division by a power of two.  TFLite's
  rounding division by 2^e is only defined for e < 32; for larger e the
  compiled kernel shifts by e mod 32 and rounds up every non-negative value,
  which is what TFLite returns and is reproduced here;
* plain integer arithmetic (int16/int32/int64 without quantization) wraps as
  two's complement, then clamps to the fused activation's range for the
  output type; float32 arithmetic is IEEE single precision clamped with
  TFLite's ``min(max(x, lo), hi)`` (an infinite result becomes the largest
  finite value when there is no activation);
* int32 DIV truncates; its one overflow, INT32_MIN / -1, is clamped to the
  activation's range as TFLite's build gives it.  FLOOR_DIV divides in double
  and floors (the exact floor for integers; the minimum divided by -1 wraps,
  which is what TFLite's scalar code gives, its vectorized int8/int16 code
  saturates), FLOOR_MOD takes C's remainder and moves it to the divisor's
  sign (TFLite traps on INT32_MIN % -1, the result here is 0); a zero
  divisor of FLOOR_DIV, of integer FLOOR_MOD and of DIV on integers is an
  InputError, as TFLite fails then;
* MAXIMUM and MINIMUM compare raw values (no requantization) the way TFLite
  writes them, ``a > b ? a : b``, which keeps the second operand on ties
  and NaN; ADD_N adds its inputs in order, clamping each partial sum to the
  finite range;
* POW is ``powf`` in float32 and ``std::pow`` in double converted back in
  int32 (INT32_MIN when the power leaves int32, as on x86), except that
  TFLite's broadcasting kernel, given a one-element exponent of another shape
  that is (within 1e-5) an integer k >= 1, multiplies instead: squaring from
  the top bit of k down, in float32 with each product clamped to the finite
  range, in int32 wrapping; a negative int32 exponent is an InputError.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...errors import InputError
from ..fixedpoint import (count_leading_zeros_u32, get_reciprocal, multiply_by_quantized_multiplier,
                          rounding_divide_by_pot, saturating_rounding_doubling_high_mul, wrap_int32)
from .kernel import clamp_float, store

Inputs = list[np.ndarray | None]
Params = dict[str, Any]
BinaryFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: A quantized element-wise step: the raw int32 result before the output rescaling, from both inputs.
QuantizedFn = Callable[[np.ndarray, np.ndarray, Params], np.ndarray]

#: Finite float32 range TFLite clamps ADD_N's partial sums to.
_FLOAT_MAX = float(np.finfo(np.float32).max)
#: How close to an integer a scalar exponent must be for TFLite's POW to multiply instead of calling pow.
_POWER_EPSILON = 1e-5
#: Bits of the int32 in which TFLite's quantized DIV divides by powers of two.
_INT32_BITS = 32


def integer_activation_range(dtype: np.dtype, code: int) -> tuple[int, int]:
    """TFLite's CalculateActivationRange for an integer type: none, RELU, RELU_N1_TO_1 or RELU6 by code."""
    info = np.iinfo(dtype)
    return {0: (int(info.min), int(info.max)), 1: (0, int(info.max)), 2: (-1, 1), 3: (0, 6)}[code]


def _plain_integer(fn: BinaryFn, a: np.ndarray, b: np.ndarray, out: np.ndarray, p: Params,
                   wrap: bool = True) -> None:
    """Integer arithmetic in int64, wrapped to the output type (or not), clamped to the activation's range."""
    result = fn(a.astype(np.int64), b.astype(np.int64))
    lo, hi = integer_activation_range(out.dtype, p["activation"])
    out[...] = np.clip(result.astype(out.dtype) if wrap else result, lo, hi)


def _float(fn: BinaryFn, a: np.ndarray, b: np.ndarray, out: np.ndarray, p: Params) -> None:
    """float32 arithmetic clamped to the activation's bounds."""
    with np.errstate(all="ignore"):
        result = fn(a, b)
    out[...] = clamp_float(result, p["act_min"], p["act_max"])


def rescaled(x: np.ndarray, which: str, p: Params) -> np.ndarray:
    """Input ``which`` ("input1", "input2") offset, shifted left and brought to the common scale."""
    shifted = (x.astype(np.int64) + p[f"{which}_offset"]) << p["left_shift"]
    return multiply_by_quantized_multiplier(shifted, p[f"{which}_multiplier"], p[f"{which}_shift"])


def _store_rescaled(raw: np.ndarray, out: np.ndarray, p: Params) -> None:
    """An int32 result scaled to the output, offset and clamped to the activation range."""
    scaled = multiply_by_quantized_multiplier(wrap_int32(raw), p["output_multiplier"], p["output_shift"])
    store(out, scaled + p["output_offset"], p["act_min"], p["act_max"])


def _binary(quantized: QuantizedFn, plain: BinaryFn, inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """Dispatch on the variant: its parameters tell quantized, plain integer and float32 kernels apart."""
    a, b, out = inputs[0], inputs[1], outputs[0]
    if "activation" in p:
        _plain_integer(plain, a, b, out, p)
    elif out.dtype == np.float32:
        _float(plain, a, b, out, p)
    else:
        _store_rescaled(quantized(a, b, p), out, p)


def add(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """Addition with broadcasting: quantized (rescaled), plain integer (wrapping) or float32."""
    _binary(lambda a, b, q: rescaled(a, "input1", q) + rescaled(b, "input2", q), np.add, inputs, outputs, p)


def sub(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """Subtraction with broadcasting: quantized (rescaled), plain integer (wrapping) or float32."""
    _binary(lambda a, b, q: rescaled(a, "input1", q) - rescaled(b, "input2", q), np.subtract, inputs, outputs, p)


def _offset_product(a: np.ndarray, b: np.ndarray, p: Params) -> np.ndarray:
    return (a.astype(np.int64) + p["input1_offset"]) * (b.astype(np.int64) + p["input2_offset"])


def mul(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """Multiplication with broadcasting: quantized (one rescale of the product), plain integer or float32."""
    _binary(_offset_product, np.multiply, inputs, outputs, p)


def _nonzero(name: str, divisor: np.ndarray) -> None:
    if np.any(divisor == 0):
        raise InputError(f"{name}: division by zero")


def _headroom(x: np.ndarray) -> np.ndarray:
    """Leading bits equal to the sign bit, less one, of int32 values (GCC's __builtin_clrsb; 31 for 0)."""
    return count_leading_zeros_u32(np.where(x < 0, ~x, x)) - 1


def _tflite_rounding_divide(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT of int32 values as TFLite's build computes it, for 0 <= exponent < 64.

    From 32 on, the mask (1 << e) - 1 truncated to int32 is all ones and the
    shift counts modulo 32: x >> (e mod 32), plus one when x >= 0.
    """
    wide = exponent >= _INT32_BITS
    small = rounding_divide_by_pot(x, np.where(wide, 0, exponent))
    return np.where(wide, (x >> (exponent % _INT32_BITS)) + (x >= 0), small)


def _quantized_div(a: np.ndarray, b: np.ndarray, p: Params) -> np.ndarray:
    """TFLite's quantized division of the offset inputs, before the output offset."""
    dividend = a.astype(np.int64) + p["input1_offset"]
    divisor = b.astype(np.int64) + p["input2_offset"]
    _nonzero("DIV", divisor)
    dividend, divisor = np.broadcast_arrays(np.where(divisor < 0, -dividend, dividend), np.abs(divisor))
    reciprocal, reciprocal_shift = get_reciprocal(divisor, 31)
    headroom = _headroom(dividend)
    quotient = saturating_rounding_doubling_high_mul(dividend << headroom, reciprocal)
    exponent = reciprocal_shift + headroom - p["output_shift"]
    return _tflite_rounding_divide(saturating_rounding_doubling_high_mul(quotient, p["output_multiplier"]), exponent)


def _truncating_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C's integer division (towards zero) of int64 values; a zero divisor is an InputError."""
    _nonzero("DIV", b)
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


def div(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """Division with broadcasting: quantized 8-bit (fixed point), int32 (truncating) or float32."""
    a, b, out = inputs[0], inputs[1], outputs[0]
    if "activation" in p:
        _plain_integer(_truncating_div, a, b, out, p, wrap=False)   # INT32_MIN / -1 clamps, as TFLite gives it
    elif out.dtype == np.float32:
        _float(np.divide, a, b, out, p)
    else:
        store(out, _quantized_div(a, b, p) + p["output_offset"], p["act_min"], p["act_max"])


def floor_div(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """Division rounded towards minus infinity (int8, int16, int32, float32); a zero divisor is an InputError."""
    a, b, out = inputs[0], inputs[1], outputs[0]
    _nonzero("FLOOR_DIV", b)
    if out.dtype == np.float32:
        with np.errstate(all="ignore"):
            out[...] = np.floor(a.astype(np.float64) / b.astype(np.float64)).astype(np.float32)
    else:
        out[...] = np.floor_divide(a.astype(np.int64), b.astype(np.int64)).astype(out.dtype)


def floor_mod(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """Remainder with the divisor's sign (integers and float32); a zero integer divisor is an InputError."""
    a, b, out = inputs[0], inputs[1], outputs[0]
    if out.dtype == np.float32:
        with np.errstate(all="ignore"):
            trunc = np.fmod(a, b)
            out[...] = np.where((trunc != 0) & ((b < 0) != (trunc < 0)), trunc + b, trunc)
        return
    _nonzero("FLOOR_MOD", b)
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    trunc = np.fmod(a64, np.where(b64 == -1, 1, b64))     # x % -1 is 0, and INT64_MIN % -1 must not trap
    out[...] = np.where((trunc != 0) & ((b64 < 0) != (trunc < 0)), trunc + b64, trunc).astype(out.dtype)


def _rescaled_difference_squared(a: np.ndarray, b: np.ndarray, p: Params) -> np.ndarray:
    difference = rescaled(a, "input1", p) - rescaled(b, "input2", p)
    return wrap_int32(difference * difference)


def squared_difference(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """(a - b)^2 with broadcasting: int8 quantized (rescaled), int32 (wrapping) or float32."""
    a, b, out = inputs[0], inputs[1], outputs[0]
    if p:
        _store_rescaled(_rescaled_difference_squared(a, b, p), out, p)
    elif out.dtype == np.float32:
        with np.errstate(all="ignore"):
            d = a - b
            out[...] = d * d
    else:
        d = wrap_int32(a.astype(np.int64) - b.astype(np.int64))
        out[...] = wrap_int32(d * d)


def maximum(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """The larger of the raw values, ``a > b ? a : b`` (b on ties and NaN), with broadcasting."""
    a, b = inputs[0], inputs[1]
    outputs[0][...] = np.where(a > b, a, b)


def minimum(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """The smaller of the raw values, ``a < b ? a : b`` (b on ties and NaN), with broadcasting."""
    a, b = inputs[0], inputs[1]
    outputs[0][...] = np.where(a < b, a, b)


def _wrapping_power(base: np.ndarray, exponent: int) -> np.ndarray:
    """base^exponent modulo 2^32 (int32 multiplications that wrap), by square-and-multiply in uint64."""
    low = np.uint64(0xFFFFFFFF)
    result = np.ones(base.shape, dtype=np.uint64)
    factor = base.astype(np.int64).astype(np.uint64) & low
    while exponent:
        if exponent & 1:
            result = (result * factor) & low
        factor = (factor * factor) & low
        exponent >>= 1
    return result.astype(np.uint32).view(np.int32)


def _converted_power(base: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """std::pow of int32 values (exponents >= 0) converted back to int32 as on x86: the exact power, or
    INT32_MIN when it leaves int32.

    Square-and-multiply over the exponent's bits; magnitudes beyond 2^31 are
    capped there, which keeps every product within int64 and still outside
    int32 (a factor 0 gives 0 either way).
    """
    cap = np.int64(1) << 31
    result = np.ones(np.broadcast_shapes(base.shape, exponent.shape), dtype=np.int64)
    factor = np.broadcast_to(base.astype(np.int64), result.shape)
    bits = np.broadcast_to(exponent.astype(np.int64), result.shape)
    while np.any(bits):
        result = np.where(bits & 1, np.clip(result * factor, -cap, cap), result)
        factor = np.clip(factor * factor, -cap, cap)
        bits = bits >> 1
    return np.where(np.abs(result) >= cap, np.iinfo(np.int32).min, result).astype(np.int32)


def _clamped_power(base: np.ndarray, exponent: int) -> np.ndarray:
    """base^exponent in float32 by squaring from the top bit down, each product clamped to the finite range."""
    result = base
    for bit in bin(exponent)[3:]:
        result = clamp_float(result * result, -_FLOAT_MAX, _FLOAT_MAX)
        if bit == "1":
            result = clamp_float(result * base, -_FLOAT_MAX, _FLOAT_MAX)
    return result


def scalar_integer_exponent(base: np.ndarray, exponent: np.ndarray) -> int | None:
    """The exponent TFLite's broadcasting POW raises by repeated multiplication, or None (pow then).

    That kernel takes the shortcut for a one-element exponent tensor of
    another shape than the base whose value is within 1e-5 of an integer
    from 1 to INT32_MAX.
    """
    if base.shape == exponent.shape or exponent.size != 1:
        return None
    value = exponent.reshape(-1)[0]
    if value.dtype.kind == "i":
        return int(value) if value >= 1 else None
    rounded = float(np.copysign(np.floor(np.abs(value) + 0.5), value))
    if not 1 <= rounded < 2.0 ** 31 or abs(value - np.float32(rounded)) >= _POWER_EPSILON:
        return None
    return int(rounded)


# -- the C library's powf --------------------------------------------------------------------
#
# TFLite's float32 POW calls powf.  glibc (since 2.28) and musl compute it with ARM's optimized
# routines: log2 of |x| from a 16-entry table of (1/c, log2 c) and a degree-5 polynomial, in double;
# times y; then 2^(y log2 x) from a 32-entry table of 2^(i/32) and a cubic, rounded to float once.
# numpy's float32 power is another approximation, so the same steps are taken here, in double, from
# the same constants (the routines' published data).

_U32 = np.uint32
_LOG2_OFFSET = _U32(0x3f330000)
_LOG2_TABLE = np.array([[float.fromhex(inv_c), float.fromhex(log2_c)] for inv_c, log2_c in (
    ("0x1.661ec79f8f3bep+0", "-0x1.efec65b963019p-2"), ("0x1.571ed4aaf883dp+0", "-0x1.b0b6832d4fca4p-2"),
    ("0x1.49539f0f010bp+0", "-0x1.7418b0a1fb77bp-2"), ("0x1.3c995b0b80385p+0", "-0x1.39de91a6dcf7bp-2"),
    ("0x1.30d190c8864a5p+0", "-0x1.01d9bf3f2b631p-2"), ("0x1.25e227b0b8eap+0", "-0x1.97c1d1b3b7afp-3"),
    ("0x1.1bb4a4a1a343fp+0", "-0x1.2f9e393af3c9fp-3"), ("0x1.12358f08ae5bap+0", "-0x1.960cbbf788d5cp-4"),
    ("0x1.0953f419900a7p+0", "-0x1.a6f9db6475fcep-5"), ("0x1p+0", "0x0p+0"),
    ("0x1.e608cfd9a47acp-1", "0x1.338ca9f24f53dp-4"), ("0x1.ca4b31f026aap-1", "0x1.476a9543891bap-3"),
    ("0x1.b2036576afce6p-1", "0x1.e840b4ac4e4d2p-3"), ("0x1.9c2d163a1aa2dp-1", "0x1.40645f0c6651cp-2"),
    ("0x1.886e6037841edp-1", "0x1.88e9c2c1b9ff8p-2"), ("0x1.767dcf5534862p-1", "0x1.ce0a44eb17bccp-2"))])
_LOG2_POLY = [float.fromhex(h) for h in ("0x1.27616c9496e0bp-2", "-0x1.71969a075c67ap-2", "0x1.ec70a6ca7baddp-2",
                                          "-0x1.7154748bef6c8p-1", "0x1.71547652ab82bp0")]
#: Bits of 2^(i/32) as doubles, less i << 47 (the exponent part the index adds back).
_EXP2_TABLE = np.array([
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51, 0x3fef72b83c7d517b,
    0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1, 0x3fef06fe0a31b715, 0x3feef1a7373aa9cb,
    0x3feedea64c123422, 0x3feece086061892d, 0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429,
    0x3feea47eb03a5585, 0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d, 0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069, 0x3fef5818dcfba487, 0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da, 0x3fefd0765b6e4540], dtype=np.uint64)
_EXP2_POLY = [float.fromhex(h) for h in ("0x1.c6af84b912394p-5", "0x1.ebfce50fac4f3p-3", "0x1.62e42ff0c52d6p-1")]
#: 1.5 * 2^52 / 32: adding it rounds a double to a multiple of 1/32 and leaves 32 times it in the low bits.
_EXP2_SHIFT = float.fromhex("0x1.8p+52") / 32
#: y log2 x beyond which powf overflows, and at or below which it underflows to zero.
_OVERFLOW, _UNDERFLOW = float.fromhex("0x1.fffffffd1d571p+6"), -150.0
_INF_BITS, _ONE_BITS = _U32(0x7f800000), _U32(0x3f800000)


def _powf_log2(ix: np.ndarray) -> np.ndarray:
    """log2 of positive normal float bits (subnormals pre-scaled to a negative exponent), in double."""
    tmp = ix - _LOG2_OFFSET
    index = (tmp >> _U32(19)) % _U32(16)
    top = tmp & _U32(0xff800000)
    z = (ix - top).view(np.float32).astype(np.float64)
    k = (top.view(np.int32) >> 23).astype(np.float64)
    a = _LOG2_POLY
    r = z * _LOG2_TABLE[index, 0] - 1.0
    r2 = r * r
    q = (a[2] * r + a[3]) * r2 + (a[4] * r + (_LOG2_TABLE[index, 1] + k))
    return (a[0] * r + a[1]) * (r2 * r2) + q


def _powf_exp2(xd: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """2^xd (|xd| < 150) rounded to float, negated where ``negative``."""
    shifted = xd + _EXP2_SHIFT
    ki = shifted.view(np.uint64)
    r = xd - (shifted - _EXP2_SHIFT)
    signed = ki + np.where(negative, np.uint64(1 << 16), np.uint64(0))    # carries into the sign bit
    scale = (_EXP2_TABLE[ki % np.uint64(32)] + (signed << np.uint64(47))).view(np.float64)
    c = _EXP2_POLY
    return (((c[0] * r + c[1]) * (r * r) + (c[2] * r + 1.0)) * scale).astype(np.float32)


def _integer_kind(iy: np.ndarray) -> np.ndarray:
    """Of float bits of nonzero finite values: 0 not an integer, 1 an odd integer, 2 an even one."""
    exponent = ((iy >> _U32(23)) & _U32(0xff)).astype(np.int64)
    shift = np.clip(0x96 - exponent, 0, 31).astype(np.uint32)
    fraction = iy & ((_U32(1) << shift) - _U32(1))
    odd = (iy >> shift) & _U32(1)
    return np.where((exponent < 0x7f) | (fraction != 0) & (exponent <= 0x96), 0,
                    np.where((odd != 0) & (exponent <= 0x96), 1, 2))


def _zero_inf_nan(bits: np.ndarray) -> np.ndarray:
    return (bits << _U32(1)) - _U32(1) >= (_INF_BITS << _U32(1)) - _U32(1)


def _signaling_nan(bits: np.ndarray) -> np.ndarray:
    return ((bits & _U32(0x7fffffff)) > _INF_BITS) & ((bits & _U32(0x00400000)) == 0)


def _powf_special_y(x: np.ndarray, y: np.ndarray, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """powf where y is zero, infinite or NaN."""
    ax2, ay2 = ix << _U32(1), iy << _U32(1)
    one, zero = np.float32(1), np.float32(0)
    return np.where(ay2 == 0, np.where(_signaling_nan(ix), x + y, one),
                    np.where(ix == _ONE_BITS, np.where(_signaling_nan(iy), x + y, one),
                             np.where((ax2 > _INF_BITS << _U32(1)) | (ay2 > _INF_BITS << _U32(1)), x + y,
                                      np.where(ax2 == _ONE_BITS << _U32(1), one,
                                               np.where((ax2 < _ONE_BITS << _U32(1)) == (iy >> _U32(31) == 0),
                                                        zero, y * y)))))


def powf(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The C library's powf of float32 arrays (broadcast), bit for bit."""
    with np.errstate(all="ignore"):
        return _powf(*(np.ascontiguousarray(v) for v in np.broadcast_arrays(x, y)))


def _powf(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ix, iy = x.view(_U32), y.view(_U32)
    negative = ix >> _U32(31) == 1
    kind = _integer_kind(iy)
    odd_negative = negative & (kind == 1)
    magnitude = ix & _U32(0x7fffffff)
    subnormal = ((np.abs(x) * np.float32(2.0 ** 23)).view(_U32) & _U32(0x7fffffff)) - _U32(23 << 23)
    ylogx = y.astype(np.float64) * _powf_log2(np.where(magnitude < _U32(0x00800000), subnormal, magnitude))
    sign = np.where(odd_negative, np.float32(-1), np.float32(1))
    finite = np.where(ylogx > _OVERFLOW, sign * np.float32(np.inf),
                      np.where(ylogx <= _UNDERFLOW, sign * np.float32(0), _powf_exp2(ylogx, odd_negative)))
    finite = np.where(negative & (kind == 0), np.float32(np.nan), finite)
    square = np.where(odd_negative, -(x * x), x * x)
    special_x = np.where(iy >> _U32(31) == 1, np.float32(1) / square, square)
    return np.where(_zero_inf_nan(iy), _powf_special_y(x, y, ix, iy),
                    np.where(_zero_inf_nan(ix), special_x, finite)).astype(np.float32)


def power(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """a^b with broadcasting: float32 (``powf``, or repeated products for a scalar integer exponent) or int32
    (a negative exponent is an InputError)."""
    a, b, out = inputs[0], inputs[1], outputs[0]
    if out.dtype == np.int32 and np.any(b < 0):
        raise InputError("POW: negative exponent for int32")
    k = scalar_integer_exponent(a, b)
    with np.errstate(all="ignore"):
        if out.dtype == np.float32:
            out[...] = powf(a, b) if k is None else _clamped_power(a, k)
        else:
            out[...] = _converted_power(a, b) if k is None else _wrapping_power(a, k)


def add_n(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """The sum of all inputs, in order: int32 wrapping, float32 with each partial sum clamped to the finite range."""
    out = outputs[0]
    if out.dtype == np.float32:
        total = inputs[0]
        with np.errstate(all="ignore"):
            for x in inputs[1:]:
                total = clamp_float(total + x, -_FLOAT_MAX, _FLOAT_MAX)
        out[...] = total
    else:
        out[...] = wrap_int32(np.sum([x.astype(np.int64) for x in inputs], axis=0))
