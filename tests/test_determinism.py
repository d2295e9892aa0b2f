"""Same input, same bytes: compiling never depends on hash seeds, the working directory or the run."""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

import oracle

SEEDS = ("0", "1", "4242")


def compile_in(cwd: Path, model: Path, seed: str) -> bytes:
    out = cwd / "m.vipbin"
    env = dict(os.environ, PYTHONHASHSEED=seed)
    p = subprocess.run([sys.executable, "-m", "npuc", "compile", str(model), "-o", "m.vipbin",
                        "--labels", str(oracle.LABELS)], cwd=cwd, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return out.read_bytes()


@pytest.mark.parametrize("name", ["mobilenet_v1_0.25_128_quant", "mobilenet_v2_1.0_224_quant", "split_concat"])
def test_identical_blobs_across_hash_seeds_and_directories(tmp_path, name):
    model = oracle.model_path(name)
    digests = set()
    for k, seed in enumerate(SEEDS):
        d = tmp_path / f"dir{k}" / "nested"
        d.mkdir(parents=True)
        digests.add(hashlib.sha256(compile_in(d, model, seed)).hexdigest())
    assert len(digests) == 1, f"{name}: {len(digests)} different blobs from {len(SEEDS)} seeds and directories"


def test_models_too_big_for_the_npu_are_refused_before_allocation(tmp_path):
    """Two 1.6 GB activations pass the per-tensor limit but not the arena's: a one-line LimitError, no output."""
    import tflite

    from npuc.driver import compile_model
    from npuc.errors import LimitError
    from tflite_builder import T, Option, OpSpec, build_model

    shape = (1, 16384, 16384, 6)
    q = dict(scale=[0.5], zero_point=[128])
    model = build_model([T(shape, "uint8", **q), T(shape, "uint8", **q), T(shape, "uint8", **q)],
                        OpSpec("ADD", "AddOptions", [Option(0, "b", tflite.ActivationFunctionType.NONE)]),
                        [0, 1], [2])
    path = tmp_path / "huge.tflite"
    path.write_bytes(model)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(LimitError) as e:
        compile_model(path)
    assert "limit" in str(e.value) and "\n" not in str(e.value)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200 * 1024, f"refusing the model allocated {grown_kib} KiB"
