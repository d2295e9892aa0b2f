"""Every shared model compiles and runs on the simulated NPU; each is held to its own accuracy bar against TFLite.

Classifiers are checked in test_npu_models.py (uint8), test_per_channel_int8.py (TF2 int8) and
test_v8.py (the i.MX 8M Plus).  DeepLab, MoveNet --exact and the LSTM are held to their bars on both targets.
"""

from __future__ import annotations

import numpy as np
import pytest

import oracle
from npuc import vipbin
from npuc.hw.target import VIPNANO_QI, VIPNANO_SI_PLUS, Target
from npuc.driver import compile_model
from npuc.runtime.image import load_image_input
from npuc.runtime.runtime import Runtime
from npuc.sim.device import SimDevice

#: MoveNet bars: keypoint coordinates (y, x, in image fractions) and scores.
KEYPOINT_TOLERANCE = 0.02
SCORE_TOLERANCE = 0.05
TARGETS = pytest.mark.parametrize("target", [VIPNANO_QI, VIPNANO_SI_PLUS], ids=lambda t: t.name)
#: Share of DeepLab's pixels that must get TFLite's class.  Each v8 layer is as exact as on v7 (its ADDs
#: 99.2-99.6 % equal alone), but differences accumulate over the network differently: v8 keeps 98.91 % on
#: dragonfly.bmp, v7 99.22 % (README).
DEEPLAB_PIXELS = {VIPNANO_QI.name: 0.99, VIPNANO_SI_PLUS.name: 0.985}


def _runtime(name: str, target: Target = VIPNANO_QI, **options) -> Runtime:
    return Runtime(vipbin.read_blob(compile_model(oracle.model_path(name), target.name, **options).blob),
                   SimDevice(target))


def _image_runs(name: str, rt: Runtime):
    info = rt.input_infos[0]
    for image in oracle.all_images():
        x = load_image_input(image, info.shape[1], info.shape[2], info.dtype)
        rt.set_input(0, x)
        yield image.name, rt.run(), oracle.run_reference(oracle.model_path(name), [x])


@TARGETS
def test_deeplab_gives_tflite_class_for_99_percent_of_pixels(target):
    name = "deeplabv3_mnv2_pascal_quant"
    for image, ours, ref in _image_runs(name, _runtime(name, target)):
        agree = float(np.mean(ours[0] == ref[0]))
        print(f"{image}: {agree:.4%} of pixels agree")
        assert ours[0].dtype == np.int64 and agree >= DEEPLAB_PIXELS[target.name], f"{image}: {agree:.4%}"


def _keypoint_errors(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    d = np.abs(ours.reshape(-1, 3).astype(np.float64) - ref.reshape(-1, 3))
    return float(d[:, :2].max()), float(d[:, 2].max())


@TARGETS
def test_movenet_exact_mode_gives_tflite_keypoints(target):
    """MoveNet picks keypoints by arg-max over heatmaps: compiled --exact, every keypoint meets the bar."""
    name = "movenet_single_pose_lightning_ptq"
    for image, ours, ref in _image_runs(name, _runtime(name, target, exact=True)):
        yx, score = _keypoint_errors(ours[0], ref[0])
        print(f"{image}: keypoints within {yx:.4f}, scores within {score:.4f}")
        assert yx <= KEYPOINT_TOLERANCE and score <= SCORE_TOLERANCE, image


def test_movenet_default_mode_runs_and_says_how_far_it_is():
    """With the NN cores doing the arithmetic, MoveNet runs but its arg-max picks move (reported, documented)."""
    name = "movenet_single_pose_lightning_ptq"
    result = compile_model(oracle.model_path(name))
    assert result.stats.nn_jobs > 0
    rt = Runtime(vipbin.read_blob(result.blob), SimDevice())
    worst = 0.0
    for image, ours, ref in _image_runs(name, rt):
        assert ours[0].shape == ref[0].shape
        scores = ours[0].reshape(-1, 3)[:, 2]
        assert np.all(np.isfinite(ours[0])) and np.all((scores >= 0) & (scores <= 1)), f"{image}: bad outputs"
        worst = max(worst, _keypoint_errors(ours[0], ref[0])[0])
    print(f"MoveNet on the NN cores: keypoints within {worst:.3f} of TFLite's")


@TARGETS
def test_lstm_within_one_step_over_a_session(target):
    """TFLite keeps the LSTM's state from one invoke to the next, and so does a runtime session: three runs in a
    row against one interpreter that is never reset.  split_concat is held to exact equality in
    test_npu_models.py and test_v8.py."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    name = "keras_lstm_mnist_ptq"
    rt = _runtime(name, target)
    it = Interpreter(model_path=str(oracle.model_path(name)), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    rng = np.random.default_rng(11)
    for _ in range(3):
        xs = [rng.integers(0, 256, i.shape).astype(i.dtype) for i in rt.input_infos]
        for k, x in enumerate(xs):
            rt.set_input(k, x)
            it.set_tensor(it.get_input_details()[k]["index"], x)
        it.invoke()
        refs = [it.get_tensor(d["index"]) for d in it.get_output_details()]
        for ours, ref in zip(rt.run(), refs):
            assert int(np.abs(ours.astype(np.int64) - ref.astype(np.int64)).max()) <= 1
