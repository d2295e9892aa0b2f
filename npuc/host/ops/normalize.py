"""L2_NORMALIZATION and LOCAL_RESPONSE_NORMALIZATION on the host, with the checks TFLite's Prepare makes.

L2_NORMALIZATION takes 1 to 4 dimensions and no fused activation; its
8-bit output has scale 1/128 and zero point 128 (uint8) or 0 (int8), which
the kernels assume.  LOCAL_RESPONSE_NORMALIZATION is float32 and 4-D; its
radius is an integer and its bias, alpha and beta the options' floats (the
kernel computes with them in double, as TFLite does).
"""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import Float, HostOp, Int, Types
from ..kernels import normalize
from .common import Params, fail, input_tensor, output_tensor, per_tensor, require_shape, require_type, same_type


def _operands(graph: Graph, op: Op, types: tuple[str, ...], ranks: range) -> tuple[Tensor, Tensor]:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input", types)
    same_type(op, x, y)
    require_shape(op, y, x.shape, "output")
    if len(x.shape) not in ranks or 0 in x.shape:
        raise fail(op, f"input {x.describe()} must be non-empty with {ranks.start} to {ranks.stop - 1} dimensions")
    return x, y


def _l2(graph: Graph, op: Op, types: tuple[str, ...]) -> Tensor:
    x, y = _operands(graph, op, types, range(1, 5))
    if op.options.get("fused_activation_function", "NONE") != "NONE":
        raise fail(op, "L2_NORMALIZATION with a fused activation does not run in TFLite")
    if y.dtype != "float32":
        scale, zero_point = per_tensor(op, y, "output")
        wanted = 128 if y.dtype == "uint8" else 0
        if scale != 1 / 128 or zero_point != wanted:
            raise fail(op, f"output {y.describe()} must have scale 1/128 and zero point {wanted}")
    return x


def _l2_quantized(graph: Graph, op: Op) -> Params:
    x = _l2(graph, op, ("uint8", "int8"))
    return {"input_zero_point": per_tensor(op, x, "input")[1]}


def _l2_f32(graph: Graph, op: Op) -> Params:
    _l2(graph, op, ("float32",))
    return {}


def _local_response(graph: Graph, op: Op) -> Params:
    _operands(graph, op, ("float32",), range(4, 5))
    o = op.options
    radius = int(o.get("radius", 0))
    if radius < 0:
        raise fail(op, f"radius {radius} is negative")
    return {"radius": radius, **{k: float(np.float32(o.get(k, 0.0))) for k in ("bias", "alpha", "beta")}}


OPS = (
    HostOp("L2_NORMALIZATION", (Int("input_zero_point", -128, 255),), _l2_quantized, normalize.l2_normalization,
           types=Types(("uint8", "int8"))),
    HostOp("L2_NORMALIZATION_F32", (), _l2_f32, normalize.l2_normalization_f32, opcode="L2_NORMALIZATION",
           types=Types(("float32",))),
    HostOp("LOCAL_RESPONSE_NORMALIZATION", (Int("radius", 0), Float("bias"), Float("alpha"), Float("beta")),
           _local_response, normalize.local_response_normalization),
)
