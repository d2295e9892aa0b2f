"""GPU virtual memory as the simulated NPU sees it: buffers pinned at addresses.

Every access names the job that makes it, so that an access outside every
buffer (a wrong address in a descriptor, a tensor that runs past its buffer)
is reported as the hardware's fault would be found: which job, which address.
Accesses return numpy views into the buffers themselves, so jobs read and write
the caller's memory without copies.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from ..errors import SimError


@dataclass
class Region:
    """One buffer pinned at ``start``; ``data`` is its uint8 storage."""

    start: int
    data: np.ndarray
    name: str = ""

    @property
    def end(self) -> int:
        return self.start + self.data.size


class Memory:
    """A set of non-overlapping regions, searchable by address."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._regions: list[Region] = []

    def map(self, start: int, data: np.ndarray, name: str = "") -> None:
        """Pin ``data`` (a uint8 array) at GPU address ``start``."""
        if data.dtype != np.uint8 or data.ndim != 1:
            raise TypeError("memory regions are flat uint8 arrays")
        if start < 0 or start + data.size > 1 << 32:
            raise SimError(f"buffer {name or '?'} at 0x{start:x} (+{data.size}) lies outside the 32-bit GPU address space")
        i = bisect.bisect_right(self._starts, start)
        new = Region(start, data, name)
        for j in (i - 1, i):
            if 0 <= j < len(self._regions):
                r = self._regions[j]
                if start < r.end and r.start < new.end:
                    raise SimError(f"buffer {name or '?'} at 0x{start:x} (+{data.size}) overlaps "
                                   f"{r.name or 'a buffer'} at 0x{r.start:x} (+{r.data.size})")
        self._starts.insert(i, start)
        self._regions.insert(i, new)

    def regions(self) -> list[Region]:
        return list(self._regions)

    def find(self, address: int) -> Region | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self._regions[i].end:
            return self._regions[i]
        return None

    def view(self, address: int, nbytes: int, job: str, what: str = "access") -> np.ndarray:
        """A writable uint8 view of ``nbytes`` at ``address``, which must lie in one buffer."""
        if nbytes < 0:
            raise SimError(f"{job}: {what} of negative size {nbytes} at 0x{address:x}")
        r = self.find(address)
        if r is None:
            raise SimError(f"{job}: {what} at 0x{address:08x} is outside every buffer")
        off = address - r.start
        if off + nbytes > r.data.size:
            raise SimError(f"{job}: {what} of {nbytes} bytes at 0x{address:08x} runs past the end of "
                           f"{r.name or 'its buffer'} (0x{r.start:08x} + {r.data.size})")
        return r.data[off:off + nbytes]

    def read(self, address: int, nbytes: int, job: str, what: str = "read") -> bytes:
        return self.view(address, nbytes, job, what).tobytes()

    def write(self, address: int, data: bytes | np.ndarray, job: str, what: str = "write") -> None:
        arr = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray)) else data
        self.view(address, arr.size, job, what)[:] = arr.reshape(-1).view(np.uint8)

    def gather(self, base: int, offsets: np.ndarray, job: str, what: str = "read") -> np.ndarray:
        """Bytes at ``base + offsets`` (any shape); every address must lie in one buffer."""
        if offsets.size == 0:
            return np.zeros(offsets.shape, np.uint8)
        lo, hi = int(offsets.min()), int(offsets.max())
        region = self.view(base + lo, hi - lo + 1, job, what)
        return region[offsets - lo]

    def scatter(self, base: int, offsets: np.ndarray, values: np.ndarray, job: str, what: str = "write") -> None:
        """Write ``values`` at ``base + offsets``; every address must lie in one buffer."""
        if offsets.size == 0:
            return
        lo, hi = int(offsets.min()), int(offsets.max())
        region = self.view(base + lo, hi - lo + 1, job, what)
        region[offsets - lo] = values
