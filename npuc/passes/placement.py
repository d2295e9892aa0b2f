"""Placement and lowering: every operator to NN cores, TP cores or the host CPU.

An operator goes to the NPU when the target has a lowering for it and none of
that lowering's constraints refuses it; otherwise it becomes a host call, and
the constraint that refused it is kept as the reason ``npuc compile`` prints.
An operator that neither the NPU nor a host kernel can run stops the compile
with a one-line error naming it.  Tensors are converted between NHWC and the
NPU's planar layout only where an NPU operator meets a host operator or the
graph's edge (``Program.operand``).
"""

from __future__ import annotations

from ..backend_vip.jobs import NHWC, HostCall, Program, TPJob
from ..backend_vip.target import Target
from ..errors import UnsupportedError
from ..ir import Graph, Op
from .host_params import host_params
from .npu_ops import NPU_LOWERINGS

HOST = "HOST"


def npu_refusal(graph: Graph, op: Op, target: Target) -> str | None:
    """Why ``op`` cannot run on the NPU of ``target`` (None when it can)."""
    lowering = NPU_LOWERINGS.get(op.opcode)
    if lowering is None:
        return f"no NPU lowering for {op.opcode}"
    return lowering.refusal(graph, op, target)


def lower_graph(graph: Graph, order: list[Op], target: Target, npu: bool = True) -> Program:
    """Lower every op, in execution order, into NPU jobs or host calls.

    ``npu=False`` puts everything on the host (the reference configuration).
    """
    program = Program(graph, target)
    for op in order:
        reason = npu_refusal(graph, op, target) if npu else "NPU disabled"
        if reason is None:
            lowering = NPU_LOWERINGS[op.opcode]
            lowering.lower(program, op, target)
            program.units[op.index] = (lowering.unit, "")
            continue
        try:
            params = host_params(graph, op)
        except UnsupportedError as e:
            raise UnsupportedError(f"{e}; it cannot run on the NPU either ({reason})") from None
        ins = [None if t is None else program.operand(t, NHWC, op.index) for t in op.inputs]
        outs = [program.produce(t, NHWC) for t in op.outputs]
        program.steps.append(HostCall(op.name, op.index, op.opcode, ins, outs, params))
        program.units[op.index] = (HOST, reason)
    return program


def graph_outputs(program: Program) -> list[int]:
    """The graph outputs in NHWC, converted if the NPU left them planar; they keep their model names."""
    outs = []
    for t in program.graph.outputs:
        nhwc = program.operand(t, NHWC, -1)
        if nhwc != t:
            original = program.graph.tensors[t]
            program.graph.tensors[nhwc].name, original.name = original.name, f"{original.name} (planar)"
        outs.append(nhwc)
    return outs


def unit_counts(program: Program) -> dict[str, int]:
    counts: dict[str, int] = {}
    for unit, _ in program.units.values():
        counts[unit] = counts.get(unit, 0) + 1
    return counts


def tp_job_count(program: Program) -> int:
    return sum(isinstance(s, TPJob) for s in program.steps)
