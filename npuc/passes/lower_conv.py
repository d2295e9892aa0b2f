"""CONV_2D on the NN cores: stride-1 convolution jobs (plus a TP reshuffle for some stride-2 layers).

The filter [OC][KH][KW][IC] becomes stored kernels [OC][IC][KH][KW] (x = KW,
the contiguous axis of a plane).  SAME padding is a negative input offset with
the input zero point as border; a stride-2 layer uses first-pixel pooling or a
reshuffle, whichever the cost model estimates cheaper (:mod:`stride2`).  A
layer is one job per group of output channels sharing a post multiplier
(:mod:`scale_groups`): one job for per-tensor weights; each job reads the
whole input and writes its channels' planes in place.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..backend_vip.jobs import Program, Ref
from ..hw.perf import Cost
from ..hw.target import Target
from ..ir import Op
from . import stride2
from .conv_params import ConvGeometry, planar_operands, uses_relu, weighted_layer
from .nn_job import BuiltJob, ConvJob, build_nn_job
from .scale_groups import scale_groups

#: TFLite's filter axis of the output channels.
_OUT_CHANNEL_AXIS = 0


def lower_conv2d(program: Program, op: Op, target: Target) -> None:
    """Append the jobs of a CONV_2D (constraints in npu_ops already checked)."""
    c = planar_operands(program, op)
    geo, src = c.geo, c.src
    layer = weighted_layer(program.graph, op, _OUT_CHANNEL_AXIS)
    groups = scale_groups(layer, np.arange(geo.out_c), target, op.name)
    plane = geo.out_h * geo.out_w
    specs = [ConvJob(
        name=f"{op.name} conv {geo.k_h}x{geo.k_w}" + (f" channels {_span(g.channels)}" if len(groups) > 1 else ""),
        op=op.index, input=Ref(src), output=Ref(c.dst), in_x=geo.in_w, in_y=geo.in_h,
        weights=g.kernels.transpose(0, 3, 1, 2), bias=g.bias, trailers=g.channels * plane,
        coef_zero_point=g.coef_zero_point, input_zero_point=c.in_zp, output_zero_point=c.out_zp,
        scale=g.scale, out_x=geo.out_w, out_y=geo.out_h, offset_x=-geo.pad_left, offset_y=-geo.pad_top,
        relu=uses_relu(op), strided=geo.stride > 1) for g in groups]
    grouped = f", {len(groups)} jobs by weight scale" if len(groups) > 1 else ""
    if geo.stride == 1:
        for spec in specs:
            spec.note = "stride-1 convolution" + grouped
            program.steps.append(build_nn_job(spec, target).job)
        return
    pooled = [_pooled(spec, geo, target, grouped) for spec in specs] if stride2.pooling_allowed(geo, target) else None
    reshuffled = [_reshuffled(spec, geo, target, grouped) for spec in specs]
    reshuffle_cycles = _cycles(reshuffled) + stride2.reshuffle_cost(geo, target).cycles
    if pooled is not None and _cycles(pooled) <= reshuffle_cycles:
        program.steps.extend(b.job for b in pooled)
        return
    rs = stride2.add_reshuffle(program, op.index, src, geo, target)
    for built in reshuffled:
        built.job.input = Ref(rs)
        program.steps.append(built.job)


def _span(channels: np.ndarray) -> str:
    return f"{channels[0]}..{channels[-1]} ({len(channels)})"


def _cycles(jobs: list[BuiltJob]) -> int:
    return sum((b.cost for b in jobs), Cost()).cycles


def _pooled(spec: ConvJob, geo: ConvGeometry, target: Target, grouped: str) -> BuiltJob:
    return build_nn_job(replace(spec, first_pixel=True, note="stride 2 as first-pixel pooling" + grouped), target)


def _reshuffled(spec: ConvJob, geo: ConvGeometry, target: Target, grouped: str) -> BuiltJob:
    """The NN job over the reshuffled image (its input Ref is set once the reshuffle exists)."""
    rows, cols = stride2.reshuffled_size(geo)
    return build_nn_job(replace(spec, in_x=cols, in_y=rows, offset_x=0, offset_y=0,
                              weights=stride2.reshuffle_weights(spec.weights, spec.coef_zero_point),
                              note="stride 2 as TP reshuffle + rewritten kernel" + grouped), target)
