"""Element-wise unary operators (CAST, ABS, NEG, SIGN, the float math functions, lookup tables), as TFLite computes.

Float32 math (EXP, LOG, SIN, COS, ...) is TFLite's call of the C library's
float function on every element; the C runtime calls the same functions, and
so does this one (:mod:`npuc.host.libm`), since glibc's float functions are not
correctly rounded and no numpy formula reproduces them.

Quantized operators whose TFLite kernel fills a lookup table in Prepare get
that table folded at compile time: 256 entries indexed by the raw byte for
8-bit tensors, 513 entries interpolated between for int16 tensors (TFLite's
``LUTLookup``).  CAST is C++'s ``static_cast`` except that a
float becomes an integer by saturation, NaN giving the type's largest value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..decl import KernelFn
from ..libm import FloatFn, float_function
from ..fixedpoint import multiply_by_quantized_multiplier, wrap_bits
from .kernel import store

expf = float_function("expf")
expm1f = float_function("expm1f")
logf = float_function("logf")
sinf = float_function("sinf")
cosf = float_function("cosf")
tanhf = float_function("tanhf")
erfcf = float_function("erfcf")


def elementwise(fn: FloatFn, doc: str) -> KernelFn:
    """The kernel applying ``fn`` to every element (numpy keeps the element type)."""
    def run(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
        with np.errstate(all="ignore"):
            outputs[0][...] = fn(inputs[0])
    run.__doc__ = doc
    return run


def _round_half_even_like_tflite(x: np.ndarray) -> np.ndarray:
    """TFLite's RoundToNearest: floor, then up when the rest is over one half or is one half above an odd floor.

    Unlike ``np.rint`` this turns -0.5 into +0 (floor -1, plus one).
    """
    floor = np.floor(x)
    rest = x - floor
    keep = (rest < 0.5) | ((rest == 0.5) & (np.fmod(floor, 2) == 0))
    return np.where(keep, floor, floor + np.float32(1)).astype(np.float32)


def _sign(x: np.ndarray) -> np.ndarray:
    """1, -1 or 0 by sign (+0 for both zeros); NaN stays NaN."""
    one = np.ones_like(x)
    result = np.where(x > 0, one, np.where(x < 0, -one, np.zeros_like(x)))
    return np.where(np.isnan(x), x, result) if x.dtype.kind == "f" else result


exp_f32 = elementwise(expf, "float32 exp.")
log_f32 = elementwise(logf, "float32 natural logarithm (-inf at 0, NaN below).")
sin_f32 = elementwise(sinf, "float32 sine.")
cos_f32 = elementwise(cosf, "float32 cosine.")
sqrt_f32 = elementwise(np.sqrt, "float32 square root, NaN for negative inputs.")
rsqrt_f32 = elementwise(lambda x: np.float32(1) / np.sqrt(x), "float32 1 / sqrt(x).")
square_f32 = elementwise(lambda x: x * x, "float32 x * x.")
floor_f32 = elementwise(np.floor, "float32 floor.")
ceil_f32 = elementwise(np.ceil, "float32 ceiling.")
round_f32 = elementwise(_round_half_even_like_tflite, "float32 rounding to nearest, ties to even.")
abs_plain = elementwise(np.abs, "Absolute value (float32, or integers wrapping at the type's minimum).")
neg_plain = elementwise(np.negative, "Negation (float32, or integers wrapping at the type's minimum).")
sign_plain = elementwise(_sign, "Sign: 1, -1 or 0 (float32 NaN stays NaN).")


def _float_to_int(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """TFLite's saturating float-to-integer cast: truncation, NaN to the largest value, out of range clamped.

    The upper bound is the largest float below the type's maximum (for int32
    and int64 the maximum itself is not a float).
    """
    info = np.iinfo(dtype)
    lo, hi = np.float32(info.min), np.float32(info.max)
    if int(hi) > int(info.max):
        hi = np.nextafter(hi, np.float32(0))
    inside = np.where(np.isnan(x), 0, np.clip(x, lo, hi)).astype(dtype)
    return np.where(np.isnan(x) | (x > hi), info.max, np.where(x < lo, info.min, inside)).astype(dtype)


def cast(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Convert every element to the output's type: static_cast, floats to integers saturating."""
    x, out = inputs[0], outputs[0]
    if x.dtype.kind == "f" and out.dtype.kind in "iu":
        out[...] = _float_to_int(x, out.dtype)
    elif out.dtype == np.bool_:
        out[...] = x != 0
    else:
        out[...] = x.astype(out.dtype)


def abs_quantized(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Quantized |x - zp_in|, rescaled to the output scale unless the scales are equal, plus zp_out."""
    out = outputs[0]
    value = np.abs(inputs[0].astype(np.int64) - p["input_zero_point"])
    if p["rescale"]:
        value = multiply_by_quantized_multiplier(value, p["multiplier"], p["shift"])
    info = np.iinfo(out.dtype)
    store(out, value + p["output_zero_point"], int(info.min), int(info.max))


def lookup_table(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """8-bit lookup in the folded 256-entry ``table``, indexed by the input's raw byte."""
    x, out = inputs[0], outputs[0]
    table = np.asarray(p["table"]).astype(out.dtype)
    out[...] = table[x.view(np.uint8)]


def lookup_table_int16(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """int16 lookup in the folded 513-entry ``table``: the top 9 bits pick an entry, the low 7 interpolate."""
    x = inputs[0].astype(np.int64)
    table = np.asarray(p["table"], dtype=np.int64)
    index = 256 + (x >> 7)
    base = table[index]
    slope = wrap_bits(table[index + 1] - base, 16)           # an int16 in TFLite
    delta = (slope * (x & 0x7F) + 64) >> 7
    outputs[0][...] = wrap_bits(base + delta, 16).astype(np.int16)
