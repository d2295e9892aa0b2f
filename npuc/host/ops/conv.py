"""CONV_2D, DEPTHWISE_CONV_2D and TRANSPOSE_CONV on the host: their parameters, as TFLite's Prepare folds them.

The quantized kernels (uint8, int8, and TFLite's "16x8": int16 activations
with int8 filters) see only integers, like TFLite's reference ``ConvParams``:
zero points become offsets, the fused activation a clamp range, and
``input_scale * filter_scale[c] / output_scale`` one multiplier and
power-of-two shift per output channel (``QuantizeMultiplier``; a positive
shift is a left shift).  TFLite forms that ratio in double, except on its
uint8 path, which multiplies the two input scales in float32 first
(``GetQuantizedConvolutionMultipler``) and uses one multiplier for every
channel; the low bits of the multiplier, and near rounding ties the output,
depend on it.  The 16x8 kernels accumulate in int64 and rescale with TFLite's
64-bit ``MultiplyByQuantizedMultiplier`` (``wide``), unless the bias is int32
(``quantized_bias_type`` INT32), which makes TFLite accumulate in int32 as for
8 bits.  The float32 kernels take the geometry and the float clamp range.

:func:`quantized_operands` and :func:`float_params` are shared with FULLY_CONNECTED (:mod:`.matmul`).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import ACTIVATION, Flag, Float, FoldFn, HostOp, Int, Ints, Types
from ..fixedpoint import quantize_multiplier
from ..kernels import conv
from .common import (Params, activation_range, constant_ints, fail, input_tensor, leading_padding, optional_input,
                     output_tensor, per_tensor, plain_activation_range, require_shape, require_type, same_type)

#: Activation types of the quantized kernels; int16 takes int8 filters (TFLite's 16x8).
QUANTIZED = ("uint8", "int8", "int16")
#: Largest shift of TFLite's 64-bit MultiplyByQuantizedMultiplier (15 - shift bits are shifted out).
WIDE_MAX_SHIFT = 14


@dataclass(frozen=True)
class Quantized:
    """A weighted operator's quantization: the kernel's offsets, clamp range and accumulator, and the scales."""

    params: Params                 # input/filter/output offsets, activation range, wide
    input_scale: float
    output_scale: float
    filter_scales: np.ndarray      # float32, one per output channel
    uint8: bool                    # TFLite's uint8 path: per-tensor filter, float32 scale product


def _bias_is_wide(op: Op, x: Tensor, b: Tensor | None) -> bool:
    """Whether TFLite accumulates in int64: 16x8 kernels, unless quantized_bias_type makes an int32 bias legal.

    TFLite reads a 16x8 bias as int64 unless ``quantized_bias_type`` says
    INT32, and an 8-bit one as int32, whatever its type: other combinations
    are refused rather than read as TFLite would misread them.
    """
    declared = op.options.get("quantized_bias_type", "FLOAT32")
    if x.dtype != "int16":
        expected = "int32"
    else:
        expected = "int32" if declared == "INT32" else "int64"
    if declared not in ("FLOAT32", expected.upper()):
        raise fail(op, f"quantized_bias_type {declared} does not fit {x.dtype} activations")
    if b is not None and b.dtype != expected:
        raise fail(op, f"bias {b.describe()} must be {expected} for {x.dtype} activations")
    return expected == "int64"


def _filter_scales(op: Op, x: Tensor, w: Tensor, channel_axis: int) -> np.ndarray:
    """One float32 filter scale per output channel (the one scale repeated for a per-tensor filter)."""
    wq = w.quant
    if wq is None or wq.scale.size == 0:
        raise fail(op, f"filter {w.describe()} is not quantized")
    channels = w.shape[channel_axis]
    if wq.per_channel and (x.dtype == "uint8" or wq.axis != channel_axis or wq.scale.size != channels):
        raise fail(op, f"per-channel filter {w.describe()} needs int8 weights and {channels} scales on axis "
                       f"{channel_axis}")
    if not np.all((wq.scale > 0) & np.isfinite(wq.scale)):
        raise fail(op, f"filter {w.describe()} has a scale that is not positive and finite")
    return np.broadcast_to(wq.scale.astype(np.float32), (channels,)).copy()


def quantized_operands(op: Op, x: Tensor, w: Tensor, b: Tensor | None, y: Tensor,
                       channel_axis: int) -> Quantized:
    """TFLite's rules and constants for a quantized input ``x``, filter ``w``, bias ``b`` and output ``y``."""
    require_type(op, x, "input", QUANTIZED)
    same_type(op, x, y)
    require_type(op, w, "filter", ("int8",) if x.dtype == "int16" else (x.dtype,))
    wide = _bias_is_wide(op, x, b)
    in_scale, in_zp = per_tensor(op, x, "input")
    out_scale, out_zp = per_tensor(op, y, "output")
    if x.dtype == "int16" and (in_zp or out_zp):
        raise fail(op, "int16 input and output need zero point 0")
    filter_scales = _filter_scales(op, x, w, channel_axis)
    if x.dtype == "uint8":
        filter_offset = -int(w.quant.zero_point[0])
    elif np.any(w.quant.zero_point != 0):
        raise fail(op, f"int8 filter {w.describe()} has a non-zero zero point")
    else:
        filter_offset = 0
    act_min, act_max = activation_range(op, y)
    params: Params = {"input_offset": -in_zp, "filter_offset": filter_offset, "output_offset": out_zp,
                      "act_min": act_min, "act_max": act_max, "wide": int(wide)}
    return Quantized(params, in_scale, out_scale, filter_scales, x.dtype == "uint8")


def _multipliers(op: Op, q: Quantized) -> Params:
    """Per-output-channel multiplier and shift, as PopulateConvolutionQuantizationParams computes them."""
    if q.uint8:
        product = float(np.float32(q.input_scale) * q.filter_scales[0])
        real = [product / q.output_scale] * q.filter_scales.size
    else:
        real = [q.input_scale * float(s) / q.output_scale for s in q.filter_scales]
    pairs = [quantize_multiplier(r) for r in real]
    shifts = [s for _, s in pairs]
    if q.params["wide"] and max(shifts) > WIDE_MAX_SHIFT:
        raise fail(op, f"rescale factor {max(real):.6g} is too large for TFLite's 64-bit requantization")
    return {"output_multiplier": np.array([m for m, _ in pairs], dtype=np.int32),
            "output_shift": np.array(shifts, dtype=np.int32)}


# -- operands and geometry -------------------------------------------------------------------

#: Where a convolution's input, filter and optional bias are among the operator's inputs.
_CONV_INPUTS = (0, 1, 2)
_TRANSPOSE_CONV_INPUTS = (2, 1, 3)     # input 0 is the output shape


def _conv_operands(graph: Graph, op: Op, where: tuple[int, int, int]) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """Input, filter, optional bias and output of a 4-D convolution, the inputs at positions ``where``."""
    x = input_tensor(graph, op, where[0], "input")
    w = input_tensor(graph, op, where[1], "filter")
    b = optional_input(graph, op, where[2])
    y = output_tensor(graph, op)
    for t, what in ((x, "input"), (w, "filter"), (y, "output")):
        if len(t.shape) != 4:
            raise fail(op, f"{what} {t.describe()} must be 4-D")
    return x, w, b, y


def _bias_shape(op: Op, b: Tensor | None, channels: int) -> None:
    if b is not None and b.num_elements != channels:
        raise fail(op, f"bias {b.describe()} does not hold {channels} values")


def _window_geometry(op: Op, x: Tensor, y: Tensor, kh: int, kw: int) -> Params:
    o = op.options
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    dh, dw = int(o.get("dilation_h_factor", 1)), int(o.get("dilation_w_factor", 1))
    return {"stride_h": sh, "stride_w": sw, "dilation_h": dh, "dilation_w": dw,
            "pad_top": leading_padding(op, x.shape[1], y.shape[1], kh, sh, dh),
            "pad_left": leading_padding(op, x.shape[2], y.shape[2], kw, sw, dw)}


def _conv_checks(op: Op, x: Tensor, w: Tensor, b: Tensor | None, y: Tensor) -> None:
    """CONV_2D's shapes: the filter depth divides the input channels (groups) and the filters' count."""
    depth, oc = w.shape[3], w.shape[0]
    if depth == 0 or x.shape[3] % depth or oc % (x.shape[3] // depth) or y.shape[3] != oc or y.shape[0] != x.shape[0]:
        raise fail(op, f"input {x.describe()}, filter {w.describe()} and output {y.describe()} do not fit")
    _bias_shape(op, b, oc)


def _depthwise_checks(op: Op, x: Tensor, w: Tensor, b: Tensor | None, y: Tensor) -> int:
    """DEPTHWISE_CONV_2D's shapes; returns the depth multiplier (output channels per input channel)."""
    in_c, out_c = x.shape[3], y.shape[3]
    declared = int(op.options.get("depth_multiplier", 0) or 0)
    if (w.shape[0] != 1 or w.shape[3] != out_c or in_c == 0 or out_c % in_c or y.shape[0] != x.shape[0]
            or (declared and declared * in_c != out_c)):
        raise fail(op, f"input {x.describe()}, filter {w.describe()}, output {y.describe()} and depth multiplier "
                       f"{declared} do not fit")
    _bias_shape(op, b, out_c)
    return out_c // in_c


def _c_quotient(a: int, b: int) -> int:
    """C's integer division, which truncates towards zero."""
    q = abs(a) // b
    return q if a >= 0 else -q


def _transpose_geometry(graph: Graph, op: Op, x: Tensor, w: Tensor, y: Tensor) -> Params:
    """TRANSPOSE_CONV's shapes and padding; TFLite pads as the convolution from its output to its input would."""
    shape = constant_ints(op, input_tensor(graph, op, 0, "output shape"), "output shape")
    require_shape(op, y, shape, "output")
    if w.shape[3] != x.shape[3] or w.shape[0] != y.shape[3] or y.shape[0] != x.shape[0]:
        raise fail(op, f"input {x.describe()}, filter {w.describe()} and output {y.describe()} do not fit")
    o = op.options
    padding = o.get("padding", "VALID")
    params: Params = {"stride_h": int(o.get("stride_h", 1)), "stride_w": int(o.get("stride_w", 1))}
    for name, size, k, stride in (("pad_top", y.shape[1], w.shape[1], params["stride_h"]),
                                  ("pad_left", y.shape[2], w.shape[2], params["stride_w"])):
        unused = _c_quotient(size + stride - 1 if padding == "SAME" else size + stride - k, stride)
        params[name] = leading_padding(op, size, unused, k, stride, 1)
    return params


# -- folds -----------------------------------------------------------------------------------

def float_params(op: Op, x: Tensor, w: Tensor, b: Tensor | None, y: Tensor) -> Params:
    """The float32 kernels' clamp range, every operand float32."""
    require_type(op, x, "input", ("float32",))
    for t, what in ((w, "filter"), (y, "output")) + (((b, "bias"),) if b is not None else ()):
        require_type(op, t, what, ("float32",))
    act_min, act_max = plain_activation_range(op, y)
    return {"act_min": act_min, "act_max": act_max}


#: An operator's operands (input, filter, optional bias, output), shape-dependent parameters and filter channel axis.
Shapes = tuple[tuple[Tensor, Tensor, Tensor | None, Tensor], Params, int]


def _conv_2d_shapes(graph: Graph, op: Op) -> Shapes:
    x, w, b, y = _conv_operands(graph, op, _CONV_INPUTS)
    _conv_checks(op, x, w, b, y)
    return (x, w, b, y), _window_geometry(op, x, y, w.shape[1], w.shape[2]), 0


def _depthwise_conv_2d_shapes(graph: Graph, op: Op) -> Shapes:
    x, w, b, y = _conv_operands(graph, op, _CONV_INPUTS)
    multiplier = _depthwise_checks(op, x, w, b, y)
    return (x, w, b, y), {**_window_geometry(op, x, y, w.shape[1], w.shape[2]), "depth_multiplier": multiplier}, 3


def _transpose_conv_shapes(graph: Graph, op: Op) -> Shapes:
    x, w, b, y = _conv_operands(graph, op, _TRANSPOSE_CONV_INPUTS)
    _bias_shape(op, b, w.shape[0])
    return (x, w, b, y), _transpose_geometry(graph, op, x, w, y), 0


def _folds(shapes: Callable[[Graph, Op], Shapes]) -> tuple[FoldFn, FoldFn]:
    """The quantized and the float32 fold of an operator whose operands and geometry ``shapes`` gives."""
    def quantized(graph: Graph, op: Op) -> Params:
        (x, w, b, y), params, channel_axis = shapes(graph, op)
        q = quantized_operands(op, x, w, b, y, channel_axis)
        return {**params, **q.params, **_multipliers(op, q)}

    def floating(graph: Graph, op: Op) -> Params:
        operands, params, _ = shapes(graph, op)
        return {**params, **float_params(op, *operands)}
    return quantized, floating


_conv_2d, _conv_2d_f32 = _folds(_conv_2d_shapes)
_depthwise_conv_2d, _depthwise_conv_2d_f32 = _folds(_depthwise_conv_2d_shapes)
_transpose_conv, _transpose_conv_f32 = _folds(_transpose_conv_shapes)


#: Strides, dilations and leading padding of a convolution window, as TFLite's ConvParams hold them.
_STRIDES = (Int("stride_h", 1), Int("stride_w", 1))
_PADDING = (Int("pad_top", 0), Int("pad_left", 0))
_GEOMETRY = (*_STRIDES, Int("dilation_h", 1), Int("dilation_w", 1), *_PADDING)
#: Offsets, clamp range and per-output-channel requantization of the quantized kernels.
QUANTIZATION = (Int("input_offset", -255, 255), Int("filter_offset", -255, 255), Int("output_offset", -255, 255),
                *ACTIVATION, Flag("wide", "int64 accumulator (16x8 without an int32 bias)"))
_REQUANT = (Ints("output_multiplier", 0), Ints("output_shift", -31, 31))
#: Clamp range of the float32 kernels.
FLOAT_ACTIVATION = (Float("act_min"), Float("act_max"))
_MULTIPLIER = (Int("depth_multiplier", 1),)
_QUANTIZED, _FLOAT = Types(QUANTIZED, "input"), Types(("float32",), "input")

OPS = (
    HostOp("CONV_2D", (*_GEOMETRY, *QUANTIZATION, *_REQUANT), _conv_2d, conv.conv_2d, types=_QUANTIZED),
    HostOp("CONV_2D_F32", (*_GEOMETRY, *FLOAT_ACTIVATION), _conv_2d_f32, conv.conv_2d_float, opcode="CONV_2D",
           types=_FLOAT),
    HostOp("DEPTHWISE_CONV_2D", (*_GEOMETRY, *_MULTIPLIER, *QUANTIZATION, *_REQUANT), _depthwise_conv_2d,
           conv.depthwise_conv_2d, types=_QUANTIZED),
    HostOp("DEPTHWISE_CONV_2D_F32", (*_GEOMETRY, *_MULTIPLIER, *FLOAT_ACTIVATION), _depthwise_conv_2d_f32,
           conv.depthwise_conv_2d_float, opcode="DEPTHWISE_CONV_2D", types=_FLOAT),
    HostOp("TRANSPOSE_CONV", (*_STRIDES, *_PADDING, *QUANTIZATION, *_REQUANT), _transpose_conv,
           conv.transpose_conv, types=Types(QUANTIZED, "output")),
    HostOp("TRANSPOSE_CONV_F32", (*_STRIDES, *_PADDING, *FLOAT_ACTIVATION), _transpose_conv_f32,
           conv.transpose_conv_float, opcode="TRANSPOSE_CONV", types=Types(("float32",), "output")),
)
