"""What the codecs accept as a coefficient buffer, and its bytes.

The compiler's decoders serve ``npuc inspect`` and the tests, which read each
buffer once, so they keep no cache (the simulator, which decodes the same
buffers on every run, caches its own decodes).
"""

from __future__ import annotations

import numpy as np

#: What the codecs accept as a buffer: bytes-like objects or uint8 arrays.
Buffer = bytes | bytearray | memoryview | np.ndarray


def as_bytes(buf: Buffer) -> bytes | bytearray | memoryview:
    """A buffer-protocol view of ``buf`` (uint8 arrays as raw bytes)."""
    if isinstance(buf, np.ndarray):
        return memoryview(np.ascontiguousarray(buf, dtype=np.uint8)).cast("B")
    return buf
