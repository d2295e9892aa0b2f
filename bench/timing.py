"""The timing rules every benchmark here uses: the median wall time of repeated calls, and one fresh process's
wall time and peak memory."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence


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


def run_child(argv: Sequence[str], cwd: str | Path | None = None) -> tuple[float, int, int, str]:
    """Run ``argv`` as a fresh process: (wall seconds, peak RSS in bytes, exit code, its output).

    The peak RSS is the child's own ``ru_maxrss`` from ``os.wait4`` (the children
    of ``resource.getrusage`` would mix every child this process ever had).  The
    output (stdout and stderr together) goes to a temporary file, so a chatty
    child can never block on a full pipe while it is being timed.
    """
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        child = subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read().decode("utf-8", "replace")
    return seconds, usage.ru_maxrss * 1024, child.returncode, output  # ru_maxrss is in KiB on Linux
