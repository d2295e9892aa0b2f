"""A small cost model of NN and TP jobs: cycles and DRAM bytes, from what the hardware is given.

Lowering uses it to choose between equivalent programs (the channel-group size
of a depthwise convolution, first-pixel pooling or a TP reshuffle for a stride-2
convolution); reports use it to show where time and bandwidth go.  It reads
only descriptors and coefficient sizes, like the hardware.  All rates are
``Target.perf_*`` fields, which are estimates to be calibrated against measured
latencies later; the structure is:

* NN job: ``max(compute, DRAM) + per-job overhead`` cycles, where compute is
  the MACs of the busiest core (every slot's kernel is multiplied densely over
  the whole output the descriptor asks for, so first-pixel pooling costs its 4x
  and expanded depthwise kernels their zero taps) and DRAM is
  * coefficients: read once when the kernel cache holds them, otherwise again
    for every output tile (a partial cache keeps its share);
  * input: every tile reads its pixels plus the kernel's halo, once per
    superblock unless the image cache holds the tile;
  * output: written once.
* TP job: ``max(moves of the busiest core, DRAM) + per-job overhead``, every
  element read and written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .descriptors import NN_CACHE_FULL, NN_CACHE_NONE, NN_CACHE_PARTIAL, NN_POOLING_FIRST_PIXEL
from .jobs import TPJob
from .target import Target

#: With first-pixel pooling the job keeps one pixel of every 2x2 block of its output.
_POOLED_STEP = 2


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Cost:
    """Estimated cost of one or more jobs."""

    cycles: int = 0
    coefficient_bytes: int = 0   # DRAM reads of coefficients
    input_bytes: int = 0         # DRAM reads of activations
    output_bytes: int = 0        # DRAM writes
    macs: int = 0                # multiply-accumulates issued (all cores)
    jobs: int = 0

    @property
    def dram_bytes(self) -> int:
        return self.coefficient_bytes + self.input_bytes + self.output_bytes

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple[int, ...]:
        return (self.cycles, self.coefficient_bytes, self.input_bytes, self.output_bytes, self.macs, self.jobs)


def kernel_cache_share(desc: Mapping[str, int], coef_bytes: int) -> float:
    """Share of the coefficients the job keeps in SRAM between output tiles."""
    mode = desc.get("kernel_caching_mode", NN_CACHE_NONE)
    if mode == NN_CACHE_FULL or coef_bytes == 0:
        return 1.0
    if mode == NN_CACHE_PARTIAL:
        room = max(desc["kernel_cache_end_address"] - desc["kernel_cache_start_address"], 0)
        return min(room / coef_bytes, 1.0)
    return 0.0


def estimate_nn_job(desc: Mapping[str, int], coef_bytes: int, target: Target) -> Cost:
    """Cycles and DRAM bytes of the NN job ``desc`` whose coefficient buffer has ``coef_bytes`` bytes."""
    out_x, out_y, oc = desc["out_image_x_size"], desc["out_image_y_size"], desc["out_image_z_size"]
    kx, ky, kz = desc["kernel_xy_size"], desc["kernel_y_size"], desc["kernel_z_size"]
    step = _POOLED_STEP if desc["pooling"] == NN_POOLING_FIRST_PIXEL else 1
    cores = min(oc, target.nn_cores)
    per_core = _ceil(oc, cores)
    superblocks = _ceil(per_core, desc["kernels_per_core"])
    tx, ty = desc["out_image_tile_x_size"], desc["out_image_tile_y_size"]
    nx, ny = _ceil(out_x, tx), _ceil(out_y, ty)
    cols = min(out_x + nx * (kx - 1), nx * desc["in_image_x_size"])
    rows = min(out_y + ny * (ky - 1), ny * desc["in_image_y_size"])
    one_pass = cols * rows * kz
    input_bytes = one_pass if desc.get("image_caching_mode", NN_CACHE_NONE) != NN_CACHE_NONE else one_pass * superblocks
    rereads = (nx * ny - 1) * (1.0 - kernel_cache_share(desc, coef_bytes))
    coefficient_bytes = int(round(coef_bytes * (1 + rereads)))
    output_bytes = (out_x // step) * (out_y // step) * oc
    core_macs = out_x * out_y * per_core * kz * kx * ky
    compute = _ceil(core_macs, target.perf_nn_macs_per_core_cycle)
    dram = (coefficient_bytes + input_bytes + output_bytes) / target.perf_dram_bytes_per_cycle
    return Cost(cycles=int(max(compute, dram)) + target.perf_nn_job_cycles, coefficient_bytes=coefficient_bytes,
                input_bytes=input_bytes, output_bytes=output_bytes, macs=core_macs * cores, jobs=1)


def estimate_tp_job(job: TPJob, target: Target) -> Cost:
    """Cycles and DRAM bytes of a TP job (all its cores)."""
    moves = []
    for core in job.cores:
        d = core.desc
        width = d.get("in_window_x_end", 0) - d.get("in_window_x_start", 0) + 1
        height = d.get("in_window_y_end", 0) - d.get("in_window_y_start", 0) + 1
        planes = (d.get("in_image_z_size", 0) + d.get("in_window_z_start_overfetch", 0)
                  + d.get("in_window_z_end_overfetch", 0))
        moves.append(max(width, 0) * max(height, 0) * planes)
    return estimate_tp_moves(moves, target)


def estimate_tp_moves(moves: list[int], target: Target) -> Cost:
    """Cost of a TP job whose cores move ``moves[i]`` elements each (before the job is built)."""
    total = sum(moves)
    compute = max(moves, default=0) / target.perf_tp_bytes_per_core_cycle
    dram = 2 * total / target.perf_dram_bytes_per_cycle
    return Cost(cycles=int(max(compute, dram)) + target.perf_tp_job_cycles, input_bytes=total,
                output_bytes=total, jobs=1)
