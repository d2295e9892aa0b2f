"""Placement and lowering: every operator to NN cores, TP cores or the host CPU.

An operator goes to the NPU when the target has a lowering for it and none of
that lowering's constraints refuses it; otherwise it becomes a host call, and
the constraint that refused it is kept as the reason ``npuc compile`` prints.
An operator that neither the NPU nor a host kernel can run stops the compile
with a one-line error naming it.  Tensors are converted between TFLite's
representation and the NPU's (planar layout, int8 stored as uint8) only where
an NPU operator meets a host operator or the graph's edge (``Program.operand``).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..errors import LimitError, UnsupportedError
from ..host import CONTROL_FLOW, fold
from ..hw.target import Target
from ..ir import Graph, Op
from .layouts import operand, produce
from .npu_ops import NPU_LOWERINGS
from .npu_program import TFLITE, HostCall, Program

HOST = "HOST"


class NpuRefusal(Exception):
    """A hardware limit met after lowering (by the scheduler or an encoder): operator ``op`` must run on the host.

    The driver compiles again with the operator placed on the host and
    ``reason`` shown for it, as when lowering itself finds such a limit.
    """

    def __init__(self, op: int, reason: str) -> None:
        super().__init__(f"operator {op}: {reason}")
        self.op, self.reason = op, reason

    @staticmethod
    @contextmanager
    def on_limits(program: Program, op: int) -> Iterator[None]:
        """Turn a LimitError or UnsupportedError raised for the jobs of model operator ``op`` into an NpuRefusal
        (conversions at the graph's edge, op -1, belong to no operator: their errors stay what they are)."""
        try:
            yield
        except (LimitError, UnsupportedError) as e:
            found = program.ops_by_index().get(op)
            if found is None:
                raise
            raise NpuRefusal(op, _reason(found, e)) from None


def _reason(op: Op, e: Exception) -> str:
    return str(e).removeprefix(f"{op.name}: ").removeprefix(f"operator {op.name}: ")


def npu_refusal(graph: Graph, op: Op, target: Target, exact: bool = False) -> str | None:
    """Why ``op`` cannot run on the NPU of ``target`` (None when it can).

    With ``exact``, only lowerings whose result is bit-identical to TFLite's
    reference kernel qualify (for models whose outputs are decisions that a
    one-step difference can flip, such as arg-max over near-equal heatmaps).
    """
    lowering = NPU_LOWERINGS.get(op.opcode)
    if lowering is None:
        return f"no NPU lowering for {op.opcode}"
    empty = next((graph.tensors[t] for t in [*op.inputs, *op.outputs] if t is not None
                  and graph.tensors[t].num_elements == 0), None)
    if empty is not None:
        return f"tensor {empty.describe()} is empty"
    why = lowering.refusal(graph, op, target)
    if why is None and exact:
        inexact = lowering.exact.check(graph, op, target)
        if inexact is not None:
            return f"--exact: {inexact}"
    return why


def lower_graph(graph: Graph, order: list[Op], target: Target, npu: bool = True, exact: bool = False,
                refused: dict[int, str] | None = None) -> Program:
    """Lower every op, in execution order, into NPU operations or host calls.

    ``npu=False`` puts everything on the host (the reference configuration);
    ``exact`` keeps on the NPU only what it computes bit-identically to TFLite;
    ``refused`` names operators a later stage found the NPU cannot run (NpuRefusal), with why.
    The program works on a copy of ``graph`` (lowering adds tensors), so ``graph`` stays as it is.
    """
    program = Program(graph.copy(), target)
    refused = refused or {}
    for op in order:
        reason = refused.get(op.index) or (npu_refusal(graph, op, target, exact) if npu else "NPU disabled")
        if reason is None:
            reason = _lower_on_npu(program, op, target)
        if reason is None:
            continue
        try:
            kernel, params = fold(graph, op)
        except UnsupportedError as e:
            if op.opcode == "CUSTOM" or op.opcode in CONTROL_FLOW:
                raise
            raise UnsupportedError(f"{e}; it cannot run on the NPU either ({reason})") from None
        ins = [None if t is None else operand(program, t, TFLITE, op.index) for t in op.inputs]
        outs = [produce(program, t, TFLITE) for t in op.outputs]
        program.steps.append(HostCall(op.name, op.index, kernel.name, ins, outs, params))
        program.units[op.index] = (HOST, reason)
    return program


def _lower_on_npu(program: Program, op: Op, target: Target) -> str | None:
    """Lower ``op`` onto the NPU; None when done, else why not (the program is then as it was before).

    The constraints catch what they can describe; what only the lowering
    finds (a degenerate quantization whose rescale no post shift reaches, a
    tensor too large for a descriptor field) undoes the partial lowering and
    sends the operator to the host instead of failing the compile.
    """
    lowering = NPU_LOWERINGS[op.opcode]
    state = program.checkpoint()
    try:
        lowering.lower(program, op, target)
    except (LimitError, UnsupportedError) as e:
        program.rollback(state)
        return _reason(op, e)
    program.units[op.index] = (lowering.unit, "")
    return None


def graph_outputs(program: Program) -> list[int]:
    """The graph outputs as TFLite stores them (converted if the NPU left them planar or as uint8), with their names."""
    outs = []
    for t in program.graph.outputs:
        nhwc = operand(program, t, TFLITE, -1)
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

