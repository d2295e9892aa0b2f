"""The host-kernel record and the small helpers every kernel shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

#: ``run(inputs, outputs, params)``: reads ``inputs`` (None for an absent optional
#: input), writes into the preallocated ``outputs`` in place.
KernelFn = Callable[[list[np.ndarray | None], list[np.ndarray], dict[str, Any]], None]


@dataclass(frozen=True)
class HostKernel:
    """A CPU implementation of one TFLite operator, bit-exact with TFLite's reference kernel.

    ``params`` are the parameters ``npuc.passes.host_params`` folds at compile
    time: integers (offsets, multipliers, shifts, clamp bounds, lookup tables),
    plus floats only where TFLite's reference kernel itself computes in floating
    point.
    """

    name: str
    run: KernelFn
    doc: str


def kernel(name: str, fn: KernelFn) -> HostKernel:
    """A HostKernel named after its TFLite opcode, documented by the first line of ``fn``'s docstring."""
    return HostKernel(name, fn, (fn.__doc__ or "").strip().splitlines()[0])


def store(out: np.ndarray, values: np.ndarray, lo: int, hi: int) -> None:
    """Clamp int64 ``values`` to [lo, hi] and write them into ``out`` (a view that must not be rebound)."""
    out[...] = np.clip(values, lo, hi).reshape(out.shape).astype(out.dtype)
