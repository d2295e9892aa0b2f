"""Compile real models for the host CPU and run them: outputs must equal TFLite's reference kernels bit for bit.

The host kernels are npuc's reference path (``npuc compile --cpu-only``), so
this holds exactly; NPU-compiled blobs are checked in test_npu_models.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import oracle
from npuc import vipbin
from npuc.driver import compile_model
from npuc.errors import UnsupportedError
from npuc.runtime.image import load_image_input
from npuc.runtime.runtime import Runtime
from npuc.sim.device import SimDevice


@pytest.fixture(scope="module", params=oracle.MOBILENETS)
def compiled(request):
    result = compile_model(oracle.model_path(request.param), npu=False)
    return request.param, vipbin.read_blob(result.blob)


def test_mobilenets_equal_tflite_on_every_image(compiled):
    name, blob = compiled
    rt = Runtime(blob, SimDevice())
    info = rt.input_infos[0]
    for image in oracle.all_images():
        x = load_image_input(image, info.shape[1], info.shape[2], info.dtype)
        rt.set_input(0, x)
        ours = rt.run()
        ref = oracle.run_reference(oracle.model_path(name), [x])
        assert len(ours) == len(ref)
        for a, b in zip(ours, ref):
            assert a.dtype == b.dtype and a.shape == b.shape
            diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
            assert np.array_equal(a, b), f"{name} on {image.name}: {np.count_nonzero(diff)} values differ, max {diff.max()}"


def test_compiling_twice_gives_identical_bytes():
    path = oracle.model_path("mobilenet_v1_0.25_128_quant")
    labels = oracle.LABELS
    assert compile_model(path, labels_path=labels).blob == compile_model(path, labels_path=labels).blob


@pytest.mark.parametrize("name", ["deeplabv3_mnv2_pascal_quant", "movenet_single_pose_lightning_ptq",
                                  "split_concat", "keras_lstm_mnist_ptq"])
def test_models_without_host_kernels_name_the_first_missing_operator(name):
    from npuc.frontend_tflite import load_tflite
    from npuc.runtime.host import KERNELS

    graph = load_tflite(oracle.model_path(name))
    first = next((op for op in graph.topological_order() if op.opcode not in KERNELS), None)
    if first is None:
        pytest.skip(f"{name}: every operator now has a host kernel")
    with pytest.raises(UnsupportedError) as e:
        compile_model(oracle.model_path(name))
    msg = str(e.value)
    assert "\n" not in msg and first.opcode in msg and f"#{first.index}" in msg, msg
