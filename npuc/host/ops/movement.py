"""Data movement on the host (RESHAPE, SQUEEZE, CONCATENATION, SPLIT, PACK, UNPACK, GATHER_ND): their parameters.

Mostly axes resolved against the tensors' ranks and the checks TFLite's
Prepare makes.  The one arithmetic fold is a uint8 CONCATENATION's
requantization: for each input quantized differently from the output, the
float32 ``scale = input_scale * (1 / output_scale)`` and ``bias =
-input_zero_point * scale`` TFLite's reference kernel computes.
"""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Op
from ..decl import Floats, HostOp, Int, Ints
from ..kernels import movement
from .common import (NUMERIC_TYPES, QUANTIZED_TYPES, Params, constant_int, fail,
                                 input_tensor, normalized_axis, output_tensor, per_tensor, require_shape, require_type,
                                 same_type)

#: Types GATHER_ND's indices may have.
INDEX_TYPES = ("int32", "int64")


def _reshape(graph: Graph, op: Op) -> Params:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, y, "output", NUMERIC_TYPES)
    same_type(op, x, y)
    if x.num_elements != y.num_elements:
        raise fail(op, f"{x.describe()} and {y.describe()} differ in element count")
    return {}


def _concatenation(graph: Graph, op: Op) -> Params:
    """Axis, and for uint8 which inputs TFLite requantizes (and how); other 8-bit types must not need it."""
    y = output_tensor(graph, op)
    require_type(op, y, "output", NUMERIC_TYPES)
    xs = [input_tensor(graph, op, i, f"input {i}") for i in range(len(op.inputs))]
    for x in xs:
        same_type(op, x, y)
    if op.options.get("fused_activation_function", "NONE") != "NONE":
        raise fail(op, "a fused activation is not supported by TFLite's CONCATENATION")
    axis = normalized_axis(op, int(op.options.get("axis", 0)), len(y.shape))
    n = len(xs)
    params: Params = {"axis": axis, "rescale": np.zeros(n, np.int32), "scale": np.ones(n, np.float32),
                      "bias": np.zeros(n, np.float32), "output_zero_point": 0}
    if y.dtype not in QUANTIZED_TYPES or y.quant is None:
        return params
    out_scale, out_zp = per_tensor(op, y, "output")
    params["output_zero_point"] = out_zp
    inverse_output_scale = np.float32(1) / np.float32(out_scale)
    for i, x in enumerate(xs):
        scale, zp = per_tensor(op, x, f"input {i}")
        if (scale, zp) == (out_scale, out_zp):
            continue
        if y.dtype != "uint8":
            raise fail(op, f"input {x.describe()} is quantized differently from output {y.describe()}; "
                           f"TFLite requantizes only uint8 concatenations")
        ratio = np.float32(scale) * inverse_output_scale
        params["rescale"][i] = 1
        params["scale"][i] = ratio
        params["bias"][i] = np.float32(-zp) * ratio
    return params


def _split_outputs(graph: Graph, op: Op, value_index: int, axis: int) -> Params:
    x = graph.tensors[op.inputs[value_index]]
    require_type(op, x, "value", NUMERIC_TYPES)
    axis = normalized_axis(op, axis, len(x.shape))
    outs = [graph.tensors[o] for o in op.outputs]
    for y in outs:
        same_type(op, x, y)
        require_shape(op, y, x.shape[:axis] + y.shape[axis:axis + 1] + x.shape[axis + 1:], "output")
    if sum(y.shape[axis] for y in outs) != x.shape[axis]:
        raise fail(op, f"its outputs do not add up to {x.describe()} along axis {axis}")
    return {"axis": axis, "value_index": value_index}


def _split(graph: Graph, op: Op) -> Params:
    """SPLIT: inputs (axis, value), equal parts."""
    axis_t = input_tensor(graph, op, 0, "axis")
    input_tensor(graph, op, 1, "value")
    return _split_outputs(graph, op, 1, constant_int(op, axis_t, "axis"))


def _split_v(graph: Graph, op: Op) -> Params:
    """SPLIT_V: inputs (value, size_splits, axis)."""
    input_tensor(graph, op, 0, "value")
    axis_t = input_tensor(graph, op, 2, "axis")
    return _split_outputs(graph, op, 0, constant_int(op, axis_t, "axis"))


def _pack(graph: Graph, op: Op) -> Params:
    y = output_tensor(graph, op)
    require_type(op, y, "output", NUMERIC_TYPES)
    xs = [input_tensor(graph, op, i, f"input {i}") for i in range(len(op.inputs))]
    axis = normalized_axis(op, int(op.options.get("axis", 0)), len(y.shape))
    for x in xs:
        same_type(op, x, y)
        require_shape(op, x, y.shape[:axis] + y.shape[axis + 1:], "input")
        if y.dtype in QUANTIZED_TYPES and per_tensor(op, x, "input") != per_tensor(op, y, "output"):
            raise fail(op, f"input {x.describe()} is quantized differently from output {y.describe()}")
    if y.shape[axis] != len(xs):
        raise fail(op, f"output {y.describe()} does not stack {len(xs)} inputs along axis {axis}")
    return {"axis": axis}


def _unpack(graph: Graph, op: Op) -> Params:
    x = input_tensor(graph, op, 0, "input")
    require_type(op, x, "input", NUMERIC_TYPES)
    axis = normalized_axis(op, int(op.options.get("axis", 0)), len(x.shape))
    for o in op.outputs:
        same_type(op, x, graph.tensors[o])
        require_shape(op, graph.tensors[o], x.shape[:axis] + x.shape[axis + 1:], "output")
    if x.shape[axis] != len(op.outputs):
        raise fail(op, f"{len(op.outputs)} outputs for {x.shape[axis]} slices of {x.describe()}")
    return {"axis": axis}


def _gather_nd(graph: Graph, op: Op) -> Params:
    params_t, indices, y = input_tensor(graph, op, 0, "params"), input_tensor(graph, op, 1, "indices"), \
        output_tensor(graph, op)
    require_type(op, y, "output", NUMERIC_TYPES)
    same_type(op, params_t, y)
    require_type(op, indices, "indices", INDEX_TYPES)
    if not indices.shape or indices.shape[-1] > len(params_t.shape):
        raise fail(op, f"indices {indices.describe()} do not index params {params_t.describe()}")
    require_shape(op, y, indices.shape[:-1] + params_t.shape[indices.shape[-1]:], "output")
    return {}


OPS = (
    HostOp("RESHAPE", (), _reshape, movement.reshape),
    HostOp("SQUEEZE", (), _reshape, movement.reshape, stem="reshape"),
    HostOp("CONCATENATION", (Int("axis", 0, 5), Ints("rescale", 0, 1), Floats("scale"), Floats("bias"),
                             Int("output_zero_point", -128, 255)), _concatenation, movement.concatenation),
    HostOp("SPLIT", (Int("axis", 0, 5), Int("value_index", 0, 1)), _split, movement.split),
    HostOp("SPLIT_V", (Int("axis", 0, 5), Int("value_index", 0, 1)), _split_v, movement.split, stem="split"),
    HostOp("PACK", (Int("axis", 0, 5),), _pack, movement.pack),
    HostOp("UNPACK", (Int("axis", 0, 5),), _unpack, movement.unpack),
    HostOp("GATHER_ND", (), _gather_nd, movement.gather_nd),
)
