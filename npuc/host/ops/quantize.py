"""QUANTIZE and DEQUANTIZE on the host: scales and zero points as TFLite's kernels use them.

QUANTIZE has two kernels: from float32 (the float32 scale TFLite divides by)
and between integer types (a requantizing multiplier and shift).
"""

from __future__ import annotations

from ...ir import Graph, Op
from ..decl import Float, HostOp, Int, Types
from ..fixedpoint import quantize_multiplier
from ..kernels import quantize
from .common import QUANTIZED_TYPES, Params, input_tensor, output_tensor, per_tensor, require_type


def _quantize_float(graph: Graph, op: Op) -> Params:
    y = output_tensor(graph, op)
    require_type(op, y, "output")
    out_scale, out_zp = per_tensor(op, y, "output")
    return {"scale": out_scale, "output_zero_point": out_zp}


def _requantize(graph: Graph, op: Op) -> Params:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input")
    require_type(op, y, "output")
    out_scale, out_zp = per_tensor(op, y, "output")
    in_scale, in_zp = per_tensor(op, x, "input")
    multiplier, shift = quantize_multiplier(in_scale / out_scale)
    return {"input_zero_point": in_zp, "output_zero_point": out_zp,
            "output_multiplier": multiplier, "output_shift": shift}


def _dequantize(graph: Graph, op: Op) -> Params:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input")
    require_type(op, y, "output", ("float32",))
    scale, zero_point = per_tensor(op, x, "input")
    return {"scale": scale, "zero_point": zero_point}



_ZERO_POINT = (-128, 255)

OPS = (
    HostOp("QUANTIZE", (Int("input_zero_point", *_ZERO_POINT), Int("output_zero_point", *_ZERO_POINT),
                        Int("output_multiplier", 0), Int("output_shift", -31, 31)), _requantize, quantize.requantize,
           types=Types(QUANTIZED_TYPES, "input")),
    HostOp("QUANTIZE_F32", (Float("scale"), Int("output_zero_point", *_ZERO_POINT)), _quantize_float,
           quantize.quantize_float, opcode="QUANTIZE", types=Types(("float32",), "input")),
    HostOp("DEQUANTIZE", (Float("scale"), Int("zero_point", *_ZERO_POINT)), _dequantize, quantize.dequantize),
)
