"""CONV_2D and DEPTHWISE_CONV_2D on the NN cores: the layer over planar operands, for the scheduler to split.

Lowering takes the input in planar layout, declares the planar output and
records what the layer computes (geometry, weights with their per-channel
requantization, zero points, activation) as a LayerOp.  The filter
[OC][KH][KW][IC] becomes kernels [OC][IC][KH][KW] (x = KW, the contiguous axis
of a plane) when the scheduler builds the jobs; SAME padding is a negative
input offset with the input zero point as border.  How the layer becomes NN
jobs (weight-scale groups, depthwise channel groups, the stride-2 method) is
the scheduler's choice: scheduler/conv_jobs.py and depthwise_jobs.py.
"""

from __future__ import annotations

from ..hw.target import Target
from ..ir import Op
from .conv_params import planar_operands, uses_relu, weighted_layer
from .npu_program import CONV, DEPTHWISE, LayerOp, Program

#: TFLite's filter axis of the output channels: [OC][KH][KW][IC] for CONV_2D, [1][KH][KW][C] for depthwise.
_OUT_CHANNEL_AXIS = 0
_DEPTHWISE_CHANNEL_AXIS = 3


def lower_conv2d(program: Program, op: Op, target: Target) -> None:
    """Append the CONV_2D layer (constraints in npu_ops already checked)."""
    c = planar_operands(program, op)
    program.steps.append(LayerOp(CONV, op.name, op.index, c.src, c.dst, c.geo,
                                 weighted_layer(program.graph, op, _OUT_CHANNEL_AXIS), c.in_zp, c.out_zp,
                                 uses_relu(op)))


def lower_depthwise(program: Program, op: Op, target: Target) -> None:
    """Append the DEPTHWISE_CONV_2D layer (constraints in npu_ops already checked)."""
    c = planar_operands(program, op)
    program.steps.append(LayerOp(DEPTHWISE, op.name, op.index, c.src, c.dst, c.geo,
                                 weighted_layer(program.graph, op, _DEPTHWISE_CHANNEL_AXIS), c.in_zp, c.out_zp,
                                 uses_relu(op)))
