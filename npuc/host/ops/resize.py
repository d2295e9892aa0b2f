"""RESIZE_BILINEAR on the host: its flags, checked as TFLite's Prepare checks them."""

from __future__ import annotations

from ...ir import Graph, Op
from ..decl import Flag, HostOp
from ..kernels import resize
from .common import Params, constant_ints, fail, input_tensor, output_tensor, require_shape, require_type, same_type

#: Types RESIZE_BILINEAR takes (float32/uint8: TFLite's float kernel; int8: its integer kernel).
RESIZE_TYPES = ("float32", "uint8", "int8")


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


OPS = (HostOp("RESIZE_BILINEAR", (Flag("align_corners"), Flag("half_pixel_centers")), _resize_bilinear,
              resize.resize_bilinear),)
