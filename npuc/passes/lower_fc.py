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
from ..backend_vip.target import Target
from ..ir import Op
from .conv_params import Quantization, bias_of, uses_relu
from .nn_job import ConvJob, build_nn_job
from .requant import stored_bytes


def lower_fully_connected(program: Program, op: Op, target: Target) -> None:
    """Append the NN job of a FULLY_CONNECTED (constraints in npu_ops already checked)."""
    g = program.graph
    x, w, y = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    units, n = w.shape
    src = program.operand(op.inputs[0], NHWC, op.index)
    dst = program.produce(op.outputs[0], PLANAR)
    q = Quantization.of(x, w, y)
    spec = ConvJob(name=f"{op.name} fully connected {n}->{units}", op=op.index, input=Ref(src), output=Ref(dst),
                   in_x=1, in_y=1, weights=stored_bytes(w).reshape(units, n, 1, 1), bias=bias_of(g, op, units),
                   trailers=np.arange(units, dtype=np.int64), coef_zero_point=q.w_zp, input_zero_point=q.in_zp,
                   output_zero_point=q.out_zp, scale=q.post_scale(target, op.name), out_x=1, out_y=1,
                   relu=uses_relu(op), note=f"1x1 convolution over {n} one-pixel planes")
    program.steps.append(build_nn_job(spec, target).job)
