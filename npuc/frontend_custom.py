"""Custom operators in the frontend: their flexbuffer options, and the output shapes TFLite gives them.

A builtin operator's output shapes are written in the model; a custom
operator's often are not: TFLite's custom kernels (the SSD post-processing,
Coral's PoseNet decoder) resize their outputs in Prepare, so the file holds an
empty shape (a scalar) for each.  npuc compiles for static shapes, so the
frontend computes them the way those kernels do, from the operator's options
(a flexbuffer map), and the IR is complete before any pass sees it.

Only custom operators npuc knows are touched; any other keeps its raw options
and whatever shapes the file gives.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import ModelError
from .ir import Graph, Op

#: TFLite's SSD post-processing (boxes, classes, scores, count), regular or fast NMS.
DETECTION_POSTPROCESS = "TFLite_Detection_PostProcess"
#: Coral's PoseNet decoder (keypoints, keypoint scores, pose scores, count).
POSENET_DECODER = "PosenetDecoderOp"
#: Keypoints of a PoseNet pose (the decoder's heatmap channels).
POSENET_KEYPOINTS = 17


def custom_options(op: Op, where: str) -> dict[str, Any]:
    """A custom operator's options: its flexbuffer map decoded (empty options give an empty dict)."""
    raw = op.options.get("custom_options", b"")
    if not raw:
        return {}
    from flatbuffers import flexbuffers  # here, not at the top: only models with custom operators need it

    try:
        value = flexbuffers.Loads(raw)
    except Exception as e:  # flexbuffers raises whatever a bad byte makes its decoder hit
        raise ModelError(f"{where}: operator {op.name}: custom options are not a flexbuffer ({type(e).__name__})") \
            from None
    if not isinstance(value, dict):
        raise ModelError(f"{where}: operator {op.name}: custom options are not a flexbuffer map")
    return value


def _positive_int(options: dict[str, Any], key: str, op: Op, where: str, default: int | None = None) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(f"{where}: operator {op.name}: option {key}={value!r} must be a positive integer")
    return value


def _detection_shapes(op: Op, options: dict[str, Any], where: str) -> list[tuple[int, ...]]:
    """TFLite's Prepare: max_detections * max_classes_per_detection boxes, whichever NMS runs."""
    boxes = _positive_int(options, "max_detections", op, where) * \
        _positive_int(options, "max_classes_per_detection", op, where, 1)
    return [(1, boxes, 4), (1, boxes), (1, boxes), (1,)]


def _posenet_shapes(op: Op, options: dict[str, Any], where: str) -> list[tuple[int, ...]]:
    """Coral's decoder: up to max_detections poses of 17 keypoints (y, x), their scores, and the count."""
    poses = _positive_int(options, "max_detections", op, where)
    return [(1, poses, POSENET_KEYPOINTS, 2), (1, poses, POSENET_KEYPOINTS), (1, poses), (1,)]


_OUTPUT_SHAPES: dict[str, Callable[[Op, dict[str, Any], str], list[tuple[int, ...]]]] = {
    DETECTION_POSTPROCESS: _detection_shapes,
    POSENET_DECODER: _posenet_shapes,
}


def infer_custom_shapes(graph: Graph, where: str) -> None:
    """Give the outputs of known custom operators the shapes their TFLite kernels would.

    A shape the file states is kept when it agrees; a stated shape that
    disagrees is a ModelError naming the operator and the output.
    """
    for op in graph.ops:
        rule = _OUTPUT_SHAPES.get(op.custom_code or "") if op.opcode == "CUSTOM" else None
        if rule is None:
            continue
        shapes = rule(op, custom_options(op, where), where)
        if len(op.outputs) != len(shapes):
            raise ModelError(f"{where}: operator {op.name} has {len(op.outputs)} outputs, expected {len(shapes)}")
        for k, (index, shape) in enumerate(zip(op.outputs, shapes)):
            t = graph.tensors[index]
            if t.shape and t.shape != shape:
                raise ModelError(f"{where}: operator {op.name}: output {k} {t.describe()} should have shape "
                                 f"{list(shape)}")
            t.shape = shape
