"""Per-channel int8 on v7 NN cores: every grouping policy against TFLite, layer by layer, and what it costs.

For each policy (npuc.passes.scale_groups.GroupingPolicy) the TF2 MobileNet v2
is lowered, every CONV_2D and DEPTHWISE_CONV_2D is run alone on the simulator
from TFLite's own input tensors (grace_hopper.bmp and cat.bmp), and the
outputs are compared with TFLite's; the cost is the cost model's estimate of
the whole program.  With ``--top1`` each policy's blob also runs end to end on
every shared image.  docs/per-channel-int8.md quotes the output.

    python bench/bench_per_channel.py [--top1] [--layers]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import oracle  # noqa: E402
from lowering_harness import encoded_program, verify_op  # noqa: E402
from npuc import vipbin  # noqa: E402
from npuc.passes.npu_program import TPJob  # noqa: E402
from npuc.backend_vip.jobs import NNJob
from npuc.hw.perf import Cost, estimate_nn_descriptor, estimate_tp_descriptors  # noqa: E402
from npuc.hw.target import VIPNANO_QI  # noqa: E402
from npuc.driver import compile_model  # noqa: E402
from npuc.frontend_tflite import load_tflite  # noqa: E402
from npuc.passes import scale_groups  # noqa: E402
from npuc.runtime.image import load_image_input  # noqa: E402
from npuc.runtime.runtime import Runtime  # noqa: E402
from npuc.sim.device import SimDevice  # noqa: E402

MODEL = "tf2_mobilenet_v2_1.0_224_ptq"
IMAGES = ("grace_hopper.bmp", "cat.bmp")
UNBOUNDED = float("inf")
POLICIES = {
    "one job per layer, plain rounding (~ Mesa's fallback)": scale_groups.GroupingPolicy(UNBOUNDED, True, False),
    "one job per layer, zero-sum rounding": scale_groups.GroupingPolicy(UNBOUNDED, True, True),
    "groups within 2x, weights kept, mean multiplier": scale_groups.GroupingPolicy(2.0, False, False),
    "groups within 4x, requantized, zero-sum": scale_groups.GroupingPolicy(4.0, True, True),
    "groups within 2x, requantized, plain rounding": scale_groups.GroupingPolicy(2.0, True, False),
    "groups within 2x, requantized, zero-sum (npuc)": scale_groups.GroupingPolicy(2.0, True, True),
    "groups within 1.25x, requantized, zero-sum": scale_groups.GroupingPolicy(1.25, True, True),
    "one job per scale (exact multipliers)": scale_groups.GroupingPolicy(1.0, True, True),
}


def cost_of(program) -> Cost:
    total = Cost()
    for s in program.steps:
        if isinstance(s, NNJob):
            total += estimate_nn_descriptor(s.desc, s.coefficients.total_bytes, VIPNANO_QI)
        elif isinstance(s, TPJob):
            total += estimate_tp_descriptors([c.desc for c in s.cores], VIPNANO_QI)
    return total


def top1(name: str) -> str:
    result = compile_model(oracle.model_path(MODEL))
    rt = Runtime(vipbin.read_blob(result.blob), SimDevice())
    info = rt.input_infos[0]
    agree = 0
    for image in oracle.all_images():
        x = load_image_input(image, info.shape[1], info.shape[2], info.dtype)
        rt.set_input(0, x)
        ours = rt.run()[0].reshape(-1).astype(int)
        ref = oracle.run_reference(oracle.model_path(MODEL), [x])[0].reshape(-1).astype(int)
        agree += int(ref[int(np.argmax(ours))] >= ref.max() - 4)
    return f"{agree}/{len(oracle.all_images())}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top1", action="store_true", help="also run every policy end to end on every image")
    ap.add_argument("--layers", action="store_true", help="print the per-layer figures of every policy")
    args = ap.parse_args()
    path = oracle.model_path(MODEL)
    values = []
    for image in IMAGES:
        x = load_image_input(oracle.IMAGES / image, 224, 224, "uint8")
        values.append(oracle.run_reference_all(path, [x]))
    clock = VIPNANO_QI.clock_hz
    print("| policy | NN jobs | est. cycles (ms) | input bytes read | exact | worst layer | max steps |"
          + (" top-1 |" if args.top1 else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if args.top1 else ""))
    for name, policy in POLICIES.items():
        scale_groups.POLICY = policy
        start = time.perf_counter()
        g = load_tflite(path)
        program = encoded_program(g, VIPNANO_QI)
        cost = cost_of(program)
        total, exact, worst, steps, rows = 0, 0.0, 100.0, 0, []
        for op in g.ops:
            if op.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                continue
            results = [verify_op(program, op.index, v, VIPNANO_QI) for v in values]
            n = sum(g.tensors[t].num_elements for t in op.outputs) * len(results)
            e = sum(r.exact for r in results) / len(results)
            m = max(r.max_diff for r in results)
            total, exact = total + n, exact + n * e / 100
            worst, steps = min(worst, e), max(steps, m)
            rows.append(f"{op.index}:{e:.1f}/{m}")
        extra = f" {top1(name)} |" if args.top1 else ""
        print(f"| {name} | {cost.jobs} | {cost.cycles:,} ({1e3 * cost.cycles / clock:.1f}) | {cost.input_bytes:,} | "
              f"{100 * exact / total:.2f} % | {worst:.1f} % | {steps} |{extra}", flush=True)
        if args.layers:
            print("    " + " ".join(rows) + f"  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
