"""Every model in ../shared/models: compiled for both NPUs, and checked three ways.

* its ``--cpu-only`` blob gives TFLite's reference outputs bit for bit (SSD
  post-processing: the rows TFLite writes);
* its default blob, for the A311D and the i.MX 8M Plus, runs on the simulator
  and gives outputs of the right types and shapes (how closely they agree with
  TFLite is each model's own bar, in test_all_models.py and friends);
* the C runtime (on the fake etnaviv device) gives the Python runtime's outputs
  byte for byte, for the CPU blob and the A311D blob.

Inputs: an image from ../shared/images for image models (fed as npu-run feeds
it), seeded random values otherwise.  The PoseNet decoder variant holds a
custom operator that TFLite itself cannot run; it is refused by name.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import oracle
from c_build import fake_env
from host_cases import c_outputs, values
from npuc import vipbin
from npuc.hw.target import VIPNANO_QI, VIPNANO_SI_PLUS
from npuc.driver import compile_model
from npuc.errors import UnsupportedError
from npuc.runtime.image import image_input, image_layout
from npuc.runtime.runtime import Runtime
from npuc.sim.device import SimDevice

#: Models with a custom operator no runtime implements (TFLite included).
NO_KERNEL = {"posenet_mobilenet_v1_075_481_641_quant_decoder": "PosenetDecoderOp"}
MODELS = sorted(p.stem for p in oracle.MODELS.glob("*.tflite") if p.stem not in NO_KERNEL)
#: Images for image models: a detection scene for detectors, else the classic.
IMAGE = {"ssd_mobilenet_v1_coco_quant_postprocess": "kite_and_cold.jpg", "yolov5n_int8": "kite_and_cold.jpg",
         "retinaface_int8_nchw": "face.jpg", "posenet_mobilenet_v1_075_481_641_quant": "squat.bmp"}


@lru_cache(maxsize=None)
def _blob(name: str, target: str, npu: bool) -> bytes:
    return compile_model(oracle.model_path(name), target, npu=npu).blob


def _inputs(name: str, blob: vipbin.Blob) -> list[np.ndarray]:
    infos = [blob.tensors[t] for t in blob.inputs]
    if len(infos) == 1 and image_layout(tuple(infos[0].shape)) is not None:
        info = infos[0]
        return [image_input(oracle.IMAGES / IMAGE.get(name, "grace_hopper.bmp"), tuple(info.shape), info.dtype,
                            info.scale, info.zero_point)]
    rng = np.random.default_rng(7)
    return [values(rng, tuple(i.shape), i.dtype) for i in infos]


def _python_outputs(blob: vipbin.Blob, inputs: list[np.ndarray], target=VIPNANO_QI) -> list[np.ndarray]:
    runtime = Runtime(blob, SimDevice(target))
    for k, x in enumerate(inputs):
        runtime.set_input(k, x)
    return runtime.run()


def _tflite_comparable(name: str, outputs: list[np.ndarray]) -> list[np.ndarray]:
    """The outputs as far as TFLite defines them: SSD post-processing writes only the rows it detects."""
    if name == "ssd_mobilenet_v1_coco_quant_postprocess":
        n = int(outputs[3][0])
        return [outputs[0][0, :n], outputs[1][0, :n], outputs[2][0, :n], outputs[3]]
    return outputs


@pytest.mark.parametrize("name", MODELS)
def test_cpu_blob_gives_tflites_outputs_bit_for_bit(name):
    blob = vipbin.read_blob(_blob(name, VIPNANO_QI.name, False))
    assert all(isinstance(s, vipbin.HostStep) for s in blob.steps)
    inputs = _inputs(name, blob)
    got = _tflite_comparable(name, _python_outputs(blob, inputs))
    want = _tflite_comparable(name, oracle.run_reference(oracle.model_path(name), inputs))
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, f"output {k}"
        assert np.array_equal(g, w, equal_nan=g.dtype.kind == "f"), f"output {k}: {np.count_nonzero(g != w)} differ"


@pytest.mark.parametrize("target", [VIPNANO_QI, VIPNANO_SI_PLUS], ids=lambda t: t.name)
@pytest.mark.parametrize("name", MODELS)
def test_default_blob_runs_on_the_simulator(name, target):
    blob = vipbin.read_blob(_blob(name, target.name, True))
    outputs = _python_outputs(blob, _inputs(name, blob), target)
    reference = oracle.run_reference(oracle.model_path(name), _inputs(name, blob))
    for g, w in zip(outputs, reference):
        assert g.dtype == w.dtype and g.shape == w.shape
        if g.dtype.kind == "f":
            assert np.all(np.isfinite(g))


@pytest.mark.parametrize("npu", [False, True], ids=["cpu", "npu"])
@pytest.mark.parametrize("name", MODELS)
def test_c_runtime_gives_the_python_runtimes_outputs(name, npu, tmp_path, c_npu_run, c_fake):
    path = tmp_path / f"{name}.vipbin"
    path.write_bytes(_blob(name, VIPNANO_QI.name, npu))
    blob = vipbin.load_blob(path)
    inputs = _inputs(name, blob)
    for got, want in zip(c_outputs(c_npu_run, fake_env(c_fake), path, inputs, tmp_path),
                         _python_outputs(blob, inputs)):
        assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("name, custom", sorted(NO_KERNEL.items()))
def test_a_custom_operator_nobody_implements_is_refused_by_name(name, custom):
    with pytest.raises(UnsupportedError, match=f"custom operator '{custom}' has no kernel in npuc; it is not part "
                                                f"of TFLite either"):
        compile_model(oracle.model_path(name))
