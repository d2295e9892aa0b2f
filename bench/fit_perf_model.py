"""Fit the performance model's two free constants, per target, to Mesa's measured latencies (docs/performance-model.md).

Mesa's golden submits for MobileNet v1 and v2 (../shared/golden) are estimated
job by job with npuc's model (``npuc.latency.estimate_golden``); the DRAM rate
``perf_dram_bytes_per_cycle`` and the per-submit host round trip
``perf_submit_seconds`` are chosen to minimise the sum of squared log errors
against Mesa's published latencies on that board (vipnano-nn.md 8.4: A311D
6.6 and 6.9 ms, i.MX 8M Plus 7.9 and 8.0 ms; there the submit cost is the A311D's
and only the DRAM rate is fitted).  The DRAM rate is searched inside
what the board's memory can give (A311D: the documented 6.4-12.8 GB/s; i.MX 8M
Plus: 3.2 GB/s up to the 16 GB/s peak of its 32-bit LPDDR4-4000).  Every other
constant is fixed beforehand.  Prints the fits; Target.perf_* holds the results.

    python bench/fit_perf_model.py
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from npuc.hw.target import VIPNANO_QI, VIPNANO_SI_PLUS, Target
from npuc.latency import LatencyEstimate, estimate_golden

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden"
SUBMIT_RANGE = [s * 1e-5 for s in range(0, 151)]     # 0 .. 1.5 ms


@dataclass(frozen=True)
class Board:
    """What one target's fit uses: Mesa's golden submits, its measured latencies, the DRAM rates to search."""

    target: Target
    golden: Path
    measured: dict[str, float]      # model -> seconds (docs/teflon.rst, vipnano-nn.md 8.4)
    dram_range: list[float]         # bytes per NPU cycle
    submit_range: list[float]       # seconds per submit


BOARDS = [
    Board(VIPNANO_QI, GOLDEN / "mesa-25.0.7-vipnano-qi",
          {"mobilenet_quant_v1_224": 6.6e-3, "mobilenet_v2_1.0_224_quant": 6.9e-3},
          [b / 4 for b in range(32, 65)], SUBMIT_RANGE),   # 8.0 .. 16.0 bytes per cycle
    # Both MobileNets cost the same here (Mesa's v8 jobs are DRAM-bound alike), so the two constants
    # trade against each other; the submit cost is the A311D's (the same Teflon and kernel driver) and
    # only the DRAM rate is fitted.
    Board(VIPNANO_SI_PLUS, GOLDEN / "mesa-25.0.7-vipnano-si-plus",
          {"mobilenet_quant_v1_224": 7.9e-3, "mobilenet_v2_1.0_224_quant": 8.0e-3},
          [b / 4 for b in range(16, 81)], [VIPNANO_QI.perf_submit_seconds]),   # 4.0 .. 20.0 bytes per cycle
]


def _error(estimates: dict[str, LatencyEstimate], submit: float, measured: dict[str, float]) -> float:
    return sum(math.log((e.total_seconds + e.submits * submit) / measured[m]) ** 2 for m, e in estimates.items())


def fit(board: Board) -> tuple[float, float, float]:
    """(DRAM bytes per cycle, submit seconds, squared log error) of the best fit."""
    best = (math.inf, 0.0, 0.0)
    for dram in board.dram_range:
        target = dataclasses.replace(board.target, perf_dram_bytes_per_cycle=dram, perf_submit_seconds=0.0)
        estimates = {m: estimate_golden(board.golden / m, target) for m in board.measured}
        for submit in board.submit_range:
            err = _error(estimates, submit, board.measured)
            if err < best[0]:
                best = (err, dram, submit)
    return best[1], best[2], best[0]


def main() -> None:
    for board in BOARDS:
        dram, submit, err = fit(board)
        target = dataclasses.replace(board.target, perf_dram_bytes_per_cycle=dram, perf_submit_seconds=submit)
        print(f"{target.name}: perf_dram_bytes_per_cycle = {dram} ({dram * target.clock_hz / 1e9:.1f} GB/s), "
              f"perf_submit_seconds = {submit * 1e6:.0f} us (squared log error {err:.4f})")
        for model, measured in board.measured.items():
            e = estimate_golden(board.golden / model, target)
            parts = ", ".join(f"{k} {v * 1e3:.3f}" for k, v in e.breakdown().items())
            print(f"  {model}: estimate {e.total_seconds * 1e3:.2f} ms, Mesa measured {measured * 1e3:.1f} ms "
                  f"({e.total_seconds / measured - 1:+.1%}); ms by part: {parts}")


if __name__ == "__main__":
    main()
