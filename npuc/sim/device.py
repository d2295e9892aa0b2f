"""A functional NPU simulator behind the same interface as the real device.

:class:`SimDevice` takes exactly what the etnaviv kernel takes from userspace:
buffers pinned at GPU addresses chosen by the caller (softpin) and a command
stream.  It refuses what the kernel would refuse (addresses below the softpin
start, unaligned or overlapping, a buffer moved to another address, streams of
the wrong size), maps the submit's buffers into a fresh :class:`Memory` and lets
the :class:`CommandProcessor` run the stream.  It knows nothing of models or
compilers, so a model that runs correctly here ran from its bytes alone.
"""

from __future__ import annotations

import bisect
from typing import Sequence

from ..hw.target import VIPNANO_QI, NpuIdentity, Target, target_for_identity
from ..errors import SimError, UnsupportedError
from ..hw.kernel_abi import (BO_READ, BO_WRITE, SOFTPIN_START_ADDRESS, STREAM_ALIGN, STREAM_MAX_BYTES, VA_END,
                              Device, DeviceBuffer, SubmitBo)
from .cmdstream import CommandProcessor, StreamTrace
from .memory import Memory


class SimDevice(Device):
    """A simulated NPU of ``target`` with a private GPU address space, like one etnaviv DRM file."""

    va_start = SOFTPIN_START_ADDRESS
    va_end = VA_END

    def __init__(self, target: Target = VIPNANO_QI) -> None:
        self.target = target
        self.frontend = CommandProcessor(target)
        #: Trace of the last submit's stream (jobs run, flushes, register writes).
        self.trace: StreamTrace | None = None
        self._buffers: dict[int, DeviceBuffer] = {}
        self._address: dict[int, int] = {}   # handle -> pinned address, for the device's lifetime
        self._starts: list[int] = []         # pinned ranges sorted by start, for overlap checks
        self._ranges: list[tuple[int, int, int]] = []  # (start, end, handle)
        self._submits = 0

    @property
    def identity(self) -> NpuIdentity:
        return self.target.identity

    def new_buffer(self, size: int) -> DeviceBuffer:
        if not isinstance(size, int) or size <= 0:
            raise SimError(f"cannot create a buffer of {size!r} bytes")
        if size > self.va_end - self.va_start:
            raise SimError(f"a buffer of {size} bytes does not fit the GPU address space")
        handle = len(self._buffers) + 1
        buffer = DeviceBuffer(handle, size)
        self._buffers[handle] = buffer
        return buffer

    def submit(self, stream: bytes, bos: Sequence[SubmitBo], name: str = "") -> None:
        name = name or f"submit {self._submits}"
        self._submits += 1
        stream = bytes(stream)
        if len(stream) % STREAM_ALIGN or len(stream) > STREAM_MAX_BYTES:
            raise SimError(f"{name}: command stream of {len(stream)} bytes must be a multiple of {STREAM_ALIGN} "
                           f"bytes and at most {STREAM_MAX_BYTES}")
        mem = Memory()
        seen: set[int] = set()
        for bo in bos:
            self._pin(bo, name, seen)
            mem.map(bo.address, bo.buffer.data, f"bo {bo.buffer.handle}")
        self.trace = self.frontend.run(stream, mem, name)

    def _pin(self, bo: SubmitBo, name: str, seen: set[int]) -> None:
        """Check one submit buffer as the kernel does and remember where it lives."""
        buf = bo.buffer
        what = f"{name}: buffer {buf.handle} at 0x{bo.address:x}"
        if self._buffers.get(buf.handle) is not buf:
            raise SimError(f"{what} was not created by this device")
        if buf.handle in seen:
            raise SimError(f"{what} is listed twice in the submit")
        seen.add(buf.handle)
        if not bo.flags or bo.flags & ~(BO_READ | BO_WRITE):
            raise SimError(f"{what} has invalid flags 0x{bo.flags:x} (READ {BO_READ} and/or WRITE {BO_WRITE})")
        if bo.address % self.va_align:
            raise SimError(f"{what} is not aligned to {self.va_align} bytes")
        end = bo.address + -(-buf.size // self.va_align) * self.va_align
        if bo.address < self.va_start or end > self.va_end:
            raise SimError(f"{what} (+{buf.size}) lies outside the pinnable range "
                           f"0x{self.va_start:x}..0x{self.va_end:x}")
        pinned = self._address.get(buf.handle)
        if pinned is not None:
            if pinned != bo.address:
                raise SimError(f"{what} was pinned at 0x{pinned:x} before; a buffer keeps its address")
            return
        i = bisect.bisect_right(self._starts, bo.address)
        for start, stop, other in self._ranges[max(i - 1, 0):i + 1]:
            if bo.address < stop and start < end:
                raise SimError(f"{what} (+{buf.size}) overlaps buffer {other} pinned at 0x{start:x}")
        self._starts.insert(i, bo.address)
        self._ranges.insert(i, (bo.address, end, buf.handle))
        self._address[buf.handle] = bo.address


def device_like(identity: NpuIdentity) -> SimDevice:
    """A simulated NPU of the target whose core reports ``identity`` (``npu-run`` off the board simulates
    the core a blob was compiled for)."""
    target = target_for_identity(identity)
    if target is None:
        raise UnsupportedError(f"no simulated NPU has the identity model {identity.model:#x} revision "
                               f"{identity.revision:#x} customer {identity.customer_id:#x}")
    return SimDevice(target)
