"""TFLite_Detection_PostProcess, the SSD post-processing custom operator, as TFLite's kernel computes it.

Box encodings (centre-size, relative to anchors) are decoded to corners: the
centre and half-size in double precision (``exp`` of the scaled log-size),
each rounded to float32 once, corners in float32.  Class scores are
dequantized to float32.  Then non-maximum suppression picks the boxes:

* fast NMS (the default): each anchor's best ``max_classes_per_detection``
  classes, one NMS over the anchors' best scores;
* regular NMS (``use_regular_nms``): one NMS per class, the running best
  ``max_detections`` kept across classes.

NMS keeps scores at or above the threshold, visits them in decreasing order
(a stable sort: ties keep anchor order) and drops every later box whose
float32 IoU with a kept one exceeds the threshold.  Regular NMS merges each
class's picks into the running best with a stable sort too.  Fast NMS picks
each anchor's best classes with ``std::partial_sort``, an unstable heap-based
selection: ties are broken as libstdc++'s ``partial_sort`` breaks them
(``partial_sort_order`` replays its heap operations; TFLite's interpreter is
built against libstdc++), with a first-maximum scan when one class is picked.
TFLite leaves output rows past the detections it writes untouched; here they
are zero.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

_F32 = np.float32


def partial_sort_order(values: np.ndarray, count: int, k: int) -> list[int]:
    """Indices of the ``k`` largest of ``values[:count]`` in decreasing order, ties as libstdc++ orders them.

    ``k == 1`` is TFLite's ArgMaxVector (the first maximum); otherwise
    ``std::partial_sort`` with the comparison ``values[i] > values[j]``:
    make a heap of the first ``k``, push each later larger value through the
    heap top, then sort the heap.
    """
    if k == 1:
        return [int(np.argmax(values[:count]))] if count else [0]
    order = list(range(count))
    v = [float(x) for x in values[:count]]

    def before(a: int, b: int) -> bool:       # comp(*a, *b): the value at a is larger
        return v[a] > v[b]

    def adjust(first: int, hole: int, length: int, value: int) -> None:
        top, child = hole, hole
        while child < (length - 1) // 2:
            child = 2 * (child + 1)
            if before(order[first + child], order[first + child - 1]):
                child -= 1
            order[first + hole] = order[first + child]
            hole = child
        if length % 2 == 0 and child == (length - 2) // 2:
            child = 2 * (child + 1)
            order[first + hole] = order[first + child - 1]
            hole = child - 1
        parent = (hole - 1) // 2
        while hole > top and before(order[first + parent], value):
            order[first + hole] = order[first + parent]
            hole = parent
            parent = (hole - 1) // 2
        order[first + hole] = value

    def pop(last: int, result: int) -> None:
        value = order[result]
        order[result] = order[0]
        adjust(0, 0, last, value)

    if k >= 2:
        for parent in range((k - 2) // 2, -1, -1):
            adjust(0, parent, k, order[parent])
    for i in range(k, count):
        if before(order[i], order[0]):
            pop(k, i)
    for last in range(k - 1, 0, -1):
        pop(last, last)
    return order[:k]


def _libm(fn: Callable[[float], float]) -> Callable[[np.ndarray], np.ndarray]:
    """A C library function of doubles applied element-wise (as TFLite's ``std::exp(double)``)."""
    vectorized = np.frompyfunc(fn, 1, 1)
    return lambda x: vectorized(x).astype(np.float64)


_exp = _libm(math.exp)


def _dequantized(q: np.ndarray, zero_point: int, scale: float) -> np.ndarray:
    """``(float(q) - zero_point) * scale`` in float32, as TFLite dequantizes boxes, anchors and scores."""
    return (q.astype(_F32) - _F32(zero_point)) * _F32(scale)


def decode_boxes(encodings: np.ndarray, anchors: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """Corners (ymin, xmin, ymax, xmax) of every anchor's box, float32 [N, 4]."""
    enc = encodings[:, :4]
    if enc.dtype == np.uint8:
        enc = _dequantized(enc, p["box_zero_point"], p["box_scale"])
        anchors = _dequantized(anchors, p["anchor_zero_point"], p["anchor_scale"])
    y, x, h, w = (enc[:, k].astype(np.float64) for k in range(4))
    ay, ax, ah, aw = (anchors[:, k].astype(np.float64) for k in range(4))
    sy, sx, sh, sw = (float(_F32(p[k])) for k in ("y_scale", "x_scale", "h_scale", "w_scale"))
    ycenter = (y / sy * ah + ay).astype(_F32)
    xcenter = (x / sx * aw + ax).astype(_F32)
    with np.errstate(over="ignore"):
        half_h = (0.5 * _exp(h / sh) * ah).astype(_F32)
        half_w = (0.5 * _exp(w / sw) * aw).astype(_F32)
    return np.stack([ycenter - half_h, xcenter - half_w, ycenter + half_h, xcenter + half_w], axis=1)


def _iou(boxes: np.ndarray, i: int, others: np.ndarray) -> np.ndarray:
    """TFLite's ComputeIntersectionOverUnion of box ``i`` with each of ``others``, in float32."""
    a, b = boxes[i], boxes[others]
    zero = _F32(0)
    with np.errstate(all="ignore"):
        area_i = (a[2] - a[0]) * (a[3] - a[1])
        area_j = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        ymin, xmin = np.where(a[0] < b[:, 0], b[:, 0], a[0]), np.where(a[1] < b[:, 1], b[:, 1], a[1])
        ymax, xmax = np.where(b[:, 2] < a[2], b[:, 2], a[2]), np.where(b[:, 3] < a[3], b[:, 3], a[3])
        dy, dx = ymax - ymin, xmax - xmin
        inter = np.where(dy < zero, zero, dy) * np.where(dx < zero, zero, dx)
        iou = inter / (area_i + area_j - inter)
    return np.where((area_i <= 0) | (area_j <= 0), zero, iou)


def nms_single_class(boxes: np.ndarray, scores: np.ndarray, p: dict[str, Any], max_detections: int) -> list[int]:
    """TFLite's NonMaxSuppressionSingleClassHelper: the anchors kept, best first."""
    keep = np.flatnonzero(scores >= _F32(p["score_threshold"]))
    ranked = keep[np.argsort(-scores[keep], kind="stable")]
    active = np.ones(ranked.size, dtype=bool)
    threshold = _F32(p["iou_threshold"])
    selected: list[int] = []
    limit = min(ranked.size, max_detections)
    for i in range(ranked.size):
        if not active.any() or len(selected) >= limit:
            break
        if not active[i]:
            continue
        selected.append(int(ranked[i]))
        active[i] = False
        later = np.flatnonzero(active[i + 1:]) + i + 1
        if later.size:
            active[later[_iou(boxes, int(ranked[i]), ranked[later]) > threshold]] = False
    return selected


def _regular_nms(boxes: np.ndarray, scores: np.ndarray, p: dict[str, Any], outs: list[np.ndarray]) -> None:
    """One NMS per class; after each class the running best ``max_detections`` (anchor, class) pairs."""
    with_background, offset, max_det = scores.shape[1], p["label_offset"], p["max_detections"]
    picked: list[int] = []          # flat anchor * with_background + column, best first
    picked_scores: list[float] = []
    for cls in range(p["num_classes"]):
        column = scores[:, cls + offset]
        chosen = nms_single_class(boxes, column, p, p["detections_per_class"])
        picked += [a * with_background + cls + offset for a in chosen]
        picked_scores += [column[a] for a in chosen]
        order = np.argsort(-np.array(picked_scores, dtype=_F32), kind="stable")[:max_det]
        picked, picked_scores = [picked[j] for j in order], [picked_scores[j] for j in order]
    for row, (flat, score) in enumerate(zip(picked, picked_scores)):
        anchor = flat // with_background
        outs[0][0, row] = boxes[anchor]
        outs[1][0, row] = flat - anchor * with_background - offset
        outs[2][0, row] = score
    outs[3][0] = len(picked)


def _fast_nms(boxes: np.ndarray, scores: np.ndarray, p: dict[str, Any], outs: list[np.ndarray]) -> None:
    """Each anchor ranked by its best class; one NMS; each kept anchor's best classes written side by side."""
    per_anchor = min(p["max_classes_per_detection"], p["num_classes"])
    class_scores = scores[:, p["label_offset"]:p["label_offset"] + p["num_classes"]]
    if per_anchor == 1:
        best = np.argmax(class_scores, axis=1)[:, None]
    else:
        best = np.array([partial_sort_order(row, row.size, per_anchor) for row in class_scores])
    max_scores = class_scores[np.arange(boxes.shape[0]), best[:, 0]]
    selected = nms_single_class(boxes, max_scores, p, p["max_detections"])
    for n, anchor in enumerate(selected):
        rows = slice(n * p["max_classes_per_detection"], n * p["max_classes_per_detection"] + per_anchor)
        outs[0][0, rows] = boxes[anchor]
        outs[1][0, rows] = best[anchor]
        outs[2][0, rows] = class_scores[anchor, best[anchor]]
    outs[3][0] = len(selected)


def detection_postprocess(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """SSD post-processing: decode, then fast or regular NMS; boxes, classes, scores and count as float32."""
    encodings, predictions, anchors = inputs[0], inputs[1], inputs[2]
    boxes = decode_boxes(encodings[0], anchors, p)
    scores = predictions[0]
    if scores.dtype == np.uint8:
        scores = _dequantized(scores, p["score_zero_point"], p["score_scale"])
    for out in outputs:
        out[...] = 0
    (_regular_nms if p["use_regular_nms"] else _fast_nms)(boxes, scores, p, outputs)
