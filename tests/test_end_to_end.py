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
def test_an_operator_nothing_can_run_is_named(name):
    """A model compiles when every operator runs on the NPU or a host kernel; otherwise the error names
    the first operator (in execution order) that neither can run."""
    from npuc.hw.target import VIPNANO_QI
    from npuc.frontend_tflite import load_tflite
    from npuc.passes.placement import HOST, npu_refusal
    from npuc.host import BY_OPCODE

    graph = load_tflite(oracle.model_path(name))
    stuck = [op for op in graph.topological_order()
             if op.opcode not in BY_OPCODE and npu_refusal(graph, op, VIPNANO_QI) is not None]
    if not stuck:
        result = compile_model(oracle.model_path(name))
        assert all(unit != HOST or result.program.op(i).opcode in BY_OPCODE
                   for i, (unit, _) in result.program.units.items())
        return
    with pytest.raises(UnsupportedError) as e:
        compile_model(oracle.model_path(name))
    msg = str(e.value)
    assert "\n" not in msg and stuck[0].opcode in msg and f"#{stuck[0].index}" in msg, msg
