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

from .npu_program import FULLY_CONNECTED, NHWC, PLANAR, LayerOp, Program
from ..hw.target import Target
from ..ir import Op
from .conv_params import uses_relu, weighted_layer
from .requant import stored_zero_point
from .layouts import operand, produce

#: TFLite's FULLY_CONNECTED weights are [units][inputs].
_UNIT_AXIS = 0


def lower_fully_connected(program: Program, op: Op, target: Target) -> None:
    """Append the FULLY_CONNECTED layer; the scheduler makes it one NN job per group of units sharing a post
    multiplier (scheduler/conv_jobs.py)."""
    g = program.graph
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    src = operand(program, op.inputs[0], NHWC, op.index)
    dst = produce(program, op.outputs[0], PLANAR)
    program.steps.append(LayerOp(FULLY_CONNECTED, op.name, op.index, src, dst, None,
                                 weighted_layer(g, op, _UNIT_AXIS), stored_zero_point(x), stored_zero_point(y),
                                 uses_relu(op)))
