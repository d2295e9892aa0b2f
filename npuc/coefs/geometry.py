"""What both coefficient formats share: the kernel geometry a descriptor gives and the decoded kernels.

:class:`KernelGeometry` holds the descriptor fields that shape a coefficient
buffer in either format (the v7 zero-run streams read ``in_image_x_size``,
the v8 prefix-coded streams ``depthwise``; each format ignores the other's
field), with the derived counts both use (cores, kernels per core,
superblocks) and each format's own (v7 slots and weight order, v8 blocks).
:class:`DecodedKernels` is what a decoder returns, by output slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import CoefficientError
from ..hw.coef_v7 import ORDER_INTERLEAVED, ORDER_POINTWISE, ORDER_SEQUENTIAL
from ..hw.coef_v8 import BLOCK
from ..hw.descriptors import kernel_fields_fault, kernel_z
from ..hw.target import Target


@dataclass(frozen=True)
class KernelGeometry:
    """The descriptor fields that define a coefficient buffer's structure (both formats)."""

    kernel_x: int
    kernel_y: int
    kernel_z: int                # input channels of the job (v8 depthwise: the channels, one per kernel)
    out_channels: int
    kernels_per_superblock: int  # the descriptor's kernels_per_core
    in_image_x_size: int = 0     # v7: selects the sequential order's row split
    zero_point: int = 0          # coef_zero_point: the value zero runs stand for (v7), the delta base (v8)
    depthwise: bool = False      # v8: one input channel per kernel

    @classmethod
    def from_descriptor(cls, desc: Mapping[str, int]) -> "KernelGeometry":
        """From an NN descriptor's fields (``kernel_z_size2``, ``in_image_x_size`` and ``depthwise`` may be absent)."""
        return cls(kernel_x=desc["kernel_xy_size"], kernel_y=desc["kernel_y_size"], kernel_z=kernel_z(desc),
                   out_channels=desc["out_image_z_size"], kernels_per_superblock=desc["kernels_per_core"],
                   in_image_x_size=desc.get("in_image_x_size", 0), zero_point=desc.get("coef_zero_point", 0),
                   depthwise=bool(desc.get("depthwise", 0)))

    # -- both formats ---------------------------------------------------------------------------

    def cores_used(self, target: Target) -> int:
        return min(self.out_channels, target.nn_cores)

    def kernels_per_core(self, target: Target) -> int:
        """Kernels of the busiest core: the output channels split over the cores used, rounded up."""
        return -(-self.out_channels // self.cores_used(target))

    def superblocks(self, target: Target) -> int:
        return -(-self.kernels_per_core(target) // self.kernels_per_superblock)

    # -- v7 ---------------------------------------------------------------------------------------

    def slots(self, target: Target) -> int:
        """v7: kernels in the buffer, out_channels rounded up to a multiple of the cores used."""
        return self.cores_used(target) * self.kernels_per_core(target)

    def ordering(self) -> str:
        """v7: the order of the weights inside a superblock (a function of the kernel shape)."""
        if self.kernel_x == 1 and self.kernel_y == 1:
            return ORDER_POINTWISE
        return ORDER_INTERLEAVED if self.kernel_z > 1 else ORDER_SEQUENTIAL

    # -- v8 ---------------------------------------------------------------------------------------

    @property
    def kernel_channels(self) -> int:
        """v8: input channels one kernel spans: 1 for depthwise."""
        return 1 if self.depthwise else self.kernel_z

    @property
    def kernel_values(self) -> int:
        """v8: values of one kernel."""
        return self.kernel_channels * self.kernel_y * self.kernel_x

    @property
    def block(self) -> int:
        """v8: values of a kernel per block: 9, or the whole kernel for depthwise kernels above 3x3."""
        return max(self.kernel_values, BLOCK) if self.depthwise else BLOCK

    @property
    def block_stride(self) -> int:
        """v8: values a kernel's block takes in the stream: depthwise blocks are padded to a multiple of 9."""
        return -(-self.block // BLOCK) * BLOCK

    @property
    def blocks(self) -> int:
        """v8: blocks per kernel."""
        return -(-self.kernel_values // self.block)

    def kernels_on_core(self, target: Target, core: int) -> int:
        """v8: kernels core ``core`` carries (its stream's count): the channels split as evenly as possible."""
        cores = self.cores_used(target)
        return self.out_channels // cores + (core < self.out_channels % cores)


def check_kernel_fields(geo: KernelGeometry, target: Target, job: str) -> None:
    """The descriptor's kernel fields every coefficient format needs (CoefficientError naming ``job``)."""
    fault = kernel_fields_fault(geo.kernel_x, geo.kernel_y, geo.kernel_z, geo.out_channels,
                                geo.kernels_per_superblock, target.kernel_size_max)
    if fault is not None:
        raise CoefficientError(f"{job}: {fault}")


@dataclass(frozen=True)
class DecodedKernels:
    """What one coefficient buffer holds, by output slot (read-only arrays), in either format.

    ``weights`` is [slots][kernel_channels][kernel_y][kernel_x] raw uint8
    values (the hardware multiplies ``value - coef_zero_point``); ``biases``
    and ``trailers`` the raw 32-bit words per slot.  v7: ``slots`` is
    out_channels rounded up to a multiple of the cores used (rows from
    ``out_channels`` on are the padding kernels the stream carries) and
    ``trailers`` the output plane offsets.  v8: one slot per output channel,
    ``trailers`` None (channel ``o`` goes to output plane ``o``).
    """

    weights: np.ndarray
    biases: np.ndarray
    trailers: np.ndarray | None
    out_channels: int
    cores_used: int
    superblocks: int
    kernels_per_core: int        # of the busiest core
    kernels_per_superblock: int
    header_bytes: int
    core_bytes: tuple[int, ...]  # v7: the size table (every NN core, 0 if unused); v8: padded streams of the cores used
    total_bytes: int
    zrl_bits: int | None = None                # v7: zero-run field width
    ordering: str | None = None                # v7: ORDER_POINTWISE, ORDER_INTERLEAVED or ORDER_SEQUENTIAL
    symbol_map: tuple[int, ...] | None = None  # v8: bit length per code-book symbol
    core_bits: tuple[int, ...] = ()            # v8: each used core's stream length in bits


__all__ = ["KernelGeometry", "DecodedKernels", "check_kernel_fields", "ORDER_INTERLEAVED", "ORDER_POINTWISE",
           "ORDER_SEQUENTIAL"]
