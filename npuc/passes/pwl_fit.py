"""A PWL table that makes the TP's lookup unit compute a given byte-to-byte function exactly.

The TP ALU (tp notes 2.4, docs/simulator.md "TP jobs") maps an input byte q to
``v = q - in_zp``, looks v up by its fp21 code (entry ``code >> 11``, one half
of the table per sign), interpolates linearly towards the next entry of the
same half by the code's low 11 bits, multiplies by the post multiplier and
rounds half away from zero.  With the multiplier 1, an output zero point 0
and entries that hold output bytes, the unit computes a function of 256
inputs, and those inputs are all an 8-bit operator can see: any function of
the input byte (TFLite's LOGISTIC table, a RELU6 clamp, ABS ...) is a table
whose interpolated values round to the wanted bytes.

Inputs with |v| < 32 sit exactly on an entry; above, 2, 4 or 8 inputs share a
segment between two entries, so an entry is constrained by the inputs on
both of its segments.  :func:`fit` propagates the interval each entry may take
along a half of the table (each segment's constraints are linear in its two
entries) and then picks, from the last entry back, the middle of what the
next entry leaves, with a margin of ``MARGIN`` from every rounding boundary
for the interpolation's own rounding; the result is checked against
:func:`evaluate` after encoding to fp21.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..hw import fp21
from ..hw.descriptors import TP_PWL_INDEX_SHIFT, TP_PWL_LUT_ENTRIES

#: Distance kept from every rounding boundary (output units).
MARGIN = 1 / 32
#: Bytes an 8-bit input or output takes.
BYTE_VALUES = 256
#: Stand-in for "unbounded" on the clamped ends of the output range (any value beyond the
#: clamp gives the same byte; a finite one keeps the table in fp21's range).
_OPEN = 1024.0
_HALF = TP_PWL_LUT_ENTRIES // 2


@dataclass(frozen=True)
class PwlTable:
    """A fitted table: the input zero point the job uses and the 1024 fp21 entries."""

    in_zp: int
    lut: bytes


def _positions(in_zp: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every input byte: the entry it is read at, the next entry, and the interpolation fraction."""
    code = fp21.encode(np.arange(BYTE_VALUES, dtype=np.float64) - in_zp)
    index = code >> TP_PWL_INDEX_SHIFT
    frac = (code & ((1 << TP_PWL_INDEX_SHIFT) - 1)) / float(1 << TP_PWL_INDEX_SHIFT)
    nxt = np.where(index % _HALF == _HALF - 1, index, index + 1)
    return index, nxt, frac


def evaluate(lut: bytes, in_zp: int) -> np.ndarray:
    """The byte the unit outputs for every input byte (multiplier 1, output zero point 0)."""
    values = fp21.decode(np.frombuffer(lut, dtype="<u4").astype(np.int64))
    index, nxt, frac = _positions(in_zp)
    v = values[index] + (values[nxt] - values[index]) * frac
    rounded = np.sign(v) * np.floor(np.abs(v) + 0.5)
    return np.clip(rounded, 0, BYTE_VALUES - 1).astype(np.uint8)


def fit(outputs: np.ndarray, in_zp: int) -> PwlTable | None:
    """A table giving ``outputs[q]`` for every input byte q with ``in_zp``, or None if none exists."""
    index, nxt, frac = _positions(in_zp)
    want = np.asarray(outputs, dtype=np.float64)
    lo = np.where(want == 0, -_OPEN, want - 0.5 + MARGIN)
    hi = np.where(want == BYTE_VALUES - 1, _OPEN, want + 0.5 - MARGIN)
    box = np.tile([-_OPEN, _OPEN], (TP_PWL_LUT_ENTRIES, 1))
    pairs: dict[int, list[tuple[float, float, float]]] = {}   # segment start -> (frac, lo, hi)
    for i, n, f, a, b in zip(index, nxt, frac, lo, hi):
        if f == 0 or i == n:
            box[i] = (max(box[i, 0], a), min(box[i, 1], b))
        else:
            pairs.setdefault(int(i), []).append((float(f), float(a), float(b)))
    values = np.zeros(TP_PWL_LUT_ENTRIES)
    for half in range(TP_PWL_LUT_ENTRIES // _HALF):
        entries = range(half * _HALF, (half + 1) * _HALF)
        chosen = _fit_half(entries, box, pairs)
        if chosen is None:
            return None
        values[half * _HALF:(half + 1) * _HALF] = chosen
    lut = fp21.encode(values).astype("<u4").tobytes()
    if not np.array_equal(evaluate(lut, in_zp), np.asarray(outputs, dtype=np.uint8)):
        return None
    return PwlTable(in_zp, lut)


def _fit_half(entries: range, box: np.ndarray, pairs: dict[int, list[tuple[float, float, float]]]) -> list | None:
    """Forward: the interval each entry may take given the entries before; backward: a value for each."""
    feasible = []
    prev = None
    for j in entries:
        lo, hi = box[j]
        if prev is not None and (j - 1) in pairs:
            reach = _reachable(prev, pairs[j - 1])
            if reach is None:
                return None
            lo, hi = max(lo, reach[0]), min(hi, reach[1])
        if lo > hi:
            return None
        feasible.append((lo, hi))
        prev = (lo, hi)
    chosen = [0.0] * len(feasible)
    after = None
    for k in range(len(feasible) - 1, -1, -1):
        lo, hi = feasible[k]
        if after is not None and (entries[k]) in pairs:
            for f, a, b in pairs[entries[k]]:   # a <= (1 - f) x + f * after <= b
                lo, hi = max(lo, (a - f * after) / (1 - f)), min(hi, (b - f * after) / (1 - f))
        chosen[k] = after = (lo + hi) / 2
    return chosen


def _reachable(prev: tuple[float, float], constraints: list[tuple[float, float, float]]) -> tuple[float, float] | None:
    """The values the next entry can take when this one lies in ``prev`` and the segment's constraints hold.

    The constraints ``a <= (1 - f) x + f y <= b`` and ``x`` in ``prev`` bound a
    convex polygon in (x, y); its extreme y lie on vertices, so every pair of
    boundary lines is intersected and the feasible intersections kept.
    """
    lines = [(1.0, 0.0, prev[0]), (1.0, 0.0, prev[1])]                  # x = c
    lines += [(1 - f, f, c) for f, a, b in constraints for c in (a, b)]  # (1 - f) x + f y = c
    ys = []
    for (p1, q1, c1), (p2, q2, c2) in itertools.combinations(lines, 2):
        det = p1 * q2 - p2 * q1
        if abs(det) < 1e-12:
            continue
        x, y = (c1 * q2 - c2 * q1) / det, (p1 * c2 - p2 * c1) / det
        tol = 1e-9
        if prev[0] - tol <= x <= prev[1] + tol and all(a - tol <= (1 - f) * x + f * y <= b + tol
                                                      for f, a, b in constraints):
            ys.append(y)
    if not ys:
        return None
    return min(ys), max(ys)
