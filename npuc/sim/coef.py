"""The simulator's coefficient buffer reader: picks the v7 or the v8 decoder by ``Target.coef_format``.

:func:`header_bytes` says how many leading bytes to read, :func:`buffer_size`
how long the whole buffer is (with the descriptor), :func:`decode_coefficients`
what it holds (:class:`~npuc.sim.coef_common.DecodedCoefficients`).  Both
decoders are the simulator's own (``coef_v7``, ``coef_v8``), written from the
format documentation; nothing here is shared with the compiler's encoders
except the format declarations in ``npuc.hw``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import SimError
from ..hw.coef_v7 import core_size_table
from ..hw.coef_v8 import HEADER_BYTES
from ..hw.target import COEF_HUFFMAN, COEF_ZERO_RUN, Target
from . import coef_v7, coef_v8
from .coef_common import DecodedCoefficients


def _format(target: Target) -> str:
    if target.coef_format not in (COEF_ZERO_RUN, COEF_HUFFMAN):
        raise SimError(f"target {target.name}: coefficient format {target.coef_format!r} is not modelled")
    return target.coef_format


def header_bytes(target: Target) -> int:
    """Leading bytes of a buffer that say (with the descriptor) how long it is."""
    return HEADER_BYTES if _format(target) == COEF_HUFFMAN else core_size_table(target).size


def buffer_size(head: bytes | np.ndarray, desc: Mapping[str, int], target: Target, job: str = "coefficients") -> int:
    """Bytes of the buffer whose first :func:`header_bytes` bytes are ``head`` (SimError naming ``job``)."""
    if _format(target) == COEF_HUFFMAN:
        return coef_v8.buffer_size_v8(head, desc, target, job)
    return coef_v7.buffer_size_v7(head, target, job)


def decode_coefficients(buf: bytes | np.ndarray, desc: Mapping[str, int], target: Target,
                        job: str = "coefficients") -> DecodedCoefficients:
    """The kernels the NN job described by ``desc`` reads from ``buf`` (cached by a hash of the bytes read)."""
    if _format(target) == COEF_HUFFMAN:
        return coef_v8.decode_v8(buf, desc, target, job)
    return coef_v7.decode_v7(buf, desc, target, job)


def clear_caches() -> None:
    """Forget every decoded buffer and stream layout (for timing cold decodes)."""
    coef_v7.clear_cache()
    coef_v8.clear_cache()
