"""CPU time of all coefficient planning and packing of one model's compile (npuc/coefs), both formats.

Compiles the model once per target, recording every buffer the lowering
plans (candidates included) and which of them the emitter packs, then times
planning all of them and packing the packed ones again, in process CPU time
(less sensitive to other load than wall time), the best of N rounds.
Issue bar: under 0.08 s each for MobileNet v1 1.0 224.

    python bench/bench_coefs.py [--model PATH] [--rounds N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from npuc.coefs import KernelGeometry, v7, v8
from npuc.driver import compile_model
from npuc.hw.target import Target, get_target

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT.parent / "shared" / "models" / "mobilenet_quant_v1_224.tflite"
BAR_S = 0.08

Call = tuple[np.ndarray, np.ndarray, "np.ndarray | None", KernelGeometry, bool]


def recorded_calls(model: Path, target: Target) -> list[Call]:
    """(weights, biases, trailers or None, geometry, packed) of every buffer the compile plans."""
    plans, packed = [], set()
    plan7, plan8, pack7, pack8 = v7.plan_coefficients, v8.plan_coefficients, v7.ZeroRunPlan.pack, v8.HuffmanPlan.pack

    def record7(w, b, t, geo, tgt, *args, **kw):
        plan = plan7(w, b, t, geo, tgt, *args, **kw)
        plans.append((plan, (w.copy(), np.array(b), np.array(t), geo)))
        return plan

    def record8(w, b, geo, tgt, *args, **kw):
        plan = plan8(w, b, geo, tgt, *args, **kw)
        plans.append((plan, (w.copy(), np.array(b), None, geo)))
        return plan

    def packed7(self):
        packed.add(id(self))
        return pack7(self)

    def packed8(self):
        packed.add(id(self))
        return pack8(self)

    v7.plan_coefficients, v8.plan_coefficients, v7.ZeroRunPlan.pack, v8.HuffmanPlan.pack = (
        record7, record8, packed7, packed8)
    try:
        compile_model(model, target.name)
    finally:
        v7.plan_coefficients, v8.plan_coefficients, v7.ZeroRunPlan.pack, v8.HuffmanPlan.pack = (
            plan7, plan8, pack7, pack8)
    return [(*args, id(plan) in packed) for plan, args in plans]


def one_round(calls: list[Call], target: Target) -> tuple[float, float, int]:
    plan_s = pack_s = 0.0
    total = 0
    for weights, biases, trailers, geo, packed in calls:
        start = time.process_time()
        if trailers is not None:
            plan = v7.plan_coefficients(weights, biases, trailers, geo, target)
        else:
            plan = v8.plan_coefficients(weights, biases, geo, target)
        plan_s += time.process_time() - start
        if packed:
            start = time.process_time()
            total += len(plan.pack())
            pack_s += time.process_time() - start
    return plan_s, pack_s, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    for name in ("vipnano-qi", "vipnano-si-plus"):
        target = get_target(name)
        calls = recorded_calls(args.model, target)
        best = min((one_round(calls, target) for _ in range(args.rounds)), key=lambda r: r[0] + r[1])
        plan_s, pack_s, total = best
        print(f"{args.model.name} {name}: {len(calls)} plans ({sum(c[4] for c in calls)} packed, "
              f"{sum(c[0].size for c in calls):,} weights, {total:,} bytes): plan {plan_s * 1e3:.1f} ms, "
              f"pack {pack_s * 1e3:.1f} ms, total {(plan_s + pack_s) * 1e3:.1f} ms; "
              f"bar < {BAR_S * 1e3:.0f} ms: {'met' if plan_s + pack_s < BAR_S else 'MISSED'}")


if __name__ == "__main__":
    main()
