"""A small, calibrated cost model of NN and TP jobs: cycles and DRAM bytes, from what the hardware is given.

Lowering uses it to choose between equivalent programs (the channel-group size
of a depthwise convolution, first-pixel pooling or a TP reshuffle for a stride-2
convolution); ``npuc inspect``/``report`` use it to show where time and
bandwidth go, and the same functions read Mesa's golden descriptors, which is
how the model was calibrated (docs/performance-model.md).  It reads only
descriptors and coefficient sizes, like the hardware.  It is an ESTIMATE: no
cycle of it was measured on an NPU.

* NN job: ``max(compute, DRAM) + per-job overhead`` cycles (the cores stream
  the next tile's data while they compute the current one).

  * compute is the busiest core's cycles: it runs its ``ceil(OC / cores)``
    kernels over every output tile the descriptor asks for (first-pixel
    pooling computes all four pixels of a 2x2 block; an expanded depthwise
    kernel multiplies its zero taps); its ``mads_per_core`` MAD units take 64
    of the tile's output pixels at a time, and each MAD multiplies one 2x3
    patch of a kernel slice per cycle (XYDP6), or ``perf_dp_channels`` input
    channels of a 1x1 kernel;
  * DRAM is the bytes moved at ``perf_dram_bytes_per_cycle``:
    coefficients once when the kernel cache holds them, otherwise again for
    every output tile (a partial cache keeps its share); input tiles with
    their halos once per superblock unless the image cache holds them (a
    native depthwise superblock reads only its own planes);
    outputs once.  What SRAM caching saves is reported beside.

* TP job: ``max(moves of the busiest core, DRAM) + per-job overhead``, every
  element read and written once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Sequence

from .descriptors import (NN_CACHE_FULL, NN_CACHE_NONE, NN_CACHE_PARTIAL, NN_POOLING_FIRST_PIXEL, NN_POOLING_STEP,
                          kernel_z)
from .target import Target


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Cost:
    """Estimated cost of one or more jobs (cycles of the NPU clock, bytes of DRAM traffic)."""

    cycles: int = 0
    coefficient_bytes: int = 0   # DRAM reads of coefficients
    input_bytes: int = 0         # DRAM reads of activations
    output_bytes: int = 0        # DRAM writes
    macs: int = 0                # multiply-accumulates issued (all cores, padding slots included)
    jobs: int = 0
    compute_cycles: int = 0      # busiest core's MAC (NN) or element-move (TP) cycles
    dram_cycles: int = 0         # cycles the DRAM traffic takes at the modelled bandwidth
    overhead_cycles: int = 0     # per-job fixed cost
    sram_saved_bytes: int = 0    # DRAM reads the SRAM caches avoid (coefficient and input re-reads)

    @property
    def dram_bytes(self) -> int:
        return self.coefficient_bytes + self.input_bytes + self.output_bytes

    @property
    def bound(self) -> str:
        """What limits the job: "compute" or "DRAM" (the larger of the two overlapped parts)."""
        return "compute" if self.compute_cycles >= self.dram_cycles else "DRAM"

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in _COST_FIELDS)


_COST_FIELDS = tuple(f.name for f in dataclasses.fields(Cost))


@dataclass(frozen=True)
class NnWork:
    """What the cost model needs of one NN job: its shape, tiling and SRAM caches.

    The scheduler fills it from its decisions; ``npuc inspect`` from a decoded
    descriptor (:meth:`from_descriptor`), so both estimate the same job alike.
    """

    out_x: int                   # convolution output (before first-pixel pooling)
    out_y: int
    out_z: int
    kernel_x: int
    kernel_y: int
    kernel_z: int
    in_x: int
    in_y: int
    depthwise: bool
    pooled: bool                 # first-pixel pooling keeps one pixel of every 2x2 block
    kernels_per_core: int        # per superblock
    tile_x: int
    tile_y: int
    image_cached: bool
    kernel_cache_mode: int       # NN_CACHE_NONE, NN_CACHE_PARTIAL or NN_CACHE_FULL
    kernel_cache_room: int       # bytes of a partial kernel cache

    @classmethod
    def from_descriptor(cls, desc: Mapping[str, int]) -> "NnWork":
        return cls(out_x=desc["out_image_x_size"], out_y=desc["out_image_y_size"], out_z=desc["out_image_z_size"],
                   kernel_x=desc["kernel_xy_size"], kernel_y=desc["kernel_y_size"], kernel_z=kernel_z(desc),
                   in_x=desc["in_image_x_size"], in_y=desc["in_image_y_size"], depthwise=bool(desc.get("depthwise")),
                   pooled=desc["pooling"] == NN_POOLING_FIRST_PIXEL, kernels_per_core=desc["kernels_per_core"],
                   tile_x=desc["out_image_tile_x_size"], tile_y=desc["out_image_tile_y_size"],
                   image_cached=desc.get("image_caching_mode", NN_CACHE_NONE) != NN_CACHE_NONE,
                   kernel_cache_mode=desc.get("kernel_caching_mode", NN_CACHE_NONE),
                   kernel_cache_room=max(desc.get("kernel_cache_end_address", 0)
                                         - desc.get("kernel_cache_start_address", 0), 0))


def kernel_cache_share(work: NnWork, coef_bytes: int) -> float:
    """Share of the coefficients the job keeps in SRAM between output tiles."""
    if work.kernel_cache_mode == NN_CACHE_FULL or coef_bytes == 0:
        return 1.0
    if work.kernel_cache_mode == NN_CACHE_PARTIAL:
        return min(work.kernel_cache_room / coef_bytes, 1.0)
    return 0.0


def dot_steps(kx: int, ky: int, kz: int, target: Target) -> int:
    """Cycles one MAD spends on one output pixel of one kernel.

    Each cycle it multiplies one 2x3 patch of a kernel slice (XYDP6; a 3x3
    slice takes 2 cycles, 9 of 12 products useful) or, for 1x1 kernels, a
    block of ``perf_dp_channels`` input channels.
    """
    if kx == 1 and ky == 1:
        return _ceil(kz, target.perf_dp_channels)
    return kz * _ceil(ky, target.perf_dp_rows) * _ceil(kx, target.perf_dp_columns)


def _tile_passes(out_x: int, out_y: int, tx: int, ty: int, lanes: int) -> int:
    """Passes of ``lanes`` output pixels over all tiles (the last row and column of tiles may be smaller)."""
    full_x, rest_x = divmod(out_x, tx)
    full_y, rest_y = divmod(out_y, ty)
    passes = 0
    for w, nw in ((tx, full_x), (rest_x, 1 if rest_x else 0)):
        for h, nh in ((ty, full_y), (rest_y, 1 if rest_y else 0)):
            passes += nw * nh * _ceil(w * h, lanes)
    return passes


def estimate_nn_descriptor(desc: Mapping[str, int], coef_bytes: int, target: Target) -> Cost:
    """Cycles and DRAM bytes of the NN job descriptor ``desc`` whose coefficient buffer has ``coef_bytes`` bytes."""
    return estimate_nn_job(NnWork.from_descriptor(desc), coef_bytes, target)


def estimate_nn_job(work: NnWork, coef_bytes: int, target: Target) -> Cost:
    """Cycles and DRAM bytes of the NN job ``work`` whose coefficient buffer has ``coef_bytes`` bytes."""
    out_x, out_y, oc = work.out_x, work.out_y, work.out_z
    kx, ky, kz = work.kernel_x, work.kernel_y, work.kernel_z
    # A native depthwise job (cores that have the mode) multiplies each kernel with its own plane only.
    kz_used = 1 if work.depthwise else kz
    step = NN_POOLING_STEP if work.pooled else 1
    cores = max(min(oc, target.nn_cores), 1)
    per_core = _ceil(oc, cores)
    superblocks = _ceil(per_core, max(work.kernels_per_core, 1))
    tx, ty = max(work.tile_x, 1), max(work.tile_y, 1)
    nx, ny = _ceil(out_x, tx), _ceil(out_y, ty)
    # Input: each tile reads its pixels plus the kernel's halo (never more than the image).
    cols = min(out_x + nx * (kx - 1), nx * work.in_x)
    rows = min(out_y + ny * (ky - 1), ny * work.in_y)
    one_pass = cols * rows * kz
    # A native depthwise superblock reads only its own kernels' planes: one pass over the image in all.
    input_bytes = one_pass if work.image_cached or work.depthwise else one_pass * superblocks
    uncached_coefficients = coef_bytes * nx * ny
    rereads = (nx * ny - 1) * (1.0 - kernel_cache_share(work, coef_bytes))
    coefficient_bytes = int(round(coef_bytes * (1 + rereads)))
    output_bytes = (out_x // step) * (out_y // step) * oc
    saved = (uncached_coefficients - coefficient_bytes) + (one_pass * superblocks - input_bytes)

    passes = _tile_passes(out_x, out_y, tx, ty, target.mads_per_core)
    compute = passes * per_core * dot_steps(kx, ky, kz_used, target)
    dram = (coefficient_bytes + input_bytes + output_bytes) / target.perf_dram_bytes_per_cycle
    overhead = target.perf_nn_job_cycles
    return Cost(cycles=int(max(compute, dram)) + overhead, coefficient_bytes=coefficient_bytes,
                input_bytes=input_bytes, output_bytes=output_bytes,
                macs=out_x * out_y * per_core * cores * kz_used * kx * ky, jobs=1, compute_cycles=int(compute),
                dram_cycles=int(dram), overhead_cycles=overhead, sram_saved_bytes=saved)


def tp_moves(desc: Mapping[str, int]) -> int:
    """Elements one TP core moves: its input window times its planes (with over-fetched planes)."""
    width = desc.get("in_window_x_end", 0) - desc.get("in_window_x_start", 0) + 1
    height = desc.get("in_window_y_end", 0) - desc.get("in_window_y_start", 0) + 1
    planes = (desc.get("in_image_z_size", 0) + desc.get("in_window_z_start_overfetch", 0)
              + desc.get("in_window_z_end_overfetch", 0))
    return max(width, 0) * max(height, 0) * planes


def estimate_tp_descriptors(descs: Sequence[Mapping[str, int]], target: Target) -> Cost:
    """Cycles and DRAM bytes of a TP job given its per-core descriptors."""
    return estimate_tp_moves([tp_moves(d) for d in descs], target)


def estimate_tp_moves(moves: list[int], target: Target) -> Cost:
    """Cost of a TP job whose cores move ``moves[i]`` elements each (before the job is built)."""
    total = sum(moves)
    compute = max(moves, default=0) / target.perf_tp_bytes_per_core_cycle
    dram = 2 * total / target.perf_dram_bytes_per_cycle
    overhead = target.perf_tp_job_cycles
    return Cost(cycles=int(max(compute, dram)) + overhead, input_bytes=total, output_bytes=total, jobs=1,
                compute_cycles=int(compute), dram_cycles=int(dram), overhead_cycles=overhead)


def seconds(cycles: int, target: Target) -> float:
    """NPU cycles as seconds at the target's clock."""
    return cycles / target.clock_hz
