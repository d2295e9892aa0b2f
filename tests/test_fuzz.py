"""5,000 mutated inputs per entry point: only one-line NpucErrors, no hang, bounded memory.

Each entry point runs in its own process (tests/fuzzing.py), so a hang is cut
by the timeout and the peak memory measured is the fuzzer's own.  Inputs are
seeded: a failure names its index, and ``python tests/fuzzing.py ENTRY N SEED``
reproduces it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

FUZZER = Path(__file__).resolve().parent / "fuzzing.py"
COUNT = int(os.environ.get("NPUC_FUZZ_COUNT", "5000"))
SEED = 20261121
PER_INPUT_S = 2.0             # every input handled within this time
PROCESS_TIMEOUT_S = 600       # the whole run of one entry point
PEAK_MEMORY_BYTES = 2 << 30   # 2 GiB


@pytest.mark.parametrize("entry", ["frontend", "vipbin", "simulator", "image"])
def test_mutated_inputs_fail_only_with_one_line_errors(entry):
    p = subprocess.run([sys.executable, str(FUZZER), entry, str(COUNT), str(SEED)], capture_output=True, text=True,
                       timeout=PROCESS_TIMEOUT_S)
    assert p.returncode == 0, p.stderr[-2000:]
    report = json.loads(p.stdout)
    print(f"\n{entry}: {report['count']} inputs: {report['outcomes']}; slowest {report['slowest_s']} s "
          f"(input {report['slowest_index']})")
    assert report["unexpected_count"] == 0, f"uncaught exceptions (seed {SEED}): {report['unexpected']}"
    assert report["multiline"] == [], f"multi-line error messages: {report['multiline']}"
    assert report["slowest_s"] < PER_INPUT_S, f"input {report['slowest_index']} took {report['slowest_s']} s"
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB
    assert peak < PEAK_MEMORY_BYTES, f"a fuzzing process peaked at {peak / 2**20:.0f} MiB"
