"""FULLY_CONNECTED as a 1x1 convolution over a one-pixel image with N input channels.

A one-pixel image's planes are single bytes, so its planar and NHWC storage
coincide with TFLite's flat vector: the N input values are N planes, each
unit's N weights are one 1x1 kernel over them, and the OC output planes (one
byte each) are the output vector.  The input is taken in NHWC order (TFLite
flattens NHWC), which for anything but a one-pixel tensor is a TP
detranspose.  This is the shape of Mesa's final MobileNet layer (a 1x1
convolution on a 1x1 image) rather than Mesa's FC lowering, whose kernels no
single reading order of the hardware decodes (docs/simulator.md).
"""

from __future__ import annotations

import numpy as np

from ..backend_vip.jobs import NHWC, PLANAR, Program, Ref
from ..hw.target import Target
from ..ir import Op
from .conv_params import uses_relu, weighted_layer
from .nn_job import ConvJob, build_nn_job
from .requant import stored_zero_point
from .scale_groups import scale_groups

#: TFLite's FULLY_CONNECTED weights are [units][inputs].
_UNIT_AXIS = 0


def lower_fully_connected(program: Program, op: Op, target: Target) -> None:
    """Append the NN job(s) of a FULLY_CONNECTED: one per group of units sharing a post multiplier (scale_groups)."""
    g = program.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    units, n = g.tensors[op.inputs[1]].shape
    src = program.operand(op.inputs[0], NHWC, op.index)
    dst = program.produce(op.outputs[0], PLANAR)
    groups = scale_groups(weighted_layer(g, op, _UNIT_AXIS), np.arange(units), target, op.name)
    for group in groups:
        spec = ConvJob(name=f"{op.name} fully connected {n}->{len(group.channels)}", op=op.index, input=Ref(src),
                       output=Ref(dst), in_x=1, in_y=1, weights=group.kernels.reshape(-1, n, 1, 1), bias=group.bias,
                       trailers=group.channels, coef_zero_point=group.coef_zero_point,
                       input_zero_point=stored_zero_point(x), output_zero_point=stored_zero_point(y),
                       scale=group.scale, out_x=1, out_y=1, relu=uses_relu(op),
                       note=f"1x1 convolution over {n} one-pixel planes")
        program.steps.append(build_nn_job(spec, target).job)
