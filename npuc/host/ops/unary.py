"""Element-wise unary operators on the host (CAST, SQRT, LOGISTIC): their parameters.

The 8-bit LOGISTIC becomes the 256-entry table TFLite's reference kernel fills
by evaluating the float sigmoid ``1 / (1 + exp(-x))`` in float32 at every input
value.
"""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Op
from ..decl import HostOp, Ints
from ..fixedpoint import round_half_away
from ..kernels import unary
from .common import NUMERIC_TYPES, Params, fail, input_tensor, output_tensor, per_tensor, require_shape, \
    require_type, same_type

#: Output scale TFLite's 8-bit LOGISTIC requires.
LOGISTIC_OUTPUT_SCALE = 1.0 / 256


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


OPS = (
    HostOp("CAST", (), _cast, unary.cast),
    HostOp("SQRT", (), _sqrt, unary.sqrt),
    HostOp("LOGISTIC", (Ints("table", -128, 255),), _logistic, unary.logistic),
)
