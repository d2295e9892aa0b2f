"""Padding and space/depth/batch rearrangements on the host: their parameters.

PAD and PADV2 keep the padding before each axis (the padding after it is what
the output shape leaves) and the value TFLite pads with when PADV2 gives none:
the output's zero point for uint8, and for int8 and int16 when the input is
quantized, else 0.  PADV2's ``constant_values`` operand is read at run time,
constant or not; for those quantized types TFLite requires it to be quantized
like the output.  MIRROR_PAD keeps the padding before each axis and its mode;
paddings beyond what TFLite reflects correctly (more than the axis minus one for
REFLECT, more than the axis for SYMMETRIC: TFLite then reads outside its
input) are refused.  SPACE_TO_BATCH_ND keeps the block shape, the padding
before each spatial axis and its pad value (the output's zero point for 8- and
16-bit types, as TFLite pads); BATCH_TO_SPACE_ND the block shape and the crop
before each spatial axis.  Both take 3-D (NHC) and 4-D (NHWC) tensors, as
TFLite does.  DEPTH_TO_SPACE and SPACE_TO_DEPTH keep the block size.  Every
fold checks the output shape TFLite computes and the quantization checks
TFLite makes.
"""

from __future__ import annotations

import math

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import Flag, HostOp, Int, Ints
from ..kernels import spatial
from .common import Params, fail, input_tensor, optional_input, same_type
from .movement import (ALL_TYPES, QUANTIZED_STORAGE, constant_matrix, constant_vector, int32_values, io, quantization,
                       require_output, require_same_quantization)

#: Types TFLite's DEPTH_TO_SPACE and SPACE_TO_DEPTH take.
DEPTH_TYPES = ("uint8", "int8", "int32", "int64", "float32")
#: TFLite's PadKernelMaxDimensionCount.
PAD_MAX_RANK = 5


def _paddings(graph: Graph, op: Op, x: Tensor) -> list[tuple[int, int]]:
    """The constant (before, after) of every axis of ``x``, none negative."""
    pads = constant_matrix(op, input_tensor(graph, op, 1, "paddings"), "paddings", len(x.shape))
    if any(b < 0 or a < 0 for b, a in pads):
        raise fail(op, f"paddings {pads} must not be negative")
    return pads


def _padded(x: Tensor, pads: list[tuple[int, int]]) -> list[int]:
    return [b + d + a for d, (b, a) in zip(x.shape, pads)]


def _zero_point_pads(x: Tensor) -> bool:
    """Whether TFLite pads with the output's zero point: uint8 always, int8 and int16 when quantized."""
    return x.dtype == "uint8" or (x.dtype in QUANTIZED_STORAGE and x.quant is not None)


def _pad(graph: Graph, op: Op) -> Params:
    """PAD and PADV2."""
    x, y = io(graph, op, ALL_TYPES)
    if len(x.shape) > PAD_MAX_RANK:
        raise fail(op, f"{x.describe()} has more than the {PAD_MAX_RANK} dimensions TFLite pads")
    pads = _paddings(graph, op, x)
    require_output(op, y, _padded(x, pads))
    value = optional_input(graph, op, 2)
    if value is not None:
        same_type(op, value, y)
        if value.num_elements != 1:
            raise fail(op, f"constant_values {value.describe()} must hold one value")
        if _zero_point_pads(x) and quantization(op, value, "constant_values") != quantization(op, y, "output"):
            raise fail(op, f"constant_values {value.describe()} is quantized unlike output {y.describe()}")
    return {"before": int32_values([b for b, _ in pads]), "pad_value": 0 if value is not None else _pad_value(op, x, y)}


def _pad_value(op: Op, x: Tensor, y: Tensor) -> int:
    """What PAD pads with: the output's zero point (which TFLite requires its type to hold) or 0."""
    if not _zero_point_pads(x):
        return 0
    zero_point = quantization(op, y, "output")[1]
    info = np.iinfo(y.dtype)
    if not info.min <= zero_point <= info.max:
        raise fail(op, f"zero point {zero_point} of {y.describe()} is outside its type")
    return zero_point


def _mirror_pad(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, ALL_TYPES)
    symmetric = op.options.get("mode", "REFLECT") == "SYMMETRIC"
    pads = _paddings(graph, op, x)
    if any(max(p) > d - (0 if symmetric else 1) for d, p in zip(x.shape, pads)):
        raise fail(op, f"paddings {pads} reach beyond the mirrored input {x.describe()}")
    require_output(op, y, _padded(x, pads))
    require_same_quantization(op, x, y)
    return {"before": int32_values([b for b, _ in pads]), "symmetric": int(symmetric)}


def _blocks(graph: Graph, op: Op, x: Tensor, what: str) -> tuple[list[int], list[tuple[int, int]]]:
    """SPACE_TO_BATCH_ND's and BATCH_TO_SPACE_ND's block shape and paddings or crops (int32, one per spatial axis)."""
    if len(x.shape) not in (3, 4):
        raise fail(op, f"{x.describe()} must be 3-D or 4-D, as TFLite requires")
    spatial_axes = len(x.shape) - 2
    block = constant_vector(op, input_tensor(graph, op, 1, "block_shape"), "block_shape", spatial_axes, ("int32",))
    edges = constant_matrix(op, input_tensor(graph, op, 2, what), what, spatial_axes, ("int32",))
    if min(block) < 1 or any(b < 0 or a < 0 for b, a in edges):
        raise fail(op, f"block_shape {block} must be positive and {what} {edges} not negative")
    return block, edges


def _space_to_batch_nd(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, ALL_TYPES)
    block, pads = _blocks(graph, op, x, "paddings")
    padded = [b + d + a for d, (b, a) in zip(x.shape[1:-1], pads)]
    if any(p % k for p, k in zip(padded, block)):
        raise fail(op, f"the padded spatial shape {padded} is not a multiple of block_shape {block}")
    require_output(op, y, [x.shape[0] * math.prod(block)] + [p // k for p, k in zip(padded, block)] + [x.shape[-1]])
    require_same_quantization(op, x, y)
    pad_value = quantization(op, y, "output")[1] if y.dtype in QUANTIZED_STORAGE else 0
    return {"block": int32_values(block), "before": int32_values([b for b, _ in pads]), "pad_value": pad_value}


def _batch_to_space_nd(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, ALL_TYPES)
    block, crops = _blocks(graph, op, x, "crops")
    if x.shape[0] % math.prod(block):
        raise fail(op, f"batch {x.shape[0]} is not a multiple of block_shape {block}")
    require_output(op, y, [x.shape[0] // math.prod(block)]
                   + [d * k - b - a for d, k, (b, a) in zip(x.shape[1:-1], block, crops)] + [x.shape[-1]])
    require_same_quantization(op, x, y)
    return {"block": int32_values(block), "crop": int32_values([b for b, _ in crops])}


def _block_size(op: Op, x: Tensor) -> int:
    if len(x.shape) != 4:
        raise fail(op, f"{x.describe()} must be 4-D (NHWC)")
    size = int(op.options.get("block_size", 0))
    if size < 1:
        raise fail(op, f"block_size {size} must be positive")
    return size


def _depth_to_space(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, DEPTH_TYPES)
    size = _block_size(op, x)
    n, h, w, c = x.shape
    if c % (size * size):
        raise fail(op, f"depth {c} is not a multiple of block_size {size} squared")
    require_output(op, y, [n, h * size, w * size, c // (size * size)])
    return {"block_size": size}


def _space_to_depth(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, DEPTH_TYPES)
    size = _block_size(op, x)
    n, h, w, c = x.shape
    if h % size or w % size:
        raise fail(op, f"height {h} and width {w} must be multiples of block_size {size}")
    require_output(op, y, [n, h // size, w // size, c * size * size])
    return {"block_size": size}


_PAD = (Ints("before", 0), Int("pad_value"))
_BLOCK_SIZE = (Int("block_size", 1),)

OPS = (
    HostOp("PAD", _PAD, _pad, spatial.pad),
    HostOp("PADV2", _PAD, _pad, spatial.pad, stem="pad"),
    HostOp("MIRROR_PAD", (Ints("before", 0), Flag("symmetric")), _mirror_pad, spatial.mirror_pad),
    HostOp("SPACE_TO_BATCH_ND", (Ints("block", 1), Ints("before", 0), Int("pad_value")), _space_to_batch_nd,
           spatial.space_to_batch_nd),
    HostOp("BATCH_TO_SPACE_ND", (Ints("block", 1), Ints("crop", 0)), _batch_to_space_nd, spatial.batch_to_space_nd),
    HostOp("DEPTH_TO_SPACE", _BLOCK_SIZE, _depth_to_space, spatial.depth_to_space),
    HostOp("SPACE_TO_DEPTH", _BLOCK_SIZE, _space_to_depth, spatial.space_to_depth),
)
