"""CONCATENATION and SPLIT along channels as views: no job moves a byte.

In planar storage a tensor's channels are consecutive planes, so a channel
range of a tensor is a contiguous run of bytes.  SPLIT's outputs become views
of its input at the offsets of their first planes; CONCATENATION's inputs
become views of its output, so the jobs that produce them write straight into
place.  An input that cannot be moved into the output (it is already a view
of another tensor, must be stored next to another one, or appears twice) is
copied into its place by a TP job instead, and an input quantized unlike the
output by a requantizing NN job (TFLite requantizes it in float, rounding once).
"""

from __future__ import annotations

from .npu_program import PLANAR, Program, Ref, TPOp
from ..hw.target import Target
from ..ir import Op
from .elementwise import FLOAT_WEIGHT, requantizing_copy
from .lower_quantize import same_npu_bytes
from .layouts import operand, produce

#: TP PAD with no padding: a plain copy.
_NO_PADDING = ((0, 0), (0, 0), (0, 0))


def _movable(program: Program, t: int, seen: set[int]) -> bool:
    """Whether tensor ``t`` may become a view of another tensor."""
    paired = any(t in group for group in program.adjacent)
    return t not in program.aliases and not paired and t not in seen


def lower_concatenation(program: Program, op: Op, target: Target) -> None:
    """The output holds every input's planes in order (constraints in npu_ops already checked)."""
    g = program.graph
    out = produce(program, op.outputs[0], PLANAR)
    offset, seen = 0, set()
    for t in op.inputs:
        src = operand(program, t, PLANAR, op.index)
        requantized = not same_npu_bytes(g.tensors[t], g.tensors[op.outputs[0]])
        if not requantized and _movable(program, src, seen):
            program.aliases[src] = Ref(out, offset)
        else:
            stored = g.tensors[out]
            view = program.new_tensor(f"{g.tensors[t].name} (in {stored.name})", g.tensors[t].shape, stored.dtype,
                                      stored.quant, PLANAR)
            program.aliases[view] = Ref(out, offset)
            if requantized:
                program.steps.append(requantizing_copy(program, op, src, view, target, "requantization", FLOAT_WEIGHT))
            else:
                program.steps.append(TPOp("pad", op.index, src, view, {"pads": _NO_PADDING}))
        seen.add(src)
        offset += g.tensors[t].nbytes


def lower_split(program: Program, op: Op, target: Target) -> None:
    """Each output is a view of the input's planes (SPLIT and SPLIT_V; constraints already checked)."""
    g = program.graph
    data = op.inputs[1] if op.opcode == "SPLIT" else op.inputs[0]
    src = operand(program, data, PLANAR, op.index)
    offset = 0
    for t in op.outputs:
        program.aliases[produce(program, t, PLANAR)] = Ref(src, offset)
        offset += g.tensors[t].nbytes
