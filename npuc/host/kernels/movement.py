"""Data movement: RESHAPE, SQUEEZE, CONCATENATION, SPLIT, SPLIT_V, PACK, UNPACK and GATHER_ND.

These copy elements without arithmetic, with one exception TFLite makes: a
uint8 CONCATENATION whose inputs are quantized differently from its output
requantizes those inputs in float32 (``round(q * scale + bias) + zero_point``
with ``scale = input_scale * (1 / output_scale)`` and ``bias = -input_zero_point
* scale``), as its reference kernel does.  Axes arrive already made
non-negative by the compiler.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError
from ..fixedpoint import round_half_away


def reshape(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Copy the elements unchanged into the output's shape (RESHAPE and SQUEEZE)."""
    outputs[0][...] = inputs[0].reshape(outputs[0].shape)


def _requantized(x: np.ndarray, scale: float, bias: float, output_zero_point: int) -> np.ndarray:
    """TFLite's float32 requantization of one uint8 CONCATENATION input."""
    value = x.astype(np.float32) * np.float32(scale) + np.float32(bias)
    return round_half_away(value).astype(np.int64) + output_zero_point


def concatenation(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Join the inputs along ``axis``; inputs flagged in ``rescale`` are requantized to the output first."""
    out = outputs[0]
    pieces = []
    for i, x in enumerate(inputs):
        if p["rescale"][i]:
            info = np.iinfo(out.dtype)
            x = np.clip(_requantized(x, p["scale"][i], p["bias"][i], p["output_zero_point"]), info.min, info.max)
        pieces.append(x)
    out[...] = np.concatenate(pieces, axis=p["axis"])


def split(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Cut the value (input ``value_index``) along ``axis`` into the outputs' sizes (SPLIT and SPLIT_V)."""
    x, axis = inputs[p["value_index"]], p["axis"]
    start = 0
    for out in outputs:
        size = out.shape[axis]
        out[...] = np.take(x, np.arange(start, start + size), axis=axis)
        start += size


def pack(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Stack the inputs along a new ``axis``."""
    outputs[0][...] = np.stack(inputs, axis=p["axis"])


def unpack(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Slice the input along ``axis`` into one output per index, dropping that axis."""
    for k, out in enumerate(outputs):
        out[...] = np.take(inputs[0], k, axis=p["axis"])


def gather_nd(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Gather slices of ``params`` at the index tuples in the last axis of ``indices``.

    Like TFLite, an index tuple is turned into a flat offset with the
    params' strides and only that offset is bounds-checked (an InputError
    when the slice would leave the tensor).
    """
    params, indices, out = inputs[0], inputs[1], outputs[0]
    depth = indices.shape[-1]
    slice_size = int(np.prod(params.shape[depth:], dtype=np.int64))
    strides = np.array([int(np.prod(params.shape[d + 1:], dtype=np.int64)) for d in range(depth)], dtype=np.int64)
    index_tuples = indices.reshape(-1, depth).astype(np.int64)
    starts = index_tuples @ strides
    outside = np.flatnonzero((starts < 0) | (starts + slice_size > params.size))
    if outside.size:
        raise InputError(f"GATHER_ND: index {index_tuples[outside[0]].tolist()} lies outside "
                         f"params of shape {list(params.shape)}")
    flat = params.reshape(-1)
    out[...] = flat[starts[:, None] + np.arange(slice_size)].reshape(out.shape)
