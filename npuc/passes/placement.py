"""Placement: decide for every operator whether it runs on NN cores, TP cores or the host CPU.

Each decision carries its reason, so that ``npuc compile`` can say why an
operator fell back to the CPU.  The host is the fallback for everything the NPU
backend cannot take; an operator that has no host kernel either is a compile
error naming the first such operator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..backend_vip.target import Target
from ..errors import UnsupportedError
from ..ir import Graph, Op
from .host_params import host_params

NN, TP, HOST = "NN", "TP", "HOST"


@dataclass
class Decision:
    """Where one operator runs, why, and (for HOST) the folded kernel parameters."""

    op: Op
    unit: str
    reason: str
    params: dict[str, Any] = field(default_factory=dict)


def place_ops(graph: Graph, order: list[Op], target: Target) -> list[Decision]:
    """Decide a unit for every op, in execution order.

    The NPU lowering is not part of this milestone, so every operator goes to
    the host; an operator without a host kernel stops the compile with a
    one-line error naming it.
    """
    decisions = []
    for op in order:
        try:
            params = host_params(graph, op)
        except UnsupportedError as e:
            raise UnsupportedError(f"{e} (and no NPU lowering for {target.name} exists yet)") from None
        decisions.append(Decision(op, HOST, f"no {target.name} NPU lowering implemented yet", params))
    return decisions
