"""TFLite_Detection_PostProcess (SSD post-processing) on the host against TFLite's kernel, in Python and in C.

Seeded random decoders: uint8 or float32 box encodings, class predictions and
anchors; fast NMS with one or several classes per detection, regular NMS;
scores coarsened so that ties are everywhere (their order is where
implementations differ).  TFLite leaves output rows past its detections
untouched, so only the rows it writes, and the count, are compared with it;
the C runtime must equal the Python runtime on every byte.  The shared SSD
MobileNet v1 runs end to end on the CPU blob and gives TFLite's detections.
"""

from __future__ import annotations

import numpy as np
import pytest

import oracle
from c_build import fake_env
from host_cases import CASES, batch_model, c_outputs, compile_cpu, python_outputs, random_inputs, tflite_outputs
from model_builder import SubgraphBuilder
from npuc.driver import compile_model
from npuc.errors import UnsupportedError
from npuc.frontend_custom import custom_options
from npuc.frontend_tflite import parse_tflite
from npuc.runtime.image import load_image_input

SSD = "ssd_mobilenet_v1_coco_quant_postprocess"


def _detector(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    n, classes = int(rng.integers(5, 80)), int(rng.integers(1, 12))
    background = int(rng.integers(0, 2))
    dtype = str(rng.choice(["uint8", "float32"]))
    regular = bool(rng.random() < 0.5)
    if dtype == "uint8":
        boxes = g.input((1, n, int(rng.integers(4, 7))), "uint8", scale=float(rng.uniform(0.02, 0.2)),
                        zero_point=int(rng.integers(100, 160)))
        scores = g.input((1, n, classes + background), "uint8", scale=1 / 256, zero_point=0)
        anchors = rng.integers(0, 256, (n, 4)).astype(np.uint8)
        anchors[:, 2:] = rng.integers(20, 120, (n, 2))
        a = g.const(anchors, "uint8", scale=float(rng.uniform(0.002, 0.01)), zero_point=int(rng.integers(0, 20)))
    else:
        boxes = g.input((1, n, 4), "float32")
        scores = g.input((1, n, classes + background), "float32")
        anchors = rng.uniform(0, 1, (n, 4)).astype(np.float32)
        anchors[:, 2:] = rng.uniform(0.05, 0.5, (n, 2))
        a = g.const(anchors)
    outs = [g.tensor((), "float32") for _ in range(4)]
    options = {"max_detections": int(rng.integers(1, 12)), "max_classes_per_detection":
               1 if regular else int(rng.integers(1, 4)), "num_classes": classes,
               "nms_score_threshold": float(np.float32(rng.uniform(0.05, 0.5))),
               "nms_iou_threshold": float(np.float32(rng.uniform(0.2, 1.0))), "y_scale": 10.0, "x_scale": 10.0,
               "h_scale": 5.0, "w_scale": 5.0, "use_regular_nms": regular,
               "detections_per_class": int(rng.integers(1, 8))}
    g.op("CUSTOM", [boxes, scores, a], outs, custom_code="TFLite_Detection_PostProcess", custom_options=options)
    return outs


def _coarse(inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Scores with few distinct values, so that ties decide the order."""
    return [np.round(x * 2) / 2 if x.dtype == np.float32 else x // 64 * 64 for x in inputs]


def _written(outputs: list[np.ndarray], k: int, layout: tuple[int, int]) -> list[np.ndarray]:
    """Detection k's outputs (boxes, classes, scores, count), only the rows TFLite writes.

    ``layout`` is (rows per detection, classes written per detection): with
    fewer classes than max_classes_per_detection a detection's last rows stay
    unwritten.
    """
    stride, written = layout
    boxes, classes, scores, count = outputs[4 * k:4 * k + 4]
    rows = np.array([n * stride + c for n in range(int(count[0])) for c in range(written)], dtype=np.int64)
    return [boxes[0, rows], classes[0, rows], scores[0, rows], count]


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    batch = batch_model(_detector, range(CASES))
    blob = compile_cpu(batch.model, tmp_path_factory.mktemp("det"))
    options = [custom_options(op, "test") for op in parse_tflite(batch.model).ops]
    per_detection = [(o["max_classes_per_detection"], min(o["max_classes_per_detection"], o["num_classes"]))
                     for o in options]
    inputs = [_coarse(random_inputs(batch.model, run)) for run in range(3)]
    return batch, blob, per_detection, inputs


def test_python_kernel_matches_tflite(cases):
    batch, blob, per_detection, inputs = cases
    for x in inputs:
        got, want = python_outputs(blob, x), tflite_outputs(batch.model, x)
        for k, rows in enumerate(per_detection):
            for g, w in zip(_written(got, k, rows), _written(want, k, rows)):
                assert np.array_equal(g, w), f"seed {k}: {g} != {w}"


def test_c_kernel_matches_python(cases, c_npu_run, c_fake, tmp_path):
    batch, blob, _, inputs = cases
    for x in inputs:
        for got, want in zip(c_outputs(c_npu_run, fake_env(c_fake), blob, x, tmp_path), python_outputs(blob, x)):
            assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("image", ["kite_and_cold.jpg", "grace_hopper.bmp"])
def test_ssd_mobilenet_cpu_blob_gives_tflites_detections(image, tmp_path):
    from npuc import vipbin
    from npuc.runtime.runtime import Runtime
    from npuc.sim.device import SimDevice

    path = oracle.model_path(SSD)
    runtime = Runtime(vipbin.read_blob(compile_model(path, npu=False).blob), SimDevice())
    x = load_image_input(oracle.IMAGES / image, 300, 300)
    runtime.set_input(0, x)
    got, want = runtime.run(), oracle.run_reference(path, [x])
    assert int(want[3][0]) > 0
    for g, w in zip(_written(got, 0, (1, 1)), _written(want, 0, (1, 1))):
        assert np.array_equal(g, w)


def test_a_detector_with_int8_scores_is_refused_by_name(tmp_path):
    from model_builder import ModelBuilder

    m = ModelBuilder()
    g = m.main
    boxes = g.input((1, 4, 4), "float32")
    scores = g.input((1, 4, 3), "int8", scale=0.1, zero_point=0)
    a = g.const(np.ones((4, 4), np.float32))
    outs = [g.output(g.tensor((), "float32")) for _ in range(4)]
    g.op("CUSTOM", [boxes, scores, a], outs, custom_code="TFLite_Detection_PostProcess",
         custom_options={"max_detections": 2, "max_classes_per_detection": 1, "num_classes": 2,
                         "nms_score_threshold": 0.1, "nms_iou_threshold": 0.5, "y_scale": 1.0, "x_scale": 1.0,
                         "h_scale": 1.0, "w_scale": 1.0})
    path = tmp_path / "m.tflite"
    path.write_bytes(m.build())
    with pytest.raises(UnsupportedError, match=r"CUSTOM\(TFLite_Detection_PostProcess\).*class predictions"):
        compile_model(path, npu=False)
