"""A target's coefficient buffer format: one interface, :class:`Codec`, picked by ``Target.coef_format``.

The backend plans buffers with ``codec_for(target).encode``, the simulator and
the blob readers size and read them with ``size`` and ``decode``; the format
is chosen by ``Target.coef_format``, never by chip.  The two formats differ in
where a kernel's output plane comes from: v7 streams (:mod:`npuc.coefs.v7`,
zero-run coded) carry a trailer word per kernel (its plane's byte offset), v8
streams (:mod:`npuc.coefs.v8`, prefix coded) none
(:func:`plane_offsets_in_stream` is False and kernel ``o`` writes plane ``o``).
Both take the kernels' shape as one :class:`KernelGeometry` and decode to one
:class:`DecodedKernels`; malformed buffers raise ``CoefficientError`` naming
the job.
"""

from __future__ import annotations

from typing import Callable, Mapping, Protocol

import numpy as np

from ..hw.target import COEF_HUFFMAN, COEF_ZERO_RUN, Target
from .buffers import Buffer
from .geometry import DecodedKernels, KernelGeometry
from .v7 import ZeroRunCodec
from .v8 import HuffmanCodec


class CoefficientPlan(Protocol):
    """A planned coefficient buffer: its sizes are known, its bytes are packed on demand and not kept."""

    @property
    def total_bytes(self) -> int:
        """Bytes of the whole buffer."""

    @property
    def cache_bytes(self) -> int:
        """Bytes the SRAM kernel cache must hold for it (the descriptor's cache fields)."""

    def pack(self) -> bytes:
        """The buffer's bytes (``total_bytes`` of them)."""


class Codec(Protocol):
    """One coefficient buffer format on one target."""

    @property
    def target(self) -> Target: ...

    @property
    def header_bytes(self) -> int:
        """Leading bytes of a buffer that say how long it is (with the descriptor)."""

    def encode(self, weights: np.ndarray, biases: np.ndarray, trailers: np.ndarray | None,
               geo: KernelGeometry) -> CoefficientPlan:
        """Plan the buffer of kernels ``weights`` [slots][kernel_channels][y][x] (uint8, ``geo.zero_point``
        meaning zero), with 32-bit ``biases`` and (v7) ``trailers`` (output plane offsets) per slot, that the
        job with geometry ``geo`` reads.  The plan keeps ``weights``: do not change them before packing."""

    def decode(self, buf: Buffer, desc: Mapping[str, int], job: str = "coefficients") -> DecodedKernels:
        """The kernels as the NN job described by ``desc`` reads them (CoefficientError naming ``job``)."""

    def size(self, head: Buffer, desc: Mapping[str, int], job: str = "coefficients") -> int:
        """Bytes of the buffer whose first :attr:`header_bytes` bytes are ``head``."""


#: The codec of each ``Target.coef_format``.
CODECS: dict[str, Callable[[Target], Codec]] = {COEF_ZERO_RUN: ZeroRunCodec, COEF_HUFFMAN: HuffmanCodec}


def codec_for(target: Target) -> Codec:
    """The coefficient codec of ``target`` (by its ``coef_format``)."""
    try:
        return CODECS[target.coef_format](target)
    except KeyError:
        raise ValueError(f"target {target.name}: unknown coefficient format {target.coef_format!r}") from None


def plane_offsets_in_stream(target: Target) -> bool:
    """Whether kernels carry their output plane's offset (v7 trailer words) or write plane o (v8)."""
    return dict(target.descriptor_flags).get("no_z_offset", 0) == 0


def header_bytes(target: Target) -> int:
    """Leading bytes of a buffer that say how long it is (with the descriptor)."""
    return codec_for(target).header_bytes
