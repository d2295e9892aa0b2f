"""A target's coefficient buffer format: the one place that picks the v7 or the v8 module.

The backend plans buffers with :func:`plan_coefficients`, the simulator reads
them with :func:`buffer_size` and :func:`decode_coefficients`; both go by
``Target.coef_format``, never by chip.  The two formats differ in where a
kernel's output plane comes from: v7 streams carry a trailer word per kernel
(its plane's byte offset), v8 streams none (``Target.plane_offsets_in_stream``
is False and kernel ``o`` writes plane ``o``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from . import coeffs_v7, coeffs_v8
from ..hw.target import COEF_HUFFMAN, COEF_ZERO_RUN, Target


def _check(target: Target) -> None:
    if target.coef_format not in (COEF_ZERO_RUN, COEF_HUFFMAN):
        raise ValueError(f"target {target.name}: unknown coefficient format {target.coef_format!r}")


def plane_offsets_in_stream(target: Target) -> bool:
    """Whether kernels carry their output plane's offset (v7 trailer words) or write plane o (v8)."""
    return dict(target.descriptor_flags).get("no_z_offset", 0) == 0


def header_bytes(target: Target) -> int:
    """Leading bytes of a buffer that say how long it is (with the descriptor)."""
    _check(target)
    if target.coef_format == COEF_HUFFMAN:
        return coeffs_v8.HEADER_BYTES
    return coeffs_v7.core_size_table(target).size


def buffer_size(head: bytes | np.ndarray, desc: Mapping[str, int], target: Target, job: str) -> int:
    """Bytes of the buffer whose first :func:`header_bytes` bytes are ``head``."""
    _check(target)
    if target.coef_format == COEF_HUFFMAN:
        return coeffs_v8.buffer_size_v8(head, desc, target, job)
    return coeffs_v7.buffer_size(head, target, job)


def decode_coefficients(buf: bytes | np.ndarray, desc: Mapping[str, int], target: Target, job: str) -> Any:
    """Kernels as the job reads them: ``.weights`` [slots][z][y][x], ``.biases``, ``.trailers`` (None on v8)."""
    _check(target)
    if target.coef_format == COEF_HUFFMAN:
        return coeffs_v8.decode_coefficients_v8(buf, desc, target, job)
    return coeffs_v7.decode_coefficients_v7(buf, desc, target, job)


def plan_coefficients(weights: np.ndarray, biases: np.ndarray, trailers: np.ndarray, desc: Mapping[str, int],
                      target: Target) -> Any:
    """The planned buffer (``.total_bytes``, ``.cache_bytes``, ``.pack()``) of the job ``desc`` describes.

    ``weights`` are the slots' kernels [slots][z][y][x] (v8 depthwise: one
    channel each), ``biases`` their 32-bit words, ``trailers`` their output
    plane offsets (v7 only: v8 jobs write plane o for kernel o).
    """
    _check(target)
    if target.coef_format == COEF_HUFFMAN:
        return coeffs_v8.plan_coefficients_v8(weights, biases, coeffs_v8.KernelGeometryV8.from_descriptor(
            {**desc, "kernel_z_size2": 0}), target)
    geo = coeffs_v7.KernelGeometry.from_descriptor({**desc, "kernel_z_size2": 0})
    return coeffs_v7.plan_coefficients_v7(weights, biases, trailers, geo, target)
