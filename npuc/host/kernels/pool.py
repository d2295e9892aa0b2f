"""AVERAGE_POOL_2D, MAX_POOL_2D and L2_POOL_2D over NHWC tensors, as TFLite's reference kernels compute them.

Each window counts only the input positions it covers (padding adds nothing and
is not counted).  The integer kernels (uint8, int8, int16) do not requantize:
TFLite only checks in debug builds that input and output share scale and zero
point, and otherwise computes on the raw values; the average rounds half away
from zero.  The float32 kernels sum in the window's row-major order from 0,
divide by the count in float32, and clamp with ``std::min(std::max(x, lo),
hi)``; the max starts from the lowest float and keeps the earlier value on
ties and NaNs, as ``std::max`` does.  L2_POOL_2D has only a float32 kernel.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .kernel import clamp_float, store


def _taps(x: np.ndarray, out: np.ndarray, p: dict[str, Any], fill: Any
          ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For every window position (row-major): the values it meets at each output, and whether each is inside."""
    n, h, w, c = x.shape
    _, oh, ow, _ = out.shape
    fh, fw, sh, sw = p["filter_h"], p["filter_w"], p["stride_h"], p["stride_w"]
    top, left = p["pad_top"], p["pad_left"]
    padded_h, padded_w = max((oh - 1) * sh + fh, top + h), max((ow - 1) * sw + fw, left + w)
    values = np.full((n, padded_h, padded_w, c), fill, dtype=x.dtype)
    values[:, top:top + h, left:left + w, :] = x
    inside = np.zeros((padded_h, padded_w), dtype=bool)
    inside[top:top + h, left:left + w] = True
    for ky in range(fh):
        for kx in range(fw):
            rows, cols = slice(ky, ky + (oh - 1) * sh + 1, sh), slice(kx, kx + (ow - 1) * sw + 1, sw)
            yield values[:, rows, cols, :], inside[rows, cols][None, :, :, None]


def _divide_round_half_away(acc: np.ndarray, count: np.ndarray) -> np.ndarray:
    """C's ``(acc +- count/2) / count`` with truncating division, i.e. the rounded quotient, ties away from 0."""
    q = (np.abs(acc) + count // 2) // count
    return np.where(acc < 0, -q, q)


def average_pool_2d(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Average pooling over the in-bounds part of each window: integer (rounded) or float32."""
    x, out = inputs[0], outputs[0]
    floating = out.dtype == np.float32
    acc = np.zeros(out.shape, dtype=np.float32 if floating else np.int64)
    count = np.zeros(out.shape[1:3], dtype=np.int64)[None, :, :, None]
    for tap, inside in _taps(x, out, p, 0):
        acc = acc + tap.astype(acc.dtype)  # padding adds +0 (a float sum that starts at +0 never becomes -0)
        count = count + inside
    # A window wholly in the padding makes TFLite's kernel fail; such shapes are refused at compile time.
    if floating:
        with np.errstate(all="ignore"):
            out[...] = clamp_float(acc / count.astype(np.float32), p["act_min"], p["act_max"])
    else:
        store(out, _divide_round_half_away(acc, count), p["act_min"], p["act_max"])


def max_pool_2d(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """The largest value of each window's in-bounds part, clamped to the activation range."""
    x, out = inputs[0], outputs[0]
    floating = out.dtype == np.float32
    lowest = np.finfo(np.float32).min if floating else np.iinfo(x.dtype).min
    best = np.full(out.shape, lowest, dtype=x.dtype)
    for tap, inside in _taps(x, out, p, lowest):
        best = np.where(inside & (best < tap), tap, best)
    if floating:
        out[...] = clamp_float(best, p["act_min"], p["act_max"])
    else:
        store(out, best.astype(np.int64), p["act_min"], p["act_max"])


def l2_pool_2d(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float32: sqrt(sum of squares / count) over each window's in-bounds part, clamped."""
    x, out = inputs[0], outputs[0]
    total = np.zeros(out.shape, dtype=np.float32)
    count = np.zeros(out.shape[1:3], dtype=np.int64)[None, :, :, None]
    with np.errstate(all="ignore"):
        for tap, inside in _taps(x, out, p, 0):
            total = total + tap * tap
            count = count + inside
        out[...] = clamp_float(np.sqrt(total / count.astype(np.float32)), p["act_min"], p["act_max"])
