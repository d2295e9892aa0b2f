"""NON_MAX_SUPPRESSION_V4 and NON_MAX_SUPPRESSION_V5 on the host (float32): the checks TFLite's Prepare makes.

TFLite runs both operators with one kernel and tells soft NMS (V5) from hard
NMS (V4) by the number of inputs, six or five; npuc requires V4 to have five
inputs and two outputs, V5 six and three.  Boxes are float32 [N, 4], scores
float32 [N], the IoU threshold, score threshold and (V5) sigma float32
scalars that may arrive at run time; ``max_output_size`` must be a constant:
the selected indices (and V5's selected scores) hold that many entries.  A
constant negative sigma is refused, as TFLite fails on it.  TFLite's int8 and
int16 variants have no host kernel.
"""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Op
from ..decl import FoldFn, HostOp, Types
from ..kernels import nms
from .common import Params, constant_int, fail, input_tensor, require_shape, require_type

FLOAT32 = ("float32",)
#: Each output of V4 (False) and V5 (True): what it is, its type, whether it holds max_output_size entries.
_OUTPUTS = {False: (("selected indices", "int32", True), ("count", "int32", False)),
            True: (("selected indices", "int32", True), ("selected scores", "float32", True),
                   ("count", "int32", False))}


def _max_output_size(graph: Graph, op: Op) -> int:
    t = input_tensor(graph, op, 2, "max_output_size")
    require_type(op, t, "max_output_size", ("int32",))
    if t.shape:
        raise fail(op, f"max_output_size {t.describe()} must be a scalar")
    size = constant_int(op, t, "max_output_size")
    if size < 0:
        raise fail(op, f"max_output_size {size} is negative")
    return size


def _thresholds(graph: Graph, op: Op, soft: bool) -> None:
    """float32 scalars: the IoU and score thresholds, and V5's sigma (not negative when it is a constant)."""
    for i, what in enumerate(("iou_threshold", "score_threshold", "sigma")[:2 + soft], 3):
        t = input_tensor(graph, op, i, what)
        require_type(op, t, what, FLOAT32)
        if t.shape:
            raise fail(op, f"{what} {t.describe()} must be a scalar")
        if what == "sigma" and t.is_constant and float(np.asarray(t.data).reshape(-1)[0]) < 0:
            raise fail(op, "sigma is negative, which TFLite refuses")


def _nms(soft: bool) -> FoldFn:
    def fold(graph: Graph, op: Op) -> Params:
        """float32 boxes [N, 4] and scores [N], a constant max_output_size, float32 scalar thresholds."""
        if len(op.inputs) != 5 + soft or len(op.outputs) != len(_OUTPUTS[soft]):
            raise fail(op, f"must have {5 + soft} inputs and {len(_OUTPUTS[soft])} outputs (TFLite tells soft NMS "
                           f"by the count of inputs)")
        boxes, scores = input_tensor(graph, op, 0, "boxes"), input_tensor(graph, op, 1, "scores")
        require_type(op, boxes, "boxes", FLOAT32)
        require_type(op, scores, "scores", FLOAT32)
        if len(boxes.shape) != 2 or boxes.shape[1] != 4 or scores.shape != boxes.shape[:1]:
            raise fail(op, f"boxes {boxes.describe()} and scores {scores.describe()} must be [N, 4] and [N]")
        size = _max_output_size(graph, op)
        _thresholds(graph, op, soft)
        for o, (what, dtype, listed) in zip(op.outputs, _OUTPUTS[soft]):
            require_type(op, graph.tensors[o], what, (dtype,))
            require_shape(op, graph.tensors[o], (size,) if listed else (), what)
        return {}
    return fold


_F32 = Types(FLOAT32, "input")

OPS = (
    HostOp("NON_MAX_SUPPRESSION_V4", (), _nms(False), nms.non_max_suppression, types=_F32,
           stem="non_max_suppression"),
    HostOp("NON_MAX_SUPPRESSION_V5", (), _nms(True), nms.non_max_suppression, types=_F32,
           stem="non_max_suppression"),
)
