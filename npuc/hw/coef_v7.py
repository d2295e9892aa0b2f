"""The v7 NN cores' coefficient buffer format (zero-run-length coded), as data.

Source: ../shared/docs/vipnano-nn.md section 4.1, checked byte for byte against Mesa's golden
v7 submits.  A buffer is a per-core size table (:func:`core_size_table`) followed by one bit stream
per NN core; each stream starts with :data:`STREAM_HEADER` and then carries (zero run, value) pairs,
with a 32-bit bias word after each kernel's first weight and a 32-bit trailer word (the kernel's
output plane offset) after its last.  The weights of a kernel slice are taken in 2x3
(:data:`PATCH_ROWS` x :data:`PATCH_COLUMNS`) patches, the dot product one MAD computes per cycle;
1x1 kernels in blocks of :data:`POINTWISE_Z_BLOCK` input channels.  The encoder lives in
``npuc/coefs``, the simulator's own decoder in ``npuc/sim``; both read these declarations.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

from .fields import Layout, fields_from_rows


class CoreCount(Protocol):
    """What the size table depends on (a Target has both; target.py itself imports this module)."""

    nn_cores: int
    coef_align: int


#: Header of every per-core stream: zero-run field width, then the core's kernel count.
STREAM_HEADER = Layout("coef_stream_header_v7", 1, fields_from_rows([
    ("zrl_bits", 0, 0, 8),
    ("kernels_per_core", 0, 8, 16),
]), doc="first 24 bits of each core's coefficient stream; the pairs start at bit 24")

#: Bits of the stream header (the pairs start right after it).
STREAM_HEADER_BITS = STREAM_HEADER["zrl_bits"].width + STREAM_HEADER["kernels_per_core"].width
#: Bits of one weight value, and of the bias and trailer words.
VALUE_BITS = 8
WORD_BITS = 32
#: The 2x3 (rows x columns) patch a kernel slice is cut into.
PATCH_ROWS = 2
PATCH_COLUMNS = 3
#: Input channels per block of the 1x1 ("pointwise-6") order.
POINTWISE_Z_BLOCK = 6

ORDER_INTERLEAVED = "interleaved"
ORDER_SEQUENTIAL = "sequential"
ORDER_POINTWISE = "pointwise-6"


@lru_cache(maxsize=None)
def core_size_table(target: CoreCount) -> Layout:
    """The table of per-core stream sizes (bytes, ``coef_align`` multiples) that starts a buffer."""
    words = -(-target.nn_cores * 4 // target.coef_align) * target.coef_align // 4
    return Layout("coef_core_sizes_v7", words,
                  fields_from_rows([(f"core{c}_bytes", c, 0, 32) for c in range(target.nn_cores)]),
                  doc="byte size of each NN core's coefficient stream; 0 for unused cores")
