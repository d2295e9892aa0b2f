"""Element-wise binary arithmetic on the host: ADD, SUB, MUL, DIV, FLOOR_DIV, FLOOR_MOD, SQUARED_DIFFERENCE,
MAXIMUM, MINIMUM, POW and ADD_N, with what TFLite's Prepare computes for them.

Each operator has one kernel per family of element types whose parameters
differ: the quantized kernels (uint8/int8, and int16 where TFLite has an int16
scheme) carry the rescaling TFLite folds from the scales, the plain integer
kernels (int16/int32/int64 without quantization) only the fused activation,
the float32 kernels the activation's clamp bounds.  Operators that take no
parameters (FLOOR_DIV, MAXIMUM, ...) have one kernel for all their types.

The quantized folds follow TFLite:

* ADD and SUB bring both offset inputs, shifted left by 20 bits (15 for
  int16), to twice the larger input scale, then to the output scale.  int16
  with power-of-two scales (``pot_scale_int16``, the default) uses TFLite's
  POT scheme instead, rounding shifts of the inputs; it is expressed with the
  same parameters (a left shift of 1 and multipliers of one half make the
  rescaling steps exact, the input shifts remain);
* MUL rescales the product by ``s1 * s2 / s_out``, DIV the quotient by
  ``s1 / (s2 * s_out)``, SQUARED_DIFFERENCE (int8) the square of the
  difference of both inputs brought to twice the larger scale after a left
  shift of 7.

A quantized kernel is chosen only for a quantized tensor: TFLite runs an
unquantized int16 ADD or MUL as plain wrapping integer arithmetic.  TFLite's
int16 DIV and its int16 x int16 -> 8-bit MUL have no host kernel.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import ACTIVATION, Float, HostOp, Int, KernelFn, Param, Types
from ..fixedpoint import quantize_multiplier
from ..kernels import arith
from .common import (QUANTIZED_TYPES, Params, activation_range, constant_ints, fail, input_tensor, output_tensor,
                     per_tensor, plain_activation_range, require_type)

#: Headroom bits TFLite's ADD and SUB shift their offset inputs left by: 8-bit, int16 (general scales).
ADD_LEFT_SHIFT = {"uint8": 20, "int8": 20, "int16": 15}
#: Headroom bits TFLite's int8 SQUARED_DIFFERENCE shifts its offset inputs left by.
SQUARED_DIFFERENCE_LEFT_SHIFT = 7
#: The 8-bit quantized types and int16.
QUANTIZED_16 = (*QUANTIZED_TYPES, "int16")
#: Integer types whose arithmetic is plain (no quantization): they wrap as two's complement.
PLAIN_INTEGERS = ("int16", "int32", "int64")
#: TFLite's fused activations the plain integer kernels take, by their ActivationFunctionType code.
ACTIVATION_CODES = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}
#: Largest power of two TFLite's POT int16 scheme divides an input by, as a shift (gemmlowp's limit).
MAX_POT_SHIFT = 31

#: A per-tensor quantization: (scale, zero point).
Quantization = tuple[float, int]
Fold = Callable[[Graph, Op], Params]


def operands(graph: Graph, op: Op, types: tuple[str, ...], count: int = 2) -> tuple[list[Tensor], Tensor]:
    """The ``count`` inputs, all of one type among ``types``, and the output, of the broadcast shape of the inputs."""
    ins = [input_tensor(graph, op, i, f"input {i + 1}") for i in range(count)]
    y = output_tensor(graph, op)
    require_type(op, ins[0], "input 1", types)
    for i, t in enumerate(ins[1:], 2):
        if t.dtype != ins[0].dtype:
            raise fail(op, f"input {i} {t.describe()} differs in type from input 1 {ins[0].describe()}")
    require_broadcast(op, ins, y)
    return ins, y


def require_broadcast(op: Op, ins: list[Tensor], y: Tensor) -> None:
    """The output has the shape numpy broadcasting gives the inputs."""
    try:
        shape = np.broadcast_shapes(*(t.shape for t in ins))
    except ValueError:
        raise fail(op, f"inputs {', '.join(t.describe() for t in ins)} do not broadcast") from None
    if tuple(shape) != tuple(y.shape):
        raise fail(op, f"output {y.describe()} is not the broadcast shape {list(shape)} of its inputs")


def _same_type_output(op: Op, x: Tensor, y: Tensor) -> None:
    if y.dtype != x.dtype:
        raise fail(op, f"output {y.describe()} differs in type from its inputs")


def _quantizations(op: Op, a: Tensor, b: Tensor, y: Tensor) -> tuple[Quantization, Quantization, Quantization]:
    return per_tensor(op, a, "input 1"), per_tensor(op, b, "input 2"), per_tensor(op, y, "output")


def _multiplier(op: Op, name: str, real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplierSmallerThanOneExp: refused when ``real`` rounds to 1 or more (TFLite aborts)."""
    multiplier, shift = quantize_multiplier(real)
    if shift > 0:
        raise fail(op, f"{name} rescale factor {real:.6g} is too large (output scale too small)")
    return multiplier, shift


def _twice_max(q1: Quantization, q2: Quantization) -> float:
    """The common scale ADD, SUB and SQUARED_DIFFERENCE bring their inputs to: twice the larger one."""
    return 2 * max(q1[0], q2[0])


def _rescaled_inputs(op: Op, q1: Quantization, q2: Quantization, left_shift: int) -> Params:
    """Both inputs offset and brought to twice the larger scale after ``left_shift``."""
    twice_max = _twice_max(q1, q2)
    out: Params = {"left_shift": left_shift}
    for name, (scale, zero_point) in (("input1", q1), ("input2", q2)):
        out[f"{name}_offset"] = -zero_point
        out[f"{name}_multiplier"], out[f"{name}_shift"] = _multiplier(op, name, scale / twice_max)
    return out


def _zero_points_zero(op: Op, *quantizations: Quantization) -> None:
    if any(zero_point != 0 for _, zero_point in quantizations):
        raise fail(op, "int16 tensors must have zero point 0")


def _log2_of_power_of_two(scale: float) -> int | None:
    """TFLite's CheckedLog2: the rounded log2 of a scale within 1e-3 (in log2) of a power of two, else None."""
    log2 = math.log(scale) / math.log(2.0)
    rounded = math.floor(abs(log2) + 0.5) * (1 if log2 >= 0 else -1)
    return int(rounded) if abs(log2 - rounded) < 1e-3 else None


def _pot_rescaling(op: Op, q1: Quantization, q2: Quantization, qy: Quantization) -> Params | None:
    """TFLite's int16 POT scheme, or None when a scale is not a power of two.

    Each input is divided by 2^(log2 s_out - log2 s_in), rounding, and the
    results added or subtracted.  In the general kernel's terms: the inputs
    shifted left by 1 and multiplied by one half are themselves, the input
    shifts divide, and the output step (left by 1, times one half) is exact.
    """
    logs = [_log2_of_power_of_two(s) for s, _ in (q1, q2, qy)]
    if None in logs:
        return None
    shifts = [logs[0] - logs[2], logs[1] - logs[2]]
    if max(shifts) != 0 or min(shifts) < -MAX_POT_SHIFT:
        raise fail(op, "int16 power-of-two scales need one input scaled like the output and the other finer")
    half = 1 << 30
    return {"left_shift": 1, "input1_offset": 0, "input1_multiplier": half, "input1_shift": shifts[0],
            "input2_offset": 0, "input2_multiplier": half, "input2_shift": shifts[1], "output_offset": 0,
            "output_multiplier": half, "output_shift": 1}


def _add_sub(pot_needs_same_size: bool) -> Fold:
    """The fold of quantized ADD or SUB; ADD's POT kernel cannot broadcast (TFLite checks sizes and aborts)."""
    def fold(graph: Graph, op: Op) -> Params:
        (a, b), y = operands(graph, op, QUANTIZED_16)
        _same_type_output(op, a, y)
        q1, q2, qy = _quantizations(op, a, b, y)
        params = None
        if y.dtype == "int16":
            _zero_points_zero(op, q1, q2, qy)
            if op.options.get("pot_scale_int16", False):
                params = _pot_rescaling(op, q1, q2, qy)
            if params is not None and pot_needs_same_size and not a.num_elements == b.num_elements == y.num_elements:
                raise fail(op, "int16 with power-of-two scales cannot broadcast in TFLite")
        if params is None:
            params = _rescaled_inputs(op, q1, q2, ADD_LEFT_SHIFT[y.dtype])
            params["output_offset"] = qy[1]
            params["output_multiplier"], params["output_shift"] = _multiplier(
                op, "output", _twice_max(q1, q2) / ((1 << params["left_shift"]) * qy[0]))
        params["act_min"], params["act_max"] = activation_range(op, y)
        return params

    return fold


def _mul(graph: Graph, op: Op) -> Params:
    """TFLite's quantized MUL: one multiplier for s1 * s2 / s_out (in double); int16 needs zero points 0."""
    (a, b), y = operands(graph, op, QUANTIZED_16)
    _same_type_output(op, a, y)
    (s1, z1), (s2, z2), (so, zo) = q = _quantizations(op, a, b, y)
    if y.dtype == "int16":
        _zero_points_zero(op, *q)
    multiplier, shift = quantize_multiplier(s1 * s2 / so)
    lo, hi = activation_range(op, y)
    return {"input1_offset": -z1, "input2_offset": -z2, "output_offset": zo, "output_multiplier": multiplier,
            "output_shift": shift, "act_min": lo, "act_max": hi}


def _div(graph: Graph, op: Op) -> Params:
    """TFLite's 8-bit DIV: one multiplier for s1 / (s2 * s_out), applied to a fixed-point quotient.

    The kernel divides the rescaled quotient by 2^(recip_shift + headroom -
    output_shift); TFLite's rounding division only works for a non-negative
    exponent below 64, so the output shift must stay within what the 8-bit
    operands allow (refused otherwise).
    """
    (a, b), y = operands(graph, op, QUANTIZED_TYPES)
    _same_type_output(op, a, y)
    (s1, z1), (s2, z2), (so, zo) = _quantizations(op, a, b, y)
    if b.is_constant and np.any(np.asarray(b.data).astype(np.int64) == z2):
        raise fail(op, f"divisor {b.describe()} contains its zero point (a division by zero)")
    multiplier, shift = quantize_multiplier(s1 / (s2 * so))
    lowest, highest = div_shift_range(a.dtype, -z1, -z2)
    if not lowest <= shift <= highest:
        raise fail(op, f"rescale factor {s1 / (s2 * so):.6g} is outside the range TFLite's DIV computes")
    lo, hi = activation_range(op, y)
    return {"input1_offset": -z1, "input2_offset": -z2, "output_offset": zo, "output_multiplier": multiplier,
            "output_shift": shift, "act_min": lo, "act_max": hi}


def div_shift_range(dtype: str, input1_offset: int, input2_offset: int) -> tuple[int, int]:
    """The output shifts for which every quotient of TFLite's quantized DIV divides by 2^e with 0 <= e < 64.

    e = recip_shift + headroom - output_shift, where the headroom of the
    dividend is at least 31 - bitlen(its largest magnitude) and at most 31,
    and recip_shift is at most bitlen(the largest divisor magnitude) - 1.
    """
    info = np.iinfo(dtype)
    dividend = max(abs(int(info.min) + input1_offset), abs(int(info.max) + input1_offset))
    divisor = max(abs(int(info.min) + input2_offset), abs(int(info.max) + input2_offset))
    return divisor.bit_length() - 1 + 31 - 63, 31 - dividend.bit_length()


def _squared_difference(graph: Graph, op: Op) -> Params:
    """TFLite's int8 SQUARED_DIFFERENCE: inputs to twice the larger scale after a left shift of 7, squared."""
    (a, b), y = operands(graph, op, ("int8",))
    _same_type_output(op, a, y)
    q1, q2, qy = _quantizations(op, a, b, y)
    params = _rescaled_inputs(op, q1, q2, SQUARED_DIFFERENCE_LEFT_SHIFT)
    twice_max = _twice_max(q1, q2)
    params["output_offset"] = qy[1]
    params["output_multiplier"], params["output_shift"] = _multiplier(
        op, "output", twice_max * twice_max / ((1 << 2 * SQUARED_DIFFERENCE_LEFT_SHIFT) * qy[0]))
    info = np.iinfo(np.int8)
    params["act_min"], params["act_max"] = int(info.min), int(info.max)
    return params


def activation_code(op: Op) -> int:
    """The fused activation as TFLite's ActivationFunctionType code (the plain kernels clamp by it)."""
    act = op.options.get("fused_activation_function", "NONE")
    if act not in ACTIVATION_CODES:
        raise fail(op, f"fused activation {act} has no host kernel")
    return ACTIVATION_CODES[act]


def _refuse_constant_zero(op: Op, divisor: Tensor) -> None:
    """A constant divisor holding a zero: TFLite fails when the model runs, so the compiler refuses it."""
    if divisor.is_constant and np.any(np.asarray(divisor.data) == 0):
        raise fail(op, f"divisor {divisor.describe()} contains a zero")


def _plain_integer(types: tuple[str, ...], zero_divisor_refused: bool = False) -> Fold:
    """The fold of a plain integer kernel: wrapping arithmetic clamped by the fused activation."""
    def fold(graph: Graph, op: Op) -> Params:
        (_, b), y = operands(graph, op, types)
        _same_type_output(op, b, y)
        if zero_divisor_refused:
            _refuse_constant_zero(op, b)
        return {"activation": activation_code(op)}

    return fold


def _float(graph: Graph, op: Op) -> Params:
    """The fold of a float32 kernel: the activation's clamp bounds."""
    (a, _), y = operands(graph, op, ("float32",))
    _same_type_output(op, a, y)
    lo, hi = plain_activation_range(op, y)
    return {"act_min": lo, "act_max": hi}


def _plain(types: tuple[str, ...], zero_divisor_refused: tuple[str, ...] = ()) -> Fold:
    """The fold of a kernel without parameters; a constant zero divisor of a type in ``zero_divisor_refused``
    is refused (TFLite checks the divisor of those types when the model runs)."""
    def fold(graph: Graph, op: Op) -> Params:
        (_, b), y = operands(graph, op, types)
        _same_type_output(op, b, y)
        if b.dtype in zero_divisor_refused:
            _refuse_constant_zero(op, b)
        return {}

    return fold


def _pow(graph: Graph, op: Op) -> Params:
    """POW: int32 or float32; TFLite fails on a negative int32 exponent, so a constant one is refused."""
    (_, b), y = operands(graph, op, ("int32", "float32"))
    _same_type_output(op, b, y)
    if b.dtype == "int32" and b.is_constant and min(constant_ints(op, b, "exponent"), default=0) < 0:
        raise fail(op, f"exponent {b.describe()} is negative")
    return {}


def _add_n(graph: Graph, op: Op) -> Params:
    """ADD_N: at least two inputs of one shape and type (int32 or float32), the output alike."""
    if len(op.inputs) < 2:
        raise fail(op, "needs at least two inputs")
    ins, y = operands(graph, op, ("int32", "float32"), len(op.inputs))
    _same_type_output(op, ins[0], y)
    for i, t in enumerate(ins[1:], 2):
        if t.shape != ins[0].shape:
            raise fail(op, f"input {i} {t.describe()} differs in shape from input 1 {ins[0].describe()}")
    return {}


#: The quantized ADD/SUB/SQUARED_DIFFERENCE rescaling: inputs to a common scale after a left shift, then the output.
_RESCALING = (Int("left_shift", 0, 20), Int("input1_offset", -255, 255), Int("input1_multiplier", 0),
              Int("input1_shift", -31, 0), Int("input2_offset", -255, 255), Int("input2_multiplier", 0),
              Int("input2_shift", -31, 0), Int("output_offset", -255, 255), Int("output_multiplier", 0),
              Int("output_shift", -31, 31), *ACTIVATION)
#: The quantized MUL and DIV rescaling of the product or quotient.
_PRODUCT = (Int("input1_offset", -255, 255), Int("input2_offset", -255, 255), Int("output_offset", -255, 255),
            Int("output_multiplier", 0), Int("output_shift", -31, 31), *ACTIVATION)
_ACTIVATION_CODE = (Int("activation", 0, 3, doc="fused activation: 0 none, 1 RELU, 2 RELU_N1_TO_1, 3 RELU6"),)
_F32_ACTIVATION = (Float("act_min"), Float("act_max"))
_F32 = Types(("float32",))
_EVERY_NUMBER = ("uint8", "int8", "int16", "int32", "int64", "float32")


def _arithmetic(opcode: str, run: KernelFn, quantized: Fold, quantized_params: tuple[Param, ...],
                integers: tuple[str, ...], quantized_types: tuple[str, ...] = QUANTIZED_16,
                divides: bool = False) -> tuple[HostOp, ...]:
    """An arithmetic operator's kernels: quantized (rescaled), plain integer and float32 (clamped only)."""
    return (HostOp(opcode, quantized_params, quantized, run, types=Types(quantized_types, quantized=True)),
            HostOp(f"{opcode}_INT", _ACTIVATION_CODE, _plain_integer(integers, divides), run, opcode=opcode,
                   types=Types(integers)),
            HostOp(f"{opcode}_F32", _F32_ACTIVATION, _float, run, opcode=opcode, types=_F32))


OPS = (
    *_arithmetic("ADD", arith.add, _add_sub(pot_needs_same_size=True), _RESCALING, PLAIN_INTEGERS),
    *_arithmetic("SUB", arith.sub, _add_sub(pot_needs_same_size=False), _RESCALING, ("int32", "int64")),
    *_arithmetic("MUL", arith.mul, _mul, _PRODUCT, PLAIN_INTEGERS),
    *_arithmetic("DIV", arith.div, _div, _PRODUCT, ("int32",), QUANTIZED_TYPES, divides=True),
    HostOp("FLOOR_DIV", (), _plain(("int8", "int16", "int32", "float32"), ("int8", "int16", "int32", "float32")),
           arith.floor_div),
    HostOp("FLOOR_MOD", (), _plain(("int8", "int16", "int32", "int64", "float32"), ("int8", "int16", "int32", "int64")),
           arith.floor_mod),
    HostOp("SQUARED_DIFFERENCE", _RESCALING, _squared_difference, arith.squared_difference,
           types=Types(("int8",), quantized=True)),
    HostOp("SQUARED_DIFFERENCE_PLAIN", (), _plain(("int32", "float32")), arith.squared_difference,
           opcode="SQUARED_DIFFERENCE", types=Types(("int32", "float32"))),
    HostOp("MAXIMUM", (), _plain(_EVERY_NUMBER), arith.maximum),
    HostOp("MINIMUM", (), _plain(_EVERY_NUMBER), arith.minimum),
    HostOp("POW", (), _pow, arith.power),
    HostOp("ADD_N", (), _add_n, arith.add_n),
)
