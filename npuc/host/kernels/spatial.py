"""Padding and space/depth/batch rearrangements, as TFLite's kernels move elements.

PAD and PADV2 surround the input with PADV2's ``constant_values`` (read at run
time) or ``pad_value``; MIRROR_PAD with the input mirrored at its edges
(REFLECT leaves the edge out, SYMMETRIC repeats it).  SPACE_TO_BATCH_ND pads
the spatial axes with ``pad_value`` and moves each block offset into the batch
(output batch ``(offset_h * block_w + offset_w) * batch + b``);
BATCH_TO_SPACE_ND undoes that and crops.  Both take 3-D tensors as 4-D ones
with a width of 1, as TFLite does.  DEPTH_TO_SPACE and SPACE_TO_DEPTH move
``block_size`` x ``block_size`` pixels to and from the depth, row-major within
the block, NHWC.  All copy stored values whatever the quantization.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _padding(x: np.ndarray, out: np.ndarray, before: np.ndarray) -> list[tuple[int, int]]:
    """(before, after) of each axis: ``before`` given, after what the output's shape leaves."""
    return [(int(b), o - d - int(b)) for b, d, o in zip(before, x.shape, out.shape)]


def pad(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """PAD and PADV2: the input inside a border of the constant value (PADV2's input 2, else ``pad_value``)."""
    x, out = inputs[0], outputs[0]
    value = inputs[2] if len(inputs) > 2 and inputs[2] is not None else np.array(p["pad_value"])
    out[...] = value.reshape(-1)[0].astype(out.dtype)
    out[tuple(slice(b, b + d) for (b, _), d in zip(_padding(x, out, p["before"]), x.shape))] = x


def mirror_pad(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """The input inside a border of itself mirrored: ``symmetric`` repeats the edge, REFLECT does not."""
    x, out = inputs[0], outputs[0]
    out[...] = np.pad(x, _padding(x, out, p["before"]), mode="symmetric" if p["symmetric"] else "reflect")


def _as_4d(x: np.ndarray) -> np.ndarray:
    """NHC as NH1C, NHWC unchanged."""
    return x.reshape(x.shape[:2] + (1,) + x.shape[2:]) if x.ndim == 3 else x


def _blocks(p: dict[str, Any], key: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Block shape and the before-edge (padding or crop) of height and width (width 1 and 0 for 3-D)."""
    block, edge = [int(b) for b in p["block"]], [int(e) for e in p[key]]
    return (block[0], block[1] if len(block) > 1 else 1), (edge[0], edge[1] if len(edge) > 1 else 0)


def space_to_batch_nd(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Pad the spatial axes with ``pad_value``, then move each block offset into the batch."""
    x, out = _as_4d(inputs[0]), outputs[0]
    (bh, bw), (top, left) = _blocks(p, "before")
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2] if out.ndim == 4 else 1
    padded = np.full((n, oh * bh, ow * bw, c), np.array(p["pad_value"]).astype(out.dtype), dtype=out.dtype)
    padded[:, top:top + h, left:left + w, :] = x
    out[...] = padded.reshape(n, oh, bh, ow, bw, c).transpose(2, 4, 0, 1, 3, 5).reshape(out.shape)


def batch_to_space_nd(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Move each block offset out of the batch into the spatial axes, then crop."""
    x, out = _as_4d(inputs[0]), outputs[0]
    (bh, bw), (top, left) = _blocks(p, "crop")
    b, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2] if out.ndim == 4 else 1
    whole = x.reshape(bh, bw, b // (bh * bw), h, w, c).transpose(2, 3, 0, 4, 1, 5)
    whole = whole.reshape(b // (bh * bw), h * bh, w * bw, c)
    out[...] = whole[:, top:top + oh, left:left + ow, :].reshape(out.shape)


def depth_to_space(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Each pixel's depth becomes a block_size x block_size block of pixels."""
    x, out, size = inputs[0], outputs[0], p["block_size"]
    n, h, w, c = x.shape
    out[...] = x.reshape(n, h, w, size, size, c // (size * size)).transpose(0, 1, 3, 2, 4, 5).reshape(out.shape)


def space_to_depth(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Each block_size x block_size block of pixels becomes one pixel's depth."""
    x, out, size = inputs[0], outputs[0], p["block_size"]
    n, h, w, c = x.shape
    out[...] = x.reshape(n, h // size, size, w // size, size, c).transpose(0, 1, 3, 2, 4, 5).reshape(out.shape)
