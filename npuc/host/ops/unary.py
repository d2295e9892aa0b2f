"""Element-wise unary operators on the host: CAST, the float math functions, ABS, NEG, SIGN, and the quantized EXP,
LOG and RSQRT, with the lookup tables TFLite's kernels fill in Prepare folded at compile time.

TFLite's ``LUTPopulate`` fills those tables in float32 arithmetic from the
float function: 256 entries for 8-bit tensors (every input value, rounded to
the output's and saturated, an overflowing EXP to the type's maximum), 513
samples over the int16 range for int16 tensors (each biased by half the
interpolation error at its interval's midpoint).  Both are computed here the
same way.  The int8 RSQRT is TFLite's integer Newton iteration, evaluated here
for each of the 256 inputs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import Flag, HostOp, Int, Ints, Types
from ..fixedpoint import (INT32_MAX, count_leading_zeros_u32, multiply_by_quantized_multiplier, quantize_multiplier,
                          round_half_away, rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
                          saturating_rounding_multiply_by_pot, wrap_int32)
from ..kernels import unary
from ..kernels.unary import FloatFn, expf, logf
from .common import NUMERIC_TYPES, Params, fail, input_tensor, output_tensor, per_tensor, require_shape, require_type

FLOAT32 = ("float32",)
#: The int8/uint8 lookup table's declaration, shared by every 8-bit table operator.
LUT8_PARAMS = (Ints("table", -128, 255, doc="output value for each raw input byte"),)
LUT16_PARAMS = (Ints("table", -(1 << 15), (1 << 15) - 1, doc="int16 samples over the input range"),)


def unary_operands(graph: Graph, op: Op, types: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """Input and output of an element-wise operator: one of ``types``, the same type and shape."""
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input", types)
    require_type(op, y, "output", (x.dtype,))
    require_shape(op, y, x.shape, "output")
    return x, y


def plain(types: tuple[str, ...]) -> Callable[[Graph, Op], Params]:
    """The fold of an element-wise kernel without parameters over ``types``."""
    def fold(graph: Graph, op: Op) -> Params:
        unary_operands(graph, op, types)
        return {}
    return fold


def zero_points_zero(op: Op, x: Tensor, y: Tensor) -> None:
    """TFLite's int16 kernels require symmetric quantization."""
    for what, t in (("input", x), ("output", y)):
        if per_tensor(op, t, what)[1] != 0:
            raise fail(op, f"{what} {t.describe()} must have zero point 0 (int16)")


def quantized_unary(graph: Graph, op: Op, types: tuple[str, ...]) -> tuple[Tensor, Tensor, float, int, float, int]:
    """(input, output, input scale and zero point, output scale and zero point) of a quantized element-wise
    operator over ``types`` (symmetric when int16, as TFLite requires)."""
    x, y = unary_operands(graph, op, types)
    if x.dtype == "int16":
        zero_points_zero(op, x, y)
    return (x, y, *per_tensor(op, x, "input"), *per_tensor(op, y, "output"))


# -- lookup tables ---------------------------------------------------------------------------

def lut8(transform: FloatFn, x: Tensor, y: Tensor, op: Op) -> np.ndarray:
    """TFLite's LUTPopulate for 8-bit tensors: the output for every raw input byte, in float32."""
    in_scale, in_zp = per_tensor(op, x, "input")
    out_scale, out_zp = per_tensor(op, y, "output")
    info = np.iinfo(x.dtype)
    values = np.arange(int(info.min), int(info.max) + 1, dtype=np.int64)
    dequantized = np.float32(in_scale) * (values - in_zp).astype(np.float32)
    with np.errstate(all="ignore"):
        rescaled = round_half_away(transform(dequantized) * (np.float32(1) / np.float32(out_scale)))
        quantized = rescaled.astype(np.float32) + np.float32(out_zp)
    table = np.zeros(values.size, dtype=np.int32)
    table[values & 0xFF] = np.where(np.isnan(quantized), info.min, np.clip(np.trunc(quantized), info.min, info.max))
    return table


def _to_int16_clamped(v: np.ndarray) -> np.ndarray:
    """TFLite's ``static_cast<int16_t>(min(max(v, -32768), 32767))`` in float: NaN passes both and becomes 0."""
    clamped = np.where(v < -32768, np.float32(-32768), np.where(np.float32(32767) < v, np.float32(32767), v))
    return np.where(np.isnan(clamped), 0, np.trunc(np.where(np.isnan(clamped), 0, clamped))).astype(np.int32)


def lut16(transform: FloatFn, x: Tensor, y: Tensor, op: Op) -> np.ndarray:
    """TFLite's LUTPopulate for int16 tensors, in float32: 512 samples, each less half its midpoint error, and the
    value at the top of the input range."""
    f = np.float32
    in_scale, in_zp = (f(v) for v in per_tensor(op, x, "input"))
    out_scale, out_zp = (f(v) for v in per_tensor(op, y, "output"))
    input_min, input_max = in_scale * (f(-32768) - in_zp), in_scale * (f(32767) - in_zp)
    output_min, output_max = out_scale * (f(-32768) - out_zp), out_scale * (f(32767) - out_zp)
    step = (input_max - input_min) / f(512)
    scaling = f(65536) / (output_max - output_min)
    i = np.arange(512, dtype=np.float32)
    with np.errstate(all="ignore"):
        start = input_min + i * step
        sample = round_half_away(transform(start) * scaling)
        interpolated = round_half_away((transform(input_min + (i + 1) * step) * scaling + sample) / f(2))
        midpoint = round_half_away(transform(start + step / f(2)) * scaling)
        bias = round_half_away((interpolated - midpoint) / f(2))
        last = round_half_away(transform(np.array([input_max], np.float32)) * scaling)
        return np.concatenate([_to_int16_clamped((sample - bias).astype(np.float32)),
                               _to_int16_clamped(last.astype(np.float32))])


def table_fold(transform: Callable[[Tensor, Tensor, Op], FloatFn], types: tuple[str, ...], wide: bool = False,
               check: Callable[[Op, Tensor, Tensor], None] | None = None) -> Callable[[Graph, Op], Params]:
    """The fold of a table operator: ``transform(x, y, op)`` gives the float function, tabulated over 8 bits or,
    when ``wide``, as int16 samples."""
    def fold(graph: Graph, op: Op) -> Params:
        x, y = unary_operands(graph, op, types)
        if check is not None:
            check(op, x, y)
        fn = transform(x, y, op)
        return {"table": lut16(fn, x, y, op) if wide else lut8(fn, x, y, op)}
    return fold


def _exp(x: Tensor, y: Tensor, op: Op) -> FloatFn:
    return expf


def _log(x: Tensor, y: Tensor, op: Op) -> FloatFn:
    """logf, and the output's lowest real value for inputs <= 0."""
    out_scale, out_zp = per_tensor(op, y, "output")
    lowest = np.float32(int(np.iinfo(y.dtype).min) - out_zp) * np.float32(out_scale)
    return lambda v: np.where(v <= 0, lowest, logf(v)).astype(np.float32)


def _rsqrt16(x: Tensor, y: Tensor, op: Op) -> FloatFn:
    """1 / sqrtf, and the output's largest real value for inputs <= 0."""
    largest = np.float32(32767) * np.float32(per_tensor(op, y, "output")[0])
    return lambda v: np.where(v <= 0, largest, np.float32(1) / np.sqrt(v)).astype(np.float32)


# -- int8 RSQRT: TFLite's integer Newton iteration ----------------------------------------------------

def _inv_sqrt_multiplier(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's GetInvSqrtQuantizedMultiplierExp for values in [2, 2^29): (multiplier, left shift) of 1/sqrt.

    The value is normalized by an even shift into [2^27, 2^29), then five
    Newton steps x = 3/2 x - v/2 x^3 run in gemmlowp Q3.28.
    """
    pairs = (count_leading_zeros_u32(value) - 1) // 2 - 1
    shift = 11 - pairs
    normalized = value << (2 * pairs)
    half_input = rounding_divide_by_pot(normalized >> 1, 1)
    half_three = (1 << 28) + (1 << 27)
    x = np.full(value.shape, 1 << 28, dtype=np.int64)
    mul = saturating_rounding_doubling_high_mul
    for _ in range(5):
        cube = saturating_rounding_multiply_by_pot(mul(mul(x, x), x), 6)              # Q9 to Q3
        x = saturating_rounding_multiply_by_pot(wrap_int32(mul(half_three, x) - mul(half_input, cube)), 3)
    x = mul(x, 1518500250)                                                             # times sqrt(2) / 2
    x = np.where(shift < 0, x << np.maximum(-shift, 0), x)
    return x, -np.maximum(shift, 0)


def _rsqrt8_table(op: Op, x: Tensor, y: Tensor) -> np.ndarray:
    """TFLite's int8 RSQRT for every input: 1/sqrt(x - zp_in) as a fixed-point multiplier, rescaled by
    1 / (sqrt(s_in) s_out).  Inputs below the zero point (TFLite refuses to run) and at it give 127."""
    in_scale, in_zp = per_tensor(op, x, "input")
    out_scale, out_zp = per_tensor(op, y, "output")
    multiplier, shift = quantize_multiplier(1.0 / float(np.sqrt(np.float32(in_scale)) * np.float32(out_scale)))
    values = np.arange(-128, 128, dtype=np.int64)
    value = np.maximum(values - in_zp, 1)
    inv, inv_shift = _inv_sqrt_multiplier(np.maximum(value, 2))
    inv, inv_shift = np.where(value <= 1, INT32_MAX, inv), np.where(value <= 1, 0, inv_shift)
    data = multiply_by_quantized_multiplier(1, inv, inv_shift + 20)
    out = np.clip(multiply_by_quantized_multiplier(data, multiplier, shift - 20) + out_zp, -128, 127)
    out = np.where(values - in_zp <= 0, 127, out)
    table = np.zeros(256, dtype=np.int32)
    table[values & 0xFF] = out
    return table


def _rsqrt8(graph: Graph, op: Op) -> Params:
    x, y = unary_operands(graph, op, ("int8",))
    return {"table": _rsqrt8_table(op, x, y)}


# -- CAST and ABS ----------------------------------------------------------------------------------

def _cast(graph: Graph, op: Op) -> Params:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input", NUMERIC_TYPES)
    require_type(op, y, "output", NUMERIC_TYPES)
    require_shape(op, y, x.shape, "output")
    return {}


def _abs_quantized(graph: Graph, op: Op) -> Params:
    """TFLite's quantized ABS: zero points, and a multiplier for s_in / s_out unless the scales are equal."""
    x, y, in_scale, in_zp, out_scale, out_zp = quantized_unary(graph, op, ("int8", "int16"))
    rescale = in_scale != out_scale
    multiplier, shift = quantize_multiplier(float(np.float32(in_scale) / np.float32(out_scale))) if rescale else (0, 0)
    return {"input_zero_point": in_zp, "output_zero_point": out_zp, "multiplier": multiplier, "shift": shift,
            "rescale": int(rescale)}


def float_ops(*names: str) -> tuple[HostOp, ...]:
    """float32-only kernels without parameters, each ``<NAME>`` running ``unary.<name>_f32``."""
    return tuple(HostOp(name, (), plain(FLOAT32), getattr(unary, f"{name.lower()}_f32")) for name in names)


_ZERO_POINT = (-128, 255)
_QUANTIZED_8 = Types(("int8",), "input")
_INT16 = Types(("int16",), "input")
_F32 = Types(FLOAT32, "input")

OPS = (
    HostOp("CAST", (), _cast, unary.cast),
    HostOp("EXP", LUT8_PARAMS, table_fold(_exp, ("int8",)), unary.lookup_table, types=_QUANTIZED_8,
           stem="lookup_table"),
    HostOp("EXP_I16", LUT16_PARAMS, table_fold(_exp, ("int16",), wide=True), unary.lookup_table_int16,
           opcode="EXP", types=_INT16, stem="lookup_table_int16"),
    HostOp("EXP_F32", (), plain(FLOAT32), unary.exp_f32, opcode="EXP", types=_F32),
    HostOp("LOG", LUT8_PARAMS, table_fold(_log, ("int8",)), unary.lookup_table, types=_QUANTIZED_8,
           stem="lookup_table"),
    HostOp("LOG_I16", LUT16_PARAMS, table_fold(_log, ("int16",), wide=True, check=zero_points_zero),
           unary.lookup_table_int16, opcode="LOG", types=_INT16, stem="lookup_table_int16"),
    HostOp("LOG_F32", (), plain(FLOAT32), unary.log_f32, opcode="LOG", types=_F32),
    HostOp("RSQRT", LUT8_PARAMS, _rsqrt8, unary.lookup_table, types=_QUANTIZED_8, stem="lookup_table"),
    HostOp("RSQRT_I16", LUT16_PARAMS, table_fold(_rsqrt16, ("int16",), wide=True, check=zero_points_zero),
           unary.lookup_table_int16, opcode="RSQRT", types=_INT16, stem="lookup_table_int16"),
    HostOp("RSQRT_F32", (), plain(FLOAT32), unary.rsqrt_f32, opcode="RSQRT", types=_F32),
    *float_ops("SQRT", "SIN", "COS", "SQUARE", "FLOOR", "CEIL", "ROUND"),
    HostOp("ABS", (Int("input_zero_point", *_ZERO_POINT), Int("output_zero_point", *_ZERO_POINT),
                   Int("multiplier", 0), Int("shift", -31, 31), Flag("rescale")), _abs_quantized,
           unary.abs_quantized, types=Types(("int8", "int16"), "input", quantized=True)),
    HostOp("ABS_RAW", (), plain(("float32", "int16", "int32")), unary.abs_plain, opcode="ABS"),
    HostOp("NEG", (), plain(("float32", "int8", "int16", "int32", "int64")), unary.neg_plain),
    HostOp("SIGN", (), plain(("float32", "int32")), unary.sign_plain),
)
