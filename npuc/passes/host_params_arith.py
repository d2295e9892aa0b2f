"""Host parameters of the element-wise operators: ADD, SUB, MUL, DIV, FLOOR_DIV, CAST, SQRT and LOGISTIC.

As in TFLite's Prepare: 8-bit ADD/SUB bring both inputs to twice the larger
input scale after a left shift of 20 bits, 8-bit MUL rescales the product by
``input1_scale * input2_scale / output_scale`` (in double), int32 and float32
arithmetic only clamp to the activation range, and the 8-bit LOGISTIC becomes
the 256-entry table TFLite's reference kernel fills by evaluating the float
sigmoid ``1 / (1 + exp(-x))`` in float32 at every input value.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..ir import Graph, Op, Tensor
from ..runtime.host.fixedpoint import quantize_multiplier, round_half_away
from .host_params_common import (NUMERIC_TYPES, QUANTIZED_TYPES, Params, activation_range, constant_ints, fail,
                                 input_tensor, output_tensor, per_tensor, plain_activation_range, require_shape,
                                 require_type, same_type)

#: Headroom bits TFLite's 8-bit ADD and SUB shift their offset inputs left by.
ADD_LEFT_SHIFT = 20
#: Types the binary arithmetic kernels take besides the 8-bit quantized ones.
PLAIN_TYPES = ("int32", "float32")
#: Output scale TFLite's 8-bit LOGISTIC requires.
LOGISTIC_OUTPUT_SCALE = 1.0 / 256

#: A per-tensor quantization: (scale, zero point).
Quantization = tuple[float, int]


def _binary_operands(graph: Graph, op: Op, types: tuple[str, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """The two inputs and the output, of one type among ``types``, the inputs broadcasting to the output."""
    a, b, y = input_tensor(graph, op, 0, "first input"), input_tensor(graph, op, 1, "second input"), \
        output_tensor(graph, op)
    require_type(op, y, "output", types)
    same_type(op, a, y)
    same_type(op, b, y)
    try:
        broadcast = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise fail(op, f"{a.describe()} and {b.describe()} do not broadcast") from None
    if tuple(broadcast) != tuple(y.shape):
        raise fail(op, f"output {y.describe()} is not the broadcast shape {list(broadcast)} of its inputs")
    return a, b, y


def _plain(op: Op, y: Tensor) -> Params:
    lo, hi = plain_activation_range(op, y)
    return {"act_min": lo, "act_max": hi}


def _add_sub_rescaling(op: Op, first: Quantization, second: Quantization, output: Quantization) -> Params:
    """TFLite's 8-bit ADD / PrepareGeneralSubOp: both inputs to twice the larger scale, then to the output."""
    (s1, z1), (s2, z2), (so, zo) = first, second, output
    twice_max = 2 * max(s1, s2)
    out: Params = {"left_shift": ADD_LEFT_SHIFT, "input1_offset": -z1, "input2_offset": -z2, "output_offset": zo}
    for name, real in (("input1", s1 / twice_max), ("input2", s2 / twice_max),
                       ("output", twice_max / ((1 << ADD_LEFT_SHIFT) * so))):
        multiplier, shift = quantize_multiplier(real)
        if shift > 0:
            raise fail(op, f"{name} rescale factor {real:.6g} is not below one (output scale too small)")
        out[f"{name}_multiplier"], out[f"{name}_shift"] = multiplier, shift
    return out


def _mul_rescaling(op: Op, first: Quantization, second: Quantization, output: Quantization) -> Params:
    """TFLite's 8-bit MUL: one multiplier for input1_scale * input2_scale / output_scale (in double)."""
    (s1, z1), (s2, z2), (so, zo) = first, second, output
    multiplier, shift = quantize_multiplier(s1 * s2 / so)
    return {"input1_offset": -z1, "input2_offset": -z2, "output_offset": zo,
            "output_multiplier": multiplier, "output_shift": shift}


def _binary(rescaling: Callable[[Op, Quantization, Quantization, Quantization], Params]
            ) -> Callable[[Graph, Op], Params]:
    """A folder for an operator that rescales 8-bit operands with ``rescaling`` and only clamps int32/float32."""
    def fold(graph: Graph, op: Op) -> Params:
        a, b, y = _binary_operands(graph, op, QUANTIZED_TYPES + PLAIN_TYPES)
        if y.dtype in PLAIN_TYPES:
            return _plain(op, y)
        params = rescaling(op, per_tensor(op, a, "first input"), per_tensor(op, b, "second input"),
                           per_tensor(op, y, "output"))
        params["act_min"], params["act_max"] = activation_range(op, y)
        return params

    return fold


def _div(graph: Graph, op: Op) -> Params:
    _, _, y = _binary_operands(graph, op, ("float32",))
    return _plain(op, y)


def _floor_div(graph: Graph, op: Op) -> Params:
    _, b, _ = _binary_operands(graph, op, ("int32",))
    if b.is_constant and 0 in constant_ints(op, b, "divisor"):
        raise fail(op, f"divisor {b.describe()} contains a zero")
    return {}


def _cast(graph: Graph, op: Op) -> Params:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input", NUMERIC_TYPES)
    require_type(op, y, "output", NUMERIC_TYPES)
    require_shape(op, y, x.shape, "output")
    return {}


def _sqrt(graph: Graph, op: Op) -> Params:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input", ("float32",))
    same_type(op, x, y)
    require_shape(op, y, x.shape, "output")
    return {}


def _expf(x: np.ndarray) -> np.ndarray:
    """float32 exp, correctly rounded (through double); too large a result is infinite, as in C."""
    with np.errstate(over="ignore"):
        return np.exp(x.astype(np.float64)).astype(np.float32)


def logistic_table(in_scale: float, in_zero_point: int, out_scale: float, out_zero_point: int,
                   dtype: str) -> np.ndarray:
    """TFLite's LUTPopulate for the sigmoid: the output for every raw input byte, all in float32 as TFLite does."""
    info = np.iinfo(dtype)
    values = np.arange(int(info.min), int(info.max) + 1, dtype=np.int64)
    one = np.float32(1)
    dequantized = np.float32(in_scale) * (values - in_zero_point).astype(np.float32)
    transformed = one / (one + _expf(-dequantized))
    rescaled = round_half_away(transformed * (one / np.float32(out_scale)))
    quantized = (rescaled + np.float32(out_zero_point)).astype(np.int64)
    table = np.zeros(values.size, dtype=np.int32)
    table[values & (values.size - 1)] = np.clip(quantized, info.min, info.max)
    return table


def _logistic(graph: Graph, op: Op) -> Params:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input")
    same_type(op, x, y)
    require_shape(op, y, x.shape, "output")
    in_scale, in_zp = per_tensor(op, x, "input")
    out_scale, out_zp = per_tensor(op, y, "output")
    if out_scale != LOGISTIC_OUTPUT_SCALE:
        raise fail(op, f"output {y.describe()} must have scale 1/256")
    return {"table": logistic_table(in_scale, in_zp, out_scale, out_zp, x.dtype)}


ARITH_FOLDERS: dict[str, Callable[[Graph, Op], Params]] = {
    "ADD": _binary(_add_sub_rescaling),
    "SUB": _binary(_add_sub_rescaling),
    "MUL": _binary(_mul_rescaling),
    "DIV": _div,
    "FLOOR_DIV": _floor_div,
    "CAST": _cast,
    "SQRT": _sqrt,
    "LOGISTIC": _logistic,
}
