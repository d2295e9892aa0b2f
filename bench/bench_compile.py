"""Wall time of `npuc compile` for MobileNet v1 1.0 224 (issue bar: under 1 s, median of 5).

Runs the real command in a fresh process each time, as a user would, so
interpreter start-up and imports are included; also gives the peak RSS.
bench/bench_vs_vela.py puts the same figures beside Arm's Vela compiler.

    python bench/bench_compile.py [--model PATH] [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from timing import run_child  # noqa: E402  (bench/timing.py)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "mobilenet_quant_v1_224.tflite"
BAR_S = 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    times, peaks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "npuc", "compile", str(args.model), "-o", str(Path(tmp) / "m.vipbin")]
        for _ in range(args.runs):
            seconds, rss, code, output = run_child(argv)
            if code != 0:
                sys.exit(f"npuc compile failed (exit {code}):\n{output}")
            times.append(seconds)
            peaks.append(rss)
    med = statistics.median(times)
    print(f"npuc compile {args.model.name}: median {med:.3f} s over {args.runs} runs "
          f"(min {min(times):.3f}, max {max(times):.3f}); bar < {BAR_S:.1f} s: {'met' if med < BAR_S else 'MISSED'}; "
          f"peak RSS {max(peaks) / (1 << 20):.1f} MiB")


if __name__ == "__main__":
    main()
