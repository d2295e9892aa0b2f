"""The C library's float32 math functions, called from Python so that the numpy kernels round as TFLite does.

TFLite's float kernels call ``std::exp``, ``std::tanh``, ``std::log`` ... on
float32 values, i.e. the C library's ``expf``, ``tanhf``, ``logf``; so do npuc's
C kernels.  Those functions are not correctly rounded (glibc's ``tanhf`` is one
unit in the last place off for about 13 % of its inputs, ``expf`` for 0.07 %), so
no numpy formula reproduces them; calling them does.  Each distinct input
(by bit pattern, so that -0.0 and NaN payloads stay distinct) is evaluated once
and the results are gathered: tensors computed from 8-bit values hold at most
a few hundred distinct floats, and any tensor gets exact results.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Callable

import numpy as np

#: A float32 function applied element-wise to an array.
FloatFn = Callable[[np.ndarray], np.ndarray]
#: A two-argument float32 function applied element-wise to two arrays of one size (flat order).
FloatFn2 = Callable[[np.ndarray, np.ndarray], np.ndarray]


@lru_cache(maxsize=None)
def _library() -> ctypes.CDLL:
    """glibc's libm by its soname; elsewhere whatever the system calls it (find_library runs ldconfig, a
    subprocess that every compile would otherwise pay for, and ctypes.util imports subprocess: only then)."""
    try:
        return ctypes.CDLL("libm.so.6")
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("m"))


def float_function(name: str) -> FloatFn:
    """The C library's float32 function ``name`` (``"expf"``, ``"tanhf"`` ...) applied element-wise."""
    fn = getattr(_library(), name)
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]

    def apply(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        bits, inverse = np.unique(np.ascontiguousarray(x).reshape(-1).view(np.uint32), return_inverse=True)
        results = np.array([fn(float(v)) for v in bits.view(np.float32)], dtype=np.float32)
        return results[inverse].reshape(x.shape)

    return apply


def float_function2(name: str) -> FloatFn2:
    """The C library's two-argument float32 function ``name`` (``"atan2f"``) applied element-wise, each
    distinct pair of bit patterns evaluated once; the result has the first argument's shape."""
    fn = getattr(_library(), name)
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]

    def apply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
        high = np.ascontiguousarray(a).reshape(-1).view(np.uint32).astype(np.uint64) << np.uint64(32)
        pairs, inverse = np.unique(high | np.ascontiguousarray(b).reshape(-1).view(np.uint32), return_inverse=True)
        firsts = (pairs >> np.uint64(32)).astype(np.uint32).view(np.float32)
        seconds = (pairs & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32)
        results = np.array([fn(float(u), float(v)) for u, v in zip(firsts, seconds)], dtype=np.float32)
        return results[inverse].reshape(a.shape)

    return apply
