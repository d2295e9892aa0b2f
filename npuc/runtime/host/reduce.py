"""Quantized AVERAGE_POOL_2D and MEAN, and ARG_MAX, as TFLite's reference kernels compute them.

AVERAGE_POOL_2D averages the window's values that lie inside the input (padding
is not counted) and rounds half away from zero; it does not requantize, so
input and output share scale and zero point.  MEAN sums over the reduced axes,
removes the input zero point and requantizes with a multiplier into which the
compiler already folded 1 / (number of reduced elements), exactly as TFLite's
``QuantizedMeanOrSum`` adapts its multiplier at run time.  ARG_MAX returns the
first index of the largest value along one axis, as TFLite's strict comparison
does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fixedpoint import multiply_by_quantized_multiplier, wrap_int32
from .kernel import HostKernel, kernel, store


def _divide_round_half_away(acc: np.ndarray, count: np.ndarray) -> np.ndarray:
    """C's ``(acc +- count/2) / count`` with truncating division, i.e. the rounded quotient, ties away from 0."""
    q = (np.abs(acc) + count // 2) // count
    return np.where(acc < 0, -q, q)


def average_pool_2d(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Quantized average pooling over the in-bounds part of each window, NHWC."""
    x, out = inputs[0], outputs[0]
    n, h, w, c = x.shape
    _, oh, ow, _ = out.shape
    fh, fw, sh, sw = p["filter_h"], p["filter_w"], p["stride_h"], p["stride_w"]
    top, left = p["pad_top"], p["pad_left"]
    need_h, need_w = (oh - 1) * sh + fh, (ow - 1) * sw + fw
    padded_h, padded_w = max(need_h, top + h), max(need_w, left + w)
    values = np.zeros((n, padded_h, padded_w, c), dtype=np.int64)
    values[:, top:top + h, left:left + w, :] = x
    inside = np.zeros((padded_h, padded_w), dtype=np.int64)
    inside[top:top + h, left:left + w] = 1
    acc = np.zeros((n, oh, ow, c), dtype=np.int64)
    count = np.zeros((oh, ow), dtype=np.int64)
    for ky in range(fh):
        for kx in range(fw):
            rows, cols = slice(ky, ky + (oh - 1) * sh + 1, sh), slice(kx, kx + (ow - 1) * sw + 1, sw)
            acc += values[:, rows, cols, :]
            count += inside[rows, cols]
    # A window wholly in the padding makes TFLite's kernel fail; such shapes are refused at compile time.
    avg = _divide_round_half_away(acc, count[None, :, :, None])
    store(out, avg, p["act_min"], p["act_max"])


def mean(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Quantized mean over the axes in ``axes``, requantized to the output's scale and zero point."""
    x, out = inputs[0], outputs[0]
    axes = tuple(int(a) for a in p["axes"])
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    total = x.astype(np.int64).sum(axis=axes) - p["input_zero_point"] * count
    scaled = multiply_by_quantized_multiplier(wrap_int32(total), p["output_multiplier"], p["output_shift"])
    store(out, scaled + p["output_zero_point"], p["act_min"], p["act_max"])


def arg_max(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Index of the first largest value along ``axis`` (int32 or int64 output)."""
    out = outputs[0]
    out[...] = np.argmax(inputs[0], axis=p["axis"]).reshape(out.shape).astype(out.dtype)


KERNELS: tuple[HostKernel, ...] = (
    kernel("AVERAGE_POOL_2D", average_pool_2d),
    kernel("MEAN", mean),
    kernel("ARG_MAX", arg_max),
)
