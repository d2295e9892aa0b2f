"""CONV_2D and FULLY_CONNECTED layers as NN jobs: one per weight-scale group, stride 2 by cost.

A layer is one job per group of output channels sharing a post multiplier
(passes/scale_groups.py; one job for per-tensor weights): each job reads the
whole input and writes its channels' planes in place.  A stride-2 convolution
runs as first-pixel pooling or over a TP reshuffle of its input (the kernel
rewritten to match, passes/stride2.py), whichever the cost model estimates
cheaper.  FULLY_CONNECTED is a 1x1 convolution over a one-pixel image with N
input planes (the shape of Mesa's final MobileNet layer rather than Mesa's FC
lowering, whose kernels no single reading order of the hardware decodes).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..hw.perf import Cost
from ..hw.target import Target
from ..passes import stride2
from ..passes.npu_program import ConvOp, LayerOp, Program, Ref
from ..passes.scale_groups import scale_groups
from .nn_schedule import ScheduledConv, schedule_conv
from .reshuffle import add_reshuffle, reshuffle_cost


def conv_jobs(program: Program, layer: LayerOp, target: Target) -> list:
    """The steps (NN jobs, a TP reshuffle) of a CONV_2D layer."""
    geo, w = layer.geo, layer.layer
    groups = scale_groups(w, np.arange(geo.out_c), target, layer.name)
    plane = geo.out_h * geo.out_w
    specs = [ConvOp(
        name=f"{layer.name} conv {geo.k_h}x{geo.k_w}" + (f" channels {_span(g.channels)}" if len(groups) > 1 else ""),
        op=layer.op, input=Ref(layer.src), output=Ref(layer.dst), in_x=geo.in_w, in_y=geo.in_h,
        weights=g.kernels.transpose(0, 3, 1, 2), bias=g.bias, trailers=g.channels * plane,
        coef_zero_point=g.coef_zero_point, input_zero_point=layer.in_zp, output_zero_point=layer.out_zp,
        scale=g.scale, out_x=geo.out_w, out_y=geo.out_h, offset_x=-geo.pad_left, offset_y=-geo.pad_top,
        relu=layer.relu, strided=geo.stride > 1) for g in groups]
    grouped = f", {len(groups)} jobs by weight scale" if len(groups) > 1 else ""
    if geo.stride == 1:
        for spec in specs:
            spec.note = "stride-1 convolution" + grouped
        return specs
    pooled = ([schedule_conv(replace(spec, first_pixel=True, note="stride 2 as first-pixel pooling" + grouped),
                             target) for spec in specs] if stride2.pooling_allowed(geo, target) else None)
    rows, cols = stride2.reshuffled_size(geo)
    reshuffled = [schedule_conv(replace(spec, in_x=cols, in_y=rows, offset_x=0, offset_y=0,
                                        weights=stride2.reshuffle_weights(spec.weights, spec.coef_zero_point),
                                        note="stride 2 as TP reshuffle + rewritten kernel" + grouped), target)
                  for spec in specs]
    reshuffle_cycles = _cycles(reshuffled) + reshuffle_cost(geo, target).cycles
    if pooled is not None and _cycles(pooled) <= reshuffle_cycles:
        return pooled
    steps: list = []
    src = add_reshuffle(program, steps, layer.op, layer.src, geo)
    for job in reshuffled:
        job.op.input = Ref(src)
    return steps + reshuffled


def fc_jobs(program: Program, layer: LayerOp, target: Target) -> list[ConvOp]:
    """The NN jobs of a FULLY_CONNECTED layer: one per group of units sharing a post multiplier."""
    units, n = layer.layer.kernels.shape
    return [ConvOp(name=f"{layer.name} fully connected {n}->{len(g.channels)}", op=layer.op, input=Ref(layer.src),
                   output=Ref(layer.dst), in_x=1, in_y=1, weights=g.kernels.reshape(-1, n, 1, 1), bias=g.bias,
                   trailers=g.channels, coef_zero_point=g.coef_zero_point, input_zero_point=layer.in_zp,
                   output_zero_point=layer.out_zp, scale=g.scale, out_x=1, out_y=1, relu=layer.relu,
                   note=f"1x1 convolution over {n} one-pixel planes")
            for g in scale_groups(layer.layer, np.arange(units), target, layer.name)]


def _span(channels: np.ndarray) -> str:
    return f"{channels[0]}..{channels[-1]} ({len(channels)})"


def _cycles(jobs: list[ScheduledConv]) -> int:
    return sum((j.cost for j in jobs), Cost()).cycles
