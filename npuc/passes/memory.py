"""Memory planning: give every activation tensor an offset in one arena.

Tensors whose lifetimes do not overlap share bytes, so the arena is close to
the peak working set rather than the sum of all activations.  A tensor lives
from the step that writes it (graph inputs: from the start) to the last step
that reads it (graph outputs: to the end).  Placement is greedy, largest tensor
first, lowest free offset first, which is deterministic and near optimal for
the chain-like graphs of vision models.  Constants are not in the arena: they
are packed into their own read-only buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph, Op

#: Alignment of every tensor in the arena and in the constant buffer.  64 bytes
#: satisfies every element type and the NPU's coefficient/stream alignment.
TENSOR_ALIGN = 64


@dataclass
class MemoryPlan:
    """Offsets of activations in the arena and of constants in the constant pool."""

    arena_offsets: dict[int, int]
    arena_size: int
    constant_offsets: dict[int, int]
    constant_size: int
    lifetimes: dict[int, tuple[int, int]]


def _align(n: int) -> int:
    return (n + TENSOR_ALIGN - 1) // TENSOR_ALIGN * TENSOR_ALIGN


def lifetimes(graph: Graph, order: list[Op]) -> dict[int, tuple[int, int]]:
    """First and last step index (inclusive) at which each non-constant tensor is live."""
    last = len(order)
    life: dict[int, list[int]] = {t: [0, last] for t in graph.inputs}
    for step, op in enumerate(order):
        for t in op.outputs:
            life.setdefault(t, [step, step])
        for t in op.inputs:
            if t is None or graph.tensors[t].is_constant:
                continue
            span = life.setdefault(t, [step, step])
            span[1] = max(span[1], step)
    for t in graph.outputs:
        if t in life:
            life[t][1] = last
    return {t: (a, b) for t, (a, b) in life.items()}


def plan_memory(graph: Graph, order: list[Op]) -> MemoryPlan:
    """Assign arena offsets with lifetime-based reuse, and constant offsets."""
    life = lifetimes(graph, order)
    tensors = sorted(life, key=lambda t: (-graph.tensors[t].nbytes, t))
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    offsets: dict[int, int] = {}
    for t in tensors:
        size = _align(max(graph.tensors[t].nbytes, 1))
        first, lastuse = life[t]
        busy = sorted((o, e) for o, e, f, l in placed if not (l < first or lastuse < f))
        offset = 0
        for o, e in busy:
            if offset + size <= o:
                break
            offset = max(offset, e)
        offsets[t] = offset
        placed.append((offset, offset + size, first, lastuse))
    arena = max((e for _, e, _, _ in placed), default=0)

    const_offsets: dict[int, int] = {}
    pos = 0
    used = sorted({t for op in order for t in op.inputs if t is not None and graph.tensors[t].is_constant})
    for t in used:
        const_offsets[t] = pos
        pos += _align(max(graph.tensors[t].nbytes, 1))
    return MemoryPlan(offsets, arena, const_offsets, pos, life)


def constant_pool(graph: Graph, plan: MemoryPlan) -> bytes:
    """The bytes of every constant at its planned offset."""
    pool = np.zeros(plan.constant_size, dtype=np.uint8)
    for t, off in plan.constant_offsets.items():
        raw = np.ascontiguousarray(graph.tensors[t].data).reshape(-1).view(np.uint8)
        pool[off:off + raw.size] = raw
    return pool.tobytes()
