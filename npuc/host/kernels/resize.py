"""RESIZE_BILINEAR (NHWC), as TFLite's reference kernels compute it.

TFLite has two bilinear kernels and picks by type.  float32 and uint8 take
the float one: source coordinates ``y * scale`` (or ``(y + 0.5) * scale - 0.5``
with half-pixel centers) in float32, the four neighbours weighted with
float32 products summed left to right, plus 0.5 and truncated for uint8.  int8
takes the integer one: the scale and coordinates in fixed point with 10
fractional bits, the four weighted neighbours summed in int64 with 20
fractional bits and divided back, rounding half away from zero.  With
``align_corners`` the scale maps the corner pixels onto each other.  The
output is computed a band of rows at a time to bound the temporaries of a
large resize.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..fixedpoint import wrap_bits

#: Fractional bits of the integer kernel's coordinates (TFLite's ``scale_10``).
_FRACTION_BITS = 10
#: Output rows computed at once.
_BAND_ROWS = 64


def _trunc_div(x: np.ndarray, d: int) -> np.ndarray:
    """C's integer division (truncating towards zero) of int64 values by a positive ``d``."""
    return np.where(x >= 0, x // d, -((-x) // d))


def _float_axis(out_size: int, in_size: int, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, float32 fraction) of every output position along one axis."""
    if p["align_corners"] and out_size > 1:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    v = np.arange(out_size, dtype=np.float32)
    scaled = (v + np.float32(0.5)) * scale - np.float32(0.5) if p["half_pixel_centers"] else v * scale
    lower = np.maximum(np.floor(scaled).astype(np.int64), 0)
    upper = np.minimum(np.ceil(scaled).astype(np.int64), in_size - 1)
    return lower, upper, scaled - lower.astype(np.float32)


def _integer_axis(out_size: int, in_size: int, p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, position with 10 fractional bits) of every output position along one axis."""
    one = 1 << _FRACTION_BITS
    if p["align_corners"] and out_size > 1:
        scale = (one * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale = (one * in_size + out_size // 2) // out_size
    v = np.arange(out_size, dtype=np.int64)
    scaled = v * scale + scale // 2 - one // 2 if p["half_pixel_centers"] else v * scale
    lower = np.maximum(_trunc_div(scaled, one), 0)
    upper = np.minimum(_trunc_div(scaled + one - 1, one), in_size - 1)
    return lower, upper, scaled


def _bands(out: np.ndarray) -> Iterator[slice]:
    for start in range(0, out.shape[1], _BAND_ROWS):
        yield slice(start, min(start + _BAND_ROWS, out.shape[1]))


def _corners(x: np.ndarray, y0: np.ndarray, y1: np.ndarray, x0: np.ndarray, x1: np.ndarray,
             dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four neighbours (top-left, bottom-left, top-right, bottom-right) of every output pixel of a band."""
    top, bottom = x[:, y0].astype(dtype), x[:, y1].astype(dtype)
    return top[:, :, x0], bottom[:, :, x0], top[:, :, x1], bottom[:, :, x1]


def _resize_float(x: np.ndarray, out: np.ndarray, p: dict[str, Any]) -> None:
    y0, y1, fy = _float_axis(out.shape[1], x.shape[1], p)
    x0, x1, fx = _float_axis(out.shape[2], x.shape[2], p)
    one = np.float32(1)
    wx1 = fx[None, None, :, None]
    wx0 = one - wx1
    rounding = np.float32(0.5 if np.issubdtype(out.dtype, np.integer) else 0.0)
    for rows in _bands(out):
        v00, v10, v01, v11 = _corners(x, y0[rows], y1[rows], x0, x1, np.float32)
        wy1 = fy[rows][None, :, None, None]
        wy0 = one - wy1
        value = v00 * wy0 * wx0 + v10 * wy1 * wx0 + v01 * wy0 * wx1 + v11 * wy1 * wx1 + rounding
        out[:, rows] = value.astype(out.dtype)


def _resize_integer(x: np.ndarray, out: np.ndarray, p: dict[str, Any]) -> None:
    one = 1 << _FRACTION_BITS
    y0, y1, sy = _integer_axis(out.shape[1], x.shape[1], p)
    x0, x1, sx = _integer_axis(out.shape[2], x.shape[2], p)
    wx1 = (sx - one * x0)[None, None, :, None]
    wx0 = one - wx1
    half = 1 << (2 * _FRACTION_BITS - 1)
    for rows in _bands(out):
        v00, v10, v01, v11 = _corners(x, y0[rows], y1[rows], x0, x1, np.int64)
        wy1 = (sy[rows] - one * y0[rows])[None, :, None, None]
        wy0 = one - wy1
        total = v00 * wy0 * wx0 + v10 * wy1 * wx0 + v01 * wy0 * wx1 + v11 * wy1 * wx1
        rounded = _trunc_div(total + np.where(total > 0, half, -half), one * one)
        out[:, rows] = wrap_bits(rounded, 8 * out.dtype.itemsize).astype(out.dtype)


def resize_bilinear(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Bilinear resize of an NHWC tensor to the output's height and width (float kernel for float32/uint8)."""
    x, out = inputs[0], outputs[0]
    if out.dtype in (np.float32, np.uint8):
        _resize_float(x, out, p)
    else:
        _resize_integer(x, out, p)
