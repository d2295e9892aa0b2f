"""PAD and PADV2 with a constant on the TP: TFLite's constant padding of an 8-bit image.

TFLite pads a quantized tensor by copying its bytes unchanged and filling the
border with the output zero point (PADV2: its constant, which then has to be
that zero point here); the TP PAD job (tp_jobs.pad) does exactly that on
either layout.  A TP core pads x and y freely but z by at most
``TP_MAX_Z_OVERFETCH`` planes per side: the job runs on the planar tensor
when the channel padding allows it (z = channels) and on the NHWC one when
the row padding does (z = rows).
"""

from __future__ import annotations

import numpy as np

from ..hw.descriptors import TP_MAX_Z_OVERFETCH
from .npu_program import NHWC, PLANAR, Program, TPOp
from ..hw.target import Target
from ..ir import Graph, Op
from .layouts import operand, produce

#: TFLite's paddings tensor: [rank][before, after].
_PAD_SIDES = 2


def paddings(graph: Graph, op: Op) -> tuple[tuple[int, int], ...] | None:
    """The constant (before, after) padding of every axis, or None when they are not a constant [4, 2]."""
    if len(op.inputs) < 2 or op.inputs[1] is None or not graph.tensors[op.inputs[1]].is_constant:
        return None
    data = np.asarray(graph.tensors[op.inputs[1]].data).astype(np.int64)
    if data.shape != (len(graph.tensors[op.inputs[0]].shape), _PAD_SIDES):
        return None
    return tuple((int(a), int(b)) for a, b in data)


def pad_layout(pads: tuple[tuple[int, int], ...]) -> str | None:
    """The layout whose z axis (planar: channels, NHWC: rows) the TP can pad, planar first."""
    (_, _), (top, bottom), (_, _), (front, back) = pads
    if max(front, back) <= TP_MAX_Z_OVERFETCH:
        return PLANAR
    if max(top, bottom) <= TP_MAX_Z_OVERFETCH:
        return NHWC
    return None


def lower_pad(program: Program, op: Op, target: Target) -> None:
    """One TP PAD job (constraints in npu_ops already checked)."""
    pads = paddings(program.graph, op)
    layout = pad_layout(pads)
    src = operand(program, op.inputs[0], layout, op.index)
    dst = produce(program, op.outputs[0], layout)
    program.steps.append(TPOp("pad", op.index, src, dst, {"pads": pads[1:]}))
