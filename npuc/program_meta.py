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
