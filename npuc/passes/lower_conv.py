"""CONV_2D on the NN cores: one stride-1 convolution job (plus a TP reshuffle for some stride-2 layers).

The filter [OC][KH][KW][IC] becomes stored kernels [OC][IC][KH][KW] (x = KW,
the contiguous axis of a plane).  SAME padding is a negative input offset with
the input zero point as border; a stride-2 layer uses first-pixel pooling or a
reshuffle, whichever the cost model estimates cheaper (:mod:`stride2`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..backend_vip.jobs import Program, Ref
from ..backend_vip.target import Target
from ..ir import Op
from . import stride2
from .conv_params import ConvGeometry, bias_of, planar_operands, uses_relu
from .nn_job import BuiltJob, ConvJob, build_nn_job
from .requant import stored_bytes


def lower_conv2d(program: Program, op: Op, target: Target) -> None:
    """Append the jobs of a CONV_2D (constraints in npu_ops already checked)."""
    c = planar_operands(program, op)
    geo, q, src = c.geo, c.q, c.src
    spec = ConvJob(
        name=f"{op.name} conv {geo.k_h}x{geo.k_w}", op=op.index, input=Ref(src), output=Ref(c.dst),
        in_x=geo.in_w, in_y=geo.in_h, weights=stored_bytes(c.weights).transpose(0, 3, 1, 2),
        bias=bias_of(program.graph, op, geo.out_c),
        trailers=np.arange(geo.out_c, dtype=np.int64) * geo.out_h * geo.out_w,
        coef_zero_point=q.w_zp, input_zero_point=q.in_zp, output_zero_point=q.out_zp,
        scale=q.post_scale(target, op.name), out_x=geo.out_w, out_y=geo.out_h,
        offset_x=-geo.pad_left, offset_y=-geo.pad_top, relu=uses_relu(op), strided=geo.stride > 1)
    if geo.stride == 1:
        spec.note = "stride-1 convolution"
        program.steps.append(build_nn_job(spec, target).job)
        return
    pooled = _pooled(spec, geo, target)
    reshuffled = _reshuffled(spec, geo, target)
    costs = {}
    if pooled is not None:
        costs["pooled"] = pooled.cost.cycles
    costs["reshuffled"] = reshuffled.cost.cycles + stride2.reshuffle_cost(geo, target).cycles
    if min(costs, key=costs.get) == "pooled":
        program.steps.append(pooled.job)
        return
    rs = stride2.add_reshuffle(program, op.index, src, geo, target)
    reshuffled.job.input = Ref(rs)
    program.steps.append(reshuffled.job)


def _pooled(spec: ConvJob, geo: ConvGeometry, target: Target) -> BuiltJob | None:
    if not stride2.pooling_allowed(geo, target):
        return None
    return build_nn_job(replace(spec, first_pixel=True, note="stride 2 as first-pixel pooling"), target)


def _reshuffled(spec: ConvJob, geo: ConvGeometry, target: Target) -> BuiltJob:
    """The NN job over the reshuffled image (its input Ref is set once the reshuffle exists)."""
    rows, cols = stride2.reshuffled_size(geo)
    return build_nn_job(replace(spec, in_x=cols, in_y=rows, offset_x=0, offset_y=0,
                              weights=stride2.reshuffle_weights(spec.weights, spec.coef_zero_point),
                              note="stride 2 as TP reshuffle + rewritten kernel"), target)
