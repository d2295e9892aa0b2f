"""Quantized CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, as TFLite's reference kernels compute them.

All three accumulate ``(input + input_offset) * (filter + filter_offset)`` over
the window, add the int32 bias, rescale to the output scale, add the output
offset and clamp to the fused activation's range.  The convolutions rescale
with ``MultiplyByQuantizedMultiplier`` and a per-channel multiplier and shift;
the fully connected layer, like TFLite's reference kernel, in double.  Padding
positions contribute nothing, which is what an input equal to its zero point
contributes, so inputs are offset first and padded with zeros.

Dot products run as float64 matrix products: every product of two offset 8-bit
values is below 2^16 in magnitude, so sums stay exact integers far beyond any
real filter size (2^53 / 2^16 terms), and BLAS runs a whole MobileNet in well
under a second instead of minutes.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..fixedpoint import multiply_by_quantized_multiplier, round_half_away
from .kernel import store


def _padded_offset_input(x: np.ndarray, offset: int, pad_top: int, pad_left: int,
                         need_h: int, need_w: int, dtype: type) -> np.ndarray:
    """``x + offset`` zero-padded so rows [0, need_h) and columns [0, need_w) exist after the top/left padding."""
    n, h, w, c = x.shape
    pad_bottom = max(0, need_h - h - pad_top)
    pad_right = max(0, need_w - w - pad_left)
    out = np.zeros((n, h + pad_top + pad_bottom, w + pad_left + pad_right, c), dtype=dtype)
    out[:, pad_top:pad_top + h, pad_left:pad_left + w, :] = x
    out[:, pad_top:pad_top + h, pad_left:pad_left + w, :] += offset
    return out


def _windows(xp: np.ndarray, kh: int, kw: int, oh: int, ow: int,
             p: dict[str, Any]) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield (ky, kx, view) for each filter tap: the input values that tap meets at every output position."""
    sh, sw, dh, dw = p["stride_h"], p["stride_w"], p["dilation_h"], p["dilation_w"]
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            yield ky, kx, xp[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]


def _need(out_size: int, k: int, stride: int, dilation: int) -> int:
    """Rows (or columns) of padded input the windows of ``out_size`` outputs reach."""
    return (out_size - 1) * stride + (k - 1) * dilation + 1


def _finish(acc: np.ndarray, bias: np.ndarray | None, out: np.ndarray, p: dict[str, Any]) -> None:
    """Bias, requantize per output channel (last axis), offset, clamp, store."""
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    scaled = multiply_by_quantized_multiplier(acc, p["output_multiplier"], p["output_shift"])
    store(out, scaled + p["output_offset"], p["act_min"], p["act_max"])


def _bias(inputs: list[np.ndarray | None]) -> np.ndarray | None:
    return inputs[2] if len(inputs) > 2 else None


def conv_2d(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Quantized 2-D convolution (uint8 per-tensor or int8 per-channel), NHWC input, OHWI filter."""
    x, w, out = inputs[0], inputs[1], outputs[0]
    n, oh, ow, oc = out.shape
    _, kh, kw, ic = w.shape
    xp = _padded_offset_input(x, p["input_offset"], p["pad_top"], p["pad_left"],
                              _need(oh, kh, p["stride_h"], p["dilation_h"]),
                              _need(ow, kw, p["stride_w"], p["dilation_w"]), np.float64)
    cols = np.stack([v for _, _, v in _windows(xp, kh, kw, oh, ow, p)], axis=3)   # N,OH,OW,KH*KW,IC
    filt = w.astype(np.float64) + p["filter_offset"]
    acc = cols.reshape(n * oh * ow, kh * kw * ic) @ filt.reshape(oc, kh * kw * ic).T
    _finish(acc.astype(np.int64).reshape(n, oh, ow, oc), _bias(inputs), out, p)


def depthwise_conv_2d(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Quantized depthwise convolution with depth multiplier: output channel c reads input channel c // multiplier."""
    x, w, out = inputs[0], inputs[1], outputs[0]
    _, oh, ow, _ = out.shape
    _, kh, kw, _ = w.shape
    xp = _padded_offset_input(x, p["input_offset"], p["pad_top"], p["pad_left"],
                              _need(oh, kh, p["stride_h"], p["dilation_h"]),
                              _need(ow, kw, p["stride_w"], p["dilation_w"]), np.int64)
    if p["depth_multiplier"] != 1:
        xp = np.repeat(xp, p["depth_multiplier"], axis=3)
    filt = w[0].astype(np.int64) + p["filter_offset"]
    acc = np.zeros(out.shape, dtype=np.int64)
    for ky, kx, view in _windows(xp, kh, kw, oh, ow, p):
        acc += view * filt[ky, kx]
    _finish(acc, _bias(inputs), out, p)


def fully_connected(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Quantized fully connected layer: rows of the weights' depth times [units, depth] weights.

    Unlike the convolutions, TFLite's reference kernel rescales in double:
    round(acc * input_scale * filter_scale[unit] / output_scale), halves away
    from zero, with the scale ratio formed in double from the float32 scales.
    """
    x, w, out = inputs[0], inputs[1], outputs[0]
    units, depth = w.shape
    rows = x.reshape(-1, depth).astype(np.float64) + p["input_offset"]
    acc = (rows @ (w.astype(np.float64) + p["filter_offset"]).T).astype(np.int64)
    bias = _bias(inputs)
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    ratio = (np.float64(p["input_scale"]) * np.asarray(p["filter_scale"], dtype=np.float32).astype(np.float64)
             / np.float64(p["output_scale"]))
    scaled = round_half_away(acc.astype(np.float64) * ratio).astype(np.int64)
    store(out, scaled + p["output_offset"], p["act_min"], p["act_max"])
