"""Fold an operator's quantization into the integer parameters of its host kernel.

TFLite computes these in each kernel's Prepare: real scales are combined in
double precision and turned into int32 multipliers and power-of-two shifts
(``QuantizeMultiplier``), zero points become offsets, and the fused activation
becomes a clamp range.  Doing the same here at compile time means the host
kernels (``npuc.runtime.host``), and the C runtime that will replay the blob,
see only integers, like TFLite's reference ``*Params`` structs.  The exceptions
are the reference kernels that themselves compute in floating point
(FULLY_CONNECTED's rescaling, QUANTIZE from float, DEQUANTIZE): they get the
float32 scales they need.

Every result is a flat dict of ``int``, ``float`` or 1-D ``int32``/``float32``
arrays, so it can be serialized into the .vipbin.  Shift conventions follow
``MultiplyByQuantizedMultiplier``: a positive shift is a left shift.  An
operator without a host kernel, or with options or types the kernel does not
handle, is an :class:`UnsupportedError` naming the operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph, Op, Tensor
from ..runtime.host import KERNELS
from ..runtime.host.fixedpoint import quantize_multiplier, round_half_away
from ..runtime.host.softmax import SCALED_DIFF_INTEGER_BITS

Params = dict[str, int | float | np.ndarray]

#: The 8-bit types the quantized kernels take.
QUANTIZED_TYPES = ("uint8", "int8")
#: Headroom bits TFLite's 8-bit ADD shifts its offset inputs left by.
ADD_LEFT_SHIFT = 20


def host_params(graph: Graph, op: Op) -> Params:
    """The host kernel parameters of ``op``, or an UnsupportedError naming it."""
    fold = _FOLDERS.get(op.opcode)
    if fold is None or op.opcode not in KERNELS:
        raise UnsupportedError(f"operator {op.name}: no host kernel")
    return fold(graph, op)


# -- helpers ------------------------------------------------------------------------------

def _fail(op: Op, msg: str) -> UnsupportedError:
    return UnsupportedError(f"operator {op.name}: {msg}")


def _input(graph: Graph, op: Op, i: int, what: str) -> Tensor:
    if len(op.inputs) <= i or op.inputs[i] is None:
        raise _fail(op, f"missing {what} (input {i})")
    return graph.tensors[op.inputs[i]]


def _optional_input(graph: Graph, op: Op, i: int) -> Tensor | None:
    return graph.tensors[op.inputs[i]] if len(op.inputs) > i and op.inputs[i] is not None else None


def _output(graph: Graph, op: Op) -> Tensor:
    if not op.outputs:
        raise _fail(op, "has no output")
    return graph.tensors[op.outputs[0]]


def _require_type(op: Op, t: Tensor, what: str, types: tuple[str, ...] = QUANTIZED_TYPES) -> None:
    if t.dtype not in types:
        raise _fail(op, f"{what} {t.describe()} has type {t.dtype}; the host kernel takes {'/'.join(types)}")


def _per_tensor(op: Op, t: Tensor, what: str) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized tensor, as TFLite's float and int32."""
    q = t.quant
    if q is None or q.scale.size == 0:
        raise _fail(op, f"{what} {t.describe()} is not quantized")
    if q.per_channel:
        raise _fail(op, f"{what} {t.describe()} is quantized per channel; the host kernel needs one scale")
    return float(np.float32(q.single_scale)), q.single_zero_point


def _same_type(op: Op, a: Tensor, b: Tensor) -> None:
    if a.dtype != b.dtype:
        raise _fail(op, f"{a.describe()} and {b.describe()} differ in type")


def _quantize_value(value: float, scale: float, zero_point: int) -> int:
    """TFLite's zero_point + round(value / scale) with float32 division, as its activation ranges use."""
    return zero_point + int(round_half_away(np.float32(value) / np.float32(scale)))


#: Clamp bounds (in real units) of TFLite's fused activations; None = the type's limit.
_ACTIVATION_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "NONE": (None, None),
    "RELU": (0.0, None),
    "RELU6": (0.0, 6.0),
    "RELU_N1_TO_1": (-1.0, 1.0),
}


def _activation_range(op: Op, out: Tensor) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized for the op's fused activation and output quantization."""
    act = op.options.get("fused_activation_function", "NONE")
    if act not in _ACTIVATION_BOUNDS:
        raise _fail(op, f"fused activation {act} has no host kernel")
    info = np.iinfo(out.dtype)
    scale, zero_point = _per_tensor(op, out, "output")
    lo_real, hi_real = _ACTIVATION_BOUNDS[act]
    lo = info.min if lo_real is None else max(int(info.min), _quantize_value(lo_real, scale, zero_point))
    hi = info.max if hi_real is None else min(int(info.max), _quantize_value(hi_real, scale, zero_point))
    return int(lo), int(hi)


def _padding(op: Op, in_size: int, out_size: int, k: int, stride: int, dilation: int) -> int:
    """TFLite's leading padding for one axis: half the total padding, rounded down."""
    padding = op.options.get("padding", "VALID")
    if padding not in ("SAME", "VALID"):
        raise _fail(op, f"padding {padding} has no host kernel")
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
    x = _input(graph, op, 0, "input")
    w = _input(graph, op, 1, "filter")
    b = _optional_input(graph, op, 2)
    y = _output(graph, op)
    _require_type(op, x, "input")
    _same_type(op, x, y)
    _same_type(op, x, w)
    if not w.is_constant:
        raise _fail(op, f"filter {w.describe()} is not a constant")
    if b is not None and b.dtype != "int32":
        raise _fail(op, f"bias {b.describe()} must be int32")
    in_scale, in_zp = _per_tensor(op, x, "input")
    out_scale, out_zp = _per_tensor(op, y, "output")
    wq = w.quant
    if wq is None or wq.scale.size == 0:
        raise _fail(op, f"filter {w.describe()} is not quantized")
    channels = w.shape[channel_axis]
    if wq.per_channel:
        if x.dtype != "int8" or wq.axis != channel_axis:
            raise _fail(op, f"per-channel filter {w.describe()} needs int8 and axis {channel_axis}")
        filter_scales = wq.scale.astype(np.float32)
    else:
        filter_scales = np.full(channels, wq.scale[0], dtype=np.float32)
    if x.dtype == "int8":
        if np.any(wq.zero_point != 0):
            raise _fail(op, f"int8 filter {w.describe()} has a non-zero zero point")
        filter_offset = 0
    else:
        filter_offset = -int(wq.zero_point[0])
    act_min, act_max = _activation_range(op, y)
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
    x, y = graph.tensors[op.inputs[0]], _output(graph, op)
    o = op.options
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    dh, dw = int(o.get("dilation_h_factor", 1)), int(o.get("dilation_w_factor", 1))
    return {"stride_h": sh, "stride_w": sw, "dilation_h": dh, "dilation_w": dw,
            "pad_top": _padding(op, x.shape[1], y.shape[1], kh, sh, dh),
            "pad_left": _padding(op, x.shape[2], y.shape[2], kw, sw, dw)}


def _is_uint8(graph: Graph, op: Op) -> bool:
    return _input(graph, op, 0, "input").dtype == "uint8"


def _conv_2d(graph: Graph, op: Op) -> Params:
    weighted = _weighted_op(graph, op, channel_axis=0)
    params = {**weighted.params, **_conv_multipliers(weighted, legacy_float_product=_is_uint8(graph, op))}
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if w.shape[3] != x.shape[3]:
        raise _fail(op, f"grouped convolution ({x.shape[3]} input channels, filter depth {w.shape[3]})")
    return {**_conv_geometry(graph, op, w.shape[1], w.shape[2]), **params}


def _depthwise_conv_2d(graph: Graph, op: Op) -> Params:
    weighted = _weighted_op(graph, op, channel_axis=3)
    params = {**weighted.params, **_conv_multipliers(weighted, legacy_float_product=_is_uint8(graph, op))}
    x, y = graph.tensors[op.inputs[0]], _output(graph, op)
    w = graph.tensors[op.inputs[1]]
    in_c, out_c = x.shape[3], y.shape[3]
    declared = int(op.options.get("depth_multiplier", 0) or 0)
    if out_c % in_c or (declared and declared * in_c != out_c):
        raise _fail(op, f"{in_c} input channels, {out_c} output channels and depth multiplier {declared} disagree")
    return {**_conv_geometry(graph, op, w.shape[1], w.shape[2]), "depth_multiplier": out_c // in_c, **params}


def _fully_connected(graph: Graph, op: Op) -> Params:
    """TFLite's reference FULLY_CONNECTED scales in floating point, so the kernel gets the float32 scales.

    Its 8-bit reference kernels compute round(acc * (input_scale *
    filter_scale[c] / output_scale)) in double rather than with an integer
    multiplier; the three float32 scales are enough to redo that exactly.
    """
    fmt = op.options.get("weights_format", "DEFAULT")
    if fmt != "DEFAULT":
        raise _fail(op, f"weights format {fmt} has no host kernel")
    w = _weighted_op(graph, op, channel_axis=0)
    return {**w.params, "input_scale": w.input_scale, "output_scale": w.output_scale,
            "filter_scale": w.filter_scales}


def _add(graph: Graph, op: Op) -> Params:
    a, b, y = _input(graph, op, 0, "first input"), _input(graph, op, 1, "second input"), _output(graph, op)
    for t, what in ((a, "first input"), (b, "second input"), (y, "output")):
        _require_type(op, t, what)
    _same_type(op, a, y)
    _same_type(op, b, y)
    if a.shape != b.shape:
        raise _fail(op, f"broadcasting {a.shape} and {b.shape} has no host kernel; inputs must have equal shapes")
    s1, z1 = _per_tensor(op, a, "first input")
    s2, z2 = _per_tensor(op, b, "second input")
    so, zo = _per_tensor(op, y, "output")
    twice_max = 2 * max(s1, s2)
    out: Params = {"left_shift": ADD_LEFT_SHIFT, "input1_offset": -z1, "input2_offset": -z2, "output_offset": zo}
    for name, real in (("input1", s1 / twice_max), ("input2", s2 / twice_max),
                       ("output", twice_max / ((1 << ADD_LEFT_SHIFT) * so))):
        multiplier, shift = quantize_multiplier(real)
        if shift > 0:
            raise _fail(op, f"{name} rescale factor {real:.6g} is not below one (output scale too small)")
        out[f"{name}_multiplier"], out[f"{name}_shift"] = multiplier, shift
    out["act_min"], out["act_max"] = _activation_range(op, y)
    return out


def _average_pool_2d(graph: Graph, op: Op) -> Params:
    x, y = _input(graph, op, 0, "input"), _output(graph, op)
    _require_type(op, x, "input")
    _same_type(op, x, y)
    if _per_tensor(op, x, "input") != _per_tensor(op, y, "output"):
        raise _fail(op, "input and output quantization differ; the average is not requantized")
    o = op.options
    fh, fw = int(o.get("filter_height", 1)), int(o.get("filter_width", 1))
    sh, sw = int(o.get("stride_h", 1)), int(o.get("stride_w", 1))
    top = _padding(op, x.shape[1], y.shape[1], fh, sh, 1)
    left = _padding(op, x.shape[2], y.shape[2], fw, sw, 1)
    # Every window must overlap the input, or TFLite's kernel would divide by zero.
    for size, out_size, k, s, pad in ((x.shape[1], y.shape[1], fh, sh, top), (x.shape[2], y.shape[2], fw, sw, left)):
        if (out_size - 1) * s - pad >= size or k <= pad:
            raise _fail(op, "a pooling window lies wholly in the padding")
    act_min, act_max = _activation_range(op, y)
    return {"filter_h": fh, "filter_w": fw, "stride_h": sh, "stride_w": sw,
            "pad_top": top, "pad_left": left, "act_min": act_min, "act_max": act_max}


def _mean(graph: Graph, op: Op) -> Params:
    """TFLite's QuantizedMeanOrSum: input/output scale ratio with 1/count folded into the multiplier."""
    x, axis_t, y = _input(graph, op, 0, "input"), _input(graph, op, 1, "axis"), _output(graph, op)
    _require_type(op, x, "input")
    _same_type(op, x, y)
    if not axis_t.is_constant:
        raise _fail(op, f"axis {axis_t.describe()} is not a constant")
    axes: list[int] = []
    for a in np.asarray(axis_t.data).reshape(-1).tolist():
        r = a + len(x.shape) if a < 0 else a
        if not 0 <= r < len(x.shape):
            raise _fail(op, f"axis {a} is out of range for input {x.describe()}")
        if r not in axes:
            axes.append(r)
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if count == 0:
        raise _fail(op, f"reduces over an empty axis of {x.describe()}")
    in_scale, in_zp = _per_tensor(op, x, "input")
    out_scale, out_zp = _per_tensor(op, y, "output")
    multiplier, shift = quantize_multiplier(in_scale / out_scale)
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    info = np.iinfo(y.dtype)
    return {"axes": np.array(axes, dtype=np.int32), "input_zero_point": in_zp, "output_zero_point": out_zp,
            "output_multiplier": (multiplier << extra) // count, "output_shift": shift - extra,
            "act_min": int(info.min), "act_max": int(info.max)}


def _softmax(graph: Graph, op: Op) -> Params:
    """TFLite's PreprocessSoftmaxScaling and CalculateInputRadius for beta * input_scale."""
    x, y = _input(graph, op, 0, "input"), _output(graph, op)
    _require_type(op, x, "input")
    _same_type(op, x, y)
    in_scale, _ = _per_tensor(op, x, "input")
    out_scale, out_zp = _per_tensor(op, y, "output")
    if out_scale != 1.0 / 256 or out_zp != int(np.iinfo(y.dtype).min):
        raise _fail(op, f"output {y.describe()} must have scale 1/256 and zero point {np.iinfo(y.dtype).min}")
    beta = float(np.float32(op.options.get("beta", 1.0)))
    fraction_bits = 31 - SCALED_DIFF_INTEGER_BITS
    real = min(beta * in_scale * (1 << fraction_bits), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise _fail(op, f"beta * input scale = {beta * in_scale:.6g} is too small for the quantized softmax")
    radius = ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * (1 << fraction_bits) / (1 << left_shift)
    return {"input_multiplier": multiplier, "input_left_shift": left_shift, "diff_min": -int(np.floor(radius))}


def _quantize(graph: Graph, op: Op) -> Params:
    x, y = _input(graph, op, 0, "input"), _output(graph, op)
    _require_type(op, y, "output")
    out_scale, out_zp = _per_tensor(op, y, "output")
    if x.dtype == "float32":
        return {"scale": out_scale, "output_zero_point": out_zp}
    _require_type(op, x, "input", QUANTIZED_TYPES + ("float32",))
    in_scale, in_zp = _per_tensor(op, x, "input")
    multiplier, shift = quantize_multiplier(in_scale / out_scale)
    return {"input_zero_point": in_zp, "output_zero_point": out_zp,
            "output_multiplier": multiplier, "output_shift": shift}


def _dequantize(graph: Graph, op: Op) -> Params:
    x, y = _input(graph, op, 0, "input"), _output(graph, op)
    _require_type(op, x, "input")
    _require_type(op, y, "output", ("float32",))
    scale, zero_point = _per_tensor(op, x, "input")
    return {"scale": scale, "zero_point": zero_point}


def _reshape(graph: Graph, op: Op) -> Params:
    x, y = _input(graph, op, 0, "input"), _output(graph, op)
    _same_type(op, x, y)
    if x.num_elements != y.num_elements:
        raise _fail(op, f"{x.describe()} and {y.describe()} differ in element count")
    return {}


_FOLDERS: dict[str, Callable[[Graph, Op], Params]] = {
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv_2d,
    "FULLY_CONNECTED": _fully_connected,
    "ADD": _add,
    "AVERAGE_POOL_2D": _average_pool_2d,
    "MEAN": _mean,
    "SOFTMAX": _softmax,
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
    "RESHAPE": _reshape,
    "SQUEEZE": _reshape,
}
