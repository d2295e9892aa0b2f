"""The simulator's reader of v7 coefficient buffers (zero-run-length format).

Written from vipnano-nn.md 4.1 and docs/simulator.md ("v7 coefficient
buffers"), independently of the compiler's encoder; the layouts and constants
come from :mod:`npuc.hw.coef_v7`.  A buffer is a table of per-core stream
sizes, then one bit stream per NN core used, LSB first in little-endian 32-bit
words.  A stream is a 24-bit header (zero-run width, kernels on the core) and
then (run, value) pairs of ``zrl_bits + 8`` bits, each standing for ``run``
copies of ``coef_zero_point`` followed by ``value``; two 32-bit words per
kernel interrupt the pairs: its bias word right after the kernel's first
weight in stream order, its trailer word (output plane offset) right after its
last.  A run may not cross a word (the hardware could not know where the word
is).

Everything else follows from the descriptor:

* cores used ``min(out_image_z_size, nn_cores)``, each carrying
  ``K = ceil(out_image_z_size / cores used)`` kernels; the descriptor's
  ``kernels_per_core`` D is the kernels per core of one superblock, so there
  are ``ceil(K / D)`` superblocks, the last with the rest; kernel ``k`` of
  superblock ``s`` on core ``c`` is output slot ``c * kis + k + s * D * cores``
  (``kis``: kernels in that superblock);
* the order of the weights inside a superblock: 1x1 kernels in blocks of
  ``POINTWISE_Z_BLOCK`` input channels (for each block, each kernel's channels
  of it), other kernels with several input channels channel by channel (for
  each channel, each kernel's slice: "interleaved"), single-channel kernels
  kernel by kernel ("sequential").  A slice is read in row pairs, of each pair
  the first ``PATCH_COLUMNS`` columns of both rows, then the other columns of
  both rows; the sequential order takes whole rows instead unless the input is
  wider than one tile.

Decoding: a segment (the pairs between two words) holds a known number of
weights on every core, so all cores are followed together, segment by segment;
a segment's pair count is where the running weight count of its pairs reaches
that number, found on a chunk of pairs read at once (grown while it falls
short).  The pairs found are then read and expanded in one go.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import numpy as np

from ..errors import SimError
from ..hw.coef_v7 import (ORDER_INTERLEAVED, ORDER_POINTWISE, ORDER_SEQUENTIAL, PATCH_COLUMNS, PATCH_ROWS,
                          POINTWISE_Z_BLOCK, STREAM_HEADER, STREAM_HEADER_BITS, VALUE_BITS, WORD_BITS,
                          core_size_table)
from ..hw.target import Target
from .coef_common import (BitReader, DecodeCache, DecodedCoefficients, KernelShape, as_array, check_weight_count,
                          frozen)

_CACHE = DecodeCache()

#: Pairs read at once for a segment before the chunk is doubled, and the most read at once.
_FIRST_CHUNK = 128
_MAX_CHUNK = 1 << 16


def clear_cache() -> None:
    _CACHE.clear()
    _layout.cache_clear()


def buffer_size_v7(head: bytes | np.ndarray, target: Target, job: str = "coefficients") -> int:
    """Bytes of the buffer (size table plus streams) whose leading bytes are ``head``."""
    table = core_size_table(target)
    data = as_array(head)
    if data.size < table.size:
        raise SimError(f"{job}: coefficient buffer of {data.size} bytes is shorter than its size table "
                       f"({table.size} bytes)")
    sizes = table.unpack(data[:table.size].tobytes())
    return table.size + sum(sizes[f"core{c}_bytes"] for c in range(target.nn_cores))


def ordering(shape: KernelShape) -> str:
    """The order the hardware reads a superblock's weights in (docs/simulator.md, "Ordering rule")."""
    if shape.kernel_x == 1 and shape.kernel_y == 1:
        return ORDER_POINTWISE
    return ORDER_INTERLEAVED if shape.kernel_z > 1 else ORDER_SEQUENTIAL


def slice_order(rows: int, columns: int, patches: bool) -> list[int]:
    """Positions ``row * columns + column`` of one kernel slice in stream order.

    Rows go in pairs; with ``patches`` each pair gives its first
    ``PATCH_COLUMNS`` columns (first row, then second) and then its other
    columns (likewise), else each row of the pair in full.
    """
    out: list[int] = []
    for top in range(0, rows, PATCH_ROWS):
        pair = range(top, min(top + PATCH_ROWS, rows))
        groups = ([range(min(columns, PATCH_COLUMNS)), range(PATCH_COLUMNS, columns)] if patches
                  else [range(columns)])
        for group in groups:
            for r in pair:
                out.extend(r * columns + c for c in group)
    return out


@dataclass(frozen=True)
class _Layout:
    """One core's stream structure (the same on every core)."""

    kernel: np.ndarray        # stream weight t -> its core-local kernel (s * kernels_per_superblock + k)
    within: np.ndarray        # stream weight t -> its (z, y, x) flat index in the kernel
    first_weight: np.ndarray  # [core][core-local kernel] -> flat index of its slot's first weight
    segments: np.ndarray      # weights before each word, counted from the previous word
    word_kernel: np.ndarray   # core-local kernel of each word (in stream order)
    word_trailer: np.ndarray  # True for trailer words, False for bias words
    slot: np.ndarray          # [core][core-local kernel] -> output slot
    kernels_per_core: int
    superblocks: int


@lru_cache(maxsize=128)
def _layout(shape: KernelShape, cores: int, patches: bool) -> _Layout:
    """Stream order, word positions and slots of every core's kernels."""
    kpc = -(-shape.out_channels // cores)
    per_sb = shape.per_superblock
    superblocks = -(-kpc // per_sb)
    z, area = shape.kernel_z, shape.kernel_x * shape.kernel_y
    size = z * area
    sl = np.array(slice_order(shape.kernel_y, shape.kernel_x, patches), np.int64)
    kind = ordering(shape)
    pieces = []
    slot = np.empty((cores, kpc), np.int64)
    for s in range(superblocks):
        first = s * per_sb
        kis = min(per_sb, kpc - first)
        local = np.arange(first, first + kis, dtype=np.int64)           # core-local kernels of the superblock
        slot[:, first:first + kis] = np.arange(cores)[:, None] * kis + (local - first)[None, :] + s * per_sb * cores
        if kind == ORDER_POINTWISE:
            # For each block of channels, each kernel's channels of the block: the full blocks
            # ([block][kernel][channel]), then the partial last one.
            full = z - z % POINTWISE_Z_BLOCK
            blocks = np.arange(full, dtype=np.int64).reshape(-1, POINTWISE_Z_BLOCK)
            pieces.append((local[None, :, None] * size + blocks[:, None, :]).ravel())
            pieces.append((local[:, None] * size + np.arange(full, z, dtype=np.int64)[None, :]).ravel())
        else:  # interleaved (for each channel, each kernel's slice); sequential is the same with one channel
            pieces.append((local[None, :, None] * size + np.arange(z)[:, None, None] * area
                           + sl[None, None, :]).ravel())
    order = np.concatenate(pieces)               # stream weight t -> core-local kernel * size + (z, y, x)
    # Each kernel's bias word follows its first weight in stream order, its trailer word its last.
    kernel = order // size
    t = np.arange(order.size, dtype=np.int64)
    first_at = np.full(kpc, order.size, np.int64)
    last_at = np.full(kpc, -1, np.int64)
    np.minimum.at(first_at, kernel, t)
    np.maximum.at(last_at, kernel, t)
    after = np.concatenate((first_at + 1, last_at + 1))
    is_trailer = np.concatenate((np.zeros(kpc, bool), np.ones(kpc, bool)))
    which = np.concatenate((np.arange(kpc), np.arange(kpc)))
    rank = np.lexsort((is_trailer, after))           # by position; a bias before a trailer at the same one
    after, is_trailer, which = after[rank], is_trailer[rank], which[rank]
    segments = np.diff(after, prepend=0)
    # Kept as int32 (a decode has at most MAX_DECODED_WEIGHTS weights): big layers' layouts stay small.
    within = (order - kernel * size).astype(np.int32)
    kernel = kernel.astype(np.int32)
    first_weight = slot * size
    for a in (kernel, within, first_weight, segments, which, is_trailer, slot):
        a.flags.writeable = False
    return _Layout(kernel, within, first_weight, segments, which, is_trailer, slot, kpc, superblocks)


def decode_v7(buf: bytes | np.ndarray, desc: Mapping[str, int], target: Target,
              job: str = "coefficients") -> DecodedCoefficients:
    """The kernels a v7 NN job reads from ``buf`` (SimError naming ``job`` when it cannot be read)."""
    shape = KernelShape.of(desc)
    shape.check(target, job)
    cores = shape.cores_used(target)
    kpc = -(-shape.out_channels // cores)
    check_weight_count(cores * kpc * shape.kernel_z * shape.kernel_x * shape.kernel_y, job)
    data = as_array(buf)
    total = buffer_size_v7(data, target, job)
    if total > data.size:
        raise SimError(f"{job}: size table announces {total} bytes, the buffer holds {data.size}")
    patches = ordering(shape) != ORDER_SEQUENTIAL or desc["in_image_x_size"] > target.max_tile_x
    zero_point = desc["coef_zero_point"]
    used = data[:total]
    return _CACHE.get(used, (shape, patches, zero_point, target),
                      lambda: _decode(used, shape, patches, zero_point, target, job))


def _core_sizes(data: np.ndarray, cores: int, shape: KernelShape, target: Target, job: str) -> list[int]:
    table = core_size_table(target)
    row = table.unpack(data[:table.size].tobytes())
    sizes = [row[f"core{c}_bytes"] for c in range(target.nn_cores)]
    for c, size in enumerate(sizes):
        if c < cores and (size <= 0 or size % target.coef_align):
            raise SimError(f"{job}: core {c} stream size {size} is not a positive multiple of {target.coef_align}")
        if c >= cores and size:
            raise SimError(f"{job}: core {c} has a {size}-byte stream but only {cores} cores serve "
                           f"{shape.out_channels} output channels")
    return sizes


def _decode(data: np.ndarray, shape: KernelShape, patches: bool, zero_point: int, target: Target,
            job: str) -> DecodedCoefficients:
    cores = shape.cores_used(target)
    sizes = _core_sizes(data, cores, shape, target, job)
    table_bytes = core_size_table(target).size
    starts = table_bytes + np.concatenate(([0], np.cumsum(sizes[:cores])[:-1])).astype(np.int64)
    ends = starts + np.array(sizes[:cores], np.int64)
    kpc = -(-shape.out_channels // cores)
    zrl = None
    for c in range(cores):
        head = STREAM_HEADER.unpack(data[starts[c]:starts[c] + STREAM_HEADER.size].tobytes())
        if zrl is None:
            zrl = head["zrl_bits"]
        elif head["zrl_bits"] != zrl:
            raise SimError(f"{job}: core {c} uses {head['zrl_bits']} zero-run bits, core 0 uses {zrl}")
        if head["kernels_per_core"] != kpc:
            raise SimError(f"{job}: core {c} stream carries {head['kernels_per_core']} kernels, the descriptor's "
                           f"{shape.out_channels} output channels need {kpc} per core")
    if zrl > target.zrl_bits_max:
        raise SimError(f"{job}: zero-run width {zrl} exceeds the core's {target.zrl_bits_max} bits")
    pair_bits = zrl + VALUE_BITS
    size = shape.kernel_z * shape.kernel_y * shape.kernel_x
    n = kpc * size
    # The fewest bits the weights and the two words per kernel can take; shorter streams are
    # refused before any work.
    fewest = STREAM_HEADER_BITS + 2 * kpc * WORD_BITS + -(-n // (1 << zrl)) * pair_bits
    if fewest > 8 * int((ends - starts).min()):
        raise SimError(f"{job}: {n} weights per core cannot fit a {int((ends - starts).min())}-byte stream")
    layout = _layout(shape, cores, patches)
    reader = BitReader(data)
    first_bit = 8 * starts + STREAM_HEADER_BITS
    end_bit = 8 * ends
    slots = cores * kpc
    weights = np.full(slots * size, zero_point, np.uint8)
    # Stream weight t of core c is weight ``within[t]`` of the core's kernel ``kernel[t]``.
    if zrl == 0:
        values, word_at = _plain(data, first_bit, end_bit, layout, job)              # [core][t]
        weights[layout.first_weight[:, layout.kernel] + layout.within[None, :]] = values
    else:
        core, t, values, word_at = _zero_runs(reader, first_bit, end_bit, layout, zrl, job)
        weights[layout.first_weight[core, layout.kernel[t]] + layout.within[t]] = values
    weights = weights.reshape(slots, shape.kernel_z, shape.kernel_y, shape.kernel_x)
    words = reader.read(word_at, WORD_BITS).astype(np.uint32)            # [word][core]
    word_slot = layout.slot[:, layout.word_kernel].T                     # [word][core]
    biases = np.zeros(slots, np.uint32)
    trailers = np.zeros(slots, np.uint32)
    bias_rows, trailer_rows = ~layout.word_trailer, layout.word_trailer
    biases[word_slot[bias_rows].ravel()] = words[bias_rows].ravel()
    trailers[word_slot[trailer_rows].ravel()] = words[trailer_rows].ravel()
    frozen(weights, biases, trailers)
    return DecodedCoefficients(weights=weights, biases=biases, trailers=trailers, out_channels=shape.out_channels,
                               cores_used=cores, superblocks=layout.superblocks,
                               total_bytes=table_bytes + sum(sizes), zrl_bits=zrl, ordering=ordering(shape),
                               core_bytes=tuple(sizes))


def _plain(data: np.ndarray, first_bit: np.ndarray, end_bit: np.ndarray, layout: _Layout,
           job: str) -> tuple[np.ndarray, np.ndarray]:
    """Zero-run width 0: every pair is one 8-bit weight, so every field's place is known (all byte aligned).

    Returns the weights ([core][stream position]) and the words' bit positions ([word][core]).
    """
    n = layout.kernel.size
    weights_before = np.cumsum(layout.segments)                               # weights before word i
    word_at = (first_bit[None, :] + VALUE_BITS * weights_before[:, None]
               + WORD_BITS * np.arange(layout.segments.size)[:, None])       # [word][core]
    last = word_at[-1] + WORD_BITS
    if (last > end_bit).any():
        c = int(np.argmax(last > end_bit))
        raise SimError(f"{job}: core {c} stream ends before its word {layout.segments.size - 1}")
    t = np.arange(n, dtype=np.int64)
    words_passed = np.searchsorted(weights_before, t, side="right")          # words before weight t
    offsets = VALUE_BITS * t + WORD_BITS * words_passed                     # from the first pair
    return data[(first_bit[:, None] + offsets[None, :]) >> 3], word_at


def _zero_runs(reader: BitReader, first_bit: np.ndarray, end_bit: np.ndarray, layout: _Layout, zrl: int,
               job: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Follow every core's pairs segment by segment, then read and expand them all.

    Returns each pair value's core, its position in the core's stream and the value, and the
    words' bit positions ([word][core]).
    """
    pair_bits = zrl + VALUE_BITS
    cores = first_bit.size
    nwords = layout.segments.size
    seg_first = np.zeros((nwords, cores), np.int64)
    seg_pairs = np.zeros((nwords, cores), np.int64)
    word_at = np.zeros((nwords, cores), np.int64)
    cur = first_bit.copy()
    step = np.arange(min(max(int(layout.segments.max()), 1), _MAX_CHUNK), dtype=np.int64) * pair_bits
    for i, need in enumerate(layout.segments.tolist()):
        if need:
            pairs = _segment_pairs(reader, cur, end_bit, int(need), zrl, step, i, job)
            seg_first[i], seg_pairs[i] = cur, pairs
            cur = cur + pairs * pair_bits
        over = cur + WORD_BITS > end_bit
        if over.any():
            c = int(np.argmax(over))
            raise SimError(f"{job}: core {c} stream ends before its word {i} (bit {int(cur[c])})")
        word_at[i] = cur
        cur = cur + WORD_BITS
    # Every pair's position, core by core in stream order.
    counts = seg_pairs.T.ravel()
    total = int(counts.sum())
    begin = np.repeat(seg_first.T.ravel(), counts)
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    at = begin + within * pair_bits
    runs = reader.read(at, zrl)
    values = reader.read(at + zrl, VALUE_BITS).astype(np.uint8)
    # A pair's value ends its run: its stream position is the running weight count minus one.
    # Each core's pairs hold exactly its n weights, so counting over all cores, core by core,
    # gives core * n + position.
    core = np.repeat(np.arange(cores, dtype=np.int64), seg_pairs.sum(axis=0))
    at_weight = np.cumsum(runs + 1) - 1 - core * layout.kernel.size
    return core, at_weight, values, word_at


def _segment_pairs(reader: BitReader, cur: np.ndarray, end_bit: np.ndarray, need: int, zrl: int,
                   step: np.ndarray, word: int, job: str) -> np.ndarray:
    """Pairs every core's segment starting at ``cur`` takes to hold exactly ``need`` weights."""
    pair_bits = zrl + VALUE_BITS
    cores = cur.size
    pairs = np.zeros(cores, np.int64)
    have = np.zeros(cores, np.int64)
    done = np.zeros(cores, bool)
    pos = cur.copy()
    chunk = min(need, _FIRST_CHUNK)
    while True:
        counts = reader.read(pos[:, None] + step[None, :chunk], zrl) + 1       # [core][pair]
        running = np.cumsum(counts, axis=1) + have[:, None]
        reached = (running[:, -1] >= need) & ~done
        if reached.any():
            k = np.argmax(running >= need, axis=1)
            beyond = reached & (pos + (k + 1) * pair_bits > end_bit)
            if beyond.any():
                c = int(np.argmax(beyond))
                raise SimError(f"{job}: core {c} stream ends before the weights of its word {word}")
            exact = running[np.arange(cores), k] == need
            bad = reached & ~exact
            if bad.any():
                c = int(np.argmax(bad))
                raise SimError(f"{job}: core {c} stream: zero runs do not end at word {word} "
                               f"(a run crosses it)")
            pairs = np.where(reached, pairs + k + 1, pairs)
            done |= reached
        if done.all():
            return pairs
        going = ~done
        pairs = np.where(going, pairs + chunk, pairs)
        have = np.where(going, running[:, -1], have)
        pos = np.where(going, pos + chunk * pair_bits, pos)
        past = going & (pos > end_bit)
        if past.any():
            c = int(np.argmax(past))
            raise SimError(f"{job}: core {c} stream ends before the weights of its word {word}")
        chunk = min(2 * chunk, need, _MAX_CHUNK)
