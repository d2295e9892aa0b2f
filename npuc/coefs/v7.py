"""The v7 NN cores' coefficient buffers (zero-run-length format), both directions.

Source: ../shared/docs/vipnano-nn.md section 4.1 and Mesa's v7 writer
(``etnaviv_ml_nn_v7.c``, facts only), checked byte for byte against Mesa's
golden submits; the layouts and constants are declared in :mod:`npuc.hw.coef_v7`.
A coefficient buffer is a per-core size table followed by one bit stream per
NN core.  Each stream is a 24-bit header (zero-run width, kernels on this
core) and then (run, value) pairs, each standing for ``run`` copies of the
coefficient zero point followed by ``value``; two 32-bit words per kernel
interrupt the pairs at fixed points: the bias word right after the kernel's
first weight and the trailer word (the byte offset of the kernel's output
plane) right after its last.  Everything is packed LSB first into
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
buffer reproduces it bit for bit (npuc's own jobs leave the extra cuts out).

Both directions are vectorised with numpy.  The weights are put in stream
order by reshaping and transposing (:func:`stream_order`), never through
per-geometry index tables.  Planning a buffer only counts: the zero-run width
search needs the zero runs (from the positions of the weights other than the
zero point, all widths at once), and dense kernels, where no width can beat
plain bytes, need not even be reordered.  A plan keeps the caller's weights
(and, for sparse kernels, their zero runs), never the stream or the bytes;
packing places the bytes at zero-run width 0 (every field is byte aligned),
otherwise the pairs the runs give, with the words and headers, by
:func:`npuc.coefs.bits.or_fields`.  Malformed buffers raise
:class:`CoefficientError` naming the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import numpy as np

from ..errors import CoefficientError
from ..hw.coef_v7 import (ORDER_INTERLEAVED, ORDER_POINTWISE, ORDER_SEQUENTIAL, PATCH_COLUMNS, PATCH_ROWS,
                          POINTWISE_Z_BLOCK, STREAM_HEADER, STREAM_HEADER_BITS, VALUE_BITS, WORD_BITS, core_size_table)
from ..hw.target import Target
from .bits import or_fields, units
from .buffers import Buffer, as_bytes
from .geometry import DecodedKernels, KernelGeometry, check_kernel_fields

__all__ = ["ZeroRunCodec", "ZeroRunPlan", "plan_coefficients", "encode_coefficients", "decode_coefficients",
           "buffer_size", "check_geometry", "stream_order", "ORDER_INTERLEAVED", "ORDER_POINTWISE",
           "ORDER_SEQUENTIAL", "MAX_DECODED_WEIGHTS"]

#: Most weights one decode may produce (all cores).  MobileNet's largest layer
#: (a 1024-channel depthwise convolution expanded to dense) has 9.4 M; a
#: descriptor asking for far more is refused instead of exhausting the host.
MAX_DECODED_WEIGHTS = 1 << 25



def check_geometry(geo: KernelGeometry, target: Target, job: str) -> None:
    """Refuse shapes the format (or the simulator's memory) cannot hold (CoefficientError naming ``job``)."""
    check_kernel_fields(geo, target, job)
    weights = geo.slots(target) * geo.kernel_z * geo.kernel_x * geo.kernel_y
    if weights > MAX_DECODED_WEIGHTS:
        raise CoefficientError(f"{job}: {weights} coefficients exceed the simulator's limit of {MAX_DECODED_WEIGHTS}")


# -- stream structure ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # compared and hashed by identity (it is cached)
class _Layout:
    """Where the words of one core's stream go (identical for all cores), and which slot each kernel is."""

    cores: int
    kernels_per_core: int
    per_core: int             # weights per core
    pointwise: bool
    patch: np.ndarray | None  # tap order of a kernel slice (rows x columns flat), None when it is the identity
    word_after: np.ndarray    # weights preceding each word, in stream order
    word_kernel: np.ndarray   # core-local kernel (s * kernels_per_superblock + k) of each word
    word_is_trailer: np.ndarray
    flush_after: np.ndarray   # further weight counts after which Mesa's writer flushes zero runs
    slot: np.ndarray          # [core][core-local kernel] -> output slot
    word_source: np.ndarray   # [core][word] -> its slot's bias (the slot) or trailer (slots + the slot)


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


def _layout(geo: KernelGeometry, target: Target) -> _Layout:
    """The stream structure of ``geo`` (cached; the zero point and, unless it selects the
    sequential row split, the input width do not change it)."""
    split = geo.ordering() != ORDER_SEQUENTIAL or geo.in_image_x_size > target.max_tile_x
    return _cached_layout(geo.kernel_x, geo.kernel_y, geo.kernel_z, geo.out_channels, geo.kernels_per_superblock,
                          target, split)


@lru_cache(maxsize=256)
def _cached_layout(kx: int, ky: int, z: int, oc: int, sb_size: int, target: Target, split: bool) -> _Layout:
    geo = KernelGeometry(kernel_x=kx, kernel_y=ky, kernel_z=z, out_channels=oc, kernels_per_superblock=sb_size)
    ordering = geo.ordering()
    cores, kpc = geo.cores_used(target), geo.kernels_per_core(target)
    area = kx * ky
    patch = _patch_order(ky, kx, split)
    slot = np.empty((cores, kpc), dtype=np.int64)
    after, kernel, trailer, flushes = [], [], [], []
    done = 0
    superblocks = geo.superblocks(target)
    for s in range(superblocks):
        first = s * sb_size
        kis = min(sb_size, kpc - first)
        kernels = np.arange(first, first + kis)
        slot[:, first:first + kis] = (np.arange(cores)[:, None] * kis + np.arange(kis)[None, :]
                                      + s * sb_size * cores)
        if ordering == ORDER_POINTWISE:
            # Blocks of input channels; for each block every kernel emits its channels of the block: the
            # bias word follows a kernel's first weight (in block 0), the trailer its last (in the last block).
            last = (-(-z // POINTWISE_Z_BLOCK) - 1) * POINTWISE_Z_BLOCK    # first channel of the last block
            after.append(done + np.arange(kis) * min(POINTWISE_Z_BLOCK, z) + 1)
            kernel.append(kernels), trailer.append(np.zeros(kis, bool))
            after.append(done + kis * last + (np.arange(kis) + 1) * (z - last))
            kernel.append(kernels), trailer.append(np.ones(kis, bool))
            done += kis * z
        else:
            # For each input channel, every kernel of the superblock emits its slice in patch order.
            starts = done + np.arange(kis) * area
            after.append(starts + 1), kernel.append(kernels), trailer.append(np.zeros(kis, bool))
            after.append(done + (z - 1) * kis * area + np.arange(kis) * area + area)
            kernel.append(kernels), trailer.append(np.ones(kis, bool))
            if s == superblocks - 1 and ordering == ORDER_INTERLEAVED:
                flushes += [done + (zz + 1) * kis * area for zz in range(z)]
            done += z * kis * area
    word_after, word_kernel, word_is_trailer = np.concatenate(after), np.concatenate(kernel), np.concatenate(trailer)
    order = np.lexsort((word_is_trailer, word_after))  # stable: equal keys keep the order above
    word_after, word_kernel, word_is_trailer = word_after[order], word_kernel[order], word_is_trailer[order]
    return _Layout(cores=cores, kernels_per_core=kpc, per_core=done, pointwise=ordering == ORDER_POINTWISE,
                   patch=None if np.array_equal(patch, np.arange(area)) else patch,
                   word_after=word_after.astype(np.int64), word_kernel=word_kernel.astype(np.int64),
                   word_is_trailer=word_is_trailer, flush_after=np.array(sorted(set(flushes)), dtype=np.int64),
                   slot=slot, word_source=slot[:, word_kernel] + word_is_trailer * slot.size)


def _view(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a`` reshaped without a copy (writes through to ``a``)."""
    out = a.reshape(shape)
    assert out.base is not None, "reshape copied"
    return out


def stream_order(weights: np.ndarray, geo: KernelGeometry, target: Target) -> np.ndarray:
    """The per-core streams' weights [core][position] of ``weights`` [slots][z][y][x] (any dtype).

    Applied to ``arange`` it gives, for every stream position, the flat index of
    the weight it carries (the decoder's map).
    """
    return _stream(weights, geo, _layout(geo, target))


def _stream(weights: np.ndarray, geo: KernelGeometry, lay: _Layout) -> np.ndarray:
    cores, kpc, sb_size, z = lay.cores, lay.kernels_per_core, geo.kernels_per_superblock, geo.kernel_z
    area = geo.kernel_x * geo.kernel_y
    w = weights.reshape(-1, z, area)
    if lay.patch is not None:
        w = np.take(w, lay.patch, axis=2)
    out = np.empty((cores, lay.per_core), dtype=weights.dtype)
    full, rest = divmod(kpc, sb_size)
    done = 0
    for count, kis, first in ((full, sb_size, 0), (1 if rest else 0, rest, full * sb_size * cores)):
        if not count:
            continue
        src = w[first:first + count * kis * cores].reshape(count, cores, kis, z, area)
        span = count * kis * z * area
        dest = _view(out[:, done:done + span], (cores, count, kis * z * area))
        if lay.pointwise:
            blocks, part = divmod(z, POINTWISE_Z_BLOCK)
            head = blocks * POINTWISE_Z_BLOCK
            if blocks:
                units(_view(dest[:, :, :kis * head], (cores, count, blocks, kis, POINTWISE_Z_BLOCK)))[...] = (
                    units(src[:, :, :, :head, 0].reshape(count, cores, kis, blocks, POINTWISE_Z_BLOCK))
                    .transpose(1, 0, 3, 2))
            if part:
                units(_view(dest[:, :, kis * head:], (cores, count, kis, part)))[...] = (
                    units(src[:, :, :, head:, 0]).transpose(1, 0, 2))
        else:
            units(_view(dest, (cores, count, z, kis, area)))[...] = units(src).transpose(1, 0, 3, 2)
        done += span
    return out


# -- decoding ------------------------------------------------------------------------------------


def buffer_size(header: Buffer, target: Target, job: str = "coefficients") -> int:
    """Bytes of a coefficient buffer (size table + streams), read from its size table."""
    table = core_size_table(target)
    data = as_bytes(header)
    if len(data) < table.size:
        raise CoefficientError(f"{job}: coefficient buffer of {len(data)} bytes is shorter than its size table")
    sizes = table.unpack(data)
    return table.size + sum(sizes[f"core{c}_bytes"] for c in range(target.nn_cores))




def decode_coefficients(buf: Buffer, desc: Mapping[str, int], target: Target,
                        job: str = "coefficients") -> DecodedKernels:
    """Decode a v7 coefficient buffer as the NN job described by ``desc`` reads it.

    Raises CoefficientError (naming ``job``) for anything the hardware could not
    read: size tables that disagree with the descriptor, zero runs that cross a
    bias or trailer word, streams that end early, kernel counts that differ from
    the descriptor's output channels.
    """
    geo = KernelGeometry.from_descriptor(desc)
    check_geometry(geo, target, job)
    data = np.frombuffer(as_bytes(buf), dtype=np.uint8)
    total = buffer_size(data, target, job)
    if total > data.size:
        raise CoefficientError(f"{job}: size table announces {total} bytes, the buffer holds {data.size}")
    used = data[:total]
    return _decode(used, geo, target, job)


def _core_layout(data: np.ndarray, geo: KernelGeometry, target: Target, job: str) -> tuple[int, ...]:
    table = core_size_table(target)
    row = table.unpack(data[:table.size].tobytes())
    sizes = tuple(row[f"core{c}_bytes"] for c in range(target.nn_cores))
    cores = geo.cores_used(target)
    for c, size in enumerate(sizes):
        if c < cores and (size == 0 or size % target.coef_align):
            raise CoefficientError(f"{job}: core {c} stream size {size} is not a positive multiple of "
                                   f"{target.coef_align}")
        if c >= cores and size:
            raise CoefficientError(f"{job}: core {c} has a {size}-byte stream but only {cores} cores serve "
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
            raise CoefficientError(f"{job}: core {c} uses {h['zrl_bits']} zero-run bits, core 0 uses {zrl}")
        if h["kernels_per_core"] != kpc:
            raise CoefficientError(f"{job}: core {c} stream carries {h['kernels_per_core']} kernels, the "
                                   f"descriptor's {geo.out_channels} output channels need {kpc} per core")
    if zrl > target.zrl_bits_max:
        raise CoefficientError(f"{job}: zero-run width {zrl} exceeds the core's {target.zrl_bits_max} bits")
    lay = _layout(geo, target)
    per_core = lay.per_core
    pair_bits = zrl + VALUE_BITS
    # Cheapest possible encoding must fit, or the stream is short (checked before any big allocation).
    min_bits = (STREAM_HEADER_BITS + lay.word_after.size * WORD_BITS
                + -(-per_core // (1 << zrl)) * pair_bits)
    if min_bits > int((ends - starts).min()) * 8:
        raise CoefficientError(f"{job}: {per_core} weights per core cannot fit a "
                               f"{int((ends - starts).min())}-byte stream")
    seg_start, seg_pairs, word_pos = _walk(words, starts * 8 + STREAM_HEADER_BITS, ends * 8, lay, zrl, job)

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
    # Stream position (core-major) -> flat index into [slots][z][y][x].
    index = _stream(np.arange(slots * area, dtype=np.int64).reshape((slots,) + shape), geo, lay)
    weights = np.full(slots * area, geo.zero_point, dtype=np.uint8)
    weights[index.ravel()[at]] = values
    weights = weights.reshape((slots,) + shape)
    word_values = _read_bits(words, word_pos, WORD_BITS).astype(np.uint32)  # [word][core]
    biases = np.empty(slots, dtype=np.uint32)
    trailers = np.empty(slots, dtype=np.uint32)
    for target_array, pick in ((biases, ~lay.word_is_trailer), (trailers, lay.word_is_trailer)):
        target_array[lay.slot[:, lay.word_kernel[pick]].T.ravel()] = word_values[pick].ravel()
    for a in (weights, biases, trailers):
        a.flags.writeable = False
    return DecodedKernels(weights=weights, biases=biases, trailers=trailers, out_channels=geo.out_channels,
                          cores_used=cores, superblocks=geo.superblocks(target), kernels_per_core=kpc,
                          kernels_per_superblock=geo.kernels_per_superblock, header_bytes=header_bytes,
                          core_bytes=sizes, total_bytes=header_bytes + sum(sizes), zrl_bits=zrl,
                          ordering=geo.ordering())


def _walk(words: np.ndarray, cur: np.ndarray, end: np.ndarray, lay: _Layout, zrl: int,
          job: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Follow all cores' streams in lockstep from word to word.

    Every core has the same structure, so the n-th segment of pairs (between two
    words) holds the same number of weights on every core; its number of pairs
    is where the running weight count of the pair chain reaches that number.
    For zero-run streams the chains of every bit phase are prefix-summed once
    so that each segment costs one ``searchsorted`` for all cores.
    """
    pair_bits = zrl + VALUE_BITS
    nwords = lay.word_after.size
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
        n = int(lay.word_after[i]) - before
        before += n
        if n:
            if (cur + pair_bits > end).any():
                c = int(np.argmax(cur + pair_bits > end))
                raise CoefficientError(f"{job}: core {c} stream ends before the weights of its word {i}")
            if zrl:
                rel = cur - lo
                g = (rel % pair_bits) * rows + rel // pair_bits
                goal = chains[g] - cnt[rel] + n
                hit = np.searchsorted(chains, goal)
                ok = (hit < ((rel % pair_bits) + 1) * rows) & (chains[np.minimum(hit, chains.size - 1)] == goal)
                if not ok.all():
                    c = int(np.argmin(ok))
                    raise CoefficientError(f"{job}: core {c} stream: zero runs do not end at word {i} "
                                           f"(after {int(lay.word_after[i])} weights)")
                pairs = hit - g + 1
            else:
                pairs = np.full(cores, n, np.int64)
            seg_start[i], seg_pairs[i] = cur, pairs
            cur = cur + pairs * pair_bits
        if (cur + WORD_BITS > end).any():
            c = int(np.argmax(cur + WORD_BITS > end))
            raise CoefficientError(f"{job}: core {c} stream ends before its word {i} (bit {int(cur[c])})")
        word_pos[i] = cur
        cur = cur + WORD_BITS
    return seg_start, seg_pairs, word_pos


# -- encoding ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segments:
    """The stream of every core cut into segments at the per-core weight counts ``bounds[1:-1]`` (where a
    word follows, and with ``mesa_flushes`` where Mesa's writer flushes); zero runs end at a segment's end."""

    bounds: np.ndarray       # [0, cuts..., weights per core]
    start: np.ndarray        # global (core-major) stream position where each segment starts, [core * S + j]
    end: np.ndarray          # ... and ends (exclusive)
    words_before: np.ndarray  # [j]: words of a core's stream before its segment j
    word_end: np.ndarray     # [word]: the segment index (into bounds) the word follows
    core_starts: np.ndarray  # global stream position of each core's first weight, and the stream's end


@lru_cache(maxsize=256)
def _cut(lay: _Layout, mesa_flushes: bool) -> _Segments:
    n = lay.per_core
    cuts = np.union1d(lay.word_after, lay.flush_after) if mesa_flushes else np.unique(lay.word_after)
    bounds = np.concatenate(([0], cuts[(cuts > 0) & (cuts < n)], [n])).astype(np.int64)
    first = np.arange(lay.cores, dtype=np.int64)[:, None] * n
    return _Segments(bounds=bounds, start=(first + bounds[None, :-1]).ravel(), end=(first + bounds[None, 1:]).ravel(),
                     words_before=np.searchsorted(lay.word_after, bounds[:-1], side="right"),
                     word_end=np.searchsorted(bounds, lay.word_after),
                     core_starts=np.arange(lay.cores + 1, dtype=np.int64) * n)


@dataclass(frozen=True)
class _Runs:
    """The zero runs of the core-by-core stream, which do not depend on the zero-run width.

    Every weight other than the zero point (a "value") ends the run of zero
    points before it inside its segment (``lead``); every segment ends with the
    run after its last value (``tail``, [core][segment]), which the encoder
    closes with a ``(count - 1, zero point)`` pair.  Compact (int32 counts): a
    plan may keep them.
    """

    value_bytes: np.ndarray  # uint8: the values, in stream order (core-major)
    segment: np.ndarray      # global segment (core * segments + local) of each value
    lead: np.ndarray         # zero points before each value in its segment
    tail: np.ndarray         # [core][segment] zero points after the segment's last value
    core_values: np.ndarray  # index of each core's first value (cores + 1 entries)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.value_bytes, self.segment, self.lead, self.tail))


def _runs(stream: np.ndarray, zero_point: int, segs: _Segments) -> _Runs:
    cores = stream.shape[0]
    flat = stream.reshape(-1)
    values = (flat != zero_point).nonzero()[0]
    segment = segs.start.searchsorted(values, side="right") - 1
    start = segs.start[segment]
    if values.size:
        np.maximum(start[1:], values[:-1] + 1, out=start[1:])
    # A segment's tail starts after the last value before its end, or at its start.
    after = np.zeros(values.size + 1, np.int64)
    np.add(values, 1, out=after[1:])
    after = np.maximum(after[values.searchsorted(segs.end)], segs.start)
    return _Runs(value_bytes=flat[values], segment=segment.astype(np.int32), lead=(values - start).astype(np.int32),
                 tail=(segs.end - after).astype(np.int32).reshape(cores, -1),
                 core_values=values.searchsorted(segs.core_starts))


def _stream_bytes(pairs: np.ndarray, widths: np.ndarray, nwords: int, target: Target) -> np.ndarray:
    """Byte size of each core's stream (header, pairs, words), padded to the coefficient alignment: [width][core]."""
    bits = STREAM_HEADER_BITS + pairs * (widths[:, None] + VALUE_BITS) + nwords * WORD_BITS
    return -(-bits // (8 * target.coef_align)) * target.coef_align


@lru_cache(maxsize=64)
def _width_columns(widths: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero-run widths as a column, as [width][1][1], and their full runs minus one as [width][1][1]."""
    w = np.array(widths, dtype=np.int64)
    return w[:, None], w[:, None, None], ((1 << w) - 1)[:, None, None]


def _pairs(runs: _Runs, widths: tuple[int, ...]) -> np.ndarray:
    """Pairs each core's stream needs at each zero-run width >= 1 ([width][core]): one per value, one per full
    run of ``2**zrl`` zero points before it, and a segment's tail rounded up to whole runs."""
    w, w3, rounding = _width_columns(widths)
    lead = np.zeros((w.size, runs.lead.size + 1), np.int64)
    (runs.lead >> w).cumsum(axis=1, out=lead[:, 1:])
    lead = lead[:, runs.core_values]
    tail = ((runs.tail[None] + rounding) >> w3).sum(axis=2)
    values = runs.core_values[1:] - runs.core_values[:-1]
    return lead[:, 1:] - lead[:, :-1] + values + tail


def _useful_widths(others: int, n: int, target: Target) -> list[int]:
    """Zero-run widths that might beat plain 8-bit values (width 0) on a stream of ``n`` weights.

    Every weight other than the zero point (``others`` of them) needs a pair of
    its own, 8 + w bits, while width 0 spends 8 bits per weight and everything
    else (words, headers) is the same; so a width w with ``others * (8 + w) >=
    8 * n`` can never be smaller.  Dense layers (most pointwise convolutions)
    skip the search, and the reordering, this way.
    """
    return [0] + [w for w in range(1, target.zrl_bits_max + 1) if others * (VALUE_BITS + w) < VALUE_BITS * n]


#: A plan keeps its zero runs (sparing the packer the reordering) when they take at most this many bytes per
#: weight: sparse kernels (expanded depthwise ones) only.
KEPT_RUNS_BYTES_PER_WEIGHT = 1


def plan_coefficients(weights: np.ndarray, biases: np.ndarray, trailers: np.ndarray, geo: KernelGeometry,
                      target: Target, zrl_bits: int | None = None, mesa_flushes: bool = False) -> "ZeroRunPlan":
    """Plan the v7 coefficient buffer (zero-run width, per-core sizes) that the job described by ``geo`` reads.

    ``weights`` is [slots][kernel_z][kernel_y][kernel_x] uint8 (raw values,
    ``geo.zero_point`` meaning real zero), ``biases`` and ``trailers`` the 32-bit
    words per slot; ``slots`` must be ``geo.slots(target)``: when the output
    channels do not split evenly over the cores the caller supplies the padding
    kernels too, with trailers pointing at memory the job may write (the
    simulator writes their planes).  ``zrl_bits`` None picks the zero-run width
    (0..target.zrl_bits_max) that gives the smallest buffer, the narrower width
    on ties.  Shapes are not checked against the target's limits here.  The
    plan keeps ``weights`` (not a copy): do not change them before packing.

    Zero runs are always cut before a bias or trailer word (the decoder, like
    the hardware, needs that).  ``mesa_flushes`` also cuts them after every
    input channel of the last superblock, as Mesa's interleaved writer does;
    npuc leaves that out by default: the hardware reads runs across channel
    boundaries in every other superblock of Mesa's own streams, and each cut
    costs a pair (a large share of a channel-group depthwise stream).
    """
    weights = np.asarray(weights, dtype=np.uint8)
    lay = _layout(geo, target)
    slots = lay.cores * lay.kernels_per_core
    shape = (slots, geo.kernel_z, geo.kernel_y, geo.kernel_x)
    if weights.shape != shape or np.shape(biases) != (slots,) or np.shape(trailers) != (slots,):
        raise ValueError(f"v7 coefficients: expected weights {shape} and {slots} biases/trailers, "
                         f"got {weights.shape}, {np.shape(biases)}, {np.shape(trailers)}")
    nwords = lay.word_after.size
    if zrl_bits is None:
        widths = _useful_widths(weights.size - int(np.count_nonzero(weights == geo.zero_point)), weights.size,
                                target)
    else:
        widths = [zrl_bits]
    runs = None
    pairs = np.full((len(widths), lay.cores), lay.per_core, dtype=np.int64)  # width 0: one pair per weight
    if widths != [0]:
        runs = _runs(_stream(weights, geo, lay), geo.zero_point, _cut(lay, mesa_flushes))
        zero = widths[0] == 0
        pairs[int(zero):] = _pairs(runs, tuple(widths[int(zero):]))
    sizes = _stream_bytes(pairs, np.array(widths), nwords, target)
    best = int(sizes.sum(axis=1).argmin())  # the first (narrowest) of equals
    zrl, core_bytes = widths[best], sizes[best]
    if zrl == 0 or runs is None or runs.nbytes > KEPT_RUNS_BYTES_PER_WEIGHT * weights.size:
        runs = None
    per_core = core_bytes.tolist()
    return ZeroRunPlan(geo=geo, target=target, weights=weights, biases=np.asarray(biases, dtype=np.uint32),
                       trailers=np.asarray(trailers, dtype=np.uint32), zrl_bits=zrl, core_bytes=core_bytes,
                       mesa_flushes=mesa_flushes, total_bytes=core_size_table(target).size + sum(per_core),
                       cache_bytes=max(per_core) * lay.cores, layout=lay, runs=runs)


@dataclass(frozen=True)
class ZeroRunPlan:
    """A planned v7 coefficient buffer: its size is known, its bits are packed on demand.

    Lowering compares candidate jobs by size and fills the SRAM-cache fields
    from the per-core sizes; only the jobs that are kept are packed, and the
    bytes are not kept.  ``cache_bytes`` is what the SRAM kernel cache holds:
    the largest core stream times the cores used (Mesa's figure).  Sparse plans
    keep their zero runs (at most :data:`KEPT_RUNS_BYTES_PER_WEIGHT` bytes per
    weight), which spares the packer the reordering.
    """

    geo: KernelGeometry
    target: Target
    weights: np.ndarray      # the caller's [slots][z][y][x] (a reference)
    biases: np.ndarray       # uint32 per slot
    trailers: np.ndarray     # uint32 per slot
    zrl_bits: int
    core_bytes: np.ndarray   # per core used
    mesa_flushes: bool
    total_bytes: int
    cache_bytes: int
    layout: _Layout
    runs: _Runs | None = None

    def pack(self) -> bytes:
        return _pack(self)


def encode_coefficients(weights: np.ndarray, biases: np.ndarray, trailers: np.ndarray, geo: KernelGeometry,
                        target: Target, zrl_bits: int | None = None, mesa_flushes: bool = False) -> bytes:
    """Encode kernels into a v7 coefficient buffer (see :func:`plan_coefficients`)."""
    return plan_coefficients(weights, biases, trailers, geo, target, zrl_bits, mesa_flushes).pack()


@lru_cache(maxsize=64)
def _stream_header(zrl: int, kernels: int) -> int:
    return STREAM_HEADER.pack_words({"zrl_bits": zrl, "kernels_per_core": kernels})[0]


@lru_cache(maxsize=8)
def _size_words(target: Target) -> np.ndarray:
    """The size table word of each core's byte count (each a whole word)."""
    table = core_size_table(target)
    fields = [table[f"core{c}_bytes"] for c in range(target.nn_cores)]
    assert all(f.bit == 0 and f.width == 32 for f in fields)
    return np.array([f.word for f in fields], dtype=np.int64)


def _pack(plan: ZeroRunPlan) -> bytes:
    geo, target, zrl, lay = plan.geo, plan.target, plan.zrl_bits, plan.layout
    cores, n, nwords = lay.cores, lay.per_core, lay.word_after.size
    table_bytes = core_size_table(target).size
    sizes = plan.core_bytes
    words = np.concatenate((plan.biases, plan.trailers))[lay.word_source]  # [core][word]
    head = _stream_header(zrl, lay.kernels_per_core)
    out = np.zeros(plan.total_bytes // 4 + 1, np.uint32)
    out[_size_words(target)[:cores]] = sizes
    if zrl == 0:
        # Every field is byte aligned: the weights themselves with the words between them.
        stream = _stream(plan.weights, geo, lay)
        size = int(sizes[0])
        region = out.view(np.uint8)[table_bytes:table_bytes + cores * size].reshape(cores, size)
        region[:, :STREAM_HEADER_BITS // 8] = np.array([head], "<u4").view(np.uint8)[:STREAM_HEADER_BITS // 8]
        body = region[:, STREAM_HEADER_BITS // 8:STREAM_HEADER_BITS // 8 + n + 4 * nwords]
        word_bytes = ((lay.word_after + 4 * np.arange(nwords))[:, None] + np.arange(4)).ravel()
        is_weight = np.ones(body.shape[1], bool)
        is_weight[word_bytes] = False
        for c in range(cores):
            body[c][is_weight] = stream[c]
        body[:, word_bytes] = np.ascontiguousarray(words, dtype="<u4").view(np.uint8)
        return out.view(np.uint8)[:plan.total_bytes].tobytes()
    base, at = [], table_bytes * 8
    for size in sizes.tolist():
        base.append(at)
        at += size * 8
    segs = _cut(lay, plan.mesa_flushes)
    runs = plan.runs or _runs(_stream(plan.weights, geo, lay), geo.zero_point, segs)
    offsets, values = _fields(runs, segs, words, np.array(base) + STREAM_HEADER_BITS, zrl, geo.zero_point)
    offsets = np.concatenate((base, offsets))
    values = np.concatenate((np.full(cores, head, np.uint32), values))
    order = offsets.argsort(kind="stable")
    or_fields(out, offsets[order], values[order])
    return out.view(np.uint8)[:plan.total_bytes].tobytes()


def _fields(runs: _Runs, segs: _Segments, words: np.ndarray, start: np.ndarray, zrl: int,
            zero_point: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit offsets and values of the pairs of every core's zero runs and values, and of the words between
    its segments, the core's fields starting at bit ``start[core]``.

    A segment's values each take ``run >> zrl`` full pairs (``2**zrl - 1`` zero
    points, then the zero point as the value) for the zero points before them,
    then their own pair; the segment's tail takes its full pairs and a pair for
    the rest of the run.  Pairs are counted over the whole stream (core-major)
    by prefix sums over the values and over the segments.
    """
    cores, segments = runs.tail.shape
    nseg = cores * segments
    full, pair_bits = 1 << zrl, zrl + VALUE_BITS
    tail = runs.tail.reshape(-1)
    rest = tail & (full - 1)
    value_pairs = (runs.lead >> zrl) + 1
    tail_pairs = (tail >> zrl) + (rest > 0)
    # First pair of each segment (and the stream's end): the pairs of the values and tails before it.
    first = np.zeros(nseg + 1, np.int64)
    (np.bincount(runs.segment, weights=value_pairs, minlength=nseg).astype(np.int64) + tail_pairs).cumsum(
        out=first[1:])
    fields = np.empty(int(first[-1]), np.uint32)
    fields.fill((full - 1) | (zero_point << zrl))
    # A value's pair comes after the pairs of the values up to it and of the segment tails before it.
    tails_before = np.zeros(nseg + 1, np.int64)
    tail_pairs.cumsum(out=tails_before[1:])
    fields[value_pairs.cumsum() + tails_before[runs.segment] - 1] = (
        (runs.lead & (full - 1)) | (runs.value_bytes.astype(np.uint32) << zrl))
    closing = rest > 0
    fields[first[1:][closing] - 1] = (rest[closing] - 1) | (zero_point << zrl)
    # A segment's pairs follow the core's earlier pairs and the words before the segment.
    within = np.empty((cores, segments + 1), np.int64)                  # pairs of the core before each segment
    within[:, :-1] = first[:-1].reshape(cores, segments)
    within[:, -1] = first[segments::segments]
    within -= within[:, :1]
    seg_bits = start[:, None] + pair_bits * within[:, :-1] + WORD_BITS * segs.words_before[None, :]
    offsets = ((seg_bits.reshape(-1) - pair_bits * first[:-1]).repeat(first[1:] - first[:-1])
               + pair_bits * np.arange(fields.size))
    word_offsets = start[:, None] + pair_bits * within[:, segs.word_end] + WORD_BITS * np.arange(words.shape[1])
    return np.concatenate((offsets, word_offsets.reshape(-1))), np.concatenate((fields, words.reshape(-1)))


# -- the codec -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZeroRunCodec:
    """The v7 zero-run format on ``target`` (a :class:`npuc.coefs.codec.Codec`)."""

    target: Target

    @property
    def header_bytes(self) -> int:
        """The per-core size table, which gives the buffer's length."""
        return core_size_table(self.target).size

    def encode(self, weights: np.ndarray, biases: np.ndarray, trailers: np.ndarray | None, geo: KernelGeometry,
               zrl_bits: int | None = None, mesa_flushes: bool = False) -> ZeroRunPlan:
        """Plan the buffer (see :func:`plan_coefficients`); v7 needs a trailer word per slot."""
        if trailers is None:
            raise ValueError("v7 coefficients need each slot's trailer word (its output plane offset)")
        return plan_coefficients(weights, biases, trailers, geo, self.target, zrl_bits, mesa_flushes)

    def decode(self, buf: Buffer, desc: Mapping[str, int], job: str = "coefficients") -> DecodedKernels:
        return decode_coefficients(buf, desc, self.target, job)

    def size(self, head: Buffer, desc: Mapping[str, int], job: str = "coefficients") -> int:
        return buffer_size(head, self.target, job)
