"""SCATTER_ND, SPARSE_TO_DENSE, MATRIX_DIAG, MATRIX_SET_DIAG, EMBEDDING_LOOKUP, BUCKETIZE and ATAN2, as TFLite's
kernels compute them.

* SCATTER_ND starts from zeros and adds each update slice where its index
  points, in slice order: integers wrap, bools combine as "or", float sums
  start from +0 (so a lone -0 update gives +0);
* SPARSE_TO_DENSE fills the default value, then writes each value at its
  index in order: a later duplicate wins; order and duplicates are not
  checked (TFLite ignores validate_indices);
* in both, and in EMBEDDING_LOOKUP, an index outside its dimension is an
  InputError (TFLite's kernel fails); int64 indices are compared whole;
* MATRIX_DIAG puts each row on the diagonal of a square matrix of zeros;
  MATRIX_SET_DIAG overwrites the diagonals of the input with the diagonal
  operand's values, read flat, min(rows, columns) per matrix;
* EMBEDDING_LOOKUP copies rows, or (weights of another type than the float32
  output) reads the weights as int8 (uint8 weights too, as TFLite's pointer
  does) and multiplies each by its scale in float32;
* BUCKETIZE counts the boundaries b for which ``x < b`` is false, which for
  sorted boundaries is the position std::upper_bound finds: integers are
  compared as float32 (as C++ compares an int with a float), NaN lands past
  every boundary;
* ATAN2 is the C library's ``atan2f`` on every pair of elements, read flat.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import InputError
from ..libm import float_function2

Inputs = list[np.ndarray | None]


def index_rows(indices: np.ndarray, width: int) -> np.ndarray:
    """Indices as one row of ``width`` components per index (the last axis, or one component per element)."""
    return indices.reshape(indices.size // width if width else math.prod(indices.shape[:-1]), width)


def index_problem(coords: np.ndarray, dims: tuple[int, ...]) -> str | None:
    """Why TFLite fails on these indices (one row of components per index, one component per dimension of
    ``dims``), naming the first component outside its dimension; None when all are inside."""
    coords = coords.astype(np.int64)
    outside = np.argwhere((coords < 0) | (coords >= np.array(dims, dtype=np.int64)))
    if not outside.size:
        return None
    row, k = (int(v) for v in outside[0])
    return f"index {int(coords[row, k])} is outside dimension {k} of size {dims[k]}"


def _offsets(coords: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The flat position (row-major in ``shape``) each row of components (the leading dimensions) points at."""
    k = coords.shape[1]
    strides = np.array([math.prod(shape[j + 1:]) for j in range(k)], dtype=np.int64)
    return coords.astype(np.int64) @ strides


def _checked(name: str, indices: np.ndarray, width: int, dims: tuple[int, ...]) -> np.ndarray:
    """The indices as rows of ``width`` components, or an InputError naming the first that leaves ``dims``."""
    coords = index_rows(indices, width)
    why = index_problem(coords, dims)
    if why is not None:
        raise InputError(f"{name}: {why}")
    return coords


# -- SCATTER_ND and SPARSE_TO_DENSE -----------------------------------------------------------------

def scatter_nd(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Zeros, plus each update slice at the position its index points to (duplicates add up, in order)."""
    indices, updates, out = inputs[0], inputs[1], outputs[0]
    k = indices.shape[-1]
    coords = _checked("SCATTER_ND", indices, k, out.shape[:k])
    size = math.prod(out.shape[k:])
    positions = (_offsets(coords, out.shape)[:, None] + np.arange(size, dtype=np.int64)).reshape(-1)
    acc = np.zeros(out.size, out.dtype)
    with np.errstate(all="ignore"):
        np.add.at(acc, positions, updates.reshape(-1))      # unbuffered: each position's updates in order
    out[...] = acc.reshape(out.shape)


def sparse_to_dense(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """The default value, with each value (or the one scalar value) written at its index; the last write wins."""
    indices, values, out = inputs[0], inputs[2], outputs[0]
    width = indices.shape[1] if indices.ndim == 2 else 1
    positions = _offsets(_checked("SPARSE_TO_DENSE", indices, width, out.shape), out.shape)
    dense = np.full(out.size, inputs[3].reshape(-1)[0], out.dtype)
    flat = values.reshape(-1)
    if values.ndim == 0:
        flat = np.broadcast_to(flat, positions.shape)
    kept, last_from_end = np.unique(positions[::-1], return_index=True)
    dense[kept] = flat[positions.size - 1 - last_from_end]
    out[...] = dense.reshape(out.shape)


# -- MATRIX_DIAG and MATRIX_SET_DIAG -----------------------------------------------------------------

def matrix_diag(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Square matrices of zeros with each last-axis row of the input on their diagonal."""
    out = outputs[0]
    n = out.shape[-1]
    diag = np.arange(n)
    out[...] = 0
    out[..., diag, diag] = inputs[0]


def matrix_set_diag(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """The input with each matrix's diagonal taken, in order, from the diagonal operand's flat values."""
    x, out = inputs[0], outputs[0]
    k = min(x.shape[-2:])
    diag = np.arange(k)
    out[...] = x
    out[..., diag, diag] = inputs[1].reshape(-1)[:math.prod(x.shape[:-2]) * k].reshape(x.shape[:-2] + (k,))


# -- EMBEDDING_LOOKUP -------------------------------------------------------------------------------

def embedding_lookup(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """The value's row of each id: copied, or (float output, other weights) int8 weights times their scale."""
    value, out = inputs[1], outputs[0]
    ids = _checked("EMBEDDING_LOOKUP", inputs[0], 1, value.shape[:1]).reshape(-1)
    if value.dtype == out.dtype:
        out[...] = value[ids]
        return
    weights = value.view(np.int8)[ids].reshape(ids.size, -1).astype(np.float32)
    scales = p["scales"].astype(np.float32)
    row_scales = scales[ids] if scales.size > 1 else np.broadcast_to(scales[:1], ids.shape)
    out[...] = (weights * row_scales[:, None]).reshape(out.shape)


# -- BUCKETIZE and ATAN2 ------------------------------------------------------------------------------

def bucketize(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """How many boundaries each element (as a float32) is not below."""
    x = inputs[0].astype(np.float32)
    boundaries = p["boundaries"].astype(np.float32)
    outputs[0][...] = np.count_nonzero(~(x[..., None] < boundaries), axis=-1)


_ATAN2F = float_function2("atan2f")


def atan2_f32(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """atan2f(y, x) element by element (flat order: TFLite checks only that the ranks agree)."""
    outputs[0][...] = _ATAN2F(inputs[0].reshape(-1), inputs[1].reshape(-1)).reshape(outputs[0].shape)
