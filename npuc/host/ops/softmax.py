"""SOFTMAX and LOG_SOFTMAX on the host: the scalings and tables TFLite's Prepare computes, folded at compile time.

The 8-bit kernels take PreprocessSoftmaxScaling's multiplier for beta *
input_scale in Q5.26 and CalculateInputRadius's ``diff_min``; LOG_SOFTMAX
(beta 1) also the reverse scaling PreprocessLogSoftmaxScalingExp derives.
The int16 SOFTMAX takes the multiplier that maps input differences onto
[-10, 0] in steps of 10/65535 and TFLite's two 513-entry tables (exp on
[-10, 0] and 1/(1 + x) on [0, 1]), built here with the C library's double
``exp`` as TFLite's LUTPopulate builds them.  The output quantizations
TFLite insists on are insisted on here; the others (uint8 and int16 SOFTMAX
outputs) do not change the computed values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import Float, HostOp, Int, Ints, Types
from ..fixedpoint import quantize_multiplier, round_half_away
from ..kernels import softmax
from ..kernels.softmax import ACCUMULATION_INTEGER_BITS, LUT_ENTRIES, SCALED_DIFF_INTEGER_BITS
from .common import (Params, fail, input_tensor, output_tensor, per_tensor, require_shape, require_type,
                     same_type)

#: Input types of the fixed-point kernels.
EIGHT_BIT = ("uint8", "int8")
#: Longest rows of the 8-bit SOFTMAX: their Q12.19 sum of exponentials stays below 2^32.
MAX_DEPTH_8BIT = (1 << (32 - (31 - ACCUMULATION_INTEGER_BITS))) - 1
#: Longest rows of LOG_SOFTMAX: its Q12.19 sum stays within int32, as TFLite's log needs.
MAX_DEPTH_LOG = (1 << (31 - (31 - ACCUMULATION_INTEGER_BITS))) - 1
#: Longest rows of the int16 SOFTMAX: its sum of Q0.15 exponentials stays within int32.
MAX_DEPTH_INT16 = 1 << 16


def _check_rows(op: Op, x: Tensor, max_depth: int, max_rank: int = 6) -> None:
    """TFLite's kernels work on rows along the last axis: 1 to ``max_rank`` dimensions, rows of 1 to ``max_depth``."""
    if not 1 <= len(x.shape) <= max_rank:
        raise fail(op, f"input {x.describe()} must have 1 to {max_rank} dimensions")
    if not 1 <= x.shape[-1] <= max_depth:
        raise fail(op, f"input {x.describe()} has rows of {x.shape[-1]} values; the host kernel takes 1 to {max_depth}")


def _operands(graph: Graph, op: Op, types: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input", types)
    require_shape(op, y, x.shape, "output")
    return x, y


def _beta(op: Op) -> float:
    return float(np.float32(op.options.get("beta", 1.0)))


def _input_scaling(op: Op, beta_times_scale: float) -> tuple[int, int, int]:
    """TFLite's PreprocessSoftmaxScaling and CalculateInputRadius: (multiplier, left shift, diff_min)."""
    fraction_bits = 31 - SCALED_DIFF_INTEGER_BITS
    multiplier, left_shift = quantize_multiplier(min(beta_times_scale * (1 << fraction_bits), (1 << 31) - 1.0))
    if left_shift < 0:
        raise fail(op, f"beta * input scale = {beta_times_scale:.6g} is too small for the quantized kernel")
    radius = ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * (1 << fraction_bits) / (1 << left_shift)
    return multiplier, left_shift, -math.floor(radius)


def _softmax(graph: Graph, op: Op) -> Params:
    """uint8/int8 input, output of the same type or int16."""
    x, y = _operands(graph, op, EIGHT_BIT)
    if y.dtype not in (x.dtype, "int16"):
        raise fail(op, f"output {y.describe()} must be {x.dtype} or int16")
    _check_rows(op, x, MAX_DEPTH_8BIT)
    in_scale, _ = per_tensor(op, x, "input")
    if y.dtype == "int8" and not _quantized_near(op, y, 1 / 256, -128):
        raise fail(op, f"output {y.describe()} must have scale 1/256 and zero point -128")
    multiplier, left_shift, diff_min = _input_scaling(op, _beta(op) * in_scale)
    return {"input_multiplier": multiplier, "input_left_shift": left_shift, "diff_min": diff_min}


def _quantized_near(op: Op, t: Tensor, scale: float, zero_point: int) -> bool:
    """``t`` has ``zero_point`` and a scale within 0.1% of ``scale`` (TFLite's TF_LITE_ENSURE_NEAR, in float)."""
    actual, actual_zero_point = per_tensor(op, t, "output")
    return actual_zero_point == zero_point and abs(np.float32(actual) - np.float32(scale)) <= np.float32(0.001 * scale)


def lut_int16(func: Callable[[float], float], input_min: float, input_max: float) -> np.ndarray:
    """TFLite's LUTPopulate<int16_t> in double: 512 segments of ``func`` over [input_min, input_max] into Q0.15.

    Each entry is the rounded sample less half the rounded error the linear
    interpolation would make at the segment's midpoint; the last is the end
    value.  The output range is [-1, 1) (TFLite's scale 2/65535, zero point
    0, hence a scaling of 65536 / (65535 * 2/65535)).
    """
    output_scale = 2.0 / 65535
    scaling = 65536.0 / (output_scale * 32767 - output_scale * -32768)
    step = (input_max - input_min) / (LUT_ENTRIES - 1)

    def rounded(v: float) -> float:
        return float(round_half_away(v))

    lut = []
    for i in range(LUT_ENTRIES - 1):
        value = func(input_min + i * step)
        midpoint = func(input_min + i * step + step / 2)
        following = func(input_min + (i + 1) * step)
        interpolated = rounded((following * scaling + rounded(value * scaling)) / 2)
        bias = rounded((interpolated - rounded(midpoint * scaling)) / 2)
        lut.append(rounded(value * scaling) - bias)
    lut.append(rounded(func(input_max) * scaling))
    return np.clip(np.array(lut), -32768, 32767).astype(np.int32)


def _int16_table_range(scale: float, zero_point: int) -> tuple[float, float]:
    """The real range of int16 values at ``scale`` and ``zero_point``, as LUTPopulate computes it."""
    return scale * (-32768 - zero_point), scale * (32767 - zero_point)


@lru_cache(maxsize=1)
def _int16_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """TFLite's int16 SOFTMAX tables: exp on [-10, 0] and 1/(1 + x) on [0, 1], each over the 65535 int16 steps."""
    steps = 65535
    exp_lut = lut_int16(math.exp, *_int16_table_range(10.0 / steps, 32767))
    reciprocal_lut = lut_int16(lambda v: 1.0 / (1.0 + v), *_int16_table_range(1.0 / steps, -32768))
    return tuple(int(v) for v in exp_lut), tuple(int(v) for v in reciprocal_lut)


def _softmax_int16(graph: Graph, op: Op) -> Params:
    """int16: exp and reciprocal tables, and the multiplier mapping a difference of 1 onto 65535/10 table steps."""
    x, y = _operands(graph, op, ("int16",))
    same_type(op, x, y)
    _check_rows(op, x, MAX_DEPTH_INT16, max_rank=4)
    in_scale, in_zp = per_tensor(op, x, "input")
    if in_zp != 0 or not _quantized_near(op, y, 1 / 32768, 0):
        raise fail(op, f"input {x.describe()} and output {y.describe()} need zero point 0 and output scale 1/32768")
    # TFLite multiplies the two floats in float, then divides in double.
    rescale = float(np.float32(in_scale) * np.float32(_beta(op))) / (10.0 / 65535.0)
    multiplier, shift = quantize_multiplier(rescale)
    if not -31 <= shift <= 30:
        raise fail(op, f"beta * input scale = {rescale * 10 / 65535:.6g} is out of range for the int16 kernel")
    exp_lut, reciprocal_lut = _int16_tables()
    return {"input_multiplier": multiplier, "input_shift": shift, "exp_lut": np.array(exp_lut, dtype=np.int32),
            "reciprocal_lut": np.array(reciprocal_lut, dtype=np.int32)}


def _softmax_f32(graph: Graph, op: Op) -> Params:
    x, y = _operands(graph, op, ("float32",))
    same_type(op, x, y)
    _check_rows(op, x, 1 << 31)
    return {"beta": _beta(op)}


def _log_softmax(graph: Graph, op: Op) -> Params:
    """uint8/int8: output scale 16/256 with the type's highest value as zero point, scalings for beta 1."""
    x, y = _operands(graph, op, EIGHT_BIT)
    same_type(op, x, y)
    _check_rows(op, x, MAX_DEPTH_LOG)
    in_scale, _ = per_tensor(op, x, "input")
    out_scale, out_zp = per_tensor(op, y, "output")
    if out_scale != 16 / 256 or out_zp != int(np.iinfo(y.dtype).max):
        raise fail(op, f"output {y.describe()} must have scale 16/256 and zero point {np.iinfo(y.dtype).max}")
    multiplier, left_shift, diff_min = _input_scaling(op, in_scale)
    # TFLite's PreprocessLogSoftmaxScalingExp: 2^(31 - left_shift) / multiplier, which must be below 1.
    divisor, reverse_shift = quantize_multiplier((1 << (31 - left_shift)) / multiplier) if left_shift else (0, 1)
    if reverse_shift > 0:
        raise fail(op, f"input scale {in_scale:.6g} is too large for the quantized kernel")
    return {"input_multiplier": multiplier, "input_left_shift": left_shift, "diff_min": diff_min,
            "reverse_scaling_divisor": divisor, "reverse_scaling_right_shift": -reverse_shift}


def _log_softmax_f32(graph: Graph, op: Op) -> Params:
    x, y = _operands(graph, op, ("float32",))
    same_type(op, x, y)
    _check_rows(op, x, 1 << 31)
    return {}


_INPUT_SCALING = (Int("input_multiplier", 0), Int("input_left_shift", 0, 31), Int("diff_min", hi=0))
_LOG_SCALING = (*_INPUT_SCALING, Int("reverse_scaling_divisor", 0), Int("reverse_scaling_right_shift", 0, 31))
_LUT = (Ints("exp_lut", -32768, 32767), Ints("reciprocal_lut", -32768, 32767))

OPS = (
    HostOp("SOFTMAX", _INPUT_SCALING, _softmax, softmax.softmax, types=Types(EIGHT_BIT, "input")),
    HostOp("SOFTMAX_I16", (Int("input_multiplier", 0), Int("input_shift", -31, 30), *_LUT), _softmax_int16,
           softmax.softmax_int16, opcode="SOFTMAX", types=Types(("int16",), "input")),
    HostOp("SOFTMAX_F32", (Float("beta"),), _softmax_f32, softmax.softmax_f32, opcode="SOFTMAX",
           types=Types(("float32",), "input")),
    HostOp("LOG_SOFTMAX", _LOG_SCALING, _log_softmax, softmax.log_softmax, types=Types(EIGHT_BIT, "input")),
    HostOp("LOG_SOFTMAX_F32", (), _log_softmax_f32, softmax.log_softmax_f32, opcode="LOG_SOFTMAX",
           types=Types(("float32",), "input")),
)
