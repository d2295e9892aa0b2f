"""Slicing and gathering on the host (STRIDED_SLICE, SLICE, REVERSE_V2, GATHER, GATHER_ND): their parameters.

STRIDED_SLICE, SLICE and REVERSE_V2 share one kernel: a strided window of the
input.  Each fold resolves its operator into the window's *effective axes*
(TFLite's name for the input's axes once STRIDED_SLICE's new axes are
inserted): for each, the input axis it walks (-1 for a new axis), the first
index, the step and the number of elements.  For STRIDED_SLICE that is
TFLite's BuildStridedSliceParams (ellipsis and new-axis masks expanded, the
``offset`` option) followed by StartForAxis and EndForAxis, as its kernel
computes them; the fold also computes the output shape the way TFLite's
Prepare does and refuses a model whose output shape disagrees with it, or
whose windows TFLite's loops would not fill (a shrunk axis with a negative
stride, for one), since TFLite's output would then hold whatever its memory
held.  SLICE resolves a size of -1; REVERSE_V2 walks its (contiguous) axes
backwards.

GATHER and GATHER_ND take their indices at run time (constant indices are
checked here, as TFLite's Prepare does when it gathers constants).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import HostOp, Int, Ints
from ..kernels import slicing
from .common import Params, fail, input_tensor, normalized_axis, require_type, same_type
from .movement import ALL_TYPES, MAX_VIEW_AXES, constant_vector, int32_values, io, require_output

#: Types of GATHER's and GATHER_ND's indices.
INDEX_TYPES = ("int16", "int32", "int64")
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
#: STRIDED_SLICE's mask bits TFLite reads.
MAX_SLICE_INDICES = 31


# -- the strided window ----------------------------------------------------------------------------

@dataclass
class _Axis:
    """One effective axis of a STRIDED_SLICE, as TFLite's BuildStridedSliceParams leaves it."""

    source: int          # the input axis, -1 for a new axis
    size: int            # its extent (1 for a new axis)
    start: int
    stop: int
    stride: int
    begin_mask: bool = False
    end_mask: bool = False
    shrink: bool = False


def _window(axes: list[int], begin: list[int], stride: list[int], size: list[int]) -> Params:
    return {"axes": int32_values(axes), "begin": int32_values(begin), "stride": int32_values(stride),
            "size": int32_values(size)}


def _bit(mask: int, i: int) -> bool:
    return bool(mask >> i & 1)


def _effective_axes(op: Op, x: Tensor, begin: list[int], end: list[int], strides: list[int]) -> list[_Axis]:
    """TFLite's BuildStridedSliceParams: the ellipsis expanded, new axes inserted, masks moved along."""
    o = op.options
    ellipsis, new_axis = int(o.get("ellipsis_mask", 0)), int(o.get("new_axis_mask", 0))
    n, rank = len(begin), len(x.shape)
    added = sum(1 for i in range(n) if not _bit(ellipsis, i) and _bit(new_axis, i))
    dims = rank + added
    if dims > MAX_VIEW_AXES:
        raise fail(op, f"its {dims} effective axes are more than the host kernel walks")
    in_ellipsis, is_new, ellipsis_start, expanded = set(), set(), dims, 0
    i = 0
    while i < dims:
        if _bit(ellipsis, i):
            ellipsis_start = i
            stop = max(i + 1, min(i + 1 + added + rank - n, dims))
            expanded = stop - ellipsis_start - 1
            in_ellipsis.update(range(i, stop))
            i = stop
            continue
        if _bit(new_axis, i - expanded):
            is_new.add(i)
        i += 1
    out, added_ellipsis, added_axes = [], 0, 0
    for i in range(dims):
        source = i - added_axes
        if i in is_new:
            out.append(_Axis(-1, 1, 0, 1, 1))
            added_axes += 1
            continue
        if source >= rank:
            raise fail(op, "its masks address more axes than the input has")
        if i in in_ellipsis or i >= n + expanded:
            added_ellipsis = max(0, i - ellipsis_start) if i in in_ellipsis else added_ellipsis
            out.append(_Axis(source, x.shape[source], 0, 0, 1, True, True))
            continue
        k = i - added_ellipsis
        out.append(_Axis(source, x.shape[source], begin[k], end[k], strides[k], _masked(op, "begin_mask", k),
                         _masked(op, "end_mask", k), _masked(op, "shrink_axis_mask", k)))
    return out


def _masked(op: Op, mask: str, k: int) -> bool:
    return _bit(int(op.options.get(mask, 0)), k)


def _start(a: _Axis) -> int:
    """TFLite's StartForAxis."""
    start = a.start + a.size if a.start < 0 else a.start
    start = min(max(start, 0), a.size) if a.stride > 0 else min(max(start, -1), a.size - 1)
    if a.begin_mask:
        start = 0 if a.stride > 0 else a.size - 1
    return start


def _stop(op: Op, a: _Axis, start: int, offset: bool) -> int:
    """TFLite's EndForAxis."""
    if a.shrink:
        return start if start >= a.size else start + 1
    stop = a.stop + start if offset else a.stop
    if not INT32_MIN <= stop <= INT32_MAX:
        raise fail(op, "its end overflows int32")
    stop = stop + a.size if stop < 0 else stop
    stop = min(max(stop, 0), a.size) if a.stride > 0 else min(max(stop, -1), a.size - 1)
    if a.end_mask:
        stop = a.size if a.stride > 0 else -1
    return stop


def _steps(length: int, stride: int) -> int:
    """How many strides TFLite's loops (and its shape computation) take over ``length``, 0 if it points away."""
    if length == 0 or (length < 0) != (stride < 0):
        return 0
    return (length + 1) // stride + 1 if stride < 0 else (length - 1) // stride + 1


def _tflite_shape(op: Op, axes: list[_Axis], end: list[int], offset: bool) -> list[int]:
    """The output shape TFLite's Prepare gives: with ``offset``, the raw end values of the effective axes."""
    shape = []
    for idx, a in enumerate(axes):
        if a.shrink:
            continue
        if offset:
            if idx >= len(end):
                raise fail(op, "its offset end values do not cover its effective axes")
            length = end[idx]
        else:
            start = _start(a)
            length = _stop(op, a, start, False) - start
        shape.append(_steps(length, a.stride))
    return shape


def _int32_vector(op: Op, t: Tensor, what: str) -> list[int]:
    """A constant 1-D int32 operand of any length."""
    return constant_vector(op, t, what, t.num_elements, ("int32",))


def _strided_slice(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, ALL_TYPES)
    begin, end, strides = (_int32_vector(op, input_tensor(graph, op, i, what), what)
                           for i, what in ((1, "begin"), (2, "end"), (3, "strides")))
    if not len(begin) == len(end) == len(strides) <= MAX_SLICE_INDICES:
        raise fail(op, f"begin, end and strides must hold as many values, at most {MAX_SLICE_INDICES}")
    if any(s in (0, INT32_MIN) for s in strides):
        raise fail(op, f"strides {strides} must be non-zero and above INT32_MIN")
    offset = bool(op.options.get("offset", False))
    axes = _effective_axes(op, x, begin, end, strides)
    require_output(op, y, _tflite_shape(op, axes, end, offset))
    starts = [_start(a) for a in axes]
    sizes = [_steps(_stop(op, a, s, offset) - s, a.stride) for a, s in zip(axes, starts)]
    if any(a.shrink and n != 1 for a, n in zip(axes, sizes)):
        raise fail(op, "a shrunk axis selects no element (an index out of range, or a negative stride)")
    if [n for a, n in zip(axes, sizes) if not a.shrink] != list(y.shape):
        raise fail(op, f"TFLite would fill only part of output {y.describe()}")
    return _window([a.source for a in axes], starts, [a.stride for a in axes], sizes)


def _slice(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, ALL_TYPES)
    rank = len(x.shape)
    begin_t, size_t = input_tensor(graph, op, 1, "begin"), input_tensor(graph, op, 2, "size")
    same_type(op, begin_t, size_t)
    begin, size = constant_vector(op, begin_t, "begin", rank), constant_vector(op, size_t, "size", rank)
    sizes = [d - b if n == -1 else n for d, b, n in zip(x.shape, begin, size)]
    if any(b < 0 or n < 0 or b + n > d for d, b, n in zip(x.shape, begin, sizes)):
        raise fail(op, f"begin {begin} and size {size} leave {x.describe()}")
    require_output(op, y, sizes)
    return _window(list(range(rank)), begin, [1] * rank, sizes)


def _reverse_v2(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, ALL_TYPES)
    rank = len(x.shape)
    axes = sorted(normalized_axis(op, a, rank) for a in _int32_vector(op, input_tensor(graph, op, 1, "axis"), "axis"))
    if not axes or len(axes) > rank or axes != list(range(axes[0], axes[0] + len(axes))):
        raise fail(op, f"axes {axes} must be distinct and contiguous, as TFLite requires")
    require_output(op, y, x.shape)
    flipped = [k in axes for k in range(rank)]
    return _window(list(range(rank)), [max(d - 1, 0) if f else 0 for d, f in zip(x.shape, flipped)],
                   [-1 if f else 1 for f in flipped], list(x.shape))


# -- gathers ---------------------------------------------------------------------------------------

def _gather(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, ALL_TYPES)
    indices = input_tensor(graph, op, 1, "indices")
    require_type(op, indices, "indices", INDEX_TYPES)
    axis = normalized_axis(op, int(op.options.get("axis", 0)), len(x.shape))
    batch_dims = int(op.options.get("batch_dims", 0))
    batch_dims += len(indices.shape) if batch_dims < 0 else 0
    if not 0 <= batch_dims <= min(axis, len(indices.shape)) or x.shape[:batch_dims] != indices.shape[:batch_dims]:
        raise fail(op, f"batch_dims {batch_dims} does not fit params {x.describe()} and indices {indices.describe()}")
    require_output(op, y, x.shape[:axis] + indices.shape[batch_dims:] + x.shape[axis + 1:])
    positions = np.asarray(indices.data) if indices.is_constant else np.zeros(0)
    if positions.size and (positions.min() < 0 or positions.max() >= x.shape[axis]):
        raise fail(op, f"constant indices {indices.describe()} leave axis {axis} of {x.describe()}")
    return {"axis": axis, "batch_dims": batch_dims}


def _gather_nd(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, ALL_TYPES)
    indices = input_tensor(graph, op, 1, "indices")
    require_type(op, indices, "indices", INDEX_TYPES)
    if not x.shape or not indices.shape or indices.shape[-1] > len(x.shape):
        raise fail(op, f"indices {indices.describe()} do not index params {x.describe()}")
    if x.num_elements == 0 and indices.num_elements:
        raise fail(op, f"params {x.describe()} is empty")
    depth = indices.shape[-1]
    require_output(op, y, indices.shape[:-1] + x.shape[depth:])
    if indices.is_constant and slicing.tuple_starts(x.shape, np.asarray(indices.data))[1].any():
        raise fail(op, f"constant indices {indices.describe()} leave params {x.describe()}")
    return {}


_WINDOW = (Ints("axes", -1, 5), Ints("begin", -1), Ints("stride"), Ints("size", 0))

OPS = (
    HostOp("STRIDED_SLICE", _WINDOW, _strided_slice, slicing.strided_slice),
    HostOp("SLICE", _WINDOW, _slice, slicing.strided_slice, stem="strided_slice"),
    HostOp("REVERSE_V2", _WINDOW, _reverse_v2, slicing.strided_slice, stem="strided_slice"),
    HostOp("GATHER", (Int("axis", 0, 5), Int("batch_dims", 0, 5)), _gather, slicing.gather),
    HostOp("GATHER_ND", (), _gather_nd, slicing.gather_nd),
)
