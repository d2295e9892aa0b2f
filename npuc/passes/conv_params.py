"""What the convolution-like lowerings read from a TFLite operator: geometry, activation, quantization.

Shapes are TFLite's ([1, H, W, C] activations, [OC, KH, KW, IC] filters, [1, KH,
KW, C] depthwise filters); padding is TFLite's (SAME puts the odd pixel after
the image).  Zero points and weights are as the NN cores see them (see requant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .npu_program import PLANAR, Program
from ..ir import Graph, Op
from . import requant
from .scale_groups import WeightedLayer
from .layouts import operand, produce

#: TFLite's quantized range of the stored 8-bit values.
U8_MAX = 255
#: RELU6's upper bound in real units.
RELU6_BOUND = 6.0
#: Fused activations whose lower bound is real 0 (the relu bit clamps at the output zero point).
RELU_ACTIVATIONS = ("RELU", "RELU6")


@dataclass(frozen=True)
class ConvGeometry:
    """Spatial geometry of a convolution or depthwise convolution."""

    in_h: int
    in_w: int
    in_c: int
    out_h: int
    out_w: int
    out_c: int
    k_h: int
    k_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int

    @classmethod
    def from_op(cls, graph: Graph, op: Op) -> "ConvGeometry":
        x = graph.tensors[op.inputs[0]].shape
        w = graph.tensors[op.inputs[1]].shape
        y = graph.tensors[op.outputs[0]].shape
        o = op.options
        sh, sw = o.get("stride_h", 1), o.get("stride_w", 1)
        same = o.get("padding", "SAME") == "SAME"
        k_h, k_w = w[1], w[2]
        return cls(in_h=x[1], in_w=x[2], in_c=x[3], out_h=y[1], out_w=y[2], out_c=y[3], k_h=k_h, k_w=k_w,
                   stride_h=sh, stride_w=sw,
                   pad_top=same_padding_before(x[1], y[1], k_h, sh) if same else 0,
                   pad_left=same_padding_before(x[2], y[2], k_w, sw) if same else 0)

    @property
    def stride(self) -> int:
        return self.stride_h


def same_padding_before(in_size: int, out_size: int, kernel: int, stride: int) -> int:
    """TFLite's SAME padding before the image (the smaller half)."""
    return max((out_size - 1) * stride + kernel - in_size, 0) // 2


def fused_activation(op: Op) -> str:
    return op.options.get("fused_activation_function", "NONE") or "NONE"


def activation_refusal(graph: Graph, op: Op) -> str | None:
    """Why the op's fused activation cannot be the NN core's clamp (None if it can).

    The core saturates to 0..255 and, with the relu bit, clamps at the output
    zero point; RELU6 is only that when TFLite's upper clamp
    ``zp + round(6 / scale)`` is already at or beyond 255.
    """
    act = fused_activation(op)
    if act == "NONE" or act == "RELU":
        return None
    if act != "RELU6":
        return f"fused activation {act}"
    out = graph.tensors[op.outputs[0]]
    steps = np.float32(RELU6_BOUND) / np.float32(out.quant.single_scale)   # TFLite: float, round half away
    top = requant.stored_zero_point(out) + math.floor(float(steps) + 0.5)
    if top < U8_MAX:
        return f"fused RELU6 clamps at {top}, inside the 8-bit range"
    return None


def uses_relu(op: Op) -> bool:
    return fused_activation(op) in RELU_ACTIVATIONS


def weighted_layer(graph: Graph, op: Op, channel_axis: int) -> WeightedLayer:
    """The op's weights per output channel (``channel_axis`` of the filter), bias and activation scales."""
    x, w, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    kernels = np.moveaxis(np.asarray(w.data), channel_axis, 0)
    return WeightedLayer(w, kernels, bias_of(graph, op, kernels.shape[0]), x.quant.single_scale,
                         y.quant.single_scale)


def bias_of(graph: Graph, op: Op, channels: int) -> np.ndarray:
    """The op's int32 bias as int64 (zeros when the optional input is absent)."""
    if len(op.inputs) > 2 and op.inputs[2] is not None:
        return np.asarray(graph.tensors[op.inputs[2]].data, dtype=np.int64).reshape(channels)
    return np.zeros(channels, dtype=np.int64)


@dataclass(frozen=True)
class ConvOperands:
    """A convolution's geometry, activation zero points, and the planar tensors its jobs read and write."""

    geo: ConvGeometry
    in_zp: int
    out_zp: int
    src: int
    dst: int


def planar_operands(program: Program, op: Op) -> ConvOperands:
    """Take the op's input in planar layout (converting it if needed) and declare its planar output."""
    g = program.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    return ConvOperands(ConvGeometry.from_op(g, op), requant.stored_zero_point(x), requant.stored_zero_point(y),
                        operand(program, op.inputs[0], PLANAR, op.index), produce(program, op.outputs[0], PLANAR))
