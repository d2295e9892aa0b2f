"""What every numpy host kernel shares."""

from __future__ import annotations

import numpy as np


def store(out: np.ndarray, values: np.ndarray, lo: int, hi: int) -> None:
    """Clamp int64 ``values`` to [lo, hi] and write them into ``out`` (a view that must not be rebound)."""
    out[...] = np.clip(values, lo, hi).reshape(out.shape).astype(out.dtype)


def clamp_float(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """TFLite's float activation clamp ``std::min(std::max(x, lo), hi)`` in float32, NaN passing through.

    Written with the comparisons ``std::max``/``std::min`` make, so ties between
    +0 and -0 keep the same operand C++ keeps.
    """
    lo32, hi32 = np.float32(lo), np.float32(hi)
    raised = np.where(x < lo32, lo32, x)
    return np.where(hi32 < raised, hi32, raised).astype(np.float32)
