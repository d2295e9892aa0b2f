"""Fold an operator's quantization into the integer parameters of its host kernel.

TFLite computes these in each kernel's Prepare: real scales are combined in
double precision and turned into int32 multipliers and power-of-two shifts
(``QuantizeMultiplier``), zero points become offsets, and the fused activation
becomes a clamp range.  Doing the same here at compile time means the host
kernels (``npuc.runtime.host``), and the C runtime that will replay the blob,
see only integers, like TFLite's reference ``*Params`` structs.  The exceptions
are the reference kernels that themselves compute in floating point
(FULLY_CONNECTED's rescaling, QUANTIZE from float, DEQUANTIZE, a uint8
CONCATENATION's requantization, float32 arithmetic's clamp range): they get
the float32 values they need.

Every result is a flat dict of ``int``, ``float`` or 1-D ``int32``/``float32``
arrays, so it can be serialized into the .vipbin.  Shift conventions follow
``MultiplyByQuantizedMultiplier``: a positive shift is a left shift.  An
operator without a host kernel, or with options or types the kernel does not
handle, is an :class:`UnsupportedError` naming the operator.

This module folds the convolutions, FULLY_CONNECTED, pooling, MEAN, SOFTMAX
and (DE)QUANTIZE and holds the registry; ``host_params_arith`` (element-wise
arithmetic and functions), ``host_params_data`` (data movement, ARG_MAX,
RESIZE_BILINEAR) and ``host_params_lstm`` fold the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph, Op
from ..runtime.host import KERNELS
from ..runtime.host.fixedpoint import quantize_multiplier
from ..runtime.host.softmax import SCALED_DIFF_INTEGER_BITS
from .host_params_arith import ARITH_FOLDERS
from .host_params_common import (QUANTIZED_TYPES, Params, activation_range, fail, input_tensor, optional_input,
                                 output_tensor, per_tensor, require_type, same_type)
from .host_params_data import DATA_FOLDERS
from .host_params_lstm import LSTM_FOLDERS


def host_params(graph: Graph, op: Op) -> Params:
    """The host kernel parameters of ``op``, or an UnsupportedError naming it."""
    fold = _FOLDERS.get(op.opcode)
    if fold is None or op.opcode not in KERNELS:
        raise UnsupportedError(f"operator {op.name}: no host kernel")
    return fold(graph, op)


# -- helpers ------------------------------------------------------------------------------

def _padding(op: Op, in_size: int, out_size: int, k: int, stride: int, dilation: int) -> int:
    """TFLite's leading padding for one axis: half the total padding, rounded down."""
    padding = op.options.get("padding", "VALID")
    if padding not in ("SAME", "VALID"):
        raise fail(op, f"padding {padding} has no host kernel")
    total = (out_size - 1) * stride + (k - 1) * dilation + 1 - in_size
    return max(total, 0) // 2


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
            "pad_top": _padding(op, x.shape[1], y.shape[1], kh, sh, dh),
            "pad_left": _padding(op, x.shape[2], y.shape[2], kw, sw, dw)}


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


def _average_pool_2d(graph: Graph, op: Op) -> Params:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input")
    same_type(op, x, y)
    if per_tensor(op, x, "input") != per_tensor(op, y, "output"):
        raise fail(op, "input and output quantization differ; the average is not requantized")
    o = op.options
    fh, fw = int(o.get("filter_height", 1)), int(o.get("filter_width", 1))
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    top = _padding(op, x.shape[1], y.shape[1], fh, sh, 1)
    left = _padding(op, x.shape[2], y.shape[2], fw, sw, 1)
    # Every window must overlap the input, or TFLite's kernel would divide by zero.
    for size, out_size, k, s, pad in ((x.shape[1], y.shape[1], fh, sh, top), (x.shape[2], y.shape[2], fw, sw, left)):
        if (out_size - 1) * s - pad >= size or k <= pad:
            raise fail(op, "a pooling window lies wholly in the padding")
    act_min, act_max = activation_range(op, y)
    return {"filter_h": fh, "filter_w": fw, "stride_h": sh, "stride_w": sw,
            "pad_top": top, "pad_left": left, "act_min": act_min, "act_max": act_max}


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


def _softmax(graph: Graph, op: Op) -> Params:
    """TFLite's PreprocessSoftmaxScaling and CalculateInputRadius for beta * input_scale."""
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input")
    same_type(op, x, y)
    in_scale, _ = per_tensor(op, x, "input")
    out_scale, out_zp = per_tensor(op, y, "output")
    if out_scale != 1.0 / 256 or out_zp != int(np.iinfo(y.dtype).min):
        raise fail(op, f"output {y.describe()} must have scale 1/256 and zero point {np.iinfo(y.dtype).min}")
    beta = float(np.float32(op.options.get("beta", 1.0)))
    fraction_bits = 31 - SCALED_DIFF_INTEGER_BITS
    real = min(beta * in_scale * (1 << fraction_bits), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise fail(op, f"beta * input scale = {beta * in_scale:.6g} is too small for the quantized softmax")
    radius = ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * (1 << fraction_bits) / (1 << left_shift)
    return {"input_multiplier": multiplier, "input_left_shift": left_shift, "diff_min": -int(np.floor(radius))}


def _quantize(graph: Graph, op: Op) -> Params:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, y, "output")
    out_scale, out_zp = per_tensor(op, y, "output")
    if x.dtype == "float32":
        return {"scale": out_scale, "output_zero_point": out_zp}
    require_type(op, x, "input", QUANTIZED_TYPES + ("float32",))
    in_scale, in_zp = per_tensor(op, x, "input")
    multiplier, shift = quantize_multiplier(in_scale / out_scale)
    return {"input_zero_point": in_zp, "output_zero_point": out_zp,
            "output_multiplier": multiplier, "output_shift": shift}


def _dequantize(graph: Graph, op: Op) -> Params:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input")
    require_type(op, y, "output", ("float32",))
    scale, zero_point = per_tensor(op, x, "input")
    return {"scale": scale, "zero_point": zero_point}


_FOLDERS: dict[str, Callable[[Graph, Op], Params]] = {
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv_2d,
    "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": _average_pool_2d,
    "MEAN": _mean,
    "SOFTMAX": _softmax,
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
    **ARITH_FOLDERS,
    **DATA_FOLDERS,
    **LSTM_FOLDERS,
}
