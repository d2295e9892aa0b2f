"""The TP reshuffle of a stride-2 convolution's input: its estimated cost, and adding it to the program.

The geometry (reshuffled image and kernel) is passes/stride2.py's; here the
scheduler prices the reshuffle before building anything and, once it chose
it, adds the space-to-depth tensor and the TP operation writing it.
"""

from __future__ import annotations

from ..hw.perf import Cost, estimate_tp_moves
from ..hw.target import Target
from ..passes.conv_params import ConvGeometry
from ..passes.npu_program import PLANAR, Program, TPOp
from ..passes.stride2 import PHASES, reshuffled_size


def reshuffle_cost(geo: ConvGeometry, target: Target) -> Cost:
    """Estimated cost of the TP reshuffle, before it is built (its moves split over the TP cores)."""
    rows, cols = reshuffled_size(geo)
    total = rows * cols * geo.in_c * PHASES * PHASES
    share = -(-total // target.tp_cores)
    return estimate_tp_moves([share] * target.tp_cores, target)


def add_reshuffle(program: Program, steps: list, op: int, src: int, geo: ConvGeometry) -> int:
    """Append the TP reshuffle of planar ``src`` to ``steps`` and return the new planar tensor it writes."""
    t = program.graph.tensors[src]
    rows, cols = reshuffled_size(geo)
    dst = program.new_tensor(f"{t.name} (space-to-depth)", (1, rows, cols, geo.in_c * PHASES * PHASES),
                             t.dtype, t.quant, PLANAR)
    steps.append(TPOp("reshuffle", op, src, dst, {"kernel_h": geo.k_h, "kernel_w": geo.k_w, "pad_top": geo.pad_top,
                                                  "pad_left": geo.pad_left}))
    return dst
