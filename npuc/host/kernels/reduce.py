"""Reductions (MEAN, SUM, REDUCE_PROD/MAX/MIN/ANY/ALL) and ARG_MAX/ARG_MIN, as TFLite's reference kernels compute them.

TFLite walks the input in row-major order and folds each element into its
output, so each output sees its elements in row-major order of the reduced
axes; the kernels here put those elements in rows (reduced axes last, in
increasing order) and fold the rows the same way.  That matters for floats:
sums and products run left to right (numpy's own sum is pairwise), a
maximum keeps the first of equal values (+0 and -0) and skips NaNs.  An
operator that reduces every axis starts from the first element instead of
the neutral one (TFLite's ReduceAllDims), so there a leading NaN stays and a
sum of -0s stays -0; otherwise sums start from +0 and a maximum from the
lowest float (which it returns for a row of NaNs or of -inf).

Quantized MEAN (uint8, int8, int16) and SUM (uint8) subtract the input zero
point from the int32 sum (wrapping as TFLite's int32 does) and requantize
with a multiplier into which the compiler folded 1 / (number of elements)
for MEAN, as TFLite's QuantizedMeanOrSum adapts its multiplier at run time.
float MEAN divides the left-to-right sum by the count in float32; int32 and
int64 MEAN divide the int64 sum with C's truncating division.  An empty
axis list makes MEAN and quantized SUM a copy.  The quantized REDUCE_PROD
(int8, int16) multiplies the offsets from the zero point one at a time,
rescaling every product by ``scale_in / scale_out^(1/n)`` with TFLite's
int64 MultiplyByQuantizedMultiplier, and rescales once more at the end.
Integer sums and products wrap in their type.

ARG_MAX and ARG_MIN return the first index of the extreme value along one
axis; NaNs are never chosen, and a row of NaNs gives 0.  (That is TFLite's
reference loop.  Its x86 build vectorizes float rows of four or more values
along the last axis, and where such a row holds a NaN the index it returns
depends on the SIMD lane the NaN falls in; that is not reproduced.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fixedpoint import multiply_by_quantized_multiplier, wrap_int32
from .kernel import store

Params = dict[str, Any]


def sequential_sum(rows: np.ndarray) -> np.ndarray:
    """Float32 sums of each row, added left to right from +0 as a C loop does (numpy's own sum is pairwise)."""
    return np.cumsum(rows, axis=-1, dtype=np.float32)[..., -1] + np.float32(0)


def _axes(p: Params) -> tuple[int, ...]:
    return tuple(sorted(int(a) for a in p["axes"]))


def rows(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``x`` as (outputs, reduced elements): kept axes first, then the (sorted) reduced ones, each row row-major."""
    kept = [a for a in range(x.ndim) if a not in axes]
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    return np.transpose(x, kept + list(axes)).reshape(-1, count)


def _reduces_all(x: np.ndarray, axes: tuple[int, ...]) -> bool:
    return len(axes) == x.ndim


def _write(out: np.ndarray, values: np.ndarray) -> None:
    out[...] = values.reshape(out.shape).astype(out.dtype)


def _extreme_skipping_nan(x: np.ndarray, axis: int, take_max: bool) -> np.ndarray:
    """The largest (smallest) non-NaN float along ``axis`` (kept as a dimension); -inf (inf) where all are NaN."""
    filled = np.where(np.isnan(x), np.float32(-np.inf if take_max else np.inf), x)
    return filled.max(axis=axis, keepdims=True) if take_max else filled.min(axis=axis, keepdims=True)


def _reduce_max_min(x: np.ndarray, axes: tuple[int, ...], take_max: bool) -> np.ndarray:
    """TFLite's fold ``in > current ? in : current`` (``<`` for the minimum) of every row.

    For floats, equal values never replace the current one, so the result
    is the first element equal to the extreme of the non-NaN values (its
    sign of zero included); from the lowest (highest) float, only elements
    strictly beyond it count, and from the first element a NaN stays.
    """
    r = rows(x, axes)
    if x.dtype != np.float32:
        return r.max(axis=1) if take_max else r.min(axis=1)
    extreme = _extreme_skipping_nan(r, 1, take_max)
    first = r[np.arange(r.shape[0]), np.argmax(r == extreme, axis=1)]
    extreme = extreme[:, 0]
    if _reduces_all(x, axes):
        return np.where(np.isnan(r[:, 0]), r[:, 0], first)
    bound = np.finfo(np.float32).min if take_max else np.finfo(np.float32).max
    return np.where(extreme > bound if take_max else extreme < bound, first, bound)


def reduce_max(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Largest element over ``axes`` (any type; quantized ones keep their scale)."""
    _write(outputs[0], _reduce_max_min(inputs[0], _axes(p), True))


def reduce_min(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Smallest element over ``axes`` (any type; quantized ones keep their scale)."""
    _write(outputs[0], _reduce_max_min(inputs[0], _axes(p), False))


def _sum(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Float sums left to right (from +0 unless every axis is reduced), integer sums wrapping in their type."""
    r = rows(x, axes)
    if x.dtype != np.float32:
        return r.sum(axis=1, dtype=x.dtype)
    if _reduces_all(x, axes):
        return np.cumsum(r, axis=1, dtype=np.float32)[:, -1]
    return sequential_sum(r)


def sum_plain(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Sum over ``axes`` of float32, int32 or int64 elements."""
    with np.errstate(all="ignore"):
        _write(outputs[0], _sum(inputs[0], _axes(p)))


def reduce_prod(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Product over ``axes`` of float32 (left to right), int32 or int64 (wrapping) elements."""
    r = rows(inputs[0], _axes(p))
    with np.errstate(all="ignore"):
        product = np.multiply.accumulate(r, axis=1)[:, -1] if r.dtype == np.float32 else r.prod(axis=1, dtype=r.dtype)
    _write(outputs[0], product)


def reduce_any(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Whether any element over ``axes`` is true."""
    _write(outputs[0], rows(inputs[0], _axes(p)).any(axis=1))


def reduce_all(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Whether every element over ``axes`` is true."""
    _write(outputs[0], rows(inputs[0], _axes(p)).all(axis=1))


def mean_plain(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Mean over ``axes``: float32 sum / count, or int32/int64 sum (in int64) divided with truncation."""
    x, out, axes = inputs[0], outputs[0], _axes(p)
    if not axes:                                 # TFLite's ReduceIsCopy
        _write(out, x)
        return
    r = rows(x, axes)
    count = r.shape[1]
    with np.errstate(all="ignore"):
        if x.dtype == np.float32:
            _write(out, sequential_sum(r) / np.float32(count))
            return
        total = r.sum(axis=1, dtype=np.int64)
        quotient = total // count
        _write(out, quotient + ((total < 0) & (quotient * count != total)))


def quantized_mean_or_sum(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Quantized MEAN or SUM over ``axes``: (sum - count * zero point) requantized to the output (clamped)."""
    x, out, axes = inputs[0], outputs[0], _axes(p)
    info = np.iinfo(out.dtype)
    if not axes:                                 # TFLite's ReduceIsCopy
        _write(out, x)
        return
    r = rows(x, axes).astype(np.int64)
    total = r.sum(axis=1) - p["input_zero_point"] * r.shape[1]
    scaled = multiply_by_quantized_multiplier(wrap_int32(total), p["output_multiplier"], p["output_shift"])
    store(out, scaled + p["output_zero_point"], int(info.min), int(info.max))


def multiply_by_quantized_multiplier_64(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier for an int64 input: a 16-bit multiplier, one rounding shift."""
    reduced = (multiplier + (1 << 15)) >> 16 if multiplier < 0x7fff0000 else 0x7fff
    total_shift = 15 - shift
    return wrap_int32((np.asarray(x, dtype=np.int64) * reduced + (np.int64(1) << (total_shift - 1))) >> total_shift)


def quantized_prod(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Quantized int8/int16 product over ``axes``: every product rescaled as it is formed, then once more."""
    x, out = inputs[0], outputs[0]
    info = np.iinfo(out.dtype)
    offsets = rows(x, _axes(p)).astype(np.int64) - p["input_zero_point"]
    multiplier, shift = p["output_multiplier"], p["output_shift"]
    product = offsets[:, 0]
    for k in range(1, offsets.shape[1]):        # sequential: every step rounds
        product = multiply_by_quantized_multiplier_64(product * offsets[:, k], multiplier, shift)
    scaled = multiply_by_quantized_multiplier_64(product, multiplier, shift)
    store(out, scaled + p["output_zero_point"], int(info.min), int(info.max))


def _arg_extreme(x: np.ndarray, axis: int, take_max: bool) -> np.ndarray:
    """First index of the largest (smallest) value along ``axis``; NaNs skipped, 0 for a row of NaNs."""
    if x.dtype != np.float32:
        return np.argmax(x, axis=axis) if take_max else np.argmin(x, axis=axis)
    return np.argmax(x == _extreme_skipping_nan(x, axis, take_max), axis=axis)


def arg_max(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Index of the first largest value along ``axis`` (int32 or int64 output)."""
    _write(outputs[0], _arg_extreme(inputs[0], int(p["axis"]), True))


def arg_min(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: Params) -> None:
    """Index of the first smallest value along ``axis`` (int32 or int64 output)."""
    _write(outputs[0], _arg_extreme(inputs[0], int(p["axis"]), False))
