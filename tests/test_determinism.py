"""Same input, same bytes: compiling never depends on hash seeds, the working directory or the run."""

from __future__ import annotations

import hashlib
import os
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
