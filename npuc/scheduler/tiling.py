"""Tiling, superblocks and SRAM caching of one NN job (vipnano-nn.md 5.1-5.4).

An NN core computes an output tile of ``tile_x`` x ``tile_y`` pixels for a set
of kernels whose partial sums fit its accumulation buffer; the output channels
are split over the NN cores, and each core's share is cut into
``superblocks`` rounds of ``kernels_per_core`` kernels.  The input rows of a
tile (``tile_y`` plus the kernel's halo) must fit the input buffer
(``input_buffer_depth`` rows per interleave step).  The rules are Mesa's, one
per NN core generation (``Target.tiling_rule``; its constants are in hw/target.py), whose descriptors were
validated on hardware, written in the hardware's frame (x = the contiguous
axis): Mesa derives the tile width from TFLite's H and the halo from the
kernel's W, which is the same thing for the square maps and kernels it runs.
v8's rule differs in the interleave mode of narrow tiles, caps the tile
height at 4 (Mesa's choice for speed on MobileDet, not a hardware limit) and
sizes superblocks by 64-pixel bursts of the tile.

SRAM: the coefficients are kept in on-chip SRAM ("kernel cache") so that every
tile after the first reads them from SRAM instead of DRAM; when the job has
more than one superblock, every superblock re-reads the input tile, so the
tile (all input channels, with its halo) is cached too.  Regions, partial
patterns and alignments are Mesa's (descriptors.NN_PARTIAL_CACHE_PATTERNS,
Target fields).  On targets without SRAM caching (v8) Mesa still fills the
cache regions and only turns both modes off; npuc writes the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hw.descriptors import (NN_CACHE_FULL, NN_CACHE_NONE, NN_CACHE_PARTIAL, NN_DESCRIPTOR,
                              NN_PARTIAL_CACHE_PATTERNS)
from ..hw.target import (POINTWISE_ACCUM_DIVISOR, TILING_V7, TILING_V8, V8_ACCUM_SHARE, V8_TILE_BURST, V8_TILE_Y_MAX,
                         Target)



def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _align(n: int, a: int) -> int:
    return _ceil(n, a) * a


@dataclass(frozen=True)
class Tiling:
    """How one NN job's output is cut into tiles and kernel rounds."""

    tile_x: int
    tile_y: int
    interleave: int
    superblocks: int
    kernels_per_core: int   # per superblock: the descriptor's kernels_per_core


def interleave_mode(tile_x: int, kernel_y: int, target: Target) -> int:
    """Mesa's interleave mode: 1, 2 or 4 input-buffer rows per output row group (its v7 or v8 rule)."""
    half, quarter = target.max_tile_x // 2, target.max_tile_x // 4
    span = kernel_y - 1 + tile_x
    if span > (target.max_tile_x + 8) // 2 or tile_x > half:
        return 1
    if target.tiling_rule == TILING_V8:
        return 2 if tile_x > quarter or span > (target.max_tile_x + 8) // 4 else 4
    if span > (target.max_tile_x + 8) // 4:
        return 2 if tile_x > quarter else 4
    return 2


def plan_tiling(out_x: int, out_y: int, kernel_x: int, kernel_y: int, out_channels: int, strided: bool,
                target: Target) -> Tiling:
    """Tile and superblocks of a job with a (pre-pooling) output of out_x x out_y x out_channels.

    ``strided``: the convolution has stride 2.  With first-pixel pooling a
    tile must then have an even height (a 2x2 block cannot straddle tiles);
    Mesa also evens it for stride-2 convolutions it rewrote with a reshuffle,
    which npuc keeps so that its descriptors stay the validated ones.
    """
    if target.tiling_rule not in (TILING_V7, TILING_V8):
        raise ValueError(f"target {target.name}: unknown tiling rule {target.tiling_rule!r}")
    v8 = target.tiling_rule == TILING_V8
    tile_x = min(out_x, target.max_tile_x)
    mode = interleave_mode(tile_x, kernel_y, target)
    tile_y = target.input_buffer_depth * mode - kernel_y + 1
    tile_y = min(tile_y, mode * target.accum_buffer_depth, out_y)
    if v8:
        tile_y = min(tile_y, V8_TILE_Y_MAX)
    if strided and tile_y % 2:
        tile_y -= 1
    tile_y = max(tile_y, 1)

    per_core = _ceil(out_channels, target.nn_cores)
    abd = target.accum_buffer_depth
    if not v8:
        fit = abd * mode // tile_y
        if kernel_x == 1:
            fit = min(fit, abd // POINTWISE_ACCUM_DIVISOR)
    else:
        stride = 2 if strided else 1
        if kernel_x == 1:
            fit = abd // _ceil(tile_y, mode)
        else:
            fit = abd // (_ceil(_ceil(tile_y * tile_x, stride), V8_TILE_BURST) * stride)
        fit = min(fit, abd * V8_ACCUM_SHARE[0] // V8_ACCUM_SHARE[1])
    fit = max(min(fit, per_core, NN_DESCRIPTOR["kernels_per_core"].mask), 1)
    rounds = _ceil(out_channels, target.nn_cores * fit)
    kernels = _ceil(out_channels, rounds * target.nn_cores)
    superblocks = _ceil(per_core, kernels)
    return Tiling(tile_x, tile_y, mode, superblocks, _ceil(per_core, superblocks))


def image_cache_bytes(tiling: Tiling, kernel_x: int, kernel_y: int, in_channels: int, target: Target) -> int:
    """SRAM for one input tile with its halo over all input channels (0 when one superblock reads it once)."""
    if tiling.superblocks == 1:
        return 0
    tile = (tiling.tile_x + kernel_x - 1) * (tiling.tile_y + kernel_y - 1)
    return _align(_align(tile, target.image_cache_tile_align) * in_channels, target.sram_cache_align)


@dataclass(frozen=True)
class SramPlan:
    """Where a job keeps its coefficients and its input tile in on-chip SRAM (byte addresses).

    Modes are the descriptor's cache modes (NN_CACHE_NONE, _PARTIAL, _FULL);
    ``kernel_pattern`` the (msb, low, high) of a partial kernel cache.
    """

    kernel_mode: int
    kernel_pattern: tuple[int, int, int]
    kernel_start: int
    kernel_end: int
    image_mode: int
    image_start: int
    image_end: int

    @property
    def kernel_room(self) -> int:
        """Bytes of coefficients the kernel cache holds."""
        return max(self.kernel_end - self.kernel_start, 0)


def plan_sram(tiling: Tiling, kernel_x: int, kernel_y: int, in_channels: int, out_channels: int,
              coef_cache_bytes: int, target: Target) -> SramPlan:
    """The job's SRAM caches.

    ``coef_cache_bytes`` is what the kernel cache must hold (the coefficient
    plan's ``cache_bytes``).  Without SRAM caching on the target both modes
    are off and the regions are what Mesa writes with them.
    """
    start = target.sram_reserved_bytes
    sram = target.sram_bytes
    image = image_cache_bytes(tiling, kernel_x, kernel_y, in_channels, target)
    if start + coef_cache_bytes + image < sram:
        kernel_mode, pattern = NN_CACHE_FULL, (0, 0, 0)
        kernel_end = max(min(_align(start + coef_cache_bytes, target.sram_cache_align), sram),
                         target.kernel_cache_min_end)
    else:
        _, msb, low, high = next(p for p in NN_PARTIAL_CACHE_PATTERNS if out_channels >= p[0])
        kernel_mode, pattern = NN_CACHE_PARTIAL, (msb, low, high)
        if start + coef_cache_bytes >= sram:
            kernel_end, image = sram, 0
        elif image > sram:
            kernel_end, image = 0, 0
        else:
            kernel_end = sram - image
    if image == 0:
        image_mode, image_start, image_end = NN_CACHE_NONE, 0, start
    elif image >= start:
        image_mode, image_start, image_end = NN_CACHE_FULL, kernel_end, min(kernel_end + image, sram)
    else:
        image_mode, image_start, image_end = NN_CACHE_FULL, 0, start
    if not target.sram_caching:
        kernel_mode, image_mode = NN_CACHE_NONE, NN_CACHE_NONE
    return SramPlan(kernel_mode, pattern, start, kernel_end, image_mode, image_start, image_end)
