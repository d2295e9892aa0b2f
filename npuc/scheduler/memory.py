"""Memory planning: give every tensor of the lowered program its bytes.

Activations share one arena.  A tensor lives from the step that first writes
it to the last step that reads it; tensors whose lifetimes do not overlap may
share bytes, so the arena stays close to the peak working set.  Graph inputs
and outputs keep their bytes for the whole program, so that a caller may set
the inputs once and run many times, as with TFLite.  Aliases (reshapes, views)
own no bytes: they live inside the tensor they view and stretch its lifetime.
Tensors that a job reads as one image (the two inputs of an NN ADD) form a
block stored back to back, with no gap.  Placement is greedy, largest block
first, at the lowest free offset: deterministic, and near optimal for the
chain-like graphs of vision models.  The state of a stateful model (tensors
with an ``initial`` value) comes first, in a region no other tensor shares,
and the arena's initial bytes hold its starting values: a runtime session
initializes the arena once, so the state carries from one run to the next.
Constants read by host steps are packed into their own read-only pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..passes.npu_program import Program, Ref, step_reads, step_writes
from ..errors import LimitError, UnsupportedError
from ..ir import Graph
from ..vipbin import MAX_BUFFER_BYTES

#: Alignment of every block in the arena and of every constant.  64 bytes suits
#: every element type and the NPU's burst size; Mesa's tensors are page aligned
#: only because each lives in its own buffer object.
TENSOR_ALIGN = 64


@dataclass
class MemoryPlan:
    """Byte offset of every stored tensor in the arena, and of every host constant in its pool."""

    arena_offsets: dict[int, int]
    arena_size: int
    constant_offsets: dict[int, int]
    constant_size: int
    lifetimes: dict[int, tuple[int, int]]
    state_init: bytes = b""       # the arena's first bytes: every state tensor's value at session start


def _align(n: int) -> int:
    return (n + TENSOR_ALIGN - 1) // TENSOR_ALIGN * TENSOR_ALIGN


def _blocks(program: Program, roots: set[int]) -> list[list[int]]:
    """Root tensors grouped into back-to-back chains (singletons for the rest)."""
    nxt: dict[int, int] = {}
    prv: dict[int, int] = {}
    for group in program.adjacent:
        members = [program.root(Ref(t)) for t in group]
        if any(m.offset for m in members):
            raise UnsupportedError("a tensor that must be stored back to back with another is itself a view")
        for a, b in zip(members, members[1:]):
            if nxt.get(a.tensor, b.tensor) != b.tensor or prv.get(b.tensor, a.tensor) != a.tensor:
                raise UnsupportedError(f"tensor {a.tensor} or {b.tensor} must be stored next to two different tensors")
            nxt[a.tensor], prv[b.tensor] = b.tensor, a.tensor
    blocks, covered = [], 0
    for t in sorted(roots):
        if t in prv:
            continue
        chain = [t]
        while chain[-1] in nxt:
            chain.append(nxt[chain[-1]])
        blocks.append(chain)
        covered += len(chain)
    if covered != len(roots):
        raise UnsupportedError("back-to-back storage requirements form a cycle")
    return blocks


def plan_memory(program: Program, inputs: list[int], outputs: list[int]) -> MemoryPlan:
    """Arena offsets for every tensor the program's steps touch, plus the host-constant pool."""
    graph = program.graph
    last = len(program.steps)
    life: dict[int, list[int]] = {}

    def touch(t: int, step: int) -> None:
        if graph.tensors[t].is_constant:
            return
        r = program.root(Ref(t)).tensor
        span = life.setdefault(r, [step, step])
        span[0] = min(span[0], step)
        span[1] = max(span[1], step)

    for t in inputs:
        # Inputs live through the whole program: the caller may set them once and run many times.
        touch(t, -1)
        touch(t, last)
    for i, step in enumerate(program.steps):
        for t in step_reads(step) + step_writes(step):
            touch(t, i)
    for t in outputs:
        touch(t, last)

    size = {r: max(graph.tensors[r].nbytes, 1) for r in life}
    state = sorted(r for r in life if graph.tensors[r].initial is not None)
    offsets, state_init = _state_region(graph, state)
    blocks = _blocks(program, set(life) - set(state))
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    if state:
        placed.append((0, len(state_init), -2, last + 1))
    for block in sorted(blocks, key=lambda b: (-sum(size[t] for t in b), b[0])):
        nbytes = _align(sum(size[t] for t in block))
        first = min(life[t][0] for t in block)
        lastuse = max(life[t][1] for t in block)
        offset = 0
        for o, e in sorted((o, e) for o, e, f, l in placed if not (l < first or lastuse < f)):
            if offset + nbytes <= o:
                break
            offset = max(offset, e)
        pos = offset
        for t in block:
            offsets[t] = pos
            pos += size[t]
        placed.append((offset, offset + nbytes, first, lastuse))
    arena = max((e for _, e, _, _ in placed), default=0)
    if arena > MAX_BUFFER_BYTES:
        raise LimitError(f"the activations need an arena of {arena} bytes at their peak, more than the limit of "
                         f"{MAX_BUFFER_BYTES} bytes for one NPU buffer")

    const_offsets: dict[int, int] = {}
    pos = 0
    for step in program.steps:
        for t in step_reads(step):
            if graph.tensors[t].is_constant and t not in const_offsets:
                const_offsets[t] = pos
                pos += _align(max(graph.tensors[t].nbytes, 1))
    if pos > MAX_BUFFER_BYTES:
        raise LimitError(f"host constants need {pos} bytes, more than the limit of {MAX_BUFFER_BYTES} bytes for one buffer")
    return MemoryPlan(offsets, arena, const_offsets, pos, {t: (a, b) for t, (a, b) in life.items()}, state_init)


def _state_region(graph: Graph, state: list[int]) -> tuple[dict[int, int], bytes]:
    """Offsets of the state tensors, one after the other from 0, and the region's initial bytes."""
    offsets: dict[int, int] = {}
    init = bytearray()
    for t in state:
        offsets[t] = len(init)
        init += np.ascontiguousarray(graph.tensors[t].initial).tobytes()
        init += bytes(_align(len(init)) - len(init))
    return offsets, bytes(init)


def tensor_offset(program: Program, plan: MemoryPlan, ref: Ref) -> int:
    """Arena byte offset of a Ref (aliases resolved)."""
    root = program.root(ref)
    return plan.arena_offsets[root.tensor] + root.offset


def constant_pool(program: Program, plan: MemoryPlan) -> bytes:
    """The bytes of every host constant at its planned offset."""
    pool = np.zeros(plan.constant_size, dtype=np.uint8)
    for t, off in plan.constant_offsets.items():
        raw = np.ascontiguousarray(program.graph.tensors[t].data).reshape(-1).view(np.uint8)
        pool[off:off + raw.size] = raw
    return pool.tobytes()
