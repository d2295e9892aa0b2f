"""The v7 NN cores' coefficient buffers (zero-run-length format), both directions.

Source: ../shared/docs/vipnano-nn.md section 4.1 and Mesa's v7 writer
(``etnaviv_ml_nn_v7.c``, facts only), checked byte for byte against Mesa's
golden submits.  A coefficient buffer is a per-core size table followed by one
bit stream per NN core.  Each stream is a 24-bit header (zero-run width,
kernels on this core) and then (run, value) pairs, each standing for ``run``
copies of the coefficient zero point followed by ``value``; two 32-bit words
per kernel interrupt the pairs at fixed points: the bias word right after the
kernel's first weight and the trailer word (the byte offset of the kernel's
output plane) right after its last.  Everything is packed LSB first into
little-endian 32-bit words.

The hardware has only the descriptor and the buffer, so the decoder derives the
whole stream structure from the descriptor fields alone (:class:`KernelGeometry`):

* cores used ``min(out_image_z_size, nn_cores)``; every core carries
  ``ceil(out_image_z_size / cores_used)`` kernels (its stream header repeats
  that count); the descriptor's ``kernels_per_core`` is the number of kernels
  per core in one superblock, so there are ``ceil(K / kernels_per_core)``
  superblocks and the last holds the rest.  Kernel ``k`` of superblock ``s`` on
  core ``c`` computes output slot ``c * kis + k + s * kernels_per_core *
  cores_used`` (``kis`` = kernels in that superblock).  Slots at or past
  ``out_image_z_size`` exist when the channels do not split evenly over the
  cores; they are carried like any other kernel.
* the order of the weights inside a superblock ("ordering") is a function of
  the kernel shape: a 1x1 kernel is read in blocks of 6 input channels
  ("pointwise-6"), any other kernel with more than one input channel one input
  channel at a time for all kernels of the superblock ("interleaved"), and a
  single-channel kernel kernel by kernel ("sequential").  Inside a kernel slice
  the rows are taken in pairs, and of each pair first the columns 0..2 of both
  rows and then the remaining columns of both rows (a 2x3 dot-product patch);
  the sequential order takes full rows instead unless the input is wider than
  one tile (``in_image_x_size > max_tile_x``).

docs/simulator.md explains how this rule relates to Mesa's three writers.  The
encoder writes exactly what the decoder reads; with ``mesa_flushes`` it also
cuts zero runs where Mesa's writer does, so that re-encoding a decoded golden
buffer reproduces it bit for bit (npuc's own jobs leave the extra cuts out).  Both directions are vectorised with numpy: MobileNet's 5.7 MB of
coefficients decode in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from ..errors import SimError
from .decode_cache import DecodeCache, as_bytes
from ..hw.descriptors import kernel_z
from ..hw.coef_v7 import (ORDER_INTERLEAVED, ORDER_POINTWISE, ORDER_SEQUENTIAL, PATCH_COLUMNS, PATCH_ROWS,
                          POINTWISE_Z_BLOCK, STREAM_HEADER, STREAM_HEADER_BITS, VALUE_BITS, WORD_BITS, core_size_table)
from ..hw.target import Target

#: Most weights one decode may produce (all cores).  MobileNet's largest layer
#: (a 1024-channel depthwise convolution expanded to dense) has 9.4 M; a
#: descriptor asking for far more is refused instead of exhausting the host.
MAX_DECODED_WEIGHTS = 1 << 25

#: Decoded buffers kept (keyed by a hash of the bytes and the descriptor fields used).
DECODE_CACHE_ENTRIES = 256


@dataclass(frozen=True)
class KernelGeometry:
    """The descriptor fields that define a coefficient stream's structure."""

    kernel_x: int
    kernel_y: int
    kernel_z: int
    out_channels: int
    kernels_per_superblock: int  # the descriptor's kernels_per_core
    in_image_x_size: int
    zero_point: int              # coef_zero_point: the value zero runs stand for

    @classmethod
    def from_descriptor(cls, desc: Mapping[str, int]) -> "KernelGeometry":
        return cls(kernel_x=desc["kernel_xy_size"], kernel_y=desc["kernel_y_size"], kernel_z=kernel_z(desc),
                   out_channels=desc["out_image_z_size"], kernels_per_superblock=desc["kernels_per_core"],
                   in_image_x_size=desc["in_image_x_size"], zero_point=desc["coef_zero_point"])

    def cores_used(self, target: Target) -> int:
        return min(self.out_channels, target.nn_cores)

    def kernels_per_core(self, target: Target) -> int:
        return -(-self.out_channels // self.cores_used(target))

    def superblocks(self, target: Target) -> int:
        return -(-self.kernels_per_core(target) // self.kernels_per_superblock)

    def slots(self, target: Target) -> int:
        """Kernels in the buffer: out_channels rounded up to a multiple of the cores used."""
        return self.cores_used(target) * self.kernels_per_core(target)

    def ordering(self) -> str:
        if self.kernel_x == 1 and self.kernel_y == 1:
            return ORDER_POINTWISE
        return ORDER_INTERLEAVED if self.kernel_z > 1 else ORDER_SEQUENTIAL

    def check(self, target: Target, job: str) -> None:
        """Refuse shapes the format (or the simulator's memory) cannot hold."""
        check_kernel_fields(self, target, job)
        weights = self.slots(target) * self.kernel_z * self.kernel_x * self.kernel_y
        if weights > MAX_DECODED_WEIGHTS:
            raise SimError(f"{job}: {weights} coefficients exceed the simulator's limit of {MAX_DECODED_WEIGHTS}")


def check_kernel_fields(geo: "KernelGeometry | Any", target: Target, job: str) -> None:
    """The descriptor's kernel fields every coefficient format needs: sizes within the target's kernel
    limit, at least one input channel, output channel and kernel per superblock (SimError naming ``job``)."""
    for name, value in (("kernel_xy_size", geo.kernel_x), ("kernel_y_size", geo.kernel_y)):
        if not 1 <= value <= target.kernel_size_max:
            raise SimError(f"{job}: {name} {value} outside 1..{target.kernel_size_max}")
    for name, value in (("kernel_z_size", geo.kernel_z), ("out_image_z_size", geo.out_channels),
                        ("kernels_per_core", geo.kernels_per_superblock)):
        if value < 1:
            raise SimError(f"{job}: {name} is 0")


@dataclass(frozen=True)
class _StreamPlan:
    """Where every weight and word of one core's stream goes (identical for all cores)."""

    weight_index: np.ndarray  # stream weight t -> flat index into the core's [K][Z][KY][KX]
    word_after: np.ndarray    # weights preceding each word, in stream order
    word_kernel: np.ndarray   # core-local kernel (s * kernels_per_superblock + k) of each word
    word_is_trailer: np.ndarray
    flush_after: np.ndarray   # further weight counts after which Mesa's writer flushes zero runs
    slot: np.ndarray          # [core][core-local kernel] -> output slot


def _patch_order(rows: int, cols: int, split: bool) -> np.ndarray:
    """Flat (row * cols + col) indices of one kernel slice in stream order."""
    order = []
    for top in range(0, rows, PATCH_ROWS):
        pair = range(top, min(top + PATCH_ROWS, rows))
        if split:
            order += [r * cols + c for r in pair for c in range(min(cols, PATCH_COLUMNS))]
            order += [r * cols + c for r in pair for c in range(PATCH_COLUMNS, cols)]
        else:
            order += [r * cols + c for r in pair for c in range(cols)]
    return np.array(order, dtype=np.int64)


def _plan(geo: KernelGeometry, target: Target) -> _StreamPlan:
    """The stream structure of ``geo`` (cached; the zero point and, unless it selects the
    sequential row split, the input width do not change it)."""
    split = geo.ordering() != ORDER_SEQUENTIAL or geo.in_image_x_size > target.max_tile_x
    return _cached_plan(replace(geo, zero_point=0, in_image_x_size=0), target, split)


@lru_cache(maxsize=128)
def _cached_plan(geo: KernelGeometry, target: Target, split: bool) -> _StreamPlan:
    ordering = geo.ordering()
    cores, kpc, sb_size = geo.cores_used(target), geo.kernels_per_core(target), geo.kernels_per_superblock
    z, area = geo.kernel_z, geo.kernel_x * geo.kernel_y
    patch = _patch_order(geo.kernel_y, geo.kernel_x, split)
    pieces, words, flushes, slot = [], [], [], np.empty((cores, kpc), dtype=np.int64)
    done = 0
    superblocks = geo.superblocks(target)
    for s in range(superblocks):
        first = s * sb_size
        kis = min(sb_size, kpc - first)
        kernels = np.arange(first, first + kis)
        slot[:, first:first + kis] = (np.arange(cores)[:, None] * kis + np.arange(kis)[None, :]
                                      + s * sb_size * cores)
        if ordering == ORDER_POINTWISE:
            # Blocks of input channels; for each block every kernel emits its channels of the block.
            zs = np.arange(z)
            blk = zs // POINTWISE_Z_BLOCK
            nblocks = int(blk[-1]) + 1
            for b in range(nblocks):
                chans = zs[blk == b]
                idx = (kernels[:, None] * z + chans[None, :])  # [kernel][channel]
                pieces.append(idx.ravel())
                per = chans.size
                starts = done + np.arange(kis) * per
                if b == 0:
                    words += [(int(a) + 1, int(k), False) for a, k in zip(starts, kernels)]
                if b == nblocks - 1:
                    words += [(int(a) + per, int(k), True) for a, k in zip(starts, kernels)]
                done += kis * per
        else:
            # For each input channel, every kernel of the superblock emits its slice in patch order.
            idx = ((kernels[None, :, None] * z + np.arange(z)[:, None, None]) * area
                   + patch[None, None, :])  # [z][kernel][patch]
            pieces.append(idx.ravel())
            starts = done + np.arange(kis) * area
            words += [(int(a) + 1, int(k), False) for a, k in zip(starts, kernels)]
            last = done + (z - 1) * kis * area + np.arange(kis) * area + area
            words += [(int(a), int(k), True) for a, k in zip(last, kernels)]
            if s == superblocks - 1 and ordering == ORDER_INTERLEAVED:
                flushes += [done + (zz + 1) * kis * area for zz in range(z)]
            done += z * kis * area
    words.sort(key=lambda w: (w[0], w[2]))
    return _StreamPlan(
        weight_index=np.concatenate(pieces),
        word_after=np.array([w[0] for w in words], dtype=np.int64),
        word_kernel=np.array([w[1] for w in words], dtype=np.int64),
        word_is_trailer=np.array([w[2] for w in words], dtype=bool),
        flush_after=np.array(sorted(set(flushes)), dtype=np.int64),
        slot=slot)


@dataclass(frozen=True)
class DecodedKernels:
    """What one coefficient buffer holds, by output slot (read-only arrays).

    ``weights`` is [slots][kernel_z][kernel_y][kernel_x] raw uint8 values (the
    hardware multiplies ``value - coef_zero_point``); ``biases`` and
    ``trailers`` are the raw 32-bit words.  ``slots`` is out_channels rounded up
    to a multiple of the cores used; rows from ``out_channels`` on are the
    padding kernels the stream carries.
    """

    weights: np.ndarray
    biases: np.ndarray
    trailers: np.ndarray
    out_channels: int
    zrl_bits: int
    ordering: str
    superblocks: int
    kernels_per_core: int
    kernels_per_superblock: int
    cores_used: int
    header_bytes: int
    core_bytes: tuple[int, ...]  # per NN core, from the size table (0 for unused cores)

    @property
    def total_bytes(self) -> int:
        return self.header_bytes + sum(self.core_bytes)


def buffer_size(header: bytes | np.ndarray, target: Target, job: str = "coefficients") -> int:
    """Bytes of a coefficient buffer (size table + streams), read from its size table."""
    table = core_size_table(target)
    data = as_bytes(header)
    if len(data) < table.size:
        raise SimError(f"{job}: coefficient buffer of {len(data)} bytes is shorter than its size table")
    sizes = table.unpack(data)
    return table.size + sum(sizes[f"core{c}_bytes"] for c in range(target.nn_cores))


_CACHE = DecodeCache(DECODE_CACHE_ENTRIES)


def decode_coefficients_v7(buf: bytes | np.ndarray, desc: Mapping[str, int], target: Target,
                           job: str = "coefficients") -> DecodedKernels:
    """Decode a v7 coefficient buffer as the NN job described by ``desc`` reads it.

    Raises SimError (naming ``job``) for anything the hardware could not read:
    size tables that disagree with the descriptor, zero runs that cross a bias
    or trailer word, streams that end early, kernel counts that differ from the
    descriptor's output channels.  Results are cached by the hash of the used
    bytes plus the descriptor fields that shape the stream.
    """
    geo = KernelGeometry.from_descriptor(desc)
    geo.check(target, job)
    data = np.frombuffer(as_bytes(buf), dtype=np.uint8)
    total = buffer_size(data, target, job)
    if total > data.size:
        raise SimError(f"{job}: size table announces {total} bytes, the buffer holds {data.size}")
    used = data[:total]
    return _CACHE.get_or_decode(used, (geo, target), lambda: _decode(used, geo, target, job))


def _core_layout(data: np.ndarray, geo: KernelGeometry, target: Target, job: str) -> tuple[int, ...]:
    table = core_size_table(target)
    row = table.unpack(data[:table.size].tobytes())
    sizes = tuple(row[f"core{c}_bytes"] for c in range(target.nn_cores))
    cores = geo.cores_used(target)
    for c, size in enumerate(sizes):
        if c < cores and (size == 0 or size % target.coef_align):
            raise SimError(f"{job}: core {c} stream size {size} is not a positive multiple of {target.coef_align}")
        if c >= cores and size:
            raise SimError(f"{job}: core {c} has a {size}-byte stream but only {cores} cores serve "
                           f"{geo.out_channels} output channels")
    return sizes


def _read_bits(words: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """The ``width``-bit fields (width <= 32) starting at bit positions ``pos`` (LSB first)."""
    w = pos >> 5
    pair = words[w].astype(np.uint64) | (words[w + 1].astype(np.uint64) << np.uint64(32))
    return (pair >> (pos & 31).astype(np.uint64)) & np.uint64((1 << width) - 1)


def _bit_fields(words: np.ndarray, lo: int, hi: int, width: int) -> np.ndarray:
    """The ``width``-bit field starting at every bit position in [lo, hi), as uint8 (width <= 8)."""
    raw = words.view(np.uint8)[lo >> 3:(hi + width + 7 >> 3) + 1]
    bits = np.unpackbits(raw, bitorder="little")[lo & 7:]
    out = bits[:hi - lo].copy()
    for i in range(1, width):
        out |= bits[i:hi - lo + i] << i
    return out


def _decode(data: np.ndarray, geo: KernelGeometry, target: Target, job: str) -> DecodedKernels:
    sizes = _core_layout(data, geo, target, job)
    cores, kpc = geo.cores_used(target), geo.kernels_per_core(target)
    header_bytes = core_size_table(target).size
    starts = header_bytes + np.concatenate(([0], np.cumsum(sizes[:cores])[:-1])).astype(np.int64)
    ends = starts + np.array(sizes[:cores], dtype=np.int64)
    words = np.concatenate((data.view("<u4"), np.zeros(2, np.uint32)))  # sizes are coef_align multiples
    heads = [STREAM_HEADER.unpack_words([int(words[s // 4])]) for s in starts]
    zrl = heads[0]["zrl_bits"]
    for c, h in enumerate(heads):
        if h["zrl_bits"] != zrl:
            raise SimError(f"{job}: core {c} uses {h['zrl_bits']} zero-run bits, core 0 uses {zrl}")
        if h["kernels_per_core"] != kpc:
            raise SimError(f"{job}: core {c} stream carries {h['kernels_per_core']} kernels, the descriptor's "
                           f"{geo.out_channels} output channels need {kpc} per core")
    if zrl > target.zrl_bits_max:
        raise SimError(f"{job}: zero-run width {zrl} exceeds the core's {target.zrl_bits_max} bits")
    plan = _plan(geo, target)
    per_core = plan.weight_index.size
    pair_bits = zrl + VALUE_BITS
    # Cheapest possible encoding must fit, or the stream is short (checked before any big allocation).
    min_bits = (STREAM_HEADER_BITS + plan.word_after.size * WORD_BITS
                + -(-per_core // (1 << zrl)) * pair_bits)
    if min_bits > int((ends - starts).min()) * 8:
        raise SimError(f"{job}: {per_core} weights per core cannot fit a {int((ends - starts).min())}-byte stream")
    seg_start, seg_pairs, word_pos = _walk(words, starts * 8 + STREAM_HEADER_BITS, ends * 8, plan, zrl, job)

    # Pair positions, core-major; each value lands at the end of its pair's run of zero points.
    counts = seg_pairs.T.ravel()
    first = seg_start.T.ravel()
    total_pairs = int(counts.sum())
    within = np.arange(total_pairs, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    pos = np.repeat(first, counts) + within * pair_bits
    if zrl:
        at = np.cumsum(_read_bits(words, pos, zrl).astype(np.int64) + 1) - 1
        values = _read_bits(words, pos + zrl, VALUE_BITS).astype(np.uint8)
    else:  # every field is byte aligned and every pair is one weight
        at = np.arange(total_pairs, dtype=np.int64)
        values = data[pos >> 3]
    slots = geo.slots(target)
    shape = (geo.kernel_z, geo.kernel_y, geo.kernel_x)
    area = int(np.prod(shape))
    local = plan.weight_index[at % per_core]
    dest = plan.slot.ravel()[(at // per_core) * kpc + local // area] * area + local % area
    weights = np.full(slots * area, geo.zero_point, dtype=np.uint8)
    weights[dest] = values
    weights = weights.reshape((slots,) + shape)
    word_values = _read_bits(words, word_pos, WORD_BITS).astype(np.uint32)  # [word][core]
    biases = np.empty(slots, dtype=np.uint32)
    trailers = np.empty(slots, dtype=np.uint32)
    for target_array, pick in ((biases, ~plan.word_is_trailer), (trailers, plan.word_is_trailer)):
        target_array[plan.slot[:, plan.word_kernel[pick]].T.ravel()] = word_values[pick].ravel()
    for a in (weights, biases, trailers):
        a.flags.writeable = False
    return DecodedKernels(weights=weights, biases=biases, trailers=trailers, out_channels=geo.out_channels,
                          zrl_bits=zrl, ordering=geo.ordering(), superblocks=geo.superblocks(target),
                          kernels_per_core=kpc, kernels_per_superblock=geo.kernels_per_superblock,
                          cores_used=cores, header_bytes=header_bytes, core_bytes=sizes)


def _walk(words: np.ndarray, cur: np.ndarray, end: np.ndarray, plan: _StreamPlan, zrl: int,
          job: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Follow all cores' streams in lockstep from word to word.

    Every core has the same structure, so the n-th segment of pairs (between two
    words) holds the same number of weights on every core; its number of pairs
    is where the running weight count of the pair chain reaches that number.
    For zero-run streams the chains of every bit phase are prefix-summed once
    so that each segment costs one ``searchsorted`` for all cores.
    """
    pair_bits = zrl + VALUE_BITS
    nwords = plan.word_after.size
    cores = cur.size
    seg_start = np.zeros((nwords, cores), np.int64)
    seg_pairs = np.zeros((nwords, cores), np.int64)
    word_pos = np.zeros((nwords, cores), np.int64)
    if zrl:
        lo, hi = int(cur.min()), int(end.max())
        rows = -(-(hi - lo) // pair_bits)
        cnt = np.ones(rows * pair_bits, np.uint8)
        cnt[:hi - lo] += _bit_fields(words, lo, hi, zrl)
        phases = np.ascontiguousarray(cnt.reshape(rows, pair_bits).T)  # [phase][chain step]
        chains = np.cumsum(phases, axis=1, dtype=np.int64)
        chains += (np.arange(pair_bits, dtype=np.int64) * (int(chains[:, -1].max()) + 1))[:, None]
        chains = chains.ravel()  # globally sorted: phase-major, increasing inside a phase
    before = 0
    for i in range(nwords):
        n = int(plan.word_after[i]) - before
        before += n
        if n:
            if (cur + pair_bits > end).any():
                c = int(np.argmax(cur + pair_bits > end))
                raise SimError(f"{job}: core {c} stream ends before the weights of its word {i}")
            if zrl:
                rel = cur - lo
                g = (rel % pair_bits) * rows + rel // pair_bits
                goal = chains[g] - cnt[rel] + n
                hit = np.searchsorted(chains, goal)
                ok = (hit < ((rel % pair_bits) + 1) * rows) & (chains[np.minimum(hit, chains.size - 1)] == goal)
                if not ok.all():
                    c = int(np.argmin(ok))
                    raise SimError(f"{job}: core {c} stream: zero runs do not end at word {i} "
                                   f"(after {int(plan.word_after[i])} weights)")
                pairs = hit - g + 1
            else:
                pairs = np.full(cores, n, np.int64)
            seg_start[i], seg_pairs[i] = cur, pairs
            cur = cur + pairs * pair_bits
        if (cur + WORD_BITS > end).any():
            c = int(np.argmax(cur + WORD_BITS > end))
            raise SimError(f"{job}: core {c} stream ends before its word {i} (bit {int(cur[c])})")
        word_pos[i] = cur
        cur = cur + WORD_BITS
    return seg_start, seg_pairs, word_pos


# -- encoding ------------------------------------------------------------------------------------


def plan_coefficients_v7(weights: np.ndarray, biases: np.ndarray, trailers: np.ndarray, geo: KernelGeometry,
                         target: Target, zrl_bits: int | None = None,
                         mesa_flushes: bool = False) -> "CoefficientEncoding":
    """Plan the v7 coefficient buffer (zero-run width, per-core sizes) that the job described by ``geo`` reads.

    ``weights`` is [slots][kernel_z][kernel_y][kernel_x] uint8 (raw values,
    ``geo.zero_point`` meaning real zero), ``biases`` and ``trailers`` the 32-bit
    words per slot; ``slots`` must be ``geo.slots(target)``: when the output
    channels do not split evenly over the cores the caller supplies the padding
    kernels too, with trailers pointing at memory the job may write (the
    simulator writes their planes).  ``zrl_bits`` None picks the zero-run width
    (0..target.zrl_bits_max) that gives the smallest buffer, the narrower width
    on ties.  Shapes are not checked against the target's limits here.

    Zero runs are always cut before a bias or trailer word (the decoder, like
    the hardware, needs that).  ``mesa_flushes`` also cuts them after every
    input channel of the last superblock, as Mesa's interleaved writer does;
    npuc leaves that out by default: the hardware reads runs across channel
    boundaries in every other superblock of Mesa's own streams, and each cut
    costs a pair (a large share of a channel-group depthwise stream).
    """
    weights = np.asarray(weights, dtype=np.uint8)
    slots = geo.slots(target)
    shape = (slots, geo.kernel_z, geo.kernel_y, geo.kernel_x)
    if weights.shape != shape or np.shape(biases) != (slots,) or np.shape(trailers) != (slots,):
        raise ValueError(f"encode_coefficients_v7: expected weights {shape} and {slots} biases/trailers, "
                         f"got {weights.shape}, {np.shape(biases)}, {np.shape(trailers)}")
    plan = _plan(geo, target)
    cores = geo.cores_used(target)
    local = weights[plan.slot.ravel()].reshape(cores, -1)
    stream = local[:, plan.weight_index].ravel()  # core by core, in stream order
    widths = _useful_widths(stream, geo.zero_point, target) if zrl_bits is None else [zrl_bits]
    cuts = np.union1d(plan.word_after, plan.flush_after) if mesa_flushes else plan.word_after
    runs = _runs(stream, cores, cuts, geo.zero_point)
    best = None
    for zrl in widths:
        sizes = _stream_sizes(_pairs_per_core(runs, cores, zrl), plan, zrl, target)
        if best is None or int(sizes.sum()) < int(best[1].sum()):
            best = (zrl, sizes)
    zrl, sizes = best
    return CoefficientEncoding(geo, target, plan, stream, runs, zrl, sizes,
                               np.asarray(biases, dtype=np.uint64), np.asarray(trailers, dtype=np.uint64))


@dataclass(frozen=True)
class CoefficientEncoding:
    """A planned coefficient buffer: its size is known, its bits are packed on demand.

    Lowering compares candidate jobs by size and fills the SRAM-cache fields
    from the per-core sizes; only the jobs that are kept are packed.
    """

    geo: KernelGeometry
    target: Target
    plan: "_StreamPlan"
    stream: np.ndarray
    runs: _Runs
    zrl_bits: int
    core_bytes: np.ndarray
    biases: np.ndarray
    trailers: np.ndarray

    @property
    def total_bytes(self) -> int:
        return core_size_table(self.target).size + int(self.core_bytes.sum())

    @property
    def cache_bytes(self) -> int:
        """What the SRAM kernel cache holds: the largest core stream times the cores used (Mesa's figure)."""
        return int(self.core_bytes.max()) * self.geo.cores_used(self.target)

    def pack(self) -> bytes:
        cores = self.geo.cores_used(self.target)
        return _pack(self.stream, _pair_ends(self.runs, self.zrl_bits), cores, self.plan, self.zrl_bits,
                     self.geo.kernels_per_core(self.target), self.core_bytes, self.biases, self.trailers, self.target)


def encode_coefficients_v7(weights: np.ndarray, biases: np.ndarray, trailers: np.ndarray, geo: KernelGeometry,
                           target: Target, zrl_bits: int | None = None, mesa_flushes: bool = False) -> bytes:
    """Encode kernels into a v7 coefficient buffer (see :func:`plan_coefficients_v7`)."""
    return plan_coefficients_v7(weights, biases, trailers, geo, target, zrl_bits, mesa_flushes).pack()


def _useful_widths(stream: np.ndarray, zero_point: int, target: Target) -> list[int]:
    """Zero-run widths that might beat plain 8-bit values (width 0) on this stream.

    Every weight other than the zero point needs a pair of its own, 8 + w bits,
    while width 0 spends 8 bits per weight and everything else (words, headers)
    is the same; so a width w with ``others * (8 + w) >= 8 * n`` can never be
    smaller.  Dense layers (most pointwise convolutions) skip the search this way.
    """
    n = stream.size
    others = n - int(np.count_nonzero(stream == zero_point))
    return [0] + [w for w in range(1, target.zrl_bits_max + 1) if others * (VALUE_BITS + w) < VALUE_BITS * n]


@dataclass(frozen=True)
class _Runs:
    """The zero runs of a core-by-core stream, which do not depend on the zero-run width.

    A run starts after a value or at a segment start (every per-core weight
    count in ``cuts``, where a word follows) and stops at the next value or the
    segment's end; ``flushed`` marks runs that end a segment, which the encoder
    closes with a ``(count - 1, zero point)`` pair.
    """

    is_value: np.ndarray   # weight is not the zero point
    starts: np.ndarray
    lengths: np.ndarray
    flushed: np.ndarray
    values_per_core: np.ndarray
    n: int                 # weights per core


def _runs(stream: np.ndarray, cores: int, cuts: np.ndarray, zero_point: int) -> _Runs:
    total = stream.size
    n = total // cores
    cuts = cuts[(cuts > 0) & (cuts < n)]
    seg_starts = (np.arange(cores, dtype=np.int64)[:, None] * n
                  + np.concatenate(([0], cuts))[None, :]).ravel()          # sorted
    seg_ends = np.append(seg_starts[1:], total)                            # exclusive
    is_value = stream != zero_point
    values = np.flatnonzero(is_value)
    marks = np.zeros(total + 1, bool)
    marks[values + 1] = True
    marks[seg_starts] = True
    starts = np.flatnonzero(marks[:total])
    next_value = values[np.minimum(np.searchsorted(values, starts), values.size - 1)] if values.size else starts
    seg = np.searchsorted(seg_starts, starts, side="right") - 1
    stop = seg_ends[seg]
    if values.size:
        stop = np.where((next_value >= starts) & (next_value < stop), next_value, stop)
    return _Runs(is_value, starts, stop - starts, stop == seg_ends[seg],
                 np.bincount(values // n, minlength=cores), n)


def _pairs_per_core(runs: _Runs, cores: int, zrl: int) -> np.ndarray:
    """Pairs each core's stream needs at width ``zrl``: one per value, one per full run, one per flushed rest."""
    if zrl == 0:
        return np.full(cores, runs.n, dtype=np.int64)
    full = 1 << zrl
    extra = runs.lengths // full + ((runs.lengths % full > 0) & runs.flushed)
    return runs.values_per_core + np.bincount(runs.starts // runs.n, weights=extra, minlength=cores).astype(np.int64)


def _pair_ends(runs: _Runs, zrl: int) -> np.ndarray:
    """Sorted positions (in the core-by-core stream) of the weights that end a (run, value) pair.

    Mesa's encoder cuts pairs at every non-zero-point weight, after every
    ``2**zrl`` zero points of a run (a full run takes the next weight as its
    value), and at the last weight of a segment when a run is pending, which it
    emits as ``(count - 1, zero point)``.  Works on the runs, not the weights,
    so that sparse expanded depthwise kernels cost little.
    """
    if zrl == 0:
        return np.arange(runs.is_value.size, dtype=np.int64)
    full = 1 << zrl
    is_value = runs.is_value.copy()
    runs_full = runs.lengths // full
    idx = np.repeat(np.arange(runs.starts.size), runs_full)
    within = np.arange(idx.size, dtype=np.int64) - np.repeat(np.cumsum(runs_full) - runs_full, runs_full)
    is_value[runs.starts[idx] + (within + 1) * full - 1] = True
    rest = (runs.lengths % full > 0) & runs.flushed
    is_value[(runs.starts + runs.lengths)[rest] - 1] = True
    return np.flatnonzero(is_value)


def _stream_sizes(pairs: np.ndarray, plan: _StreamPlan, zrl: int, target: Target) -> np.ndarray:
    """Byte size of each core's stream (header, pairs, words), padded to the coefficient alignment."""
    bits = STREAM_HEADER_BITS + pairs * (zrl + VALUE_BITS) + plan.word_after.size * WORD_BITS
    return -(-bits // (8 * target.coef_align)) * target.coef_align


def _pack(stream: np.ndarray, ends: np.ndarray, cores: int, plan: _StreamPlan, zrl: int, kpc: int,
          sizes: np.ndarray, biases: np.ndarray, trailers: np.ndarray, target: Target) -> bytes:
    """Place every field at its bit offset, computed from counts rather than by sorting items."""
    n = stream.size // cores
    pair_bits = zrl + VALUE_BITS
    table = core_size_table(target)
    base = (table.size + np.concatenate(([0], np.cumsum(sizes)[:-1]))).astype(np.int64) * 8 + STREAM_HEADER_BITS
    core = ends // n
    pos = ends - core * n
    core_first = np.searchsorted(ends, np.arange(cores, dtype=np.int64) * n)
    rank = np.arange(ends.size, dtype=np.int64) - core_first[core]
    prev = np.where(rank > 0, np.concatenate(([0], ends[:-1])) - core * n, -1)
    pair_offsets = base[core] + rank * pair_bits + WORD_BITS * np.searchsorted(plan.word_after, pos, side="right")
    pair_values = (pos - prev - 1).astype(np.uint64) | (stream[ends].astype(np.uint64) << np.uint64(zrl))
    # A word placed after `a` weights follows the pairs that end before weight a.
    nwords = plan.word_after.size
    cc = np.repeat(np.arange(cores, dtype=np.int64), nwords)
    a = np.tile(plan.word_after, cores)
    pairs_before = np.searchsorted(ends, cc * n + a, side="left") - core_first[cc]
    word_offsets = base[cc] + pairs_before * pair_bits + WORD_BITS * np.tile(np.arange(nwords), cores)
    word_slot = plan.slot[cc, np.tile(plan.word_kernel, cores)]
    word_values = np.where(np.tile(plan.word_is_trailer, cores), trailers[word_slot], biases[word_slot])
    head = STREAM_HEADER.pack_words({"zrl_bits": zrl, "kernels_per_core": kpc})[0]
    offsets = np.concatenate((base - STREAM_HEADER_BITS, pair_offsets, word_offsets))
    values = np.concatenate((np.full(cores, head, np.uint64), pair_values, word_values.astype(np.uint64)))

    total_words = (table.size + int(sizes.sum())) // 4
    shifted = values << (offsets & 31).astype(np.uint64)
    word = offsets >> 5
    low = (shifted & np.uint64(0xFFFFFFFF)).astype(np.float64)
    high = (shifted >> np.uint64(32)).astype(np.float64)
    acc = (np.bincount(word, weights=low, minlength=total_words + 1)
           + np.bincount(word + 1, weights=high, minlength=total_words + 1))
    out = acc[:total_words].astype(np.uint64).astype(np.uint32)
    out[:table.words] = table.pack_words({f"core{c}_bytes": int(sizes[c]) for c in range(cores)})
    return out.astype("<u4").tobytes()
