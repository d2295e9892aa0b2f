"""npu-run on detection models: SSD (TFLite_Detection_PostProcess) and YOLO heads, in Python and in C.

* the detections npu-run prints for SSD MobileNet and YOLOv5n (compiled --cpu-only, bit-exact with TFLite)
  are those of decoding TFLite's reference-kernel outputs with the same decoder, and a person is found in
  grace_hopper;
* ``--json`` parses, ``--draw`` writes a PNG of the image's size with the boxes drawn;
* the C npu-run (on the fake etnaviv device) prints exactly the Python text, for both models and for a
  float YOLOv8-shaped and YOLOv5-shaped head built here;
* recognising heads (a classifier stays a classifier), NMS, the letterbox fit and COCO's label files;
* bad flags are one-line errors.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import oracle
from c_build import fake_env
from npuc import vipbin
from npuc.cli import npu_run_main
from npuc.driver import compile_model
from npuc.runtime import detect
from npuc.runtime.image import fit_image, load_rgb, rgb_input
from npuc.vipbin import TensorInfo

COCO = oracle.SHARED / "labels" / "coco_labels.txt"
SSD = "ssd_mobilenet_v1_coco_quant_postprocess"
YOLO = "yolov5n_int8"
GRACE = oracle.IMAGES / "grace_hopper.bmp"
KITE = oracle.IMAGES / "kite_and_cold.jpg"


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("detect")
    paths = {}
    for name in (SSD, YOLO):
        paths[name] = out / f"{name}.vipbin"
        paths[name].write_bytes(compile_model(oracle.model_path(name), labels_path=COCO, npu=False).blob)
    return paths


def _npu_run(capsys, *args) -> str:
    assert npu_run_main([str(a) for a in args]) == 0
    return capsys.readouterr().out


def _reference(name: str, blob_path: Path, image: Path, letterbox: bool = False) -> list[dict]:
    """TFLite's reference kernels on npu-run's input, decoded by npuc's decoder, as npu-run's --json rows."""
    blob = vipbin.load_blob(blob_path)
    info = blob.tensors[blob.inputs[0]]
    rgb = load_rgb(image)
    x = rgb_input(rgb, tuple(info.shape), info.dtype, info.scale, info.zero_point, letterbox=letterbox)
    outputs = oracle.run_reference(oracle.model_path(name), [x])
    infos = [blob.tensors[t] for t in blob.outputs]
    head = detect.recognise(infos)
    fit = fit_image(rgb.shape[1], rgb.shape[0], info.shape[2], info.shape[1], letterbox)
    labels = detect.class_labels(COCO.read_text().splitlines(), head)
    return json.loads(detect.detections_json(detect.decode(head, infos, outputs, fit), labels))


def _iou(a, b) -> float:
    return detect.iou(tuple(map(float, a)), tuple(map(float, b)))


@pytest.mark.parametrize("name, image, letterbox", [(SSD, GRACE, False), (SSD, KITE, False), (YOLO, GRACE, False),
                                                     (YOLO, KITE, True)])
def test_detections_match_tflite_reference(name, image, letterbox, blobs, capsys):
    got = json.loads(_npu_run(capsys, blobs[name], image, "--json", *(["--letterbox"] if letterbox else [])))
    want = _reference(name, blobs[name], image, letterbox)
    assert want and len(got) == len(want), (got, want)
    for g, w in zip(got, want):
        assert g["class"] == w["class"] and g["label"] == w["label"], (g, w)
        assert abs(g["score"] - w["score"]) <= 0.1 and _iou(g["box"], w["box"]) >= 0.8, (g, w)
    if image == GRACE:
        assert got[0]["label"] == "person" and got[0]["class"] == 0, got[0]
        height, width = load_rgb(image).shape[:2]
        assert all(0 <= d["box"][0] <= d["box"][2] <= width and 0 <= d["box"][1] <= d["box"][3] <= height for d in got)


def test_printed_lines_and_draw(blobs, capsys, tmp_path):
    from PIL import Image

    out = tmp_path / "out.png"
    text = _npu_run(capsys, blobs[YOLO], GRACE, "--draw", out)
    first = text.splitlines()[0]
    assert first.split(":")[1].startswith(" 0 person  box "), text
    with Image.open(out) as img:
        plain = load_rgb(GRACE)
        assert img.format == "PNG" and img.size == (plain.shape[1], plain.shape[0])
        drawn = np.asarray(img.convert("RGB"))
    x0, y0, x1, y1 = (int(v) for v in first.split("box ")[1].replace(" - ", ",").split(","))
    assert np.any(drawn[y0:y1, min(x0, plain.shape[1] - 1)] != plain[y0:y1, min(x0, plain.shape[1] - 1)])   # the left edge of the box
    assert not list(tmp_path.glob(".*tmp"))


# -- C npu-run prints the same text -------------------------------------------------------------

def _c_run(binary: Path, fake: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, env=fake_env(fake),
                          timeout=300)


def test_c_npu_run_prints_python_text(c_npu_run, c_fake, blobs, capsys, tmp_path):
    from PIL import Image

    kite = tmp_path / "kite.ppm"          # the C npu-run reads BMP and PPM, not JPEG
    Image.open(KITE).convert("RGB").save(kite)
    for name, image, extra in [(SSD, GRACE, []), (YOLO, kite, ["--letterbox", "--json", "--threshold", "0.3"])]:
        c = _c_run(c_npu_run, c_fake, blobs[name], image, *extra, "--draw", tmp_path / "c.png")
        assert c.returncode == 0 and not c.stderr, c.stderr
        assert c.stdout == _npu_run(capsys, blobs[name], image, *extra) and c.stdout.strip(), c.stdout
        with Image.open(tmp_path / "c.png") as img:
            img.load()
            assert img.size == Image.open(image).size
            assert np.any(np.asarray(img.convert("RGB")) != np.asarray(Image.open(image).convert("RGB")))


def _head_model(tmp_path: Path, out_shape: tuple[int, ...]) -> Path:
    """A float model reshaping its [1, 8, 8, 3] image input into a detection head of ``out_shape``."""
    from model_builder import ModelBuilder

    m = ModelBuilder()
    x = m.main.input((1, 8, 8, 3), "float32")
    target = m.main.const(np.array(out_shape, np.int32))
    y = m.main.output(m.main.tensor(out_shape, "float32"))
    m.main.op("RESHAPE", [x, target], [y])
    src = tmp_path / "head.tflite"
    src.write_bytes(m.build())
    path = tmp_path / "head.vipbin"
    path.write_bytes(compile_model(src, npu=False).blob)
    return path


@pytest.mark.parametrize("shape", [(1, 6, 32), (1, 32, 6)])
def test_c_decodes_float_yolo_heads_like_python(shape, c_npu_run, c_fake, tmp_path, capsys):
    """YOLOv8's [1, 4 + C, N] and YOLOv5's [1, N, 5 + C] with overlapping boxes of two classes and ties."""
    rng = np.random.default_rng(7)
    n = 32
    v8 = shape[1] < shape[2]
    rows = np.zeros((n, 6), np.float32)
    rows[:, 0:2] = rng.uniform(0.3, 0.7, (n, 2))
    rows[:, 2:4] = rng.uniform(0.1, 0.4, (n, 2))
    rows[:, 4:] = np.round(rng.uniform(0, 1, (n, 2)), 1)        # ties in score
    if not v8:
        rows[:, 4] = 1.0
    x = (rows.T if v8 else rows).reshape(1, 8, 8, 3).astype(np.float32)
    path = _head_model(tmp_path, shape)
    assert detect.recognise([vipbin.load_blob(path).tensors[vipbin.load_blob(path).outputs[0]]]).kind == (
        "yolov8" if v8 else "yolov5")
    raw = tmp_path / "x.bin"
    raw.write_bytes(x.tobytes())
    np.save(tmp_path / "x.npy", x)
    name = vipbin.load_blob(path).tensors[vipbin.load_blob(path).inputs[0]].name
    for extra in ([], ["--json", "--threshold", "0.05"]):
        c = _c_run(c_npu_run, c_fake, path, "--input", f"{name}={raw}", *extra)
        assert c.returncode == 0 and not c.stderr, c.stderr
        python = _npu_run(capsys, path, "--input", f"{name}={tmp_path / 'x.npy'}", *extra)
        assert c.stdout == python and python.strip(), (c.stdout, python)


# -- the decoder's parts ------------------------------------------------------------------------

def _info(shape, dtype="float32") -> TensorInfo:
    return TensorInfo("t", 0, 0, dtype, shape)


def test_recognise_heads_and_not_classifiers():
    ssd = [_info((1, 10, 4)), _info((1, 10)), _info((1, 10)), _info((1,))]
    assert detect.recognise(ssd) == detect.Head("ssd", 0)
    assert detect.recognise([_info((1, 25200, 85), "uint8")]) == detect.Head("yolov5", 80)
    assert detect.recognise([_info((1, 84, 8400))]) == detect.Head("yolov8", 80)
    for other in ([_info((1, 1001), "uint8")], [_info((1, 10, 4))], [_info((1, 7, 7, 85))], ssd[:3],
                  [_info((1, 25200, 85), "int32")]):
        assert detect.recognise(other) is None


def test_nms_is_class_wise_and_best_first():
    fit = fit_image(100, 100, 100, 100)
    #   cx   cy   w    h   obj  c0   c1
    rows = np.array([[.5, .5, .2, .2, 1, .9, 0],     # kept
                     [.51, .5, .2, .2, 1, .8, 0],    # same class, IoU > 0.45: suppressed
                     [.51, .5, .2, .2, 1, 0, .7],    # other class: kept
                     [.9, .9, .1, .1, 1, .9, 0],     # same score as the first, later index: second
                     [.2, .2, .1, .1, 1, .2, 0]],    # below the threshold
                    np.float64)[None]
    dets = detect.decode(detect.Head("yolov5", 2), [_info((1, 5, 7))], [rows], fit)
    assert [(round(d.score, 2), d.cls) for d in dets] == [(0.9, 0), (0.9, 0), (0.7, 1)]
    assert dets[1].box == pytest.approx((85, 85, 95, 95))


def test_letterbox_fit_and_box_mapping():
    f = fit_image(1352, 900, 640, 640, letterbox=True)
    assert (f.left, f.top, f.width, f.height) == (0, 107, 640, 426)
    f = fit_image(517, 606, 640, 640, letterbox=True)
    assert (f.left, f.top, f.width, f.height) == (47, 0, 546, 640)
    rgb = np.full((606, 517, 3), 200, np.uint8)
    x = rgb_input(rgb, (1, 640, 640, 3), "uint8", letterbox=True)
    assert x[0, 0, 0, 0] == 114 and x[0, 0, 46, 0] == 114 and x[0, 0, 47, 0] == 200 and x[0, 0, 593, 0] == 114


def test_coco_labels_for_ssd_and_yolo():
    lines = COCO.read_text().splitlines()
    ssd = detect.class_labels(lines, detect.Head("ssd", 0))
    yolo = detect.class_labels(lines, detect.Head("yolov5", 80))
    assert (ssd[0], ssd[37], yolo[0], yolo[33], yolo[79]) == ("person", "kite", "person", "kite", "toothbrush")
    assert detect.class_labels(["???", "person "], detect.Head("ssd", 0)) == ["person"]


def test_bad_flags_are_one_line_errors(blobs, tmp_path, capsys):
    for args, code in ([[blobs[SSD], GRACE, "--threshold", "2"], 2], [[blobs[SSD], GRACE, "--threshold", "x"], 2],
                       [[blobs[SSD], "--draw", tmp_path / "o.png"], 2]):
        assert npu_run_main([str(a) for a in args]) == code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("threshold" in err or "--draw" in err), err
    assert not (tmp_path / "o.png").exists()
