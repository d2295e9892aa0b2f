"""Slicing and gathering: a strided window of the input (STRIDED_SLICE, SLICE, REVERSE_V2), GATHER and GATHER_ND.

The window walks *effective axes* (the input's axes, with STRIDED_SLICE's new
axes of size 1 inserted): along each, ``size`` elements from ``begin`` in
steps of ``stride`` (negative to walk backwards); the output holds them in
row-major order, shrunk axes having size 1.

GATHER and GATHER_ND take their indices at run time and, like TFLite, refuse
indices outside the params: GATHER each index against its axis, GATHER_ND every
index against 0 and the flat offset of each index tuple (TFLite bounds only the
slice it starts, so an index past its own axis may still land inside the
params).  Here a refused index is an InputError; the C runtime, whose kernels
cannot fail, writes zeros for the slices such indices select instead.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import InputError


def strided_slice(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """The elements of the window ``begin`` / ``stride`` / ``size`` over the effective ``axes`` (-1: a new axis)."""
    x, out = inputs[0], outputs[0]
    view = x.reshape([1 if a < 0 else x.shape[a] for a in p["axes"]])
    window = tuple(_walk(int(b), int(s), int(n)) for b, s, n in zip(p["begin"], p["stride"], p["size"]))
    out[...] = view[window].reshape(out.shape)


def _walk(begin: int, stride: int, size: int) -> slice:
    """``size`` indices from ``begin`` in steps of ``stride``, as a slice (a stop before index 0 is open)."""
    if size == 0:
        return slice(0, 0)
    stop = begin + size * stride
    return slice(begin, stop if stop >= 0 else None, stride)


def gather(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Slices of params along ``axis`` at the indices, per batch of the ``batch_dims`` leading axes."""
    params, indices, out = inputs[0], inputs[1], outputs[0]
    axis, batch_dims = p["axis"], p["batch_dims"]
    batches = int(np.prod(params.shape[:batch_dims], dtype=np.int64))
    outer = int(np.prod(params.shape[batch_dims:axis], dtype=np.int64))
    positions = indices.reshape(batches, int(np.prod(indices.shape[batch_dims:], dtype=np.int64))).astype(np.int64)
    size = params.shape[axis]
    outside = np.flatnonzero((positions < 0) | (positions >= size))
    if outside.size:
        raise InputError(f"GATHER: index {int(positions.reshape(-1)[outside[0]])} lies outside axis {axis} of "
                         f"params of shape {list(params.shape)}")
    source = params.reshape(batches, outer, size, int(np.prod(params.shape[axis + 1:], dtype=np.int64)))
    taken = source[np.arange(batches)[:, None, None], np.arange(outer)[None, :, None], positions[:, None, :]]
    out[...] = taken.reshape(out.shape)


def tuple_starts(shape: tuple[int, ...], indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flat start of the slice of ``shape`` each index tuple (last axis of ``indices``) selects, and whether
    TFLite refuses the tuple: a negative index, or a slice that would leave the tensor.

    Only the flat offset is bounded, as TFLite bounds it.  An index past
    ``size // stride`` alone puts its slice out of range; capping it there
    keeps the sums in int64.
    """
    depth = indices.shape[-1]
    size = math.prod(shape)
    slice_size = math.prod(shape[depth:])
    strides = np.array([math.prod(shape[d + 1:]) for d in range(depth)], dtype=np.int64)
    tuples = indices.reshape(math.prod(indices.shape[:-1]), depth).astype(np.int64)
    starts = np.clip(tuples, -1, size // np.maximum(strides, 1) + 1) @ strides
    return starts, (tuples < 0).any(axis=1) | (starts + slice_size > size)


def gather_nd(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Gather slices of ``params`` at the index tuples in the last axis of ``indices``.

    A tuple TFLite refuses (:func:`tuple_starts`) is an InputError.
    """
    params, indices, out = inputs[0], inputs[1], outputs[0]
    starts, refused = tuple_starts(params.shape, indices)
    outside = np.flatnonzero(refused)
    if outside.size:
        bad = indices.reshape(-1, indices.shape[-1])[outside[0]] if indices.shape[-1] else []
        raise InputError(f"GATHER_ND: index {[int(i) for i in bad]} lies outside params of shape {list(params.shape)}")
    slice_size = math.prod(params.shape[indices.shape[-1]:])
    out[...] = params.reshape(-1)[starts[:, None] + np.arange(slice_size)].reshape(out.shape)
