"""Mesa's golden submits replayed on the simulator classify like TFLite's reference kernels.

Both golden sets: the A311D's (v7 NN cores) and the i.MX 8M Plus's (v8).

The simulator gets exactly what Mesa gave the kernel (buffers at their recorded
addresses, descriptors, coefficients, command streams) plus the input image;
the CPU's share of the model (average pool, reshape, softmax) runs on npuc's
host kernels.  If the NN/TP jobs are simulated right, the top-1 class matches.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import lru_cache

import numpy as np
import pytest

import golden_jobs as G
import oracle
from npuc.hw.target import get_target
from npuc.errors import InputError
from npuc.frontend_tflite import load_tflite
from npuc.runtime.image import load_image_input
from npuc.golden import load_golden
from npuc.mesa_replay import MesaReplay, format_results, main, top_results

GOLDEN = G.GOLDEN_SETS[G.V7]
MODELS = ["mobilenet_quant_v1_224", "mobilenet_v2_1.0_224_quant"]
#: TFLite classes whose scores lie this many quantization steps below the best still count as its top-1.
TIE_STEPS = 4


@lru_cache(maxsize=None)
def replay(model: str, target: str = G.V7) -> MesaReplay:
    return MesaReplay(load_golden(G.model_dir(model, target)), load_tflite(oracle.model_path(model)),
                      get_target(target))


@pytest.mark.slow
@pytest.mark.parametrize("target", list(G.GOLDEN_SETS))
@pytest.mark.parametrize("image", oracle.all_images(), ids=lambda p: p.stem)
@pytest.mark.parametrize("model", MODELS)
def test_replay_top1_matches_tflite(model, image, target):
    x = load_image_input(image, 224, 224, "uint8")
    got = replay(model, target).run([x])[0].reshape(-1)
    want = oracle.run_reference(oracle.model_path(model), [x])[0].reshape(-1).astype(int)
    best = set(np.flatnonzero(want >= want.max() - TIE_STEPS).tolist())
    top1 = top_results(got, 1)[0][1]
    assert top1 in best, f"simulated top-1 {top1} ({got[top1]}), TFLite's best {sorted(best)} ({want.max()})"
    # Not only the winner: the whole distribution stays close to TFLite's.
    assert np.abs(got.astype(int) - want).max() <= 32


def test_replay_trace_names_every_job():
    r = replay("mobilenet_quant_v1_224")
    r.run([load_image_input(oracle.IMAGES / "grace_hopper.bmp", 224, 224, "uint8")])
    trace = r.device.trace  # the last submit: transpose, the 1x1 logits convolution, detranspose
    assert [j.name for j in trace.jobs] == ["submit 2 job 0 (TP)", "submit 2 job 1 (NN)", "submit 2 job 2 (TP)"]


def test_cli_prints_like_label_image(capsys):
    model = "mobilenet_quant_v1_224"
    args = [str(GOLDEN / model), str(oracle.model_path(model)), str(oracle.IMAGES / "grace_hopper.bmp"),
            "--labels", str(oracle.LABELS), "-n", "3"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].endswith(": 653 military uniform")
    score = float(lines[0].split(":")[0])
    assert 0.7 < score < 0.9 and lines[0].split(":")[0] == f"{score:.6g}"
    assert main(args[:3] + ["-n", "1", "--trace"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [lines[0].split(" ")[0] + " 653"]  # no labels: index only
    assert err.splitlines()[0] == "submit 1 job 0 (TP): descriptor 0xfcaf9000 flags 0x0 (stream byte 68)"
    assert len(err.splitlines()) == 30 + 3


def test_label_image_formatting():
    out = np.zeros(6, np.uint8)
    out[[1, 3, 4]] = [208, 13, 13]
    assert format_results(top_results(out, 5), ["a", "b", "c", "d", "e", "f"]) == [
        "0.815686: 1 b", "0.0509804: 4 e", "0.0509804: 3 d"]  # ties: higher index first; zeros below threshold
    # int8 outputs: (q + 128) / 256; the -128 (score 0) is below label_image's threshold
    assert format_results(top_results(np.array([-128, 127], np.int8), 2), None) == ["0.996094: 1"]


def test_cli_unusable_input_is_one_line_and_exit_1(tmp_path):
    model = str(oracle.model_path("mobilenet_quant_v1_224"))
    image = str(oracle.IMAGES / "grace_hopper.bmp")
    broken = tmp_path / "golden"
    shutil.copytree(GOLDEN / "mobilenet_quant_v1_224", broken)
    (broken / "jobs.json").write_text("[{\"submit\": \"submit_001\", \"type\": \"TP\"}]")
    cases = [
        ([str(tmp_path / "nope"), model, image], "not a golden directory"),
        ([str(GOLDEN / "mobilenet_v2_1.0_224_quant"), model, image], "do not match the model"),
        ([str(broken), model, image], "jobs.json: entry 0 is malformed"),
        ([str(GOLDEN / "mobilenet_quant_v1_224"), model, str(tmp_path)], "is a directory"),
    ]
    for args, message in cases:
        p = subprocess.run([sys.executable, "-m", "npuc.mesa_replay", *args], capture_output=True, text=True)
        assert p.returncode == 1, p.stderr
        assert p.stdout == "" and p.stderr.count("\n") == 1 and message in p.stderr, p.stderr


def test_golden_reader_checks_kept_bytes(tmp_path):
    broken = tmp_path / "golden"
    shutil.copytree(GOLDEN / "mobilenet_quant_v1_224", broken)
    meta = json.loads((broken / "submit_002" / "submit.json").read_text())
    (broken / "submit_002" / meta["bos"][0]["file"]).write_bytes(b"short")
    g = load_golden(broken)
    with pytest.raises(InputError, match=r"bo_000.bin: holds 5 bytes, but submit.json keeps 124"):
        MesaReplay(g, load_tflite(oracle.model_path("mobilenet_quant_v1_224")))
