"""RANGE, BROADCAST_ARGS, CUMSUM, ONE_HOT, TOPK_V2, REVERSE_SEQUENCE, DYNAMIC_UPDATE_SLICE, the segment reductions,
RIGHT_SHIFT and BITWISE_XOR, as TFLite's kernels compute them.

* RANGE writes start, then each value the previous one plus delta (so float32
  values accumulate rounding as TFLite's do);
* BROADCAST_ARGS pairs the two shapes from their last entries, each read as a
  C ``int`` (int64 entries wrap); entries that differ and are not 1 are an
  InputError (TFLite aborts);
* CUMSUM adds along the axis in order (backwards when ``reverse``), from 0,
  so a sum never starts at -0; ``exclusive`` shifts the sums by one;
* ONE_HOT compares each index, converted to a C ``int``, with every position
  along the depth axis;
* TOPK_V2 orders each row's values decreasing, NaN below every number, equal
  values by position: the total order TFLite's comparison defines, so its
  heap's order is the only one;
* REVERSE_SEQUENCE reverses the first ``length`` positions of each batch along
  the sequence axis (a length of 0 or less changes nothing); a length TFLite
  refuses, or one that would make it write outside the tensor, is an
  InputError;
* DYNAMIC_UPDATE_SLICE clamps each start index into [0, dim - update dim];
* the segment reductions combine data rows into output rows in row order,
  from 0 (SUM), 1 (PROD), the lowest (MAX) or highest (MIN) value, with
  ``std::max(out, x)`` and ``std::min(out, x)`` (NaN data is skipped unless
  it comes first); a negative segment id skips its row, one at or past the
  number of segments is an InputError (TFLite fails);
* RIGHT_SHIFT clamps the shift to [0, bits - 1], shifting signed values
  arithmetically.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ...errors import InputError

Inputs = list[np.ndarray | None]
#: The reductions of the segment kernel, by the code of its ``reduction`` parameter.
SEGMENT_REDUCTIONS = ("SUM", "MAX", "MIN", "PROD")
_COMBINE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "SUM": np.add,
    "MAX": lambda acc, x: np.where(acc < x, x, acc),
    "MIN": lambda acc, x: np.where(x < acc, x, acc),
    "PROD": np.multiply,
}


def _scalar(t: np.ndarray) -> Any:
    return np.asarray(t).reshape(-1)[0]


def _as_int(values: np.ndarray) -> np.ndarray:
    """Integers converted to a C ``int`` (int32, wrapping), widened to int64 for arithmetic."""
    return values.astype(np.int64).astype(np.int32).astype(np.int64)


# -- RANGE, BROADCAST_ARGS, CUMSUM ---------------------------------------------------------------------

def range_values(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """start, start + delta, ...: as many values as the output holds, each the previous plus delta."""
    out = outputs[0]
    steps = np.full(out.size, _scalar(inputs[2]), out.dtype)
    steps[:1] = _scalar(inputs[0])
    with np.errstate(over="ignore"):
        out[...] = np.add.accumulate(steps, dtype=out.dtype)


def _shape_entries(shape: np.ndarray, n: int) -> np.ndarray:
    """The entries of a shape as C ints, padded at the front with 1s to ``n`` entries."""
    return np.concatenate([np.ones(n - shape.size, np.int64), _as_int(shape.reshape(-1))])


def broadcast_entries(first: np.ndarray, second: np.ndarray, n: int) -> tuple[np.ndarray, bool]:
    """The n entries of the shape two shapes broadcast to (aligned at the right), and whether some clash."""
    a, b = _shape_entries(first, n), _shape_entries(second, n)
    return np.where(a == 1, b, a), bool(((a != 1) & (b != 1) & (a != b)).any())


def broadcast_args(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """The shape two shapes broadcast to."""
    entries, clash = broadcast_entries(inputs[0], inputs[1], outputs[0].size)
    if clash:
        raise InputError(f"BROADCAST_ARGS: shapes {inputs[0].tolist()} and {inputs[1].tolist()} do not broadcast")
    outputs[0][...] = entries


def cumsum(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Running sums along ``axis`` from 0 (in order, or backwards with ``reverse``; shifted with ``exclusive``)."""
    axis = p["axis"]
    x = np.moveaxis(inputs[0], axis, -1)
    if p["reverse"]:
        x = x[..., ::-1]
    padded = np.concatenate([np.zeros(x.shape[:-1] + (1,), x.dtype), x], axis=-1)
    with np.errstate(all="ignore"):
        sums = np.cumsum(padded, axis=-1, dtype=x.dtype)
    sums = sums[..., :-1] if p["exclusive"] else sums[..., 1:]
    if p["reverse"]:
        sums = sums[..., ::-1]
    outputs[0][...] = np.moveaxis(sums, -1, axis)


# -- ONE_HOT and TOPK_V2 --------------------------------------------------------------------------------

def one_hot(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """The on value where the index (a C int) equals the position along the depth ``axis``, else the off value."""
    indices, out, axis = _as_int(inputs[0]), outputs[0], p["axis"]
    positions = np.arange(out.shape[axis]).reshape((-1,) + (1,) * (indices.ndim - axis))
    hot = np.expand_dims(indices, axis) == positions
    out[...] = np.where(hot, _scalar(inputs[2]), _scalar(inputs[3]))


def _ranking(rows: np.ndarray) -> np.ndarray:
    """Each row's positions in TFLite's order: decreasing values, NaN below every number, ties by position.

    ``~x`` orders integers backwards without overflowing; the sorts are stable.
    """
    if rows.dtype.kind != "f":
        return np.argsort(~rows, axis=1, kind="stable")
    nan = np.isnan(rows)
    positions = np.broadcast_to(np.arange(rows.shape[1]), rows.shape)
    return np.lexsort((positions, np.where(nan, 0, -rows), nan), axis=-1)


def topk_v2(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """The k largest values of each last-axis row, decreasing, and their positions."""
    x, (values, indices) = inputs[0], outputs
    n, k = x.shape[-1], values.shape[-1]
    rows = x.reshape(math.prod(x.shape[:-1]), n)
    order = _ranking(rows)[:, :k]
    indices[...] = order.reshape(indices.shape)
    values[...] = np.take_along_axis(rows, order, axis=1).reshape(values.shape)


# -- REVERSE_SEQUENCE and DYNAMIC_UPDATE_SLICE ------------------------------------------------------------

def refused_sequence_length(lengths: np.ndarray, size: int) -> str | None:
    """Why TFLite fails (or writes outside the tensor) with these sequence lengths; None when they are fine.

    TFLite checks only the first length against the axis; each reversal
    then ends at ``length - 1`` converted to a C int.
    """
    lengths = lengths.reshape(-1).astype(np.int64)
    if lengths.size and lengths[0] > size:
        return f"sequence length {int(lengths[0])} is longer than the {size} positions of the sequence axis"
    beyond = np.flatnonzero(_as_int(lengths - 1) >= size)
    if beyond.size:
        return f"sequence length {int(lengths[beyond[0]])} reaches past the {size} positions of the sequence axis"
    return None


def reverse_sequence(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Each batch's first ``length`` positions along ``seq_dim`` reversed, the rest unchanged."""
    x, lengths, out = inputs[0], inputs[1], outputs[0]
    seq, batch = p["seq_dim"], p["batch_dim"]
    size = x.shape[seq]
    why = refused_sequence_length(lengths, size)
    if why is not None:
        raise InputError(f"REVERSE_SEQUENCE: {why}")
    last = _as_int(lengths.reshape(-1) - 1)[:, None]
    position = np.arange(size)[None, :]
    source = np.where(position <= last, last - position, position)        # [batch, position]
    shape = [1] * x.ndim
    shape[batch], shape[seq] = x.shape[batch], size
    out[...] = np.take_along_axis(x, (source if batch < seq else source.T).reshape(shape), axis=seq)


def dynamic_update_slice(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """The operand with the update written at the start indices, each clamped so that the update fits."""
    x, update, starts, out = inputs[0], inputs[1], inputs[2], outputs[0]
    highest = np.array(x.shape, np.int64) - np.array(update.shape, np.int64)
    clamped = np.minimum(np.maximum(starts.reshape(-1).astype(np.int64), 0), highest)
    out[...] = x
    out[tuple(slice(int(s), int(s) + n) for s, n in zip(clamped, update.shape))] = update


# -- segment reductions ---------------------------------------------------------------------------------

def _identity(reduction: str, dtype: np.dtype) -> Any:
    """The value TFLite starts every output element of a reduction from."""
    if reduction in ("SUM", "PROD"):
        return int(reduction == "PROD")
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    return info.min if reduction == "MAX" else info.max


def _ranks(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows with a segment (id >= 0) in row order within each segment, and each one's rank in it."""
    rows = np.flatnonzero(ids >= 0)
    rows = rows[np.argsort(ids[rows], kind="stable")]
    sorted_ids = ids[rows]
    return rows, np.arange(rows.size) - np.searchsorted(sorted_ids, sorted_ids, side="left")


def unsorted_segment(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Data rows combined into the output row of their segment id, in row order (SUM, MAX, MIN or PROD)."""
    data, out = inputs[0], outputs[0]
    ids = inputs[1].reshape(-1).astype(np.int64)
    beyond = np.flatnonzero(ids >= out.shape[0])
    if beyond.size:
        raise InputError(f"segment reduction: segment id {int(ids[beyond[0]])} is not below the {out.shape[0]} "
                         f"segments")
    reduction = SEGMENT_REDUCTIONS[p["reduction"]]
    acc = np.full((out.shape[0], math.prod(out.shape[1:])), _identity(reduction, out.dtype), out.dtype)
    rows, rank = _ranks(ids)
    flat = data.reshape(ids.size, acc.shape[1])
    with np.errstate(all="ignore"):
        for r in range(int(rank.max(initial=-1)) + 1):      # each segment's r-th row, all segments at once
            picked = rows[rank == r]
            acc[ids[picked]] = _COMBINE[reduction](acc[ids[picked]], flat[picked])
    out[...] = acc.reshape(out.shape)


# -- bitwise operators ----------------------------------------------------------------------------------

def right_shift(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """x >> y, y clamped to [0, bits - 1] (arithmetic for signed types), with broadcasting."""
    x, y = inputs[0], inputs[1]
    shift = np.clip(y.astype(np.int64), 0, 8 * x.dtype.itemsize - 1)
    outputs[0][...] = np.right_shift(x.astype(np.int64), shift).astype(outputs[0].dtype)


def bitwise_xor(inputs: Inputs, outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """x ^ y, with broadcasting."""
    outputs[0][...] = np.bitwise_xor(inputs[0], inputs[1])
