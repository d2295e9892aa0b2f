"""NON_MAX_SUPPRESSION_V4 and V5 (float32), as TFLite's reference kernel runs them.

TFLite keeps the candidates (boxes scoring above the score threshold) in a
``std::priority_queue`` ordered by score alone, so candidates of equal score
leave it in the order libstdc++'s ``push_heap`` and ``pop_heap`` give them
(TFLite's interpreter is built against libstdc++), which the heap functions
here replay.  Each candidate taken from the queue
is compared with the boxes selected since it was last compared, newest first:
an IoU at or above the IoU threshold drops it; otherwise V5's soft-NMS
(``sigma > 0``) multiplies its score by ``exp(-0.5 / sigma * iou * iou)`` (the
C library's ``expf``) after each comparison, and stops comparing once the score
is at or below the score threshold.  An unchanged score selects the candidate;
any score still above the threshold puts it back into the queue, where, as in
TFLite, a candidate whose IoU with itself (1, or 0 for a box without area) is
below the IoU threshold gets selected again.  IoUs are TFLite's float32 arithmetic, ``std::min`` and
``std::max`` included (0 for a box without area).

The outputs hold ``max_output_size`` entries: the selected indices (and V5's
scores), zeros after them, and how many were selected.  A negative sigma is
an InputError, as TFLite fails then.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...errors import InputError
from ..libm import float_function

_F32 = np.float32
expf = float_function("expf")
#: ``less(a, b)``: whether handle a orders before handle b (the heap's top is the last in that order).
Less = Callable[[int, int], bool]


# -- libstdc++'s heap algorithms -------------------------------------------------------------------------

def _sift_up(heap: list[int], hole: int, top: int, value: int, less: Less) -> None:
    """libstdc++'s __push_heap: move ``value`` up from ``hole`` while its parent orders before it."""
    parent = (hole - 1) // 2
    while hole > top and less(heap[parent], value):
        heap[hole] = heap[parent]
        hole = parent
        parent = (hole - 1) // 2
    heap[hole] = value


def _adjust(heap: list[int], hole: int, length: int, value: int, less: Less) -> None:
    """libstdc++'s __adjust_heap: move the hole down along the larger children, then sift ``value`` up."""
    top, child = hole, hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if less(heap[child], heap[child - 1]):
            child -= 1
        heap[hole] = heap[child]
        hole = child
    if length % 2 == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        heap[hole] = heap[child - 1]
        hole = child - 1
    _sift_up(heap, hole, top, value, less)


def _push_heap(heap: list[int], less: Less) -> None:
    """std::push_heap: the last element joins the heap before it."""
    _sift_up(heap, len(heap) - 1, 0, heap[-1], less)


def _pop_heap(heap: list[int], length: int, less: Less) -> None:
    """std::pop_heap over the first ``length`` elements: the top moves to position ``length - 1``."""
    if length > 1:
        value = heap[length - 1]
        heap[length - 1] = heap[0]
        _adjust(heap, 0, length - 1, value, less)


# -- the NMS loop ------------------------------------------------------------------------------------------

def _min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """std::min(a, b): b only when it is less (NaN and -0 ties as C++ has them)."""
    return np.where(b < a, b, a)


def _max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """std::max(a, b): b only when a is less."""
    return np.where(a < b, b, a)


def _ious(boxes: np.ndarray, i: int, others: np.ndarray) -> np.ndarray:
    """float32 IoU of box i with each of ``others``, as TFLite computes it (box i first; 0 without area)."""
    (ay1, ax1, ay2, ax2), (by1, bx1, by2, bx2) = boxes[i], boxes[others].T
    a_ymin, a_ymax, a_xmin, a_xmax = _min(ay1, ay2), _max(ay1, ay2), _min(ax1, ax2), _max(ax1, ax2)
    b_ymin, b_ymax, b_xmin, b_xmax = _min(by1, by2), _max(by1, by2), _min(bx1, bx2), _max(bx1, bx2)
    zero = _F32(0)
    with np.errstate(all="ignore"):
        area_a = (a_ymax - a_ymin) * (a_xmax - a_xmin)
        area_b = (b_ymax - b_ymin) * (b_xmax - b_xmin)
        height = _min(a_ymax, b_ymax) - _max(a_ymin, b_ymin)
        width = _min(a_xmax, b_xmax) - _max(a_xmin, b_xmin)
        inter = _max(height, zero) * _max(width, zero)
        union = area_a + area_b - inter
        iou = np.where(union == zero, zero, inter / union)
    return np.where((area_a <= zero) | (area_b <= zero), zero, iou).astype(_F32)


def _compared(score: np.float32, ious: np.ndarray, p: dict[str, Any]) -> tuple[bool, np.float32]:
    """One candidate against selected boxes (newest first): whether one suppresses it, and its final score.

    TFLite's loop stops at the first IoU at or above the threshold (before
    decaying the score with it) or once the decayed score is at or below the
    score threshold.  The decayed scores are one running float32 product, so
    they are computed at once.
    """
    if not ious.size:
        return False, score
    hard = ious >= p["iou_threshold"]
    scores = np.full(ious.size, score, _F32)
    if p["soft"]:
        with np.errstate(all="ignore"):
            weights = expf(p["scale"] * ious * ious)
            scores = np.multiply.accumulate(np.concatenate([[score], weights]).astype(_F32), dtype=_F32)[1:]
    stops = np.flatnonzero(hard | (scores <= p["score_threshold"]))
    if not stops.size:
        return False, scores[-1]
    return (True, score) if hard[stops[0]] else (False, scores[stops[0]])


def _selected(boxes: np.ndarray, scores: np.ndarray, max_output: int, p: dict[str, Any]) -> tuple[list[int], list]:
    """The selected box indices and their (soft-NMS) scores, in TFLite's order."""
    current = scores.astype(_F32).copy()         # each candidate's score while it waits in the queue
    compared_up_to = np.zeros(scores.size, np.int64)

    def less(a: int, b: int) -> bool:
        return bool(current[a] < current[b])

    queue: list[int] = []
    for i in np.flatnonzero(scores > p["score_threshold"]).tolist():
        queue.append(i)
        _push_heap(queue, less)
    selected: list[int] = []
    selected_scores: list = []
    wanted = min(len(queue), max_output)
    while len(selected) < wanted and queue:
        i = queue[0]
        _pop_heap(queue, len(queue), less)
        queue.pop()
        original = current[i]
        others = np.array(selected[compared_up_to[i]:][::-1], np.int64)
        suppressed, score = _compared(original, _ious(boxes, i, others), p)
        compared_up_to[i] = len(selected)
        if suppressed:
            continue
        if score == original:
            selected.append(i)
            selected_scores.append(score)
        if score > p["score_threshold"]:
            current[i] = score
            queue.append(i)
            _push_heap(queue, less)
    return selected, selected_scores


def _scalar(t: np.ndarray) -> np.float32:
    return _F32(np.asarray(t).reshape(-1)[0])


def non_max_suppression(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Hard NMS (V4) or soft NMS (V5) over float32 boxes; outputs padded with zeros, then the count."""
    sigma = _scalar(inputs[5]) if len(inputs) > 5 else _F32(0)
    if sigma < 0:
        raise InputError(f"NON_MAX_SUPPRESSION_V5: soft-NMS sigma {sigma} is negative")
    soft = bool(sigma > 0)
    with np.errstate(all="ignore"):
        scale = _F32(-0.5) / sigma if soft else _F32(0)
    params = {"iou_threshold": _scalar(inputs[3]), "score_threshold": _scalar(inputs[4]), "soft": soft,
              "scale": scale}
    chosen, chosen_scores = _selected(inputs[0].reshape(-1, 4), inputs[1].reshape(-1), outputs[0].size, params)
    for out, values in zip(outputs[:-1], (chosen, chosen_scores)):
        out[...] = 0
        out[:len(values)] = values
    outputs[-1][...] = len(chosen)
