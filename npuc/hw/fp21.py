"""fp21, the TP ALU's 21-bit float: conversion to and from numbers.

The TP's piecewise-linear unit holds its table in fp21 (layout
``descriptors.FP21``: 15 mantissa bits, 5 exponent bits biased by 15, a sign)
and indexes it with the fp21 code of its input.  The compiler encodes LUT
samples with these functions and the simulator decodes the table and encodes
its inputs with them, so the number format is written down once.
"""

from __future__ import annotations

import numpy as np

from .descriptors import FP21, FP21_EXPONENT_BIAS


def decode(bits: np.ndarray) -> np.ndarray:
    """Values of fp21 words (exponent 0 is denormal; no infinities: the LUT only holds finite values)."""
    bits = np.asarray(bits, dtype=np.int64)
    m_f, e_f, s_f = FP21["mantissa"], FP21["exponent"], FP21["sign"]
    m = (bits >> m_f.bit) & m_f.mask
    e = (bits >> e_f.bit) & e_f.mask
    s = (bits >> s_f.bit) & s_f.mask
    frac = m / float(1 << m_f.width)
    mag = np.where(e == 0, frac * 2.0 ** (1 - FP21_EXPONENT_BIAS), (1.0 + frac) * 2.0 ** (e - FP21_EXPONENT_BIAS))
    return np.where(s == 1, -mag, mag)


def encode(v: np.ndarray) -> np.ndarray:
    """fp21 words of values (round to nearest even, saturating at the largest finite value)."""
    v = np.asarray(v, dtype=np.float64)
    m_f, e_f, s_f = FP21["mantissa"], FP21["exponent"], FP21["sign"]
    mag = np.abs(v)
    frac, exp = np.frexp(mag)  # mag = frac * 2**exp, frac in [0.5, 1)
    e = exp - 1 + FP21_EXPONENT_BIAS
    m = np.rint((2 * frac - 1) * (1 << m_f.width)).astype(np.int64)
    carry = m >> m_f.width  # mantissa rounded up to 2.0
    e, m = e + carry, np.where(carry == 1, 0, m)
    denormal = (e < 1) | (mag == 0)
    m = np.where(denormal, np.rint(mag * 2.0 ** (FP21_EXPONENT_BIAS - 1 + m_f.width)).astype(np.int64), m)
    e = np.where(denormal, 0, e)
    saturated = e >= e_f.mask
    m = np.where(saturated, m_f.mask, m)
    e = np.where(saturated, e_f.mask - 1, e)
    return ((v < 0).astype(np.int64) << s_f.bit) | (e.astype(np.int64) << e_f.bit) | (m << m_f.bit)
