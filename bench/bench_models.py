"""Every model in ../shared/models: compile time, placement, estimated NPU latency and host-only run time.

For each model and each NPU (vipnano-qi: A311D/S905D3; vipnano-si-plus:
i.MX 8M Plus) it reports ``npuc compile``'s wall time in this process (median
of ``--runs``), how many operators went to the NN cores, the TP cores, the
host CPU and compile time, and the performance model's latency estimate for
the blob (``npuc inspect``'s ``summary.estimate.latency_ms``) and the time
one inference of it takes on npuc's functional simulator (how long a check
off the board takes, not NPU latency).  For the ``--cpu-only`` blob it times
one inference on the Python runtime against one invoke of TFLite's reference
kernels (BUILTIN_REF) on the same random inputs.  Run times are medians of
``--runs`` after a warm-up.  Models npuc refuses are listed with the reason.

    python bench/bench_models.py [--runs N] [--models NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

# One BLAS thread, as bench_sim: TFLite's reference kernels are single-threaded too.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from timing import median_seconds  # noqa: E402  (bench/timing.py)

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT.parent / "shared" / "models"
TARGETS = ("vipnano-qi", "vipnano-si-plus")


def _random_inputs(blob) -> list[np.ndarray]:
    """Seeded random values of every input's type and shape."""
    rng = np.random.default_rng(0)
    out = []
    for t in blob.inputs:
        info = blob.tensors[t]
        dtype = np.dtype(info.dtype)
        if dtype.kind == "f":
            out.append(rng.standard_normal(info.shape).astype(dtype))
        elif dtype.kind == "b":
            out.append(rng.integers(0, 2, info.shape).astype(dtype))
        else:
            lo, hi = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype.itemsize <= 2 else (-100, 100)
            out.append(rng.integers(lo, hi, info.shape, endpoint=True).astype(dtype))
    return out


def _units(raw: bytes) -> str:
    """Operators per unit, as npuc inspect counts them: "NN 27 · TP 2 · HOST 1"."""
    from npuc import vipbin
    from npuc.inspect_blob import describe

    counts = Counter(describe(vipbin.read_blob(raw), raw)["summary"]["ops"] or {})
    return " · ".join(f"{unit} {n}" for unit, n in sorted(counts.items()))


def _latency_ms(raw: bytes) -> float:
    from npuc import vipbin
    from npuc.inspect_blob import describe

    return describe(vipbin.read_blob(raw), raw)["summary"]["estimate"]["latency_ms"]


def _inference(runtime, inputs: list[np.ndarray]) -> Callable[[], None]:
    """One run of the runtime's blob on ``inputs``."""
    def run() -> None:
        for k, x in enumerate(inputs):
            runtime.set_input(k, x)
        runtime.run()
    return run


def bench_model(path: Path, runs: int) -> list[str]:
    """One table row per target (the host-only timings on the first)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from npuc import vipbin
    from npuc.driver import compile_model
    from npuc.errors import NpucError
    from npuc.runtime.runtime import Runtime
    from npuc.sim.device import SimDevice, device_like

    rows = []
    for target in TARGETS:
        try:
            compile_model(path, target)                   # warm caches, and find refusals
        except NpucError as e:
            return [f"| {path.stem} | {target} | refused: {str(e).splitlines()[0]} | | | | | |"]
        seconds = median_seconds(lambda: compile_model(path, target), runs)
        raw = compile_model(path, target).blob
        blob = vipbin.read_blob(raw)
        simulated = median_seconds(_inference(Runtime(blob, device_like(blob.identity)), _random_inputs(blob)), runs,
                                   warm_up=True)
        rows.append([path.stem, target, f"{seconds:.2f} s", _units(raw), f"{_latency_ms(raw):.2f}",
                     f"{simulated * 1e3:.1f} ms", "", ""])
    cpu_blob = vipbin.read_blob(compile_model(path, npu=False).blob)
    inputs = _random_inputs(cpu_blob)
    python_run = _inference(Runtime(cpu_blob, SimDevice()), inputs)

    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()

    def tflite_run() -> None:
        for d, x in zip(it.get_input_details(), inputs):
            it.set_tensor(d["index"], x)
        it.invoke()

    rows[0][6] = f"{median_seconds(python_run, runs, warm_up=True) * 1e3:.1f} ms"
    rows[0][7] = f"{median_seconds(tflite_run, runs, warm_up=True) * 1e3:.1f} ms"
    return ["| " + " | ".join(r) + " |" for r in rows]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--models", nargs="*", help="model names (file stems); default: every model")
    args = ap.parse_args()
    paths = sorted(MODELS.glob("*.tflite"))
    if args.models:
        paths = [p for p in paths if p.stem in args.models]
    print("| model | NPU | compile | operators per unit | estimated NPU latency (ms) | blob on the simulator "
          "| --cpu-only blob, Python runtime | TFLite BUILTIN_REF |")
    print("|---|---|---|---|---|---|---|---|")
    for path in paths:
        for row in bench_model(path, args.runs):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
