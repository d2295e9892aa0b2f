"""The cache both coefficient decoders keep: decoded buffers by a hash of their bytes and the fields that shape them.

A simulated inference decodes the same coefficient buffers on every run; the
hash (BLAKE2, 16 bytes) of the used bytes, together with the geometry the
descriptor gives and the target, identifies a decode exactly, so a cached
result is returned instead (least recently used entries go first).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

import numpy as np

#: What the codecs accept as a buffer: bytes-like objects or uint8 arrays.
Buffer = bytes | bytearray | memoryview | np.ndarray

T = TypeVar("T")


def as_bytes(buf: Buffer) -> bytes | bytearray | memoryview:
    """A buffer-protocol view of ``buf`` (uint8 arrays as raw bytes)."""
    if isinstance(buf, np.ndarray):
        return memoryview(np.ascontiguousarray(buf, dtype=np.uint8)).cast("B")
    return buf


class DecodeCache(Generic[T]):
    """At most ``entries`` decoded buffers, least recently used dropped first."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._items: OrderedDict[tuple[bytes, Hashable], T] = OrderedDict()

    def get_or_decode(self, used: np.ndarray, shape: Hashable, decode: Callable[[], T]) -> T:
        """The decode of ``used`` (the bytes read) with ``shape`` (what else decides it), computed once."""
        key = (hashlib.blake2b(used, digest_size=16).digest(), shape)
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
            return hit
        value = decode()
        self._items[key] = value
        if len(self._items) > self.entries:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()
