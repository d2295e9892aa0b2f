"""CONV_2D, DEPTHWISE_CONV_2D and TRANSPOSE_CONV over NHWC tensors, as TFLite's reference kernels compute them.

Quantized kernels accumulate ``(input + input_offset) * (filter +
filter_offset)`` over the window, add the bias, rescale each output channel
with ``MultiplyByQuantizedMultiplier``, add the output offset and clamp.
TFLite's 8-bit accumulators are int32 (they wrap, as here); its 16x8 ones are
int64 and rescale with the 64-bit ``MultiplyByQuantizedMultiplier`` (``wide``).
Padding contributes nothing, which is what an input equal to its zero point
contributes, so offset inputs are padded with zeros.  Integer dot products
run as float64 matrix products: every product is below 2^23 in magnitude, so
sums stay exact integers far beyond any real filter (2^53 / 2^23 terms), and
BLAS runs a whole MobileNet in well under a second.

Float32 sums are not associative, so the float kernels add the products in
TFLite's order, one filter tap (and input channel) at a time over every output
at once, starting from +0 and skipping the taps that fall in the padding
(``np.add(..., where=...)``: adding a zero instead would not be the same when
a filter value is infinite or NaN).  TRANSPOSE_CONV scatters each input
element over the outputs it reaches; an output therefore receives its terms
by input row, column and channel, which is filter row and column backwards.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..decl import KernelFn
from ..fixedpoint import as_i64, multiply_by_quantized_multiplier, wrap_int32
from .kernel import clamp_float, store

Params = dict[str, Any]


def ieee(kernel: KernelFn) -> KernelFn:
    """A float kernel, whose overflows to infinity and invalid operations to NaN are results, as in C."""
    @functools.wraps(kernel)
    def quiet(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
        with np.errstate(all="ignore"):
            kernel(inputs, outputs, p)
    return quiet


# -- requantization ------------------------------------------------------------------------

def multiply_by_quantized_multiplier_wide(x: np.ndarray, multiplier: Any, shift: Any) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier for an int64 ``x``: the multiplier rounded to 16 bits, one rounding.

    The product wraps in int64 and the result is cast to int32, as the C++
    code does on every machine TFLite runs on.
    """
    m, s = as_i64(multiplier), as_i64(shift)
    reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - s
    with np.errstate(over="ignore"):
        return wrap_int32((as_i64(x) * reduced + (np.int64(1) << (total - 1))) >> total)


def finish_quantized(acc: np.ndarray, bias: np.ndarray | None, out: np.ndarray, p: Params) -> None:
    """Bias, accumulator width, per-channel (last axis) requantization, output offset, clamp, store."""
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    if p["wide"]:
        scaled = multiply_by_quantized_multiplier_wide(acc, p["output_multiplier"], p["output_shift"])
    else:
        scaled = multiply_by_quantized_multiplier(wrap_int32(acc), p["output_multiplier"], p["output_shift"])
    store(out, wrap_int32(scaled + p["output_offset"]), p["act_min"], p["act_max"])


def finish_float(acc: np.ndarray, bias: np.ndarray | None, out: np.ndarray, p: Params) -> None:
    """Bias (per output channel, the last axis) and TFLite's float clamp."""
    total = acc if bias is None else acc + bias
    out[...] = clamp_float(total, p["act_min"], p["act_max"]).reshape(out.shape)


def optional(inputs: list[np.ndarray | None], k: int) -> np.ndarray | None:
    """Input ``k``, or None when the operator lacks it."""
    return inputs[k] if len(inputs) > k else None


# -- windows ---------------------------------------------------------------------------------

def _reach(out_size: int, k: int, stride: int, dilation: int) -> int:
    """Rows (or columns) of padded input the windows of ``out_size`` outputs reach."""
    return (out_size - 1) * stride + (k - 1) * dilation + 1


def _padded(x: np.ndarray, out: np.ndarray, kh: int, kw: int, p: Params) -> tuple[np.ndarray, np.ndarray]:
    """``x`` zero-padded to every position the windows reach, and which of those positions are inside ``x``."""
    n, h, w, c = x.shape
    top, left = p["pad_top"], p["pad_left"]
    rows = max(_reach(out.shape[1], kh, p["stride_h"], p["dilation_h"]), top + h)
    cols = max(_reach(out.shape[2], kw, p["stride_w"], p["dilation_w"]), left + w)
    padded = np.zeros((n, rows, cols, c), dtype=x.dtype)
    padded[:, top:top + h, left:left + w, :] = x
    inside = np.zeros((rows, cols), dtype=bool)
    inside[top:top + h, left:left + w] = True
    return padded, inside


def _taps(padded: np.ndarray, inside: np.ndarray, out: np.ndarray, kh: int, kw: int,
          p: Params) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """For each filter tap in row-major order: (ky, kx, the inputs it meets at every output, which are inside)."""
    oh, ow = out.shape[1], out.shape[2]
    sh, sw, dh, dw = p["stride_h"], p["stride_w"], p["dilation_h"], p["dilation_w"]
    for ky in range(kh):
        for kx in range(kw):
            rows = slice(ky * dh, ky * dh + (oh - 1) * sh + 1, sh)
            cols = slice(kx * dw, kx * dw + (ow - 1) * sw + 1, sw)
            yield ky, kx, padded[:, rows, cols, :], inside[rows, cols][None, :, :, None]


# -- CONV_2D ---------------------------------------------------------------------------------

def conv_2d(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Quantized 2-D convolution, NHWC input, OHWI filter; a filter shallower than the input makes groups."""
    x, w, out = inputs[0], inputs[1], outputs[0]
    n, oh, ow, oc = out.shape
    _, kh, kw, depth = w.shape
    groups = x.shape[3] // depth
    padded, inside = _padded(x.astype(np.float64) + p["input_offset"], out, kh, kw, p)
    cols = np.stack([view for _, _, view, _ in _taps(padded, inside, out, kh, kw, p)], axis=3)
    cols = cols.reshape(n * oh * ow, kh * kw, groups, depth)
    filt = (w.astype(np.float64) + p["filter_offset"]).reshape(groups, oc // groups, kh * kw * depth)
    acc = np.concatenate([cols[:, :, g, :].reshape(n * oh * ow, -1) @ filt[g].T for g in range(groups)], axis=1)
    finish_quantized(acc.astype(np.int64).reshape(out.shape), optional(inputs, 2), out, p)


@ieee
def conv_2d_float(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """float32 2-D convolution (groups too): products summed per output in (row, column, channel) order."""
    x, w, out = inputs[0], inputs[1], outputs[0]
    n, oh, ow, oc = out.shape
    _, kh, kw, depth = w.shape
    groups = x.shape[3] // depth
    filt = w.reshape(groups, oc // groups, kh, kw, depth)
    padded, inside = _padded(x, out, kh, kw, p)
    acc = np.zeros((n, oh, ow, groups, oc // groups), dtype=np.float32)
    for ky, kx, view, mask in _taps(padded, inside, out, kh, kw, p):
        view = view.reshape(n, oh, ow, groups, depth)
        for i in range(depth):
            np.add(acc, view[..., i, None] * filt[:, :, ky, kx, i], out=acc, where=mask[..., None])
    finish_float(acc.reshape(out.shape), optional(inputs, 2), out, p)


# -- DEPTHWISE_CONV_2D -----------------------------------------------------------------------

def depthwise_conv_2d(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Quantized depthwise convolution: output channel c reads input channel c // depth_multiplier."""
    x, w, out = inputs[0], inputs[1], outputs[0]
    _, kh, kw, oc = w.shape
    m = p["depth_multiplier"]
    padded, inside = _padded(x.astype(np.int64) + p["input_offset"], out, kh, kw, p)
    filt = (w[0].astype(np.int64) + p["filter_offset"]).reshape(kh, kw, oc // m, m)
    acc = np.zeros(out.shape[:3] + (oc // m, m), dtype=np.int64)
    for ky, kx, view, _ in _taps(padded, inside, out, kh, kw, p):
        acc += view[..., None] * filt[ky, kx]
    finish_quantized(acc.reshape(out.shape), optional(inputs, 2), out, p)


@ieee
def depthwise_conv_2d_float(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """float32 depthwise convolution: products summed per output in (row, column) order."""
    x, w, out = inputs[0], inputs[1], outputs[0]
    _, kh, kw, oc = w.shape
    m = p["depth_multiplier"]
    padded, inside = _padded(x, out, kh, kw, p)
    filt = w[0].reshape(kh, kw, oc // m, m)
    acc = np.zeros(out.shape[:3] + (oc // m, m), dtype=np.float32)
    for ky, kx, view, mask in _taps(padded, inside, out, kh, kw, p):
        np.add(acc, view[..., None] * filt[ky, kx], out=acc, where=mask[..., None])
    finish_float(acc.reshape(out.shape), optional(inputs, 2), out, p)


# -- TRANSPOSE_CONV --------------------------------------------------------------------------

def _scatter_buffer(x: np.ndarray, out: np.ndarray, kh: int, kw: int, p: Params, dtype: type) -> np.ndarray:
    """Zeros covering every position an input element reaches and the output (offset by the padding)."""
    n, h, w, _ = x.shape
    rows = max((h - 1) * p["stride_h"] + kh, p["pad_top"] + out.shape[1])
    cols = max((w - 1) * p["stride_w"] + kw, p["pad_left"] + out.shape[2])
    return np.zeros((n, rows, cols, out.shape[3]), dtype=dtype)


def _reached(buffer: np.ndarray, x: np.ndarray, ky: int, kx: int, p: Params) -> np.ndarray:
    """The view of ``buffer`` that filter tap (ky, kx) reaches from every input element."""
    h, w = x.shape[1], x.shape[2]
    sh, sw = p["stride_h"], p["stride_w"]
    return buffer[:, ky:ky + (h - 1) * sh + 1:sh, kx:kx + (w - 1) * sw + 1:sw, :]


def _cropped(buffer: np.ndarray, out: np.ndarray, p: Params) -> np.ndarray:
    top, left = p["pad_top"], p["pad_left"]
    return buffer[:, top:top + out.shape[1], left:left + out.shape[2], :]


def transpose_conv(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Quantized transposed convolution: inputs 1 (OHWI filter), 2 (NHWC input) and an optional bias 3."""
    w, x, out = inputs[1], inputs[2], outputs[0]
    oc, kh, kw, ic = w.shape
    rows = x.reshape(-1, ic).astype(np.float64) + p["input_offset"]
    taps = rows @ (w.astype(np.float64) + p["filter_offset"]).transpose(3, 1, 2, 0).reshape(ic, -1)
    taps = taps.reshape(x.shape[:3] + (kh, kw, oc))                  # (N, H, W, KH, KW, OC)
    buffer = _scatter_buffer(x, out, kh, kw, p, np.float64)
    for ky in range(kh):
        for kx in range(kw):
            _reached(buffer, x, ky, kx, p)[...] += taps[:, :, :, ky, kx, :]
    finish_quantized(_cropped(buffer, out, p).astype(np.int64), optional(inputs, 3), out, p)


@ieee
def transpose_conv_float(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """float32 transposed convolution: each output sums its terms filter row and column backwards, channel forwards."""
    w, x, out = inputs[1], inputs[2], outputs[0]
    _, kh, kw, ic = w.shape
    buffer = _scatter_buffer(x, out, kh, kw, p, np.float32)
    for ky in reversed(range(kh)):
        for kx in reversed(range(kw)):
            reached = _reached(buffer, x, ky, kx, p)
            for i in range(ic):
                reached += x[..., i, None] * w[:, ky, kx, i]
    finish_float(_cropped(buffer, out, p), optional(inputs, 3), out, p)
