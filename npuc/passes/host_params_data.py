"""Host parameters of the data-movement operators, ARG_MAX and RESIZE_BILINEAR.

Mostly axes resolved against the tensors' ranks and the checks TFLite's
Prepare makes.  The one arithmetic fold is a uint8 CONCATENATION's
requantization: for each input quantized differently from the output, the
float32 ``scale = input_scale * (1 / output_scale)`` and ``bias =
-input_zero_point * scale`` TFLite's reference kernel computes.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..ir import Graph, Op
from .host_params_common import (NUMERIC_TYPES, QUANTIZED_TYPES, Params, constant_int, constant_ints, fail,
                                 input_tensor, normalized_axis, output_tensor, per_tensor, require_shape, require_type,
                                 same_type)

#: Types ARG_MAX compares (integers only: numpy's and TFLite's treatment of a NaN differ).
ARG_MAX_TYPES = ("uint8", "int8", "int16", "int32")
#: Types RESIZE_BILINEAR takes (float32/uint8: TFLite's float kernel; int8: its integer kernel).
RESIZE_TYPES = ("float32", "uint8", "int8")
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


def _arg_max(graph: Graph, op: Op) -> Params:
    x, axis_t, y = input_tensor(graph, op, 0, "input"), input_tensor(graph, op, 1, "axis"), output_tensor(graph, op)
    require_type(op, x, "input", ARG_MAX_TYPES)
    require_type(op, y, "output", ("int32", "int64"))
    axis = normalized_axis(op, constant_int(op, axis_t, "axis"), len(x.shape))
    require_shape(op, y, x.shape[:axis] + x.shape[axis + 1:], "output")
    return {"axis": axis}


def _resize_bilinear(graph: Graph, op: Op) -> Params:
    x, size, y = input_tensor(graph, op, 0, "input"), input_tensor(graph, op, 1, "size"), output_tensor(graph, op)
    require_type(op, x, "input", RESIZE_TYPES)
    same_type(op, x, y)
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise fail(op, f"input {x.describe()} and output {y.describe()} must be 4-D")
    if constant_ints(op, size, "size") != list(y.shape[1:3]):
        raise fail(op, f"size {size.describe()} does not match output {y.describe()}")
    require_shape(op, y, (x.shape[0], *y.shape[1:3], x.shape[3]), "output")
    align_corners = bool(op.options.get("align_corners", False))
    half_pixel_centers = bool(op.options.get("half_pixel_centers", False))
    if align_corners and half_pixel_centers:
        raise fail(op, "align_corners and half_pixel_centers cannot both be set")
    return {"align_corners": int(align_corners), "half_pixel_centers": int(half_pixel_centers)}


DATA_FOLDERS: dict[str, Callable[[Graph, Op], Params]] = {
    "RESHAPE": _reshape,
    "SQUEEZE": _reshape,
    "CONCATENATION": _concatenation,
    "SPLIT": _split,
    "SPLIT_V": _split_v,
    "PACK": _pack,
    "UNPACK": _unpack,
    "GATHER_ND": _gather_nd,
    "ARG_MAX": _arg_max,
    "RESIZE_BILINEAR": _resize_bilinear,
}
