"""The compiler's own account of a blob's program, kept in its META section for inspection and verification.

The streams and descriptors say what the NPU does, but not why: which model
operator a job belongs to, where each operator was placed and the reason, and
which tensors a job reads and writes by name.  ``npuc compile`` records that
under the META key :data:`PROGRAM_KEY` as compact JSON (docs/vipbin.md):

* ``ops``: one entry per model operator, in graph order: index, opcode, the
  name of its first output, unit (NN, TP, HOST, alias) and the reason for a
  HOST placement;
* ``steps``: one entry per NPU job or host step, in execution order: the
  operator it belongs to (-1 for the graph's output conversions), its kind,
  name and lowering note, and the names of the tensors it reads and writes;
* ``holds``: for every stored tensor that holds a model tensor's value (in any
  layout or byte representation), that model tensor's index;
* ``views``: every tensor that is a view of another's bytes (a reshape, a
  channel slice of a concatenation), with the tensor it views.

Nothing here is needed to run a blob; readers that find no such key show what
the descriptors alone give.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .hw.descriptors import kernel_z
from .backend_vip.jobs import EncodedJob, NNJob, TPJob, job_reads, job_writes
from .passes.npu_program import Program
from .errors import BlobError

PROGRAM_KEY = "npuc.program"

NN, TP, HOST = "NN", "TP", "HOST"


@dataclass(frozen=True)
class OpInfo:
    """One model operator and where it runs."""

    index: int
    opcode: str
    name: str
    unit: str
    reason: str


@dataclass(frozen=True)
class StepInfo:
    """One NPU job or host step, as the compiler lowered it."""

    op: int
    kind: str
    name: str
    note: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]


@dataclass(frozen=True)
class ProgramInfo:
    """What :data:`PROGRAM_KEY` holds."""

    ops: tuple[OpInfo, ...]
    steps: tuple[StepInfo, ...]
    holds: dict[str, int]
    views: dict[str, str]          # view name -> the name of the tensor whose bytes it views

    def op(self, index: int) -> OpInfo | None:
        return next((o for o in self.ops if o.index == index), None)


def display_name(name: str) -> str:
    """A tensor name for people: TFLite joins the names of fused operations with ';', the first says enough."""
    return name.split(";", 1)[0]


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


def decode(metadata: dict[str, str], source: str) -> ProgramInfo | None:
    """The program account of a blob's metadata, or None when the blob has none."""
    text = metadata.get(PROGRAM_KEY)
    if text is None:
        return None
    try:
        data: Any = json.loads(text)
        strings = [str(n) for n in data["strings"]]

        def pick(i: Any) -> str:
            if not isinstance(i, int) or not 0 <= i < len(strings):
                raise IndexError(i)
            return strings[i]

        ops = tuple(OpInfo(int(i), str(c), pick(n) if n != -1 else "", str(u), str(r))
                    for i, c, n, u, r in data["ops"])
        steps = tuple(StepInfo(int(o), str(k), str(n), pick(note), tuple(map(pick, rd)), tuple(map(pick, wr)))
                      for o, k, n, note, rd, wr in data["steps"])
        holds = {pick(k): int(v) for k, v in data["holds"]}
        views = {pick(k): pick(v) for k, v in data["views"]}
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise BlobError(f"{source}: metadata {PROGRAM_KEY} is malformed ({type(e).__name__})") from None
    if any(s.kind not in (NN, TP, HOST) for s in steps):
        raise BlobError(f"{source}: metadata {PROGRAM_KEY} names a step kind other than NN, TP, HOST")
    return ProgramInfo(ops, steps, holds, views)
