"""FULLY_CONNECTED and BATCH_MATMUL, as TFLite's reference kernels compute them.

The quantized fully connected layer accumulates like a convolution (int32,
or int64 for 16x8 without an int32 bias) but rescales in double, as TFLite's
reference kernel does: ``round(acc * (input_scale * filter_scale[unit] /
output_scale))``, halves away from zero, converted to int32 as x86 does (a
value outside int32, or NaN, becomes INT32_MIN).  The quantized batched
matrix product rescales like a convolution (one multiplier; int64 and the
64-bit ``MultiplyByQuantizedMultiplier`` for int16).

Float32 sums run in TFLite's order, one depth index at a time over every
output, from +0.  Integer sums are exact float64 (8-bit) or int64 (16-bit)
matrix products.
"""

from __future__ import annotations

import numpy as np

from ..fixedpoint import round_half_away, wrap_int32
from .conv import Params, finish_float, finish_quantized, ieee, optional
from .kernel import store
from .quantize import to_int32


def exact_matmul(a: np.ndarray, b: np.ndarray, wide: bool) -> np.ndarray:
    """``a @ b`` of integer-valued arrays, exactly, as int64: float64 BLAS for 8-bit operands, int64 for 16-bit."""
    if wide:
        return np.matmul(a.astype(np.int64), b.astype(np.int64))
    return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)


def _rows(x: np.ndarray, depth: int) -> np.ndarray:
    return x.reshape(-1, depth)


def fully_connected(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Quantized fully connected layer: rows of the weights' depth times [units, depth] weights, rescaled in double."""
    x, w, out = inputs[0], inputs[1], outputs[0]
    depth = w.shape[1]
    acc = exact_matmul(_rows(x, depth).astype(np.int64) + p["input_offset"],
                       (w.astype(np.int64) + p["filter_offset"]).T, bool(p["wide"]))
    bias = optional(inputs, 2)
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    if not p["wide"]:
        acc = wrap_int32(acc)
    ratio = (np.float64(p["input_scale"]) * np.asarray(p["filter_scale"], dtype=np.float32).astype(np.float64)
             / np.float64(p["output_scale"]))
    scaled = to_int32(round_half_away(acc.astype(np.float64) * ratio))
    store(out, wrap_int32(scaled + p["output_offset"]), p["act_min"], p["act_max"])


@ieee
def fully_connected_float(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """float32 fully connected layer: each output sums depth-wise products in order, then bias and clamp."""
    x, w, out = inputs[0], inputs[1], outputs[0]
    units, depth = w.shape
    rows = _rows(x, depth)
    acc = np.zeros((rows.shape[0], units), dtype=np.float32)
    for d in range(depth):
        acc += rows[:, d, None] * w[:, d]
    finish_float(acc, optional(inputs, 2), out, p)


def _operands(inputs: list[np.ndarray | None], p: Params) -> tuple[np.ndarray, np.ndarray]:
    """The two operands as [..., M, K] and [..., K, N] (adjoint flags applied), batch dimensions broadcasting."""
    a, b = inputs[0], inputs[1]
    return (a.swapaxes(-1, -2) if p["adj_x"] else a), (b.swapaxes(-1, -2) if p["adj_y"] else b)


def batch_matmul(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Quantized (int8, int16) batched matrix product, one multiplier, no activation beyond the type's range."""
    a, b = _operands(inputs, p)
    acc = exact_matmul(a.astype(np.int64) + p["lhs_offset"], b.astype(np.int64) + p["rhs_offset"], bool(p["wide"]))
    finish_quantized(acc, None, outputs[0], p)


@ieee
def batch_matmul_float(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """float32 batched matrix product: each output sums its products in depth order from +0."""
    a, b = _operands(inputs, p)
    out = outputs[0]
    acc = np.zeros(out.shape, dtype=np.float32)
    for k in range(a.shape[-1]):
        acc += a[..., :, k, None] * b[..., None, k, :]
    out[...] = acc
