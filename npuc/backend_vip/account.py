"""The compiler's account of a program, written into the blob's META (format: npuc/program_meta.py).

Which unit runs each model operator and why, and each job's name, note and
the tensors it reads and writes: what ``npuc inspect``, ``report`` and
``verify`` show without the compiler.
"""

from __future__ import annotations

import json

from ..hw.descriptors import kernel_z
from ..passes.npu_program import Program
from ..program_meta import HOST, NN, TP
from .jobs import EncodedJob, NNJob, TPJob, job_reads, job_writes


def _kind(step: EncodedJob) -> str:
    return NN if isinstance(step, NNJob) else TP if isinstance(step, TPJob) else HOST


def job_reads_through(program: Program, step: EncodedJob) -> list[int]:
    """Tensors a job reads; an NN job whose planes run past its input tensor reads on into the
    tensors stored right after it (the second input of an ADD, stored back to back)."""
    reads = job_reads(step)
    if not isinstance(step, NNJob):
        return reads
    d = step.desc
    root = program.root(step.input)
    span = root.offset + kernel_z(d) * d["in_image_x_stride"] * d["in_image_y_stride"]
    span -= program.graph.tensors[root.tensor].nbytes
    group = next((g for g in program.adjacent if root.tensor in g), [root.tensor])
    for t in group[group.index(root.tensor) + 1:]:
        if span <= 0:
            break
        reads.append(t)
        span -= program.graph.tensors[t].nbytes
    return reads


def encode(program: Program, jobs: list[EncodedJob]) -> str:
    """The META value describing ``program`` and its encoded ``jobs`` (deterministic JSON; tensor names and
    notes are listed once)."""
    g = program.graph
    strings: dict[str, int] = {}

    def text(value: str) -> int:
        return strings.setdefault(value, len(strings))

    def name(t: int) -> int:
        return text(g.tensors[t].name)

    ops = []
    for op in g.ops:
        unit, reason = program.units.get(op.index, (HOST, ""))
        ops.append([op.index, op.opcode, name(op.outputs[0]) if op.outputs else -1, unit, reason])
    steps = [[s.op, _kind(s), s.name, text(getattr(s, "note", "")), [name(t) for t in job_reads_through(program, s)],
              [name(t) for t in job_writes(s)]] for s in jobs]
    holds: dict[int, int] = {}
    for original, versions in sorted(program.versions.items()):
        for t in versions.values():
            holds.setdefault(name(t), original)
    views = sorted((name(t), name(ref.tensor)) for t, ref in program.aliases.items())
    return json.dumps({"strings": list(strings), "ops": ops, "steps": steps, "holds": sorted(holds.items()),
                       "views": views}, separators=(",", ":"), sort_keys=True)
