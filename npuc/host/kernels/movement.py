"""Data movement: reshapes, joins and cuts, rearrangements and fills, as TFLite's kernels move elements.

RESHAPE, SQUEEZE and EXPAND_DIMS copy the elements unchanged; CONCATENATION,
SPLIT, SPLIT_V, PACK and UNPACK join or cut along one axis; TRANSPOSE, TILE and
BROADCAST_TO rearrange or repeat; ZEROS_LIKE and FILL write one value
everywhere.  They copy stored values whatever the quantization, with one
exception TFLite makes: a uint8 CONCATENATION whose inputs are quantized
differently from its output requantizes those inputs in float32
(``round(q * scale + bias) + zero_point``, rounding half away from zero, with
``scale = input_scale * (1 / output_scale)`` and ``bias = -input_zero_point *
scale``), as its reference kernel does.  Axes arrive already made non-negative
by the compiler.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fixedpoint import round_half_away


def reshape(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Copy the elements unchanged into the output's shape (RESHAPE, SQUEEZE and EXPAND_DIMS)."""
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
            x = np.clip(_requantized(x, p["scale"][i], p["bias"][i], p["output_zero_point"]), 0, 255)
        pieces.append(x)
    out[...] = np.concatenate(pieces, axis=p["axis"])


def split(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Cut the value (input ``value_index``) along ``axis`` into the outputs' sizes (SPLIT and SPLIT_V)."""
    x, axis = inputs[p["value_index"]], p["axis"]
    bounds = np.cumsum([out.shape[axis] for out in outputs])[:-1]
    for out, part in zip(outputs, np.split(x, bounds, axis=axis)):
        out[...] = part


def pack(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Stack the inputs along a new ``axis``."""
    outputs[0][...] = np.stack(inputs, axis=p["axis"])


def unpack(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Slice the input along ``axis`` into one output per index, dropping that axis."""
    for k, out in enumerate(outputs):
        out[...] = np.take(inputs[0], k, axis=p["axis"])


def transpose(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Output axis k is input axis ``perm[k]``."""
    outputs[0][...] = np.transpose(inputs[0], [int(a) for a in p["perm"]])


def tile(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Repeat the input ``multiples[k]`` times along each axis k."""
    outputs[0][...] = np.tile(inputs[0], [int(m) for m in p["multiples"]])


def broadcast_to(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Repeat the input along its size-1 and missing leading axes to the output's shape."""
    outputs[0][...] = np.broadcast_to(inputs[0], outputs[0].shape)


def zeros_like(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Zeros in the input's shape."""
    outputs[0][...] = 0


def fill(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """The one element of input 1 (``value``, read at run time) everywhere."""
    outputs[0][...] = inputs[1].reshape(-1)[0]
