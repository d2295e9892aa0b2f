"""FULLY_CONNECTED and BATCH_MATMUL on the host: their parameters, as TFLite's Prepare folds them.

FULLY_CONNECTED's quantized reference kernel (uint8, int8 per tensor or per
channel, 16x8) rescales in double from the float32 scales, so it gets them
rather than integer multipliers; its offsets, clamp range and accumulator
width are a convolution's (:func:`.conv.quantized_operands`).  The input is
read as rows of the weights' depth whatever its rank, and the output holds
one row per input row (``keep_num_dims`` only changes its shape).

BATCH_MATMUL multiplies ``lhs`` [..., M, K] by ``rhs`` [..., K, N] (either
transposed first by ``adj_x`` / ``adj_y``), batch dimensions broadcasting.
Its int8 kernel rescales with one multiplier for ``lhs_scale * rhs_scale /
output_scale`` (in double); its int16 kernel does the same with int64 sums
and the 64-bit ``MultiplyByQuantizedMultiplier``.  Neither has a fused
activation.
"""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import ACTIVATION, Flag, Float, Floats, HostOp, Int, Types
from ..fixedpoint import quantize_multiplier
from ..kernels import matmul
from .common import (Params, fail, input_tensor, optional_input, output_tensor, per_tensor, require_shape,
                     require_type, same_type)
from .conv import FLOAT_ACTIVATION, QUANTIZATION, QUANTIZED, WIDE_MAX_SHIFT, float_params, quantized_operands

#: Ranks BATCH_MATMUL takes (TFLite's reference kernel extends every shape to 5-D).
MAX_MATMUL_RANK = 5


# -- FULLY_CONNECTED -------------------------------------------------------------------------

def _fc_operands(graph: Graph, op: Op) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """Input, [units, depth] weights, optional bias and output, the output holding a row per input row."""
    fmt = op.options.get("weights_format", "DEFAULT")
    if fmt != "DEFAULT":
        raise fail(op, f"weights format {fmt} has no host kernel")
    x, w = input_tensor(graph, op, 0, "input"), input_tensor(graph, op, 1, "weights")
    b, y = optional_input(graph, op, 2), output_tensor(graph, op)
    if len(w.shape) != 2 or w.shape[1] == 0 or x.num_elements % w.shape[1]:
        raise fail(op, f"weights {w.describe()} do not fit input {x.describe()}")
    units, rows = w.shape[0], x.num_elements // w.shape[1]
    if op.options.get("keep_num_dims", False):
        require_shape(op, y, tuple(x.shape[:-1]) + (units,), "output")
    else:
        require_shape(op, y, (rows, units), "output")
    if b is not None and b.num_elements != units:
        raise fail(op, f"bias {b.describe()} does not hold {units} values")
    return x, w, b, y


def _fully_connected(graph: Graph, op: Op) -> Params:
    x, w, b, y = _fc_operands(graph, op)
    q = quantized_operands(op, x, w, b, y, 0)
    return {**q.params, "input_scale": q.input_scale, "output_scale": q.output_scale, "filter_scale": q.filter_scales}


def _fully_connected_f32(graph: Graph, op: Op) -> Params:
    return float_params(op, *_fc_operands(graph, op))


# -- BATCH_MATMUL ----------------------------------------------------------------------------

def _matmul_operands(graph: Graph, op: Op, types: tuple[str, ...]) -> tuple[Tensor, Tensor, Tensor, Params]:
    """lhs, rhs and output of one type among ``types``, their shapes checked; and the adjoint flags."""
    a, b, y = input_tensor(graph, op, 0, "lhs"), input_tensor(graph, op, 1, "rhs"), output_tensor(graph, op)
    require_type(op, a, "lhs", types)
    same_type(op, a, b)
    same_type(op, a, y)
    adj_x, adj_y = bool(op.options.get("adj_x", False)), bool(op.options.get("adj_y", False))
    if not (2 <= len(a.shape) <= MAX_MATMUL_RANK and 2 <= len(b.shape) <= MAX_MATMUL_RANK):
        raise fail(op, f"lhs {a.describe()} and rhs {b.describe()} need 2 to {MAX_MATMUL_RANK} dimensions")
    m, k = a.shape[-2:][::-1] if adj_x else a.shape[-2:]
    k2, n = b.shape[-2:][::-1] if adj_y else b.shape[-2:]
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise fail(op, f"the batch dimensions of {a.describe()} and {b.describe()} do not broadcast") from None
    if k != k2:
        raise fail(op, f"lhs {a.describe()} and rhs {b.describe()} differ in depth")
    require_shape(op, y, tuple(batch) + (m, n), "output")
    return a, b, y, {"adj_x": int(adj_x), "adj_y": int(adj_y)}


def _batch_matmul(graph: Graph, op: Op) -> Params:
    a, b, y, params = _matmul_operands(graph, op, ("int8", "int16"))
    (sa, za), (sb, zb), (sy, zy) = per_tensor(op, a, "lhs"), per_tensor(op, b, "rhs"), per_tensor(op, y, "output")
    wide = a.dtype == "int16"
    if wide and (za or zb or zy):
        raise fail(op, "int16 operands need zero point 0")
    real = sa * sb / sy
    multiplier, shift = quantize_multiplier(real)
    if wide and shift > WIDE_MAX_SHIFT:
        raise fail(op, f"rescale factor {real:.6g} is too large for TFLite's 64-bit requantization")
    info = np.iinfo(y.dtype)
    return {**params, "lhs_offset": -za, "rhs_offset": -zb, "output_offset": zy, "output_multiplier": multiplier,
            "output_shift": shift, "act_min": int(info.min), "act_max": int(info.max), "wide": int(wide)}


def _batch_matmul_f32(graph: Graph, op: Op) -> Params:
    return _matmul_operands(graph, op, ("float32",))[3]


_ADJOINTS = (Flag("adj_x", "transpose lhs's last two dimensions"), Flag("adj_y", "transpose rhs's"))
_OFFSETS = (Int("lhs_offset", -128, 128), Int("rhs_offset", -128, 128), Int("output_offset", -128, 127))

OPS = (
    HostOp("FULLY_CONNECTED", (*QUANTIZATION, Float("input_scale"), Float("output_scale"), Floats("filter_scale")),
           _fully_connected, matmul.fully_connected, types=Types(QUANTIZED, "input")),
    HostOp("FULLY_CONNECTED_F32", FLOAT_ACTIVATION, _fully_connected_f32, matmul.fully_connected_float,
           opcode="FULLY_CONNECTED", types=Types(("float32",), "input")),
    HostOp("BATCH_MATMUL", (*_ADJOINTS, *_OFFSETS, Int("output_multiplier", 0), Int("output_shift", -31, 31),
                            *ACTIVATION, Flag("wide", "int64 sums (int16)")),
           _batch_matmul, matmul.batch_matmul, types=Types(("int8", "int16"), "input")),
    HostOp("BATCH_MATMUL_F32", _ADJOINTS, _batch_matmul_f32, matmul.batch_matmul_float, opcode="BATCH_MATMUL",
           types=Types(("float32",), "input")),
)
