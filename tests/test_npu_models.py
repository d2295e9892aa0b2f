"""Whole models compiled for the NPU and run on the simulator, against TFLite's reference kernels."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import oracle
from npuc import vipbin
from npuc.driver import compile_model
from npuc.passes.placement import HOST
from npuc.runtime.image import load_image_input
from npuc.runtime.runtime import Runtime
from npuc.sim.device import SimDevice

UINT8_MOBILENETS = [m for m in oracle.MOBILENETS if not m.startswith("tf2_")]
NPU_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "FULLY_CONNECTED"}
#: TFLite's best scores within this many quantization steps of each other all count as its top-1.
NEAR_TIE_STEPS = 4


def top1_agrees(ours: np.ndarray, ref: np.ndarray) -> bool:
    ref = ref.reshape(-1).astype(np.int64)
    return ref[int(np.argmax(ours.reshape(-1)))] >= ref.max() - NEAR_TIE_STEPS


@pytest.fixture(scope="module", params=UINT8_MOBILENETS)
def compiled(request):
    return request.param, compile_model(oracle.model_path(request.param))


def test_every_convolution_like_op_runs_on_the_npu(compiled):
    name, result = compiled
    program = result.program
    on_host = [program.op(i).name for i, (unit, _) in program.units.items()
               if unit == HOST and program.op(i).opcode in NPU_OPS]
    assert on_host == [], f"{name}: {on_host} fell back to the host"
    assert result.stats.nn_jobs > 0


def assert_top1_on_every_image(name: str, blob: bytes) -> None:
    """The blob, run on the simulator, gives TFLite's top-1 (near-ties included) on every shared image."""
    rt = Runtime(vipbin.read_blob(blob), SimDevice())
    info = rt.input_infos[0]
    worst = []
    for image in oracle.all_images():
        x = load_image_input(image, info.shape[1], info.shape[2], info.dtype)
        rt.set_input(0, x)
        ours = rt.run()[0]
        ref = oracle.run_reference(oracle.model_path(name), [x])[0]
        assert top1_agrees(ours, ref), f"{name} on {image.name}: ours {np.argmax(ours)}, TFLite {np.argmax(ref)}"
        worst.append(int(np.abs(ours.astype(int) - ref.astype(int)).max()))
    print(f"{name}: largest output difference per image (steps): {worst}")


def test_npu_blob_gives_tflite_top1_on_every_image(compiled):
    name, result = compiled
    assert_top1_on_every_image(name, result.blob)


def test_coefficient_bytes_of_mobilenet_v1_as_inspect_reports_them(tmp_path):
    out = tmp_path / "m.vipbin"
    model = oracle.model_path("mobilenet_quant_v1_224")
    assert subprocess.run([sys.executable, "-m", "npuc", "compile", str(model), "-o", str(out)],
                          capture_output=True).returncode == 0
    info = json.loads(subprocess.run([sys.executable, "-m", "npuc", "inspect", str(out), "--json"],
                                     capture_output=True, text=True, check=True).stdout)
    coefficient_bytes = info["summary"]["coefficient_bytes"]
    print(f"MobileNet v1 1.0 224 coefficient bytes per inference: {coefficient_bytes} (Mesa: 5,676,480)")
    assert 0 < coefficient_bytes <= 4_500_000


def test_partly_supported_model_still_compiles_and_runs():
    """Operators the NPU cannot run (here SOFTMAX) become host steps with a reason."""
    name = "tf2_mobilenet_v2_1.0_224_ptq"
    result = compile_model(oracle.model_path(name))
    reasons = {reason for unit, reason in result.program.units.values() if unit == HOST}
    assert reasons and all(reasons)
    rt = Runtime(vipbin.read_blob(result.blob), SimDevice())
    info = rt.input_infos[0]
    x = load_image_input(oracle.IMAGES / "grace_hopper.bmp", info.shape[1], info.shape[2], info.dtype)
    rt.set_input(0, x)
    assert top1_agrees(rt.run()[0], oracle.run_reference(oracle.model_path(name), [x])[0])


def test_split_and_concatenation_are_views_and_exact():
    """split_concat: channel SPLIT and CONCATENATION need no job of their own on the NPU; outputs are TFLite's."""
    name = "split_concat"
    result = compile_model(oracle.model_path(name))
    units = {result.program.op(i).opcode: unit for i, (unit, _) in result.program.units.items()}
    assert units == {"CONCATENATION": "alias", "SPLIT": "alias"}
    rt = Runtime(vipbin.read_blob(result.blob), SimDevice())
    rng = np.random.default_rng(5)
    for _ in range(3):
        xs = [rng.integers(0, 256, i.shape).astype(np.uint8) for i in rt.input_infos]
        for k, x in enumerate(xs):
            rt.set_input(k, x)
        for ours, ref in zip(rt.run(), oracle.run_reference(oracle.model_path(name), xs)):
            assert np.array_equal(ours, ref)


def test_running_twice_on_inputs_set_once_gives_the_same_outputs(compiled):
    """The arena must not reuse the graph inputs' bytes: TFLite keeps inputs across invokes, so callers do too."""
    name, result = compiled
    rt = Runtime(vipbin.read_blob(result.blob), SimDevice())
    info = rt.input_infos[0]
    rt.set_input(0, load_image_input(oracle.IMAGES / "cat.bmp", info.shape[1], info.shape[2], info.dtype))
    first = rt.run()
    for a, b in zip(first, rt.run()):
        assert np.array_equal(a, b)
