"""`npuc compile` against Arm's Vela compiler on the same model: wall time and peak memory, side by side.

Issue bar: npuc compiles MobileNet v1 1.0 224 in at most half Vela's wall time
and with a peak RSS of at most 150 MiB.  Each compiler runs as a user runs it,
in a fresh process (interpreter start-up and imports included): npuc as
``python -m npuc compile`` of this checkout, Vela as
``vela --accelerator-config ethos-u55-256``.  The two alternate (and swap which
goes first every round), so that the machine's load falls on both alike; the
figures are medians of ``--runs`` runs each, the peak RSS the largest of the
child's own ``ru_maxrss``.

Vela is not a dependency of npuc; install it with ``pip install -e '.[bench]'``
(or ``pip install ethos-u-vela``) or point ``--vela`` at its executable.

    python bench/bench_vs_vela.py [--model PATH] [--runs N] [--target NAME] [--vela PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench_compile import DEFAULT_MODEL, ROOT  # noqa: E402  (bench/bench_compile.py)
from timing import run_child  # noqa: E402  (bench/timing.py)

#: npuc's wall time over Vela's, at most (median against median).
RATIO_BAR = 0.5
#: npuc's peak RSS in MiB, at most.
RSS_BAR_MIB = 150
VELA_CONFIG = "ethos-u55-256"
MIB = 1 << 20

INSTALL_HINT = """Vela (Arm's Ethos-U compiler) is not installed: the comparison needs it.
Install it into this environment with
    python -m pip install -e '.[bench]'        (or: python -m pip install ethos-u-vela)
or pass the path of a vela executable with --vela PATH."""


def find_vela(given: str | None) -> str | None:
    """The vela executable: ``--vela``, else ``vela`` on PATH, else beside this Python (a venv not activated)."""
    if given:
        return shutil.which(given)
    return shutil.which("vela") or shutil.which("vela", path=str(Path(sys.executable).parent))


def measure(name: str, argv: list[str], cwd: Path, runs: list[dict]) -> None:
    """Run one compile, append its wall time and peak RSS to ``runs``; stop the benchmark if it fails."""
    seconds, rss, code, output = run_child(argv, cwd=cwd)
    if code != 0:
        tail = "\n".join(output.splitlines()[-20:])
        sys.exit(f"{name} failed (exit {code}): {' '.join(argv)}\n{tail}")
    runs.append({"wall_s": seconds, "rss_bytes": rss})


def summary(argv: list[str], runs: list[dict]) -> dict:
    return {"command": argv, "runs": runs,
            "median_wall_s": statistics.median(r["wall_s"] for r in runs),
            "median_rss_mib": statistics.median(r["rss_bytes"] for r in runs) / MIB,
            "peak_rss_mib": max(r["rss_bytes"] for r in runs) / MIB}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--runs", type=int, default=5, help="runs of each compiler (default 5)")
    ap.add_argument("--target", default="vipnano-qi", help="npuc's --target (default vipnano-qi)")
    ap.add_argument("--vela", help="the vela executable (default: vela on PATH)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    vela = find_vela(args.vela)
    if vela is None:
        sys.exit(f"--vela {args.vela}: not an executable" if args.vela else INSTALL_HINT)
    model = args.model.resolve()
    if not model.is_file():
        sys.exit(f"{model}: no such model")

    with tempfile.TemporaryDirectory() as tmp:
        npuc_argv = [sys.executable, "-m", "npuc", "compile", str(model), "--target", args.target,
                     "-o", str(Path(tmp) / "m.vipbin")]
        vela_argv = [vela, "--accelerator-config", VELA_CONFIG, "--output-dir", str(Path(tmp) / "vela"), str(model)]
        npuc_runs: list[dict] = []
        vela_runs: list[dict] = []
        for i in range(args.runs):
            pair = [("npuc", npuc_argv, ROOT, npuc_runs), ("vela", vela_argv, Path(tmp), vela_runs)]
            for name, argv, cwd, runs in pair if i % 2 == 0 else pair[::-1]:
                measure(name, argv, cwd, runs)

    npuc, vela_s = summary(npuc_argv, npuc_runs), summary(vela_argv, vela_runs)
    ratio = npuc["median_wall_s"] / vela_s["median_wall_s"]
    result = {"model": str(model), "runs": args.runs, "npuc": npuc, "vela": vela_s, "ratio": ratio,
              "bars": {"ratio_max": RATIO_BAR, "ratio_met": ratio <= RATIO_BAR,
                       "rss_max_mib": RSS_BAR_MIB, "rss_met": npuc["peak_rss_mib"] <= RSS_BAR_MIB}}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{model.name}, median of {args.runs} alternating runs each (fresh processes):")
    for name, s in (("npuc compile", npuc), (f"vela {VELA_CONFIG}", vela_s)):
        walls = [r["wall_s"] for r in s["runs"]]
        print(f"  {name:24s} {s['median_wall_s']:6.3f} s (min {min(walls):.3f}, max {max(walls):.3f}), "
              f"peak RSS {s['peak_rss_mib']:5.1f} MiB (median {s['median_rss_mib']:.1f})")
    bars = result["bars"]
    print(f"  npuc / vela wall time: {ratio:.2f}; bar <= {RATIO_BAR}: {'met' if bars['ratio_met'] else 'MISSED'}")
    print(f"  npuc peak RSS: {npuc['peak_rss_mib']:.1f} MiB; bar <= {RSS_BAR_MIB} MiB: "
          f"{'met' if bars['rss_met'] else 'MISSED'}")


if __name__ == "__main__":
    main()
