"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED on the host: their parameters, as TFLite's Prepare folds them.

TFLite computes these in each kernel's Prepare: real scales are combined in
double precision and turned into int32 multipliers and power-of-two shifts
(``QuantizeMultiplier``), zero points become offsets, and the fused activation
becomes a clamp range.  Doing the same at compile time means the host kernels
(and the C runtime) see only integers, like TFLite's reference ``*Params``
structs.  FULLY_CONNECTED is the exception: its 8-bit reference kernel rescales
in floating point, so it gets the float32 scales.  Shift conventions follow
``MultiplyByQuantizedMultiplier``: a positive shift is a left shift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ir import Graph, Op
from ..decl import ACTIVATION, Float, Floats, HostOp, Int, Ints
from ..fixedpoint import quantize_multiplier
from ..kernels import conv
from .common import (Params, activation_range, fail, input_tensor, leading_padding, optional_input, output_tensor,
                     per_tensor, require_type, same_type)


# -- helpers ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Weighted:
    """What CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED share: offsets, clamp range and scales."""

    params: Params                 # input/filter/output offsets and the activation range
    input_scale: float
    output_scale: float
    filter_scales: np.ndarray      # float32, one per output channel
    per_channel: bool


def _weighted_op(graph: Graph, op: Op, channel_axis: int) -> _Weighted:
    x = input_tensor(graph, op, 0, "input")
    w = input_tensor(graph, op, 1, "filter")
    b = optional_input(graph, op, 2)
    y = output_tensor(graph, op)
    require_type(op, x, "input")
    same_type(op, x, y)
    same_type(op, x, w)
    if not w.is_constant:
        raise fail(op, f"filter {w.describe()} is not a constant")
    if b is not None and b.dtype != "int32":
        raise fail(op, f"bias {b.describe()} must be int32")
    in_scale, in_zp = per_tensor(op, x, "input")
    out_scale, out_zp = per_tensor(op, y, "output")
    wq = w.quant
    if wq is None or wq.scale.size == 0:
        raise fail(op, f"filter {w.describe()} is not quantized")
    channels = w.shape[channel_axis]
    if wq.per_channel:
        if x.dtype != "int8" or wq.axis != channel_axis:
            raise fail(op, f"per-channel filter {w.describe()} needs int8 and axis {channel_axis}")
        filter_scales = wq.scale.astype(np.float32)
    else:
        filter_scales = np.full(channels, wq.scale[0], dtype=np.float32)
    if x.dtype == "int8":
        if np.any(wq.zero_point != 0):
            raise fail(op, f"int8 filter {w.describe()} has a non-zero zero point")
        filter_offset = 0
    else:
        filter_offset = -int(wq.zero_point[0])
    act_min, act_max = activation_range(op, y)
    params: Params = {"input_offset": -in_zp, "filter_offset": filter_offset, "output_offset": out_zp,
                      "act_min": act_min, "act_max": act_max}
    return _Weighted(params, in_scale, out_scale, filter_scales, wq.per_channel)


def _conv_multipliers(w: _Weighted, legacy_float_product: bool) -> Params:
    """Per-output-channel multiplier and shift for input_scale * filter_scale[c] / output_scale.

    TFLite computes the ratio in double, except on its older per-tensor path
    for uint8 convolutions (``legacy_float_product``), which rounds the product
    of the two scales to float32 first; that changes the multiplier's low bits
    and, near rounding boundaries, the output.
    """
    if legacy_float_product and not w.per_channel:
        product = float(np.float32(w.input_scale) * w.filter_scales[0])
        real = [product / w.output_scale] * w.filter_scales.size
    else:
        real = [w.input_scale * float(s) / w.output_scale for s in w.filter_scales]
    pairs = [quantize_multiplier(r) for r in real]
    return {"output_multiplier": np.array([m for m, _ in pairs], dtype=np.int32),
            "output_shift": np.array([s for _, s in pairs], dtype=np.int32)}


# -- per operator -------------------------------------------------------------------------

def _conv_geometry(graph: Graph, op: Op, kh: int, kw: int) -> Params:
    x, y = graph.tensors[op.inputs[0]], output_tensor(graph, op)
    o = op.options
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    dh, dw = int(o.get("dilation_h_factor", 1)), int(o.get("dilation_w_factor", 1))
    return {"stride_h": sh, "stride_w": sw, "dilation_h": dh, "dilation_w": dw,
            "pad_top": leading_padding(op, x.shape[1], y.shape[1], kh, sh, dh),
            "pad_left": leading_padding(op, x.shape[2], y.shape[2], kw, sw, dw)}


def _is_uint8(graph: Graph, op: Op) -> bool:
    return input_tensor(graph, op, 0, "input").dtype == "uint8"


def _conv_2d(graph: Graph, op: Op) -> Params:
    weighted = _weighted_op(graph, op, channel_axis=0)
    params = {**weighted.params, **_conv_multipliers(weighted, legacy_float_product=_is_uint8(graph, op))}
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if w.shape[3] != x.shape[3]:
        raise fail(op, f"grouped convolution ({x.shape[3]} input channels, filter depth {w.shape[3]})")
    return {**_conv_geometry(graph, op, w.shape[1], w.shape[2]), **params}


def _depthwise_conv_2d(graph: Graph, op: Op) -> Params:
    weighted = _weighted_op(graph, op, channel_axis=3)
    params = {**weighted.params, **_conv_multipliers(weighted, legacy_float_product=_is_uint8(graph, op))}
    x, y = graph.tensors[op.inputs[0]], output_tensor(graph, op)
    w = graph.tensors[op.inputs[1]]
    in_c, out_c = x.shape[3], y.shape[3]
    declared = int(op.options.get("depth_multiplier", 0) or 0)
    if out_c % in_c or (declared and declared * in_c != out_c):
        raise fail(op, f"{in_c} input channels, {out_c} output channels and depth multiplier {declared} disagree")
    return {**_conv_geometry(graph, op, w.shape[1], w.shape[2]), "depth_multiplier": out_c // in_c, **params}


def _fully_connected(graph: Graph, op: Op) -> Params:
    """TFLite's reference FULLY_CONNECTED scales in floating point, so the kernel gets the float32 scales.

    Its 8-bit reference kernels compute round(acc * (input_scale *
    filter_scale[c] / output_scale)) in double rather than with an integer
    multiplier; the three float32 scales are enough to redo that exactly.
    """
    fmt = op.options.get("weights_format", "DEFAULT")
    if fmt != "DEFAULT":
        raise fail(op, f"weights format {fmt} has no host kernel")
    w = _weighted_op(graph, op, channel_axis=0)
    return {**w.params, "input_scale": w.input_scale, "output_scale": w.output_scale,
            "filter_scale": w.filter_scales}


#: Geometry of a convolution window, as TFLite's ConvParams hold it.
_GEOMETRY = (Int("stride_h", 1), Int("stride_w", 1), Int("dilation_h", 1), Int("dilation_w", 1),
             Int("pad_top", 0), Int("pad_left", 0))
#: Offsets and clamp range of every 8-bit weighted operator.
_OFFSETS = (Int("input_offset", -255, 255), Int("filter_offset", -255, 255), Int("output_offset", -255, 255),
            *ACTIVATION)
#: Per-output-channel requantization.
_REQUANT = (Ints("output_multiplier", 0), Ints("output_shift", -31, 31))

OPS = (
    HostOp("CONV_2D", (*_GEOMETRY, *_OFFSETS, *_REQUANT), _conv_2d, conv.conv_2d),
    HostOp("DEPTHWISE_CONV_2D", (*_GEOMETRY, Int("depth_multiplier", 1), *_OFFSETS, *_REQUANT), _depthwise_conv_2d,
           conv.depthwise_conv_2d),
    HostOp("FULLY_CONNECTED", (*_OFFSETS, Float("input_scale"), Float("output_scale"), Floats("filter_scale")),
           _fully_connected, conv.fully_connected),
)
