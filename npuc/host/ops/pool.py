"""AVERAGE_POOL_2D, MAX_POOL_2D and L2_POOL_2D on the host: window geometry and clamp range.

The integer kernels (uint8, int8, int16) take the quantized activation range
and do not requantize: TFLite only checks in debug builds that input and output
share scale and zero point, so a model where they differ runs on raw values
there, and here.  The float32 kernels take the float activation range.
L2_POOL_2D exists in TFLite only for float32.
"""

from __future__ import annotations

from ...ir import Graph, Op
from ..decl import ACTIVATION, Float, HostOp, Int, Types
from ..kernels import pool
from .common import (Params, activation_range, fail, input_tensor, leading_padding, output_tensor,
                     plain_activation_range, require_type, same_type)

#: Integer types of the pooling kernels.
INTEGER_TYPES = ("uint8", "int8", "int16")


def _geometry(graph: Graph, op: Op, types: tuple[str, ...]) -> Params:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input", types)
    same_type(op, x, y)
    if len(x.shape) != 4:
        raise fail(op, f"input {x.describe()} must be 4-D")
    o = op.options
    fh, fw = int(o.get("filter_height", 1)), int(o.get("filter_width", 1))
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    top = leading_padding(op, x.shape[1], y.shape[1], fh, sh, 1)
    left = leading_padding(op, x.shape[2], y.shape[2], fw, sw, 1)
    # Every window must overlap the input, or TFLite's average would divide by zero.
    for size, out_size, k, s, pad in ((x.shape[1], y.shape[1], fh, sh, top), (x.shape[2], y.shape[2], fw, sw, left)):
        if out_size and ((out_size - 1) * s - pad >= size or k <= pad):
            raise fail(op, "a pooling window lies wholly in the padding")
    return {"filter_h": fh, "filter_w": fw, "stride_h": sh, "stride_w": sw, "pad_top": top, "pad_left": left}


def _integer(graph: Graph, op: Op) -> Params:
    params = _geometry(graph, op, INTEGER_TYPES)
    params["act_min"], params["act_max"] = activation_range(op, output_tensor(graph, op))
    return params


def _float(graph: Graph, op: Op) -> Params:
    params = _geometry(graph, op, ("float32",))
    params["act_min"], params["act_max"] = plain_activation_range(op, output_tensor(graph, op))
    return params


_GEOMETRY = (Int("filter_h", 1), Int("filter_w", 1), Int("stride_h", 1), Int("stride_w", 1), Int("pad_top", 0),
             Int("pad_left", 0))
_INT = _GEOMETRY + ACTIVATION
_F32 = _GEOMETRY + (Float("act_min"), Float("act_max"))
_INTEGERS, _FLOATS = Types(INTEGER_TYPES), Types(("float32",))

OPS = (
    HostOp("AVERAGE_POOL_2D", _INT, _integer, pool.average_pool_2d, types=_INTEGERS),
    HostOp("AVERAGE_POOL_2D_F32", _F32, _float, pool.average_pool_2d, opcode="AVERAGE_POOL_2D", types=_FLOATS),
    HostOp("MAX_POOL_2D", _INT, _integer, pool.max_pool_2d, types=_INTEGERS),
    HostOp("MAX_POOL_2D_F32", _F32, _float, pool.max_pool_2d, opcode="MAX_POOL_2D", types=_FLOATS),
    HostOp("L2_POOL_2D", _F32, _float, pool.l2_pool_2d, types=_FLOATS),
)
