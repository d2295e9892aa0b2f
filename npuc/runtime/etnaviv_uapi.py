"""The etnaviv DRM kernel interface, declared once as data for the C runtime.

The C runtime talks to the kernel without kernel or libdrm headers, so every
structure it passes to ``ioctl`` is declared here as a
:class:`~npuc.hw.fields.Layout` over native 32-bit words (64-bit
members as a low/high word pair, which is what they are on the little-endian
LP64 machines the NPU lives on), and every ioctl number is computed from its
structure's size with Linux's ``_IOC`` encoding rather than copied.  The
values come from ``../shared/docs/vipnano-tp-cmdstream-uapi.md`` sections 5.3
and 5.4 (etnaviv_drm.h); ``tests/test_c_runtime.py`` checks the computed ioctl
numbers against the numbers that document lists.

``DRM_VERSION`` is the DRM core's own query: the runtime uses it to skip render
nodes of other drivers before sending them an etnaviv-numbered ioctl.  Its
layout holds ``size_t`` members and pointers, so it is the LP64 one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hw.fields import Layout, fields_from_rows
from ..hw.kernel_abi import BO_READ, BO_WRITE, VA_END, Device

# -- ioctl number encoding (Linux asm-generic/ioctl.h) --------------------------------

IOC_NR_SHIFT = 0
IOC_TYPE_SHIFT = 8
IOC_SIZE_SHIFT = 16
IOC_DIR_SHIFT = 30
IOC_WRITE = 1          # userspace writes the structure to the kernel
IOC_READ = 2           # the kernel writes it back
#: ioctl type letter of every DRM ioctl.
DRM_IOCTL_TYPE = ord("d")
#: First driver-specific DRM ioctl number.
DRM_COMMAND_BASE = 0x40

# -- structures -----------------------------------------------------------------------

VERSION = Layout("drm_version", 16, fields_from_rows([
    ("version_major", 0, 0, 32, True), ("version_minor", 1, 0, 32, True), ("version_patchlevel", 2, 0, 32, True),
    ("pad", 3, 0, 32), ("name_len", 4, 0, 64), ("name", 6, 0, 64), ("date_len", 8, 0, 64), ("date", 10, 0, 64),
    ("desc_len", 12, 0, 64), ("desc", 14, 0, 64),
]), doc="DRM core version query (LP64): the driver's name identifies etnaviv nodes")

PARAM = Layout("drm_etnaviv_param", 4, fields_from_rows([
    ("pipe", 0, 0, 32), ("param", 1, 0, 32), ("value", 2, 0, 64),
]), doc="GET_PARAM: one value of one core (pipe)")

GEM_NEW = Layout("drm_etnaviv_gem_new", 4, fields_from_rows([
    ("size", 0, 0, 64), ("flags", 2, 0, 32), ("handle", 3, 0, 32),
]), doc="GEM_NEW: a buffer object of size bytes; handle is returned")

GEM_INFO = Layout("drm_etnaviv_gem_info", 4, fields_from_rows([
    ("handle", 0, 0, 32), ("pad", 1, 0, 32), ("offset", 2, 0, 64),
]), doc="GEM_INFO: the mmap offset of a buffer object")

GEM_CPU_PREP = Layout("drm_etnaviv_gem_cpu_prep", 6, fields_from_rows([
    ("handle", 0, 0, 32), ("op", 1, 0, 32), ("timeout_sec", 2, 0, 64, True), ("timeout_nsec", 4, 0, 64, True),
]), doc="GEM_CPU_PREP: wait for the NPU to be done with a buffer before the CPU touches it (absolute timeout)")

GEM_CPU_FINI = Layout("drm_etnaviv_gem_cpu_fini", 2, fields_from_rows([
    ("handle", 0, 0, 32), ("flags", 1, 0, 32),
]), doc="GEM_CPU_FINI: the CPU is done with a buffer")

GEM_SUBMIT_BO = Layout("drm_etnaviv_gem_submit_bo", 4, fields_from_rows([
    ("flags", 0, 0, 32), ("handle", 1, 0, 32), ("presumed", 2, 0, 64),
]), doc="one buffer of a submit; presumed is its GPU address under softpin")

GEM_SUBMIT = Layout("drm_etnaviv_gem_submit", 18, fields_from_rows([
    ("fence", 0, 0, 32), ("pipe", 1, 0, 32), ("exec_state", 2, 0, 32), ("nr_bos", 3, 0, 32),
    ("nr_relocs", 4, 0, 32), ("stream_size", 5, 0, 32), ("bos", 6, 0, 64), ("relocs", 8, 0, 64),
    ("stream", 10, 0, 64), ("flags", 12, 0, 32), ("fence_fd", 13, 0, 32, True), ("pmrs", 14, 0, 64),
    ("nr_pmrs", 16, 0, 32), ("pad", 17, 0, 32),
]), doc="GEM_SUBMIT: a command stream (user pointer) over bos; fence is returned")

WAIT_FENCE = Layout("drm_etnaviv_wait_fence", 8, fields_from_rows([
    ("pipe", 0, 0, 32), ("fence", 1, 0, 32), ("flags", 2, 0, 32), ("pad", 3, 0, 32),
    ("timeout_sec", 4, 0, 64, True), ("timeout_nsec", 6, 0, 64, True),
]), doc="WAIT_FENCE: wait until a submit's fence has signalled (absolute CLOCK_MONOTONIC timeout)")


@dataclass(frozen=True)
class Ioctl:
    """One ioctl: its number within DRM, its structure and which way the structure travels."""

    name: str
    nr: int
    layout: Layout
    direction: int

    @property
    def number(self) -> int:
        """The request value passed to ``ioctl()``: _IOC(direction, 'd', nr, sizeof(structure))."""
        return ((self.direction << IOC_DIR_SHIFT) | (self.layout.size << IOC_SIZE_SHIFT)
                | (DRM_IOCTL_TYPE << IOC_TYPE_SHIFT) | (self.nr << IOC_NR_SHIFT))


_RW = IOC_READ | IOC_WRITE

IOCTLS: tuple[Ioctl, ...] = (
    Ioctl("VERSION", 0x00, VERSION, _RW),
    Ioctl("ETNAVIV_GET_PARAM", DRM_COMMAND_BASE + 0x00, PARAM, _RW),
    Ioctl("ETNAVIV_GEM_NEW", DRM_COMMAND_BASE + 0x02, GEM_NEW, _RW),
    Ioctl("ETNAVIV_GEM_INFO", DRM_COMMAND_BASE + 0x03, GEM_INFO, _RW),
    Ioctl("ETNAVIV_GEM_CPU_PREP", DRM_COMMAND_BASE + 0x04, GEM_CPU_PREP, IOC_WRITE),
    Ioctl("ETNAVIV_GEM_CPU_FINI", DRM_COMMAND_BASE + 0x05, GEM_CPU_FINI, IOC_WRITE),
    Ioctl("ETNAVIV_GEM_SUBMIT", DRM_COMMAND_BASE + 0x06, GEM_SUBMIT, _RW),
    Ioctl("ETNAVIV_WAIT_FENCE", DRM_COMMAND_BASE + 0x07, WAIT_FENCE, IOC_WRITE),
)

LAYOUTS: tuple[Layout, ...] = (VERSION, PARAM, GEM_NEW, GEM_INFO, GEM_CPU_PREP, GEM_CPU_FINI, GEM_SUBMIT_BO,
                               GEM_SUBMIT, WAIT_FENCE)

# -- values ---------------------------------------------------------------------------

#: The DRM driver name of etnaviv render nodes (DRM_VERSION).
DRIVER_NAME = "etnaviv"
#: GET_PARAM ids.
PARAMS: dict[str, int] = {
    "MODEL": 0x01, "REVISION": 0x02, "SOFTPIN_START_ADDR": 0x1B,
    "PRODUCT_ID": 0x1C, "CUSTOMER_ID": 0x1D, "ECO_ID": 0x1E,
}
#: GET_PARAM ids that exist only from driver version IDENTITY_PARAMS_SINCE (major, minor) on.
VERSIONED_PARAMS = ("PRODUCT_ID", "CUSTOMER_ID", "ECO_ID")
IDENTITY_PARAMS_SINCE = (1, 4)
#: Cores (pipes) one etnaviv DRM device can hold (ETNA_MAX_PIPES).
MAX_PIPES = 4
#: GET_PARAM(SOFTPIN_START_ADDR) returns this when the MMU cannot softpin.
SOFTPIN_UNSUPPORTED = (1 << 64) - 1
#: GEM_NEW cache flags.
GEM_FLAGS: dict[str, int] = {"CACHED": 0x10000, "WC": 0x20000, "UNCACHED": 0x40000}
#: GEM_CPU_PREP operations.
PREP_OPS: dict[str, int] = {"READ": 1, "WRITE": 2, "NOSYNC": 4}
#: GEM_SUBMIT buffer flags (the same values the .vipbin's NPU steps store).
SUBMIT_BO_FLAGS: dict[str, int] = {"READ": BO_READ, "WRITE": BO_WRITE}
#: GEM_SUBMIT flags.
SUBMIT_FLAGS: dict[str, int] = {"NO_IMPLICIT": 1, "FENCE_FD_IN": 2, "FENCE_FD_OUT": 4, "SOFTPIN": 8}
#: Execution state of every NPU submit: the 3D pipe (the UAPI has no NPU state).
EXEC_STATE_3D = 0
#: WAIT_FENCE flags.
WAIT_NONBLOCK = 1
#: GPU virtual addresses are 32 bits wide (MMUv2): every pinned buffer ends at or below this.
VA_LIMIT = VA_END
#: GPU MMU page: pinned addresses and buffer sizes are multiples of it.
GPU_PAGE = Device.va_align
#: Render nodes: /dev/dri/renderD<minor>, minors 128 .. 128 + 63.
RENDER_NODE_PREFIX = "/dev/dri/renderD"
RENDER_MINOR_FIRST = 128
RENDER_MINOR_COUNT = 64
