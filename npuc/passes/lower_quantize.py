"""QUANTIZE between 8-bit types on the NPU, and the requantizing copy other lowerings share.

The NPU stores int8 tensors as uint8 with the zero point + 128 (jobs.INT8_OFFSET),
so a QUANTIZE whose only change is between int8 and uint8 (equal scales, zero
points 128 apart, TFLite's usual model input and output conversion) changes
no byte: its output is a view of its input.  Any other 8-bit QUANTIZE is a
requantization ``round((q - zp_in) * s_in / s_out) + zp_out``, one NN job
over the tensor's bytes viewed as an image (weight 1, so that the hardware's
two roundings fall where TFLite's ``MultiplyByQuantizedMultiplier`` puts
them; the multiplier has 15 bits instead of 31).
"""

from __future__ import annotations

import numpy as np

from .npu_program import Program, Ref
from ..hw.target import Target
from ..ir import Op, Tensor
from . import requant
from .elementwise import npu_layout, requantizing_copy
from .layouts import operand, produce


def same_npu_bytes(a: Tensor, b: Tensor) -> bool:
    """Whether two per-tensor quantized 8-bit tensors store every value as the same NPU byte."""
    return (np.float32(a.quant.single_scale) == np.float32(b.quant.single_scale)
            and requant.stored_zero_point(a) == requant.stored_zero_point(b))


def lower_quantize(program: Program, op: Op, target: Target) -> None:
    """A view or a requantizing job (constraints in npu_ops already checked)."""
    g = program.graph
    layout = npu_layout(program, op.inputs[0])
    src = operand(program, op.inputs[0], layout, op.index)
    dst = produce(program, op.outputs[0], layout)
    if same_npu_bytes(g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]):
        program.aliases[dst] = Ref(src)
        return
    program.steps.append(requantizing_copy(program, op, src, dst, target, "requantization"))
