"""The one timing rule every benchmark here uses: the median wall time of repeated calls."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_seconds(fn: Callable[[], object], runs: int, warm_up: bool = False) -> float:
    """Median seconds of ``runs`` calls of ``fn`` (after one untimed call with ``warm_up``: caches, imports)."""
    if warm_up:
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
