"""The device interface between npuc's runtime and an NPU.

It mirrors the etnaviv kernel interface on purpose, so that the simulator and
the real NPU take exactly the same thing: buffers created by the device and
mapped into the CPU's address space (GEM_NEW + mmap), then submits made of
command-stream words plus the buffers they use, each pinned at a GPU virtual
address chosen by the caller (GEM_SUBMIT with softpin).  A submit returns when
the NPU has finished (WAIT_FENCE).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .target import NpuIdentity

#: Submit buffer flags, as in the etnaviv UAPI (drm_etnaviv_gem_submit_bo.flags).
BO_READ = 1
BO_WRITE = 2

#: Lowest GPU address the etnaviv kernel lets a buffer be pinned at (ETNAVIV_SOFTPIN_START_ADDRESS).
SOFTPIN_START_ADDRESS = 4 * 1024 * 1024
#: Largest command stream per submit (Mesa splits there for older kernels) and its size granularity.
STREAM_MAX_BYTES = 64 * 1024
STREAM_ALIGN = 8
#: GPU virtual addresses are 32 bits wide (MMUv2): every pinned buffer ends at or below this.
VA_END = 1 << 32


class DeviceBuffer:
    """A buffer object created by a device, with its CPU mapping as a byte array."""

    def __init__(self, handle: int, size: int) -> None:
        self.handle = handle
        self.size = size
        self.data = np.zeros(size, dtype=np.uint8)


@dataclass(frozen=True)
class SubmitBo:
    """One buffer of a submit: where it is pinned and how the NPU uses it."""

    buffer: DeviceBuffer
    address: int
    flags: int


class Device(ABC):
    """An NPU that runs command streams over buffers pinned at chosen addresses."""

    #: Lowest and one-past-highest GPU virtual address a buffer may be pinned at.
    va_start: int
    va_end: int
    #: Alignment the kernel requires of pinned addresses.
    va_align: int = 4096

    @property
    @abstractmethod
    def identity(self) -> NpuIdentity:
        """The core's model, revision and ids, as GET_PARAM reports them."""

    @abstractmethod
    def new_buffer(self, size: int) -> DeviceBuffer:
        """Create a zero-filled buffer of ``size`` bytes mapped for the CPU."""

    @abstractmethod
    def submit(self, stream: bytes, bos: Sequence[SubmitBo], name: str = "") -> None:
        """Run one command stream over ``bos`` and wait until the NPU is done."""

    def close(self) -> None:
        """Release the device."""
