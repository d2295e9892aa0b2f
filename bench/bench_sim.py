"""Simulated inference of Mesa's golden MobileNet v1 against TFLite's reference kernels.

Measures, in one process and on the same input:

* the first simulated inference, including everything a cold start pays
  (reading the golden directory, binding buffers, decoding coefficients);
* the steady-state simulated inference (decoded coefficients cached), median of
  several runs;
* TFLite's BUILTIN_REF interpreter on the same input, median of several runs;
* where the steady-state simulator time goes: NN jobs, TP jobs, the rest (host
  kernels, stream parsing, tensor copies), medians over as many runs.

Bars (issue "A functional VIPNano-QI simulator"): steady state at most 1.5x
TFLite's time; first inference under 2 s.

    python bench/bench_sim.py [--runs N] [--model NAME] [--image PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# Small matrix products run faster on one BLAS thread than on contended ones (2-core machine);
# TFLite's reference kernels are single-threaded too, so the comparison stays fair.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import oracle  # noqa: E402  (tests/oracle.py: TFLite reference kernels and shared paths)
from npuc.frontend_tflite import load_tflite  # noqa: E402
from npuc.runtime.image import load_image_input  # noqa: E402
from npuc.sim import cmdstream  # noqa: E402
from npuc.golden import load_golden  # noqa: E402
from npuc.mesa_replay import MesaReplay  # noqa: E402
from timing import median_seconds  # noqa: E402  (bench/timing.py)

GOLDEN = oracle.SHARED / "golden" / "mesa-25.0.7-vipnano-qi"
STEADY_BAR = 1.5     # steady state / TFLite
FIRST_BAR_S = 2.0    # first inference, seconds


def job_split(replay: MesaReplay, x) -> dict[str, float]:
    """Seconds per job kind (and the rest: host kernels, stream parsing, copies) in one run."""
    spent = {"NN": 0.0, "TP": 0.0}
    originals = {"NN": cmdstream.run_nn_job, "TP": cmdstream.run_tp_job}

    def timed(kind):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return originals[kind](*args, **kwargs)
            finally:
                spent[kind] += time.perf_counter() - start
        return run

    cmdstream.run_nn_job, cmdstream.run_tp_job = timed("NN"), timed("TP")
    try:
        start = time.perf_counter()
        replay.run([x])
        total = time.perf_counter() - start
    finally:
        cmdstream.run_nn_job, cmdstream.run_tp_job = originals["NN"], originals["TP"]
    return {"NN jobs": spent["NN"], "TP jobs": spent["TP"], "rest": total - spent["NN"] - spent["TP"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--model", default="mobilenet_quant_v1_224")
    parser.add_argument("--image", default=str(oracle.IMAGES / "grace_hopper.bmp"))
    args = parser.parse_args()

    graph = load_tflite(oracle.model_path(args.model))
    x = load_image_input(args.image, 224, 224, "uint8")

    start = time.perf_counter()
    replay = MesaReplay(load_golden(GOLDEN / args.model), graph)
    out = replay.run([x])[0]
    first = time.perf_counter() - start

    steady = median_seconds(lambda: replay.run([x]), args.runs)
    oracle.run_reference(oracle.model_path(args.model), [x])  # build the interpreter outside the timing
    tflite = median_seconds(lambda: oracle.run_reference(oracle.model_path(args.model), [x]), args.runs)
    splits = [job_split(replay, x) for _ in range(args.runs)]
    split = {k: statistics.median(s[k] for s in splits) for k in splits[0]}
    same_top1 = int(out.argmax()) == int(oracle.run_reference(oracle.model_path(args.model), [x])[0].argmax())

    ratio = steady / tflite
    rows = [
        ("first simulated inference (cold, with decoding)", f"{first * 1e3:8.1f} ms",
         f"bar < {FIRST_BAR_S:.1f} s: {'met' if first < FIRST_BAR_S else 'MISSED'}"),
        (f"steady-state simulated inference (median of {args.runs})", f"{steady * 1e3:8.1f} ms",
         f"{ratio:.2f}x TFLite, bar {STEADY_BAR}x: {'met' if ratio <= STEADY_BAR else 'MISSED'}"),
        (f"TFLite BUILTIN_REF (median of {args.runs})", f"{tflite * 1e3:8.1f} ms", ""),
    ] + [(f"  of a simulated run (median): {k}", f"{v * 1e3:8.1f} ms", "") for k, v in split.items()]
    print(f"{args.model} on {Path(args.image).name}; same top-1 as TFLite: {same_top1}")
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
