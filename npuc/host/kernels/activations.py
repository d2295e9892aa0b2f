"""Activation functions (RELU family, LEAKY_RELU, PRELU, HARD_SWISH, LOGISTIC, TANH, ELU, GELU) as TFLite computes.

Quantized kernels work on int64 arrays holding TFLite's int32 (or int16)
intermediate values, with its rounding and saturation:

* the RELU family rescales ``x - zp_in`` to the output scale
  (MultiplyByQuantizedMultiplier) and clamps to the range's quantized bounds;
* LEAKY_RELU and PRELU rescale with one multiplier for ``x >= zp_in`` and
  another (times alpha) below it;
* HARD_SWISH is TFLite's reference int16 fixed-point scheme: the input on a
  "hires" scale (times 128), a "reluish" factor in [0, 1] from the input
  rescaled so that 3.0 is 32768, their truncating doubling high product, and a
  final rounding shift;
* int16 LOGISTIC and TANH interpolate TFLite's 256-entry sigmoid table
  (``sigmoid_table``, sigmoid(i / 24) in Q0.16) after rescaling the input.

The 8-bit LOGISTIC, TANH, ELU and GELU are lookup tables
(:func:`npuc.host.kernels.unary.lookup_table`).  Float32 kernels keep TFLite's
comparisons, so NaN and -0 come out as TFLite's do.

The float32 GELU is TFLite's Eigen expression, whose ``erfc`` and ``tanh``
are Eigen's rational approximations, not the C library's: :func:`gelu_f32`
repeats their float32 operations one by one (no fused multiply-add: TFLite's
x86-64 build has none).  Eigen evaluates four elements at a time from the
start of the (aligned) output and the last ``n mod 4`` one at a time; there
its erfc calls the C library's ``expf`` where the four-wide code uses Eigen's
own exp, so those last elements may differ by a rounding, as TFLite's do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fixedpoint import (multiply_by_quantized_multiplier, rounding_divide_by_pot,
                          saturating_rounding_doubling_high_mul, wrap_bits)
from ..libm import FloatFn
from .kernel import clamp_float, store
from .unary import elementwise, erfcf, expf, expm1f, tanhf

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1


def _store_type_range(out: np.ndarray, values: np.ndarray) -> None:
    info = np.iinfo(out.dtype)
    store(out, values, int(info.min), int(info.max))


# -- RELU family -------------------------------------------------------------------------

def requantize_clamp(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Quantized RELU family: zp_out + (x - zp_in) rescaled, clamped to [act_min, act_max]."""
    x = inputs[0].astype(np.int64) - p["input_zero_point"]
    y = multiply_by_quantized_multiplier(x, p["output_multiplier"], p["output_shift"]) + p["output_zero_point"]
    store(outputs[0], y, p["act_min"], p["act_max"])


relu_f32 = elementwise(lambda x: clamp_float(x, 0.0, np.inf), "float32 max(x, 0) (NaN and -0 pass).")
relu6_f32 = elementwise(lambda x: clamp_float(x, 0.0, 6.0), "float32 clamp to [0, 6].")
relu_n1_to_1_f32 = elementwise(lambda x: clamp_float(x, -1.0, 1.0), "float32 clamp to [-1, 1].")
relu_0_to_1_f32 = elementwise(lambda x: clamp_float(x, 0.0, 1.0), "float32 clamp to [0, 1].")


# -- LEAKY_RELU and PRELU ------------------------------------------------------------------

def _alpha_scaled(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """TFLite's rescale by a possibly negative alpha multiplier: the magnitude's product, negated if negative."""
    scaled = multiply_by_quantized_multiplier(x, abs(multiplier), shift)
    return -scaled if multiplier < 0 else scaled


def leaky_relu(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Quantized LEAKY_RELU: x - zp_in rescaled by the identity multiplier if >= 0, else by the alpha one."""
    x = inputs[0].astype(np.int64) - p["input_zero_point"]
    identity = multiply_by_quantized_multiplier(x, p["identity_multiplier"], p["identity_shift"])
    alpha = _alpha_scaled(x, p["alpha_multiplier"], p["alpha_shift"])
    _store_type_range(outputs[0], np.where(x >= 0, identity, alpha) + p["output_zero_point"])


def leaky_relu_f32(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float32 ``x > 0 ? x : x * alpha``."""
    x = inputs[0]
    with np.errstate(all="ignore"):
        outputs[0][...] = np.where(x > 0, x, x * np.float32(p["alpha"]))


def prelu(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Quantized PRELU, alpha broadcast: x rescaled if x >= zp_in, else (x - zp_in) * (alpha - zp_alpha) rescaled."""
    x = inputs[0].astype(np.int64) - p["input_zero_point"]
    alpha = inputs[1].astype(np.int64) - p["alpha_zero_point"]
    positive = multiply_by_quantized_multiplier(x, p["multiplier_1"], p["shift_1"])
    negative = multiply_by_quantized_multiplier(x * alpha, p["multiplier_2"], p["shift_2"])
    _store_type_range(outputs[0], np.where(x >= 0, positive, negative) + p["output_zero_point"])


def prelu_f32(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float32 PRELU, alpha broadcast: ``x >= 0 ? x : x * alpha``."""
    x, alpha = inputs[0], inputs[1]
    with np.errstate(all="ignore"):
        outputs[0][...] = np.where(x >= 0, x, x * alpha)


# -- HARD_SWISH ----------------------------------------------------------------------------

def _saturate16(x: np.ndarray) -> np.ndarray:
    return np.clip(x, INT16_MIN, INT16_MAX)


def _doubling_high_mul16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int16 a * b / 2^15 truncated towards zero (the one overflow, -2^15 squared, cannot occur: a >= 0 here)."""
    product = a * b
    return np.where(product < 0, -((-product) >> 15), product >> 15)


def hard_swish(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Quantized x * relu6(x + 3) / 6 in TFLite's reference int16 fixed point."""
    hires = (inputs[0].astype(np.int64) - p["input_zero_point"]) * 128
    preshift_output = saturating_rounding_doubling_high_mul(hires, p["output_multiplier"], 16)
    exponent = p["reluish_exponent"]
    reluish = hires
    if exponent > 0:
        reluish = _saturate16(reluish << (exponent - 1))
    reluish = saturating_rounding_doubling_high_mul(reluish, p["reluish_multiplier"], 16)
    if exponent > 0:
        reluish = _saturate16(reluish * 2)
    elif exponent < 0:
        reluish = rounding_divide_by_pot(reluish, -exponent)
    reluish = (reluish + (1 << 15)) >> 1                           # [-1, 1] to [0, 1]
    preshift = _doubling_high_mul16(reluish, preshift_output)
    y = wrap_bits(rounding_divide_by_pot(preshift, -p["output_exponent"]) + p["output_zero_point"], 16)
    _store_type_range(outputs[0], y)


def hard_swish_f32(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float32 ``x * min(6, max(0, x + 3)) / 6`` with std::min/std::max (NaN: x * 0)."""
    x = inputs[0]
    with np.errstate(all="ignore"):
        shifted = x + np.float32(3)
        raised = np.where(np.float32(0) < shifted, shifted, np.float32(0))
        relu6 = np.where(raised < np.float32(6), raised, np.float32(6))
        outputs[0][...] = x * relu6 / np.float32(6)


# -- int16 LOGISTIC and TANH -----------------------------------------------------------------

def _sigmoid_table_read(magnitude: np.ndarray, fraction_bits: int, table: np.ndarray, saturated: int) -> np.ndarray:
    """The sigmoid table at ``magnitude`` / 2^fraction_bits, linearly interpolated and scaled by 2^fraction_bits;
    ``saturated`` from entry 255 on."""
    high = magnitude >> fraction_bits
    inside = np.minimum(high, 254)
    low = table[inside]
    fraction = magnitude & ((1 << fraction_bits) - 1)
    return np.where(high >= 255, saturated, (low << fraction_bits) + fraction * (table[inside + 1] - low))


def _rescaled16(x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """TFLite's int16 input rescale: (x * input_multiplier + round) >> input_left_shift."""
    shift = p["input_left_shift"]
    rounding = (1 << (shift - 1)) if shift > 0 else 0
    return (x.astype(np.int64) * p["input_multiplier"] + rounding) >> shift


def logistic_int16(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """int16 sigmoid to the output scale 2^-15: interpolation in the sigmoid table, 9 fraction bits."""
    x = _rescaled16(inputs[0], p)
    value = _sigmoid_table_read(np.abs(x), 9, np.asarray(p["sigmoid_table"], dtype=np.int64), 0x7FFF << 10)
    value = np.where(x >= 0, value + (1 << 9), (1 << 25) - value + (1 << 9) - 1)
    outputs[0][...] = wrap_bits(value >> 10, 16).astype(np.int16)


def tanh_int16(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """int16 tanh as 2 * sigmoid(2x) - 1: interpolation in the sigmoid table, 8 fraction bits."""
    x = _rescaled16(inputs[0], p)
    value = _sigmoid_table_read(np.abs(x), 8, np.asarray(p["sigmoid_table"], dtype=np.int64), 0xFFFF << 8)
    value = np.where(x >= 0, value - (1 << 23) + (1 << 7), -value + (1 << 23) + (1 << 7) - 1)
    outputs[0][...] = wrap_bits(value >> 8, 16).astype(np.int16)


# -- float32 transcendental activations -------------------------------------------------------

#: Above this TFLite's float sigmoid is 1; below the lower one it is exp(x).
LOGISTIC_UPPER_CUTOFF = np.float32(16.619047164916992188)
LOGISTIC_LOWER_CUTOFF = np.float32(-9)


def logistic_value(x: np.ndarray) -> np.ndarray:
    """float32 sigmoid as TFLite's float kernel: 1 above the upper cutoff, exp(x) below the lower one,
    1 / (1 + exp(-x)) between (NaN passes)."""
    one = np.float32(1)
    with np.errstate(all="ignore"):
        middle = one / (one + expf(-x))
        return np.where(x > LOGISTIC_UPPER_CUTOFF, one,
                        np.where(x < LOGISTIC_LOWER_CUTOFF, expf(x), middle)).astype(np.float32)


def elu_value(x: np.ndarray) -> np.ndarray:
    """float32 ``x < 0 ? expm1(x) : x``."""
    return np.where(x < 0, expm1f(x), x).astype(np.float32)


#: sqrt(2 / pi) as TFLite's float constant.
_SQRT_2_OVER_PI = np.float32((2 / np.sqrt(np.pi)) * np.sqrt(0.5))


def gelu_value(x: np.ndarray, approximate: bool) -> np.ndarray:
    """float32 GELU as TFLite's 8-bit tables compute it: 0.5 x erfc(-x / sqrt 2), or the tanh approximation.

    Only for those tables, which TFLite fills with the C library's ``erfcf``
    and ``tanhf`` (its float kernel is :func:`gelu_f32`).
    """
    x = np.asarray(x, dtype=np.float32)
    half_x = np.float32(0.5) * x
    with np.errstate(all="ignore"):
        if approximate:
            cubic = np.float32(0.044715) * x * x * x
            return (half_x * (np.float32(1) + tanhf(_SQRT_2_OVER_PI * (x + cubic)))).astype(np.float32)
        return (half_x * erfcf(x * np.float32(-np.sqrt(0.5)))).astype(np.float32)


logistic_f32 = elementwise(logistic_value, "float32 sigmoid 1 / (1 + exp(-x)).")
tanh_f32 = elementwise(tanhf, "float32 tanh.")
elu_f32 = elementwise(elu_value, "float32 ELU: x, or exp(x) - 1 below 0.")


# -- float32 GELU: Eigen's approximations ------------------------------------------------------------

_F32 = np.float32
#: Eigen's float erfc: 1 + x S(x^2) for |x| <= 1, else exp(-x^2) P(1/x^2) / (x Q(1/x^2)), x clamped to 11.
_ERFC_CLAMP = _F32(11)
_ERFC_SMALL = np.array([5.61802298761904239654541015625e-04, -4.91381669417023658752441406250e-03,
                        2.67075151205062866210937500000e-02, -1.12800106406211853027343750000e-01,
                        3.76122951507568359375000000000e-01, -1.12837910652160644531250000000e+00], _F32)
_ERFC_NUMERATOR = np.array([1.0208116471767425537109375e-01, 4.2920666933059692382812500e-01,
                            3.2379078865051269531250000e-01, 5.3971976041793823242187500e-02], _F32)
_ERFC_DENOMINATOR = np.array([1.7251677811145782470703125e-02, 3.9137163758277893066406250e-01, 1.0,
                              6.2173241376876831054687500e-01, 9.5662862062454223632812500e-02], _F32)
#: Veltkamp's splitting factor 2^12 + 1: x = hi + lo, each with 12 significant bits.
_SPLIT = _F32(4097)
#: Eigen's float exp: 0 below -104, m = floor(x log2(e) + 1/2), r = x - m ln 2 in two parts, a degree-6
#: polynomial, scaled by 2^m.
_EXP_ZERO_BELOW, _EXP_CLAMP, _LOG2_E = _F32(-104), _F32(88.723), _F32(1.44269504088896341)
_LN2_HI, _LN2_LO = _F32(-0.693359375), _F32(2.12194440e-4)
_EXP_EVEN = np.array([1.37449637986719608306884765625e-3, 4.166965186595916748046875e-2,
                      0.49999988079071044921875], _F32)
_EXP_ODD = np.array([8.36894474923610687255859375e-3, 0.16666518151760101318359375], _F32)
#: Eigen's pldexp clamps the exponent to this and scales by 2^(e/4) three times, then by the rest.
_LDEXP_LIMIT = 278
#: Eigen's float tanh: x clamped to 7.907..., x + x^3 P(x^2) over Q(x^2).
_TANH_CLAMP = _F32(7.90738964080810547)
_TANH_NUMERATOR = np.array([1.394553628e-8, 2.102733560e-5, 3.520756727e-3, 1.340216100e-1], _F32)
_TANH_DENOMINATOR = np.array([8.015776984e-7, 3.326951409e-4, 2.597254514e-2, 4.673548340e-1, 1.0], _F32)
#: Eigen's SSE packets: four floats.
_PACKET = 4


def _clamped(x: np.ndarray, limit: np.float32) -> np.ndarray:
    """x clamped to [-limit, limit] with SSE's min and max (NaN passes)."""
    x = np.where(limit < x, limit, x)
    return np.where(-limit > x, -limit, x)


def _horner(x: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """((c0 x + c1) x + c2) ... in float32, as Eigen's ppolevl."""
    acc = np.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        acc = acc * x + c
    return acc


def _eigen_ldexp(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    """y 2^m as Eigen's pldexp: three factors 2^b, b = floor(e / 4), then 2^(e - 3b) (one final rounding)."""
    e = np.clip(m, -_LDEXP_LIMIT, _LDEXP_LIMIT).astype(np.int32)
    b = e >> 2
    c = ((b + 127).astype(np.uint32) << 23).view(_F32)
    rest = ((e - 3 * b + 127).astype(np.uint32) << 23).view(_F32)
    return y * c * c * c * rest


def _eigen_exp(v: np.ndarray) -> np.ndarray:
    """Eigen's float32 exp (pexp_float)."""
    x = np.where(_EXP_CLAMP < v, _EXP_CLAMP, v)
    m = np.floor(x * _LOG2_E + _F32(0.5))
    r = m * _LN2_LO + (m * _LN2_HI + x)
    r2 = r * r
    even = (r2 * _EXP_EVEN[0] + _EXP_EVEN[1]) * r2 + _EXP_EVEN[2]
    odd = r2 * _EXP_ODD[0] + _EXP_ODD[1]
    y = r2 * (r * odd + even) + (r + _F32(1))
    scaled = _eigen_ldexp(y, m)
    return np.where(v < _EXP_ZERO_BELOW, _F32(0), np.where(v > scaled, v, scaled))


def _eigen_erfc(x_in: np.ndarray, exp: FloatFn) -> np.ndarray:
    """Eigen's float32 erfc (generic_fast_erfc), exp(-x^2) from ``exp`` corrected by the rounding of x^2."""
    x = _clamped(x_in, _ERFC_CLAMP)
    x2 = x * x
    small = x * _horner(x2, _ERFC_SMALL) + _F32(1)
    t = x * _SPLIT
    hi = (x - t) + t
    lo = x - hi
    x2_lo = (((hi * hi - x2) + hi * lo) + hi * lo) + lo * lo
    e = exp(-x2)
    z = e - x2_lo * e
    q2 = _F32(1) / x2
    ratio = _horner(q2, _ERFC_NUMERATOR) / (x * _horner(q2, _ERFC_DENOMINATOR))
    large = np.where(x < 0, _F32(2), _F32(0)) + ratio * z
    return np.where(x2 > _F32(1), large, small)


def _eigen_tanh(x_in: np.ndarray) -> np.ndarray:
    """Eigen's float32 tanh (ptanh_float)."""
    x = _clamped(x_in, _TANH_CLAMP)
    x2 = x * x
    return (_horner(x2, _TANH_NUMERATOR) * (x * x2) + x) / _horner(x2, _TANH_DENOMINATOR)


def gelu_f32(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float32 GELU: 0.5 x erfc(-x / sqrt 2), or 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    x = inputs[0].reshape(-1)
    half_x = _F32(0.5) * x
    with np.errstate(all="ignore"):
        if p["approximate"]:
            y = (_eigen_tanh((x + _F32(0.044715) * (x * x * x)) * _SQRT_2_OVER_PI) + _F32(1)) * half_x
        else:
            arg = x * _F32(-np.sqrt(0.5))
            packed = x.size - x.size % _PACKET
            y = half_x * np.concatenate([_eigen_erfc(arg[:packed], _eigen_exp), _eigen_erfc(arg[packed:], expf)])
    outputs[0][...] = y.reshape(outputs[0].shape)
