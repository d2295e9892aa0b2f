"""TFLite_Detection_PostProcess on the host: its flexbuffer options and input quantization as parameters.

The operator's options live in a flexbuffer map (read as TFLite's Init reads
it: absent ``detections_per_class`` is 100, absent ``use_regular_nms`` false,
floats as float32); the quantization of uint8 box encodings, anchors and class
predictions is folded in, since the kernels see only the tensors' values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...frontend_custom import DETECTION_POSTPROCESS, custom_options
from ...ir import Graph, Op, Tensor
from ..decl import Flag, Float, HostOp, Int
from ..kernels import detection
from .common import Params, fail, input_tensor, per_tensor, require_type

#: TFLite's default for ``detections_per_class``.
DETECTIONS_PER_CLASS = 100


def _number(op: Op, options: dict[str, Any], key: str, default: float | None = None) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(op, f"option {key}={value!r} is missing or not a number")
    return value


def _quantization(op: Op, t: Tensor, what: str) -> tuple[int, float]:
    """(zero point, float32 scale) of a uint8 input, (0, 1.0) for float32."""
    require_type(op, t, what, ("uint8", "float32"))
    if t.dtype == "float32":
        return 0, 1.0
    scale, zero_point = per_tensor(op, t, what)
    return zero_point, float(np.float32(scale))


def _fold(graph: Graph, op: Op) -> Params:
    encodings, predictions, anchors = (input_tensor(graph, op, i, what) for i, what in
                                       enumerate(("box encodings", "class predictions", "anchors")))
    o = custom_options(op, "model")
    num_classes = int(_number(op, o, "num_classes"))
    if (len(encodings.shape), len(predictions.shape), len(anchors.shape)) != (3, 3, 2) \
            or encodings.shape[0] != 1 or encodings.shape[2] < 4 or predictions.shape[:2] != encodings.shape[:2] \
            or anchors.shape != (encodings.shape[1], 4):
        raise fail(op, f"box encodings {encodings.describe()}, class predictions {predictions.describe()} and "
                       f"anchors {anchors.describe()} do not fit one batch of boxes")
    label_offset = predictions.shape[2] - num_classes
    if label_offset not in (0, 1):
        raise fail(op, f"{predictions.shape[2]} class scores for num_classes={num_classes}")
    if encodings.dtype == "float32" and anchors.dtype != "float32":
        raise fail(op, "float box encodings need float anchors")
    iou = float(np.float32(_number(op, o, "nms_iou_threshold")))
    if not 0 < iou <= 1:
        raise fail(op, f"nms_iou_threshold={iou} is not in (0, 1]")
    box_zp, box_scale = _quantization(op, encodings, "box encodings")
    anchor_zp, anchor_scale = _quantization(op, anchors, "anchors")
    score_zp, score_scale = _quantization(op, predictions, "class predictions")
    return {
        "max_detections": int(_number(op, o, "max_detections")),
        "max_classes_per_detection": int(_number(op, o, "max_classes_per_detection")),
        "detections_per_class": int(_number(op, o, "detections_per_class", DETECTIONS_PER_CLASS)),
        "use_regular_nms": int(bool(o.get("use_regular_nms", False))),
        "num_classes": num_classes, "label_offset": label_offset,
        "score_threshold": float(np.float32(_number(op, o, "nms_score_threshold"))), "iou_threshold": iou,
        **{k: float(np.float32(_number(op, o, k))) for k in ("y_scale", "x_scale", "h_scale", "w_scale")},
        "box_zero_point": box_zp, "box_scale": box_scale, "anchor_zero_point": anchor_zp,
        "anchor_scale": anchor_scale, "score_zero_point": score_zp, "score_scale": score_scale,
    }


OPS = (HostOp(DETECTION_POSTPROCESS, (
    Int("max_detections", 1, 1 << 16), Int("max_classes_per_detection", 1, 1 << 16),
    Int("detections_per_class", 1, 1 << 16), Flag("use_regular_nms"), Int("num_classes", 1, 1 << 16),
    Int("label_offset", 0, 1), Float("score_threshold"), Float("iou_threshold"), Float("y_scale"), Float("x_scale"),
    Float("h_scale"), Float("w_scale"), Int("box_zero_point", 0, 255), Float("box_scale"),
    Int("anchor_zero_point", 0, 255), Float("anchor_scale"), Int("score_zero_point", 0, 255), Float("score_scale"),
), _fold, detection.detection_postprocess, stem="detection_postprocess"),)
