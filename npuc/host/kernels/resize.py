"""RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR (NHWC), as TFLite's reference kernels compute them.

The source coordinates depend only on the sizes and the flags, so the
compiler computes them (see :mod:`npuc.host.ops.resize`) and the kernels
only gather and weigh.  For each output row (column): the lower and upper
source rows and the position between them.

TFLite has two bilinear kernels and picks by type.  float32 and uint8 take
the float one: the position is a float32 fraction f, the four neighbours are
weighted with float32 products ``v * (1 - fy) * (1 - fx)`` and summed left to
right, plus 0.5 and truncated for uint8.  int8 and int16 take the integer
one: positions have 10 fractional bits, the four weighted neighbours are
summed in int64 with 20 fractional bits and divided back, rounding half
away from zero.  The output is computed a band of rows at a time to bound
the temporaries of a large resize.  RESIZE_NEAREST_NEIGHBOR copies the
source pixel of each output pixel.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..fixedpoint import wrap_bits

#: Fractional bits of the integer kernel's positions (TFLite's ``scale_10``).
FRACTION_BITS = 10
#: Output rows computed at once.
_BAND_ROWS = 64


def trunc_div(x: np.ndarray, d: int) -> np.ndarray:
    """C's integer division (truncating towards zero) of int64 values by a positive ``d``."""
    return np.where(x >= 0, x // d, -((-x) // d))


def _bands(out: np.ndarray) -> Iterator[slice]:
    for start in range(0, out.shape[1], _BAND_ROWS):
        yield slice(start, min(start + _BAND_ROWS, out.shape[1]))


def _axis(p: dict[str, Any], axis: str, position: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.asarray(p[f"{axis}_lower"], dtype=np.int64), np.asarray(p[f"{axis}_upper"], dtype=np.int64),
            np.asarray(p[f"{axis}_{position}"]))


def _corners(x: np.ndarray, y0: np.ndarray, y1: np.ndarray, x0: np.ndarray, x1: np.ndarray,
             dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four neighbours (top-left, bottom-left, top-right, bottom-right) of every output pixel of a band."""
    top, bottom = x[:, y0].astype(dtype), x[:, y1].astype(dtype)
    return top[:, :, x0], bottom[:, :, x0], top[:, :, x1], bottom[:, :, x1]


def resize_bilinear(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Bilinear resize of an NHWC tensor with float32 weights (float32 and uint8)."""
    x, out = inputs[0], outputs[0]
    y0, y1, fy = _axis(p, "y", "fraction")
    x0, x1, fx = _axis(p, "x", "fraction")
    one = np.float32(1)
    wy1_all = fy.astype(np.float32)
    wx1 = fx.astype(np.float32)[None, None, :, None]
    wx0 = one - wx1
    for rows in _bands(out):
        v00, v10, v01, v11 = _corners(x, y0[rows], y1[rows], x0, x1, np.float32)
        wy1 = wy1_all[rows][None, :, None, None]
        wy0 = one - wy1
        with np.errstate(all="ignore"):      # infinities times zero weights: NaN, as in C
            value = v00 * wy0 * wx0 + v10 * wy1 * wx0 + v01 * wy0 * wx1 + v11 * wy1 * wx1
        if np.issubdtype(out.dtype, np.integer):
            value = value + np.float32(0.5)
        out[:, rows] = value.astype(out.dtype)


def resize_bilinear_integer(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Bilinear resize of an NHWC tensor in fixed point (int8 and int16)."""
    x, out = inputs[0], outputs[0]
    one = 1 << FRACTION_BITS
    y0, y1, sy = _axis(p, "y", "position")
    x0, x1, sx = _axis(p, "x", "position")
    wx1 = (sx.astype(np.int64) - one * x0)[None, None, :, None]
    wx0 = one - wx1
    half = 1 << (2 * FRACTION_BITS - 1)
    for rows in _bands(out):
        v00, v10, v01, v11 = _corners(x, y0[rows], y1[rows], x0, x1, np.int64)
        wy1 = (sy.astype(np.int64)[rows] - one * y0[rows])[None, :, None, None]
        wy0 = one - wy1
        total = v00 * wy0 * wx0 + v10 * wy1 * wx0 + v01 * wy0 * wx1 + v11 * wy1 * wx1
        rounded = trunc_div(total + np.where(total > 0, half, -half), one * one)
        out[:, rows] = wrap_bits(rounded, 8 * out.dtype.itemsize).astype(out.dtype)


def resize_nearest_neighbor(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Each output pixel is a copy of its source pixel (any element type)."""
    x, out = inputs[0], outputs[0]
    rows, cols = np.asarray(p["rows"], dtype=np.int64), np.asarray(p["cols"], dtype=np.int64)
    out[...] = x[:, rows][:, :, cols]
