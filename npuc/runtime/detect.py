"""Detection heads in npu-run: recognising them from the outputs, decoding boxes, NMS, the printed lines.

Three heads are recognised from the output shapes (a classifier's [1, N] is none of them):

* ``ssd``: TFLite_Detection_PostProcess's four float32 outputs, boxes [1, N, 4] (ymin, xmin, ymax, xmax,
  normalized), classes [1, N], scores [1, N], count [1]; its post-processing already did NMS;
* ``yolov5``: one output [1, N, 5 + C] (cx, cy, w, h normalized to the input, objectness, C class scores),
  the score of a box being objectness times its best class score;
* ``yolov8``: one output [1, 4 + C, N] (cx, cy, w, h, then C class scores, no objectness).

Every value is computed in double, in the operation order the C npu-run (``npu_detect.c.j2``) uses, so
that both print the same text: quantized outputs are dequantized as ``(q - zero_point) * scale``, boxes
mapped to the original image's pixels through :class:`~npuc.runtime.image.Fit`, candidates ranked by
score (ties by index), YOLO boxes suppressed class by class at IoU > 0.45, at most 100 kept, and boxes
clipped to the image last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..vipbin import TensorInfo
from .image import Fit

DEFAULT_THRESHOLD = 0.25
NMS_IOU = 0.45
MAX_DETECTIONS = 100
#: What label lines are stripped of (ASCII white space, as the C npu-run strips them).
_SPACE = " \t\n\r\v\f"


@dataclass(frozen=True)
class Head:
    """A recognised detection head: ``kind`` ("ssd", "yolov5", "yolov8") and its class count (0: unknown)."""

    kind: str
    classes: int


@dataclass(frozen=True)
class Detection:
    score: float
    cls: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the original image's pixels, clipped


def recognise(infos: list[TensorInfo]) -> Head | None:
    """The detection head the outputs form, or None."""
    shapes = [tuple(i.shape) for i in infos]
    if len(infos) == 4 and all(i.dtype == "float32" for i in infos):
        boxes, classes, scores, count = shapes
        if len(boxes) == 3 and boxes[0] == 1 and boxes[2] == 4 and classes == scores == boxes[:2] and count == (1,):
            return Head("ssd", 0)
    if len(infos) == 1 and len(shapes[0]) == 3 and shapes[0][0] == 1 and infos[0].dtype in ("uint8", "int8",
                                                                                             "float32"):
        _, a, b = shapes[0]
        if b >= 6 and a > b:
            return Head("yolov5", b - 5)
        if a >= 5 and b > a:
            return Head("yolov8", a - 4)
    return None


def dequantize(value: np.ndarray, info: TensorInfo) -> np.ndarray:
    """An output's real values in float64: ``(q - zero_point) * scale`` when quantized."""
    if info.dtype == "float32" or info.scale == 0.0:
        return value.astype(np.float64)
    return (value.astype(np.int64) - info.zero_point).astype(np.float64) * float(info.scale)


def _map_x(x: np.ndarray, fit: Fit) -> np.ndarray:
    return (x * float(fit.input_w) - float(fit.left)) * float(fit.image_w) / float(fit.width)


def _map_y(y: np.ndarray, fit: Fit) -> np.ndarray:
    return (y * float(fit.input_h) - float(fit.top)) * float(fit.image_h) / float(fit.height)


def _candidates(head: Head, infos: list[TensorInfo], outputs: list[np.ndarray], fit: Fit,
                threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Indices, scores, classes and [K, 4] image boxes of the boxes scoring at least ``threshold``."""
    if head.kind == "ssd":
        boxes, classes, scores, count = (dequantize(o, i) for o, i in zip(outputs, infos))
        n = boxes.shape[1]
        c = count.reshape(-1)[0]
        k = int(min(max(c, 0.0), float(n))) if not math.isnan(c) else 0
        score = scores.reshape(-1)[:k]
        cls = classes.reshape(-1)[:k]
        b = boxes.reshape(-1, 4)[:k]
        ymin, xmin, ymax, xmax = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        x0, y0, x1, y1 = _map_x(xmin, fit), _map_y(ymin, fit), _map_x(xmax, fit), _map_y(ymax, fit)
        cls = np.where(np.isfinite(cls), cls, -1.0)
        cls = np.clip(cls, -1.0, 2.0 ** 31 - 1).astype(np.int64)
    else:
        rows = dequantize(outputs[0], infos[0])[0]
        if head.kind == "yolov8":
            rows = rows.T
            conf = rows[:, 4:]
        else:
            conf = rows[:, 4:5] * rows[:, 5:]
        best = np.argmax(conf, axis=1)
        score = conf[np.arange(conf.shape[0]), best]
        cls = best.astype(np.int64)
        cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
        x0, x1 = _map_x(cx - w / 2.0, fit), _map_x(cx + w / 2.0, fit)
        y0, y1 = _map_y(cy - h / 2.0, fit), _map_y(cy + h / 2.0, fit)
    keep = np.flatnonzero(score >= threshold)
    order = keep[np.argsort(-score[keep], kind="stable")]
    return order, score[order], cls[order], np.stack([x0, y0, x1, y1], axis=1)[order]


def _area(b: tuple[float, float, float, float]) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes (0 when the union is empty)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0.0 else 0.0


def decode(head: Head, infos: list[TensorInfo], outputs: list[np.ndarray], fit: Fit,
           threshold: float = DEFAULT_THRESHOLD) -> list[Detection]:
    """The detections, best first (ties in index order), after class-wise NMS for YOLO, at most 100."""
    _, scores, classes, boxes = _candidates(head, infos, outputs, fit, threshold)
    kept: list[tuple[float, int, tuple[float, float, float, float]]] = []
    for score, cls, box in zip(scores.tolist(), classes.tolist(), boxes.tolist()):
        if len(kept) == MAX_DETECTIONS:
            break
        b = (box[0], box[1], box[2], box[3])
        if head.kind != "ssd" and any(c == cls and iou(k, b) > NMS_IOU for _, c, k in kept):
            continue
        kept.append((score, cls, b))
    w, h = float(fit.image_w), float(fit.image_h)
    return [Detection(s, c, (min(max(b[0], 0.0), w), min(max(b[1], 0.0), h), min(max(b[2], 0.0), w),
                             min(max(b[3], 0.0), h))) for s, c, b in kept]


def class_labels(lines: list[str], head: Head) -> list[str]:
    """The label of each class index: a first '???' line (background) is skipped; a YOLO head whose class
    count is that of the lines other than 'n/a' (COCO's 90-id list for 80 classes) takes those."""
    labels = [line.rstrip(_SPACE) for line in lines]
    if labels and labels[0] == "???":
        labels = labels[1:]
    if head.classes and len(labels) != head.classes:
        real = [label for label in labels if label != "n/a"]
        if len(real) == head.classes:
            labels = real
    return labels


def pixel_box(d: Detection) -> tuple[int, int, int, int]:
    """The box in whole pixels, rounded half up (coordinates are never negative)."""
    x0, y0, x1, y1 = (int(math.floor(v + 0.5)) for v in d.box)
    return x0, y0, x1, y1


def label_of(labels: list[str], cls: int) -> str:
    return labels[cls] if 0 <= cls < len(labels) else ""


def detection_line(d: Detection, labels: list[str]) -> str:
    """``0.84: 0 person  box 12,34 - 220,310``."""
    label = label_of(labels, d.cls)
    x0, y0, x1, y1 = pixel_box(d)
    return f"{d.score:.2f}: {d.cls}{' ' + label if label else ''}  box {x0},{y0} - {x1},{y1}"


def _json_string(s: str) -> str:
    """A JSON string escaping only what JSON requires (as json.dumps with ensure_ascii=False)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\n\r\t\b\f":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}[ch])
        elif o < 0x20:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def detections_json(dets: list[Detection], labels: list[str]) -> str:
    """A JSON list of {score, class, label, box: [x0, y0, x1, y1]}, one detection per line."""
    if not dets:
        return "[]"
    rows = []
    for d in dets:
        x0, y0, x1, y1 = pixel_box(d)
        rows.append(f'  {{"score": {d.score:.4f}, "class": {d.cls}, "label": {_json_string(label_of(labels, d.cls))}, '
                    f'"box": [{x0}, {y0}, {x1}, {y1}]}}')
    return "[\n" + ",\n".join(rows) + "\n]"
