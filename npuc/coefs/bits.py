"""Bit packing shared by both encoders: fields placed LSB first into little-endian 32-bit words."""

from __future__ import annotations

import numpy as np

_U64_32 = np.uint64(32)


def or_fields(words: np.ndarray, offsets: np.ndarray, values: np.ndarray) -> None:
    """OR fields of at most 32 bits into the uint32 ``words`` at bit ``offsets`` (increasing, fields disjoint).

    Every field lands in the 64 bits from its first word on; the fields that
    start in the same word have disjoint bits there, so their sum is their OR,
    and a running (wrapping) 64-bit sum gives each word's sum as a difference.
    ``words`` needs one word of room past the last field's first word.
    """
    if offsets.size == 0:
        return
    first = offsets >> 5
    running = values.astype(np.uint64)
    running <<= (offsets & 31).astype(np.uint64)
    running.cumsum(out=running)
    last = np.empty(first.size, bool)                       # the last field starting in its word
    np.not_equal(first[1:], first[:-1], out=last[:-1])
    last[-1] = True
    ends = last.nonzero()[0]
    sums = running[ends]
    sums[1:] -= running[ends[:-1]]
    at = first[ends]
    words[at] |= sums.astype(np.uint32)
    words[at + 1] |= (sums >> _U64_32).astype(np.uint32)


def or_stream(words: np.ndarray, start: int, widths: np.ndarray, values: np.ndarray) -> None:
    """OR consecutive fields (``widths`` at most 32 bits each, ``values`` uint64) into ``words`` from bit ``start``.

    The fields follow each other without gaps, so every word they cover has a
    field starting in it: the word sums (see :func:`or_fields`) are the words
    in order.  ``values`` is overwritten.
    """
    if widths.size == 0:
        return
    offsets = widths.astype(np.uint64)
    np.cumsum(offsets, out=offsets)
    offsets -= widths
    offsets += np.uint64(start)
    values <<= offsets & np.uint64(31)
    np.cumsum(values, out=values)
    offsets >>= np.uint64(5)
    ends = np.append(np.flatnonzero(offsets[1:] != offsets[:-1]), values.size - 1)
    sums = np.diff(values[ends], prepend=np.uint64(0))
    first = start >> 5
    words[first:first + sums.size] |= sums.astype(np.uint32)
    words[first + 1:first + 1 + sums.size] |= (sums >> _U64_32).astype(np.uint32)


def units(a: np.ndarray) -> np.ndarray:
    """``a`` without its last axis, each row of that (contiguous) axis viewed as one opaque item.

    Reordering kernels moves whole rows (a 3x3 slice, a block of channels); as
    single items numpy copies them with one memcpy each instead of byte by byte.
    """
    return a.view(np.dtype((np.void, a.shape[-1] * a.itemsize)))[..., 0]
