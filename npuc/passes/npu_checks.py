"""The checks behind NPU_LOWERINGS' constraints: each returns None or why an operator cannot go to the NPU.

Every check takes (graph, op, target) and returns a short reason ("per-channel
quantized weights", "dilation 2x2", "kernel 13x13 larger than 11x11") that
placement shows as the reason of a host fallback.  Field limits come from the
descriptor layout, hardware limits from the target.
"""

from __future__ import annotations

import numpy as np

from ..coefs import plane_offsets_in_stream
from ..hw.descriptors import NN_DESCRIPTOR
from .npu_program import NPU_ELEMENT_TYPES
from ..hw.target import Target
from ..ir import Graph, Op, Tensor
from . import elementwise, lower_add, lower_lut, lower_pad, requant, stride2
from .conv_params import U8_MAX, ConvGeometry, activation_refusal, weighted_layer
from .lower_pool import MEAN_AXES, same_quantization
from .lower_quantize import same_npu_bytes
from .scale_groups import MAX_CONSECUTIVE_RUNS, scale_groups

_XY_MAX = NN_DESCRIPTOR["in_image_x_size"].mask
_Z_MAX = NN_DESCRIPTOR["kernel_z_size"].mask
_OUT_Z_MAX = NN_DESCRIPTOR["out_image_z_size"].mask


def _activations(graph: Graph, op: Op) -> list[Tensor]:
    ins = [graph.tensors[t] for t in op.inputs[:1] if t is not None]
    if op.opcode in ("ADD", "SUB"):
        ins = [graph.tensors[t] for t in op.inputs[:2]]
    return ins + [graph.tensors[t] for t in op.outputs]


def _quant_refusal(t: Tensor, what: str) -> str | None:
    if t.dtype not in NPU_ELEMENT_TYPES:
        return f"{t.dtype} {what}"
    if t.quant is None or not t.quant.scale.size:
        return f"unquantized {what}"
    if t.quant.per_channel:
        return f"per-channel quantized {what}"
    if not 0 <= requant.stored_zero_point(t) <= U8_MAX:
        return f"{what} zero point {t.quant.single_zero_point} outside the {t.dtype} range"
    return None


def eight_bit_activations(graph: Graph, op: Op, target: Target) -> str | None:
    for t in _activations(graph, op):
        why = _quant_refusal(t, "activations")
        if why:
            return why
    return None


def _bias_refusal(graph: Graph, op: Op) -> str | None:
    if len(op.inputs) > 2 and op.inputs[2] is not None:
        b = graph.tensors[op.inputs[2]]
        if not b.is_constant or b.dtype != "int32":
            return f"{'non-constant' if not b.is_constant else b.dtype} bias"
    return None


def _weights_match_activations(graph: Graph, op: Op) -> str | None:
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if w.dtype != x.dtype:
        return f"{w.dtype} weights for {x.dtype} activations"
    return None


def per_tensor_weights(graph: Graph, op: Op, target: Target) -> str | None:
    w = graph.tensors[op.inputs[1]]
    if not w.is_constant:
        return "weights are not constant"
    return _quant_refusal(w, "weights") or _weights_match_activations(graph, op) or _bias_refusal(graph, op)


def conv_weights(graph: Graph, op: Op, target: Target) -> str | None:
    """Per-tensor weights, or int8 weights with one scale per output channel and zero point 0 (TFLite's int8 rule).

    Per-channel weights run as one job per group of similar scales (passes/scale_groups.py).
    """
    w = graph.tensors[op.inputs[1]]
    q = w.quant
    if not w.is_constant or q is None or not q.per_channel:
        return per_tensor_weights(graph, op, target)
    axis = 3 if op.opcode == "DEPTHWISE_CONV_2D" else 0
    if w.dtype != "int8" or q.axis != axis or np.any(q.zero_point != 0):
        return f"per-channel quantized {w.dtype} weights (only int8 ones, zero point 0, along the output channels)"
    return _weights_match_activations(graph, op) or _bias_refusal(graph, op) or _scale_runs(graph, op, axis, target)


def _scale_runs(graph: Graph, op: Op, axis: int, target: Target) -> str | None:
    """On cores whose kernels write consecutive planes (v8), each job is a run of consecutive channels."""
    if plane_offsets_in_stream(target):
        return None
    layer = weighted_layer(graph, op, axis)
    jobs = len(scale_groups(layer, np.arange(layer.kernels.shape[0]), target, op.name))
    if jobs > MAX_CONSECUTIVE_RUNS:
        return (f"per-channel weight scales need {jobs} jobs of consecutive channels (at most "
                f"{MAX_CONSECUTIVE_RUNS}: v8 kernels write consecutive planes)")
    return None


def batch_one(graph: Graph, op: Op, target: Target) -> str | None:
    """4-D activations must be one image (TP layout conversions and planar storage assume batch 1)."""
    for t in _activations(graph, op):
        if len(t.shape) == 4 and t.shape[0] != 1:
            return f"batch of {t.shape[0]} images"
    return None


def ungrouped(graph: Graph, op: Op, target: Target) -> str | None:
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if w.shape[3] != x.shape[3]:
        return f"grouped convolution ({x.shape[3] // w.shape[3]} groups)"
    return None


def fused_activation(graph: Graph, op: Op, target: Target) -> str | None:
    return activation_refusal(graph, op)


def conv_strides(graph: Graph, op: Op, target: Target) -> str | None:
    sh, sw = op.options.get("stride_h", 1), op.options.get("stride_w", 1)
    if sh != sw or sh not in (1, stride2.PHASES):
        return f"stride {sh}x{sw}"
    return None


def no_dilation(graph: Graph, op: Op, target: Target) -> str | None:
    dh, dw = op.options.get("dilation_h_factor", 1), op.options.get("dilation_w_factor", 1)
    if (dh, dw) != (1, 1):
        return f"dilation {dh}x{dw}"
    return None


def kernel_size(graph: Graph, op: Op, target: Target) -> str | None:
    _, kh, kw, _ = graph.tensors[op.inputs[1]].shape
    m = target.kernel_size_max
    if kh > m or kw > m:
        return f"kernel {kh}x{kw} larger than {m}x{m}"
    return None


def padding_offset(graph: Graph, op: Op, target: Target) -> str | None:
    """A stride-1 SAME convolution starts at minus its padding, which the signed offset field must hold."""
    geo = ConvGeometry.from_op(graph, op)
    lowest = -(1 << (target.offset_bits - 1))
    if geo.stride == 1 and min(-geo.pad_top, -geo.pad_left) < lowest:
        return f"SAME padding of {max(geo.pad_top, geo.pad_left)} exceeds the input offset range ({lowest})"
    return None


def image_fits(graph: Graph, op: Op, target: Target) -> str | None:
    """Image sizes must fit the 13-bit x/y fields (twice the output with pooling), channels the 14-bit z fields."""
    geo = ConvGeometry.from_op(graph, op)
    largest = max(geo.in_h, geo.in_w, stride2.PHASES * geo.out_h, stride2.PHASES * geo.out_w)
    if largest > _XY_MAX:
        return f"image side {largest} exceeds the descriptor's {_XY_MAX}"
    channels = geo.in_c * stride2.PHASES ** 2
    if channels > _Z_MAX or geo.out_c > _OUT_Z_MAX:
        return f"{geo.in_c} input / {geo.out_c} output channels exceed the descriptor's limits"
    return None


def depth_multiplier_one(graph: Graph, op: Op, target: Target) -> str | None:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x.shape[3] != y.shape[3]:
        return f"depth multiplier {y.shape[3] // max(x.shape[3], 1)}"
    return None


def equal_shapes(graph: Graph, op: Op, target: Target) -> str | None:
    shapes = [graph.tensors[t].shape for t in list(op.inputs[:2]) + op.outputs[:1]]
    if len(set(shapes)) != 1:
        return f"broadcasting {' + '.join(str(list(s)) for s in shapes[:2])}"
    return None


def two_activations(graph: Graph, op: Op, target: Target) -> str | None:
    if any(graph.tensors[t].is_constant for t in op.inputs[:2]):
        return "an input is a constant"
    return None


def add_ratio(graph: Graph, op: Op, target: Target) -> str | None:
    return lower_add.ratio_refusal(graph, op)


def flat_image(graph: Graph, op: Op, target: Target) -> str | None:
    """A requantizing QUANTIZE views the tensor's bytes as one image (a pure int8/uint8 change needs no job)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    n = y.num_elements
    if same_npu_bytes(x, y) or elementwise.image_rows(n, n) is not None:
        return None
    return f"{n} elements cannot be viewed as an image the descriptor holds"


def lut_table(graph: Graph, op: Op, target: Target) -> str | None:
    if lower_lut.reference_table(graph, op) is None:
        return f"no reference table for {op.opcode} (neither a host kernel nor TFLite's integer formula)"
    if lower_lut.fitted_table(graph, op) is None:
        return "no PWL table reproduces TFLite's result for every input byte"
    return None


def four_d_image(graph: Graph, op: Op, target: Target) -> str | None:
    """TP jobs walk [1, H, W, C] tensors."""
    shape = graph.tensors[op.outputs[0]].shape
    if len(shape) != 4 or shape[0] != 1:
        return f"a {len(shape)}-D tensor of shape {list(shape)} (TP jobs take one [1, H, W, C] image)"
    return None


def pad_amounts(graph: Graph, op: Op, target: Target) -> str | None:
    pads = lower_pad.paddings(graph, op)
    if pads is None or len(pads) != 4:
        return "paddings are not a constant [4, 2] tensor"
    if pads[0] != (0, 0) or min(min(p) for p in pads) < 0:
        return f"paddings {list(pads)} pad the batch or are negative"
    if lower_pad.pad_layout(pads) is None:
        return f"paddings {list(pads)} pad both channels and rows by more than one per side"
    return None


def pad_value(graph: Graph, op: Op, target: Target) -> str | None:
    """PADV2's constant must be the output zero point (the TP fills the border with it)."""
    if len(op.inputs) < 3 or op.inputs[2] is None:
        return None
    c, y = graph.tensors[op.inputs[2]], graph.tensors[op.outputs[0]]
    if not c.is_constant or c.data.size != 1 or int(c.data.reshape(-1)[0]) != y.quant.single_zero_point:
        return "the padding constant is not the output zero point"
    return None


def add_image(graph: Graph, op: Op, target: Target) -> str | None:
    return lower_add.image_refusal(graph, op, target)


def whole_plane_pool(graph: Graph, op: Op, target: Target) -> str | None:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    fh, fw = op.options.get("filter_height", 1), op.options.get("filter_width", 1)
    if (y.shape[1], y.shape[2]) != (1, 1) or (fh, fw) != (x.shape[1], x.shape[2]):
        return f"pooling window {fh}x{fw} does not cover the {x.shape[1]}x{x.shape[2]} input"
    return None


def pool_rounding(graph: Graph, op: Op, target: Target) -> str | None:
    """TFLite rounds an int8 average's ties away from zero; the job (on bytes + 128) rounds them all up."""
    x = graph.tensors[op.inputs[0]]
    if x.dtype == "int8" and (x.shape[1] * x.shape[2]) % 2 == 0:
        return f"int8 average over an even window of {x.shape[1]}x{x.shape[2]}"
    return None


def pool_quantization(graph: Graph, op: Op, target: Target) -> str | None:
    if not same_quantization(graph, op):
        return "input and output quantization differ"
    return None


def mean_axes(graph: Graph, op: Op, target: Target) -> str | None:
    x = graph.tensors[op.inputs[0]]
    axes = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 and op.inputs[1] is not None else None
    if axes is None or not axes.is_constant:
        return "reduction axes are not constant"
    rank = len(x.shape)
    got = sorted({int(a) % rank for a in axes.data.reshape(-1)}) if rank else []
    if rank != 4 or tuple(got) != MEAN_AXES:
        return f"MEAN over axes {got} (only H and W of a 4-D tensor)"
    return None


def mean_fits(graph: Graph, op: Op, target: Target) -> str | None:
    _, h, w, c = graph.tensors[op.inputs[0]].shape
    if c > _XY_MAX or h * w > _Z_MAX:
        return f"{c} channels or {h}x{w} pixels exceed the descriptor's limits"
    return None


def fc_input(graph: Graph, op: Op, target: Target) -> str | None:
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if len(w.shape) != 2 or x.num_elements != w.shape[1]:
        return f"input {list(x.shape)} is not one vector of {w.shape[-1]} values"
    if op.options.get("weights_format", "DEFAULT") != "DEFAULT":
        return f"weights format {op.options['weights_format']}"
    return None


def fc_fits(graph: Graph, op: Op, target: Target) -> str | None:
    units, n = graph.tensors[op.inputs[1]].shape
    if n > _Z_MAX or units > _OUT_Z_MAX:
        return f"{n} inputs or {units} units exceed the descriptor's limits"
    return None


def non_constant_input(graph: Graph, op: Op, target: Target) -> str | None:
    if graph.tensors[op.inputs[0]].is_constant:
        return "the input is a constant"
    return None


def _channel_axis(shape: tuple[int, ...], axis: int) -> str | None:
    if len(shape) != 4 or axis % 4 != 3:
        return f"axis {axis} of a {len(shape)}-D tensor is not the channel axis of an image"
    return None


def _same_quantization(tensors: list[Tensor]) -> str | None:
    for t in tensors:
        why = _quant_refusal(t, "tensors")
        if why:
            return why
    q = {(t.quant.single_scale, t.quant.single_zero_point) for t in tensors}
    if len(q) > 1:
        return "inputs and outputs differ in scale or zero point (TFLite requantizes them)"
    return None


def concat_views(graph: Graph, op: Op, target: Target) -> str | None:
    ins = [graph.tensors[t] for t in op.inputs if t is not None]
    out = graph.tensors[op.outputs[0]]
    if any(t.is_constant for t in ins):
        return "an input is a constant"
    act = op.options.get("fused_activation_function", "NONE")
    if act != "NONE":
        return f"fused activation {act}"
    for t in ins + [out]:
        why = _quant_refusal(t, "tensors")
        if why:
            return why
    return _channel_axis(out.shape, op.options.get("axis", 0))


def _constant_axis(graph: Graph, index: int | None) -> int | None:
    t = None if index is None else graph.tensors[index]
    if t is None or not t.is_constant or t.data.size != 1:
        return None
    return int(t.data.reshape(-1)[0])


def split_views(graph: Graph, op: Op, target: Target) -> str | None:
    data, axis_input = (op.inputs[1], op.inputs[0]) if op.opcode == "SPLIT" else (op.inputs[0], op.inputs[2])
    axis = _constant_axis(graph, axis_input)
    if axis is None:
        return "the split axis is not a constant"
    src = graph.tensors[data]
    if src.is_constant:
        return "the input is a constant"
    return _channel_axis(src.shape, axis) or _same_quantization([src] + [graph.tensors[t] for t in op.outputs])


# -- bit-exactness (what `npuc compile --exact` keeps on the NPU) -------------------------------------

def nn_arithmetic(graph: Graph, op: Op, target: Target) -> str | None:
    return "NN requantization (15-bit multiplier, two roundings) differs from TFLite's 31-bit fixed point"


def byte_copy(graph: Graph, op: Op, target: Target) -> str | None:
    return None


def relabelled_bytes(graph: Graph, op: Op, target: Target) -> str | None:
    from .lower_quantize import same_npu_bytes

    if same_npu_bytes(graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]):
        return None
    return "a requantizing NN job rounds unlike TFLite"


def concat_without_requantization(graph: Graph, op: Op, target: Target) -> str | None:
    from .lower_quantize import same_npu_bytes

    out = graph.tensors[op.outputs[0]]
    if all(same_npu_bytes(graph.tensors[t], out) for t in op.inputs if t is not None):
        return None
    return "inputs quantized unlike the output need a requantizing NN job"
