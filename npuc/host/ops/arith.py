"""Binary arithmetic on the host (ADD, SUB, MUL, DIV, FLOOR_DIV): its parameters.

As in TFLite's Prepare: 8-bit ADD/SUB bring both inputs to twice the larger
input scale after a left shift of 20 bits, 8-bit MUL rescales the product by
``input1_scale * input2_scale / output_scale`` (in double), int32 and float32
arithmetic only clamp to the activation range.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import ACTIVATION, Float, HostOp, Int, Types
from ..fixedpoint import quantize_multiplier
from ..kernels import arith
from .common import (QUANTIZED_TYPES, Params, activation_range, constant_ints, fail,
                                 input_tensor, output_tensor, per_tensor, plain_activation_range, require_type, same_type)

#: Headroom bits TFLite's 8-bit ADD and SUB shift their offset inputs left by.
ADD_LEFT_SHIFT = 20
#: Types the binary arithmetic kernels take besides the 8-bit quantized ones.
PLAIN_TYPES = ("int32", "float32")

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


def _quantized(rescaling: Callable[[Op, Quantization, Quantization, Quantization], Params]
               ) -> Callable[[Graph, Op], Params]:
    """The fold of an 8-bit binary operator that rescales its operands with ``rescaling``."""
    def fold(graph: Graph, op: Op) -> Params:
        a, b, y = _binary_operands(graph, op, QUANTIZED_TYPES)
        params = rescaling(op, per_tensor(op, a, "first input"), per_tensor(op, b, "second input"),
                           per_tensor(op, y, "output"))
        params["act_min"], params["act_max"] = activation_range(op, y)
        return params

    return fold


def _plain_fold(types: tuple[str, ...]) -> Callable[[Graph, Op], Params]:
    """The fold of an int32 or float32 binary operator: only the activation's clamp range."""
    def fold(graph: Graph, op: Op) -> Params:
        _, _, y = _binary_operands(graph, op, types)
        return _plain(op, y)

    return fold


def _floor_div(graph: Graph, op: Op) -> Params:
    _, b, _ = _binary_operands(graph, op, ("int32",))
    if b.is_constant and 0 in constant_ints(op, b, "divisor"):
        raise fail(op, f"divisor {b.describe()} contains a zero")
    return {}


#: The 8-bit ADD/SUB rescaling: both inputs to a common scale after a left shift, then to the output.
_ADD_PARAMS = (Int("left_shift", 0, 20), Int("input1_offset", -255, 255), Int("input1_multiplier", 0),
               Int("input1_shift", -31, 0), Int("input2_offset", -255, 255), Int("input2_multiplier", 0),
               Int("input2_shift", -31, 0), Int("output_offset", -255, 255), Int("output_multiplier", 0),
               Int("output_shift", -31, 31), *ACTIVATION)
#: The 8-bit MUL rescaling of the product.
_MUL_PARAMS = (Int("input1_offset", -255, 255), Int("input2_offset", -255, 255), Int("output_offset", -255, 255),
               Int("output_multiplier", 0), Int("output_shift", -31, 31), *ACTIVATION)
_I32_ACTIVATION = ACTIVATION
_F32_ACTIVATION = (Float("act_min"), Float("act_max"))
_8BIT, _I32, _F32 = Types(QUANTIZED_TYPES), Types(("int32",)), Types(("float32",))


def _binary_ops(opcode: str, run, quantized_params, rescaling) -> tuple[HostOp, ...]:
    """An arithmetic operator's three kernels: 8-bit (rescaled), int32 and float32 (clamped only)."""
    return (HostOp(opcode, quantized_params, _quantized(rescaling), run, types=_8BIT),
            HostOp(f"{opcode}_I32", _I32_ACTIVATION, _plain_fold(("int32",)), run, opcode=opcode, types=_I32),
            HostOp(f"{opcode}_F32", _F32_ACTIVATION, _plain_fold(("float32",)), run, opcode=opcode, types=_F32))


OPS = (
    *_binary_ops("ADD", arith.add, _ADD_PARAMS, _add_sub_rescaling),
    *_binary_ops("SUB", arith.sub, _ADD_PARAMS, _add_sub_rescaling),
    *_binary_ops("MUL", arith.mul, _MUL_PARAMS, _mul_rescaling),
    HostOp("DIV_F32", _F32_ACTIVATION, _plain_fold(("float32",)), arith.div, opcode="DIV", types=_F32),
    HostOp("FLOOR_DIV", (), _floor_div, arith.floor_div),
)
