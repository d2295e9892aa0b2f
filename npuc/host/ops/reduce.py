"""MEAN and ARG_MAX on the host: their parameters, as TFLite's Prepare folds them."""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Op
from ..decl import ACTIVATION, HostOp, Int, Ints
from ..fixedpoint import quantize_multiplier
from ..kernels import reduce
from .common import (Params, constant_int, fail, input_tensor, normalized_axis,
                     output_tensor, per_tensor, require_shape, require_type, same_type)

#: Types ARG_MAX compares (integers only: numpy's and TFLite's treatment of a NaN differ).
ARG_MAX_TYPES = ("uint8", "int8", "int16", "int32")

def _mean(graph: Graph, op: Op) -> Params:
    """TFLite's QuantizedMeanOrSum: input/output scale ratio with 1/count folded into the multiplier."""
    x, axis_t, y = input_tensor(graph, op, 0, "input"), input_tensor(graph, op, 1, "axis"), output_tensor(graph, op)
    require_type(op, x, "input")
    same_type(op, x, y)
    if not axis_t.is_constant:
        raise fail(op, f"axis {axis_t.describe()} is not a constant")
    axes: list[int] = []
    for a in np.asarray(axis_t.data).reshape(-1).tolist():
        r = a + len(x.shape) if a < 0 else a
        if not 0 <= r < len(x.shape):
            raise fail(op, f"axis {a} is out of range for input {x.describe()}")
        if r not in axes:
            axes.append(r)
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if count == 0:
        raise fail(op, f"reduces over an empty axis of {x.describe()}")
    in_scale, in_zp = per_tensor(op, x, "input")
    out_scale, out_zp = per_tensor(op, y, "output")
    multiplier, shift = quantize_multiplier(in_scale / out_scale)
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    info = np.iinfo(y.dtype)
    return {"axes": np.array(axes, dtype=np.int32), "input_zero_point": in_zp, "output_zero_point": out_zp,
            "output_multiplier": (multiplier << extra) // count, "output_shift": shift - extra,
            "act_min": int(info.min), "act_max": int(info.max)}


def _arg_max(graph: Graph, op: Op) -> Params:
    x, axis_t, y = input_tensor(graph, op, 0, "input"), input_tensor(graph, op, 1, "axis"), output_tensor(graph, op)
    require_type(op, x, "input", ARG_MAX_TYPES)
    require_type(op, y, "output", ("int32", "int64"))
    axis = normalized_axis(op, constant_int(op, axis_t, "axis"), len(x.shape))
    require_shape(op, y, x.shape[:axis] + x.shape[axis + 1:], "output")
    return {"axis": axis}


OPS = (
    HostOp("MEAN", (Ints("axes", 0, 5), Int("input_zero_point", -128, 255), Int("output_zero_point", -128, 255),
                    Int("output_multiplier"), Int("output_shift", -63, 31), *ACTIVATION), _mean, reduce.mean),
    HostOp("ARG_MAX", (Int("axis", 0, 5),), _arg_max, reduce.arg_max),
)
