"""The v8 NN cores' coefficient buffers (Huffman-style coded weights), both directions.

Source: ../shared/docs/vipnano-nn.md section 4.2 and Mesa's v8 writer
(``etnaviv_ml_nn_v8.c``, facts only), checked bit for bit against Mesa's
golden i.MX 8M Plus submits (every weight, bias and stream length decodes,
and re-encoding with Mesa's symbol map gives Mesa's bytes); the layouts,
constants and code book are declared in :mod:`npuc.hw.coef_v8`.  A buffer is

* a 64-byte header (:data:`HEADER`): format version 1, a symbol map (the bit
  length each of the 8 code-book symbols stands for) and, per NN core, the
  length of its stream in bits;
* one stream per core used (``min(out channels, nn_cores)``), each padded to
  64 bytes: the core's kernel count as two bytes, then the weights of its
  kernels, superblock by superblock, in blocks of 9 values (a kernel's
  block ``b`` for every kernel of the superblock, then block ``b + 1`` ...);
* the 32-bit bias words, one per output channel, uncompressed.

There are no per-kernel words: the hardware writes output channel ``o`` at
plane ``o`` of the output (descriptor ``no_z_offset`` = 1), and which channel
each kernel of a stream is follows from the descriptor alone
(:func:`kernel_channels`).  Depthwise jobs (descriptor ``depthwise``) carry one
input channel per kernel, distributed over the cores in Mesa's strided
reverse order.

Every byte (a weight minus the coefficient zero point, modulo 256, on cores
that code deltas; the raw weight otherwise) is coded as a sign, a magnitude
bit length ``n`` (the one's complement of negative bytes) and the magnitude
without its leading one.  The symbol map assigns each bit length 0..7 to one
of 8 prefix codes of 2 to 5 bits (:data:`CODE_BOOK`); a code's fixed 3-bit
part, its optional 2-bit part and its variable-length payload travel in a
3-deep pipeline: step ``k`` of the stream holds the 3-bit parts of pair ``k``,
the 2-bit parts of pair ``k - 1`` and the payloads of pair ``k - 2`` (two
bytes per pair), and two dummy pairs drain it.  Everything is packed LSB first
into little-endian 32-bit words.

The encoder picks the symbol map per buffer: code lengths are fixed per
symbol, so giving the most frequent bit lengths the shortest codes (a sort of
the histogram of the values actually coded) gives the smallest stream.  Mesa
sorts a histogram of the raw weights instead (its source marks it FIXME),
which gives the 2-bit codes to bit length 7 on uint8 models.

Encoding: the kernels are put in stream order by reshaping (depthwise ones by
their channel order), with each core's two count bytes, its pad byte and the
two dummy pairs, into one byte array for all cores.  A plan needs only each
core's histogram of magnitude bit lengths (a stream's length is a sum over
its bytes); it keeps the caller's weights, and packing builds the bytes
again, looks every pair up in 65536-entry tables (its two part0s, part1s and
payloads with their widths) and places each step (at most
:data:`MAX_STEP_BITS` bits) with :func:`npuc.coefs.bits.or_stream`.

Decoding: a step's length depends on the codes of the two steps before it, so
finding the steps is a sequential scan (one small loop per step over
precomputed tables); reading the fields at the found positions and turning
them into weights is vectorised.  Malformed buffers
raise :class:`CoefficientError` naming the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import numpy as np

from ..errors import CoefficientError
from ..hw.coef_v8 import (BIAS_BYTES, BIT_LENGTHS, BLOCK, CODE_BOOK, ESCAPE, FORMAT_VERSION, HEADER, HEADER_BYTES,
                          MAX_CORES, MAX_STEP_BITS, PART0_BITS, PART1_BITS, FREE_PART0, FREE_PART1, MAP_NIBBLE,
                          STEP_HEAD_BITS, STREAM_PAD_BYTES, SYMBOLS, UNMODELLED_HEADER)
from ..hw.target import Target
from .bits import or_stream, units
from .buffers import Buffer, as_bytes
from .geometry import DecodedKernels, KernelGeometry, check_kernel_fields

__all__ = ["HuffmanCodec", "HuffmanPlan", "plan_coefficients", "encode_coefficients", "decode_coefficients",
           "buffer_size", "check_geometry", "kernel_channels", "coded_bytes", "best_symbol_map", "parse_symbol_map",
           "pack_symbol_map", "HEADER", "HEADER_BYTES", "BIT_LENGTHS", "CODE_BOOK", "MAX_STEP_BITS"]


def _symbol_of_parts() -> tuple[list[int], list[int]]:
    """symbol by part0 (for non-escape codes) and by part1 (escapes), from the code book."""
    by_part0, by_part1 = [-1] * 8, [-1] * 4
    for sym, code in enumerate(CODE_BOOK):
        if code.part1 is None:
            for free in ((0, FREE_PART0) if code.free == "part0" else (0,)):
                by_part0[code.part0 | free] = sym
        else:
            for free in ((0, FREE_PART1) if code.free == "part1" else (0,)):
                by_part1[code.part1 | free] = sym
    assert -1 not in by_part0[:ESCAPE] + by_part0[ESCAPE + 1:] and -1 not in by_part1
    return by_part0, by_part1


_SYM_BY_PART0, _SYM_BY_PART1 = _symbol_of_parts()


# -- stream structure ---------------------------------------------------------------------------


#: Most coefficient values one decode may produce (all cores): far above MobileNet's largest layer (1 M).
MAX_DECODED_VALUES = 1 << 25


def check_geometry(geo: KernelGeometry, target: Target, job: str) -> None:
    """Refuse shapes the format (or the simulator's memory) cannot hold (CoefficientError naming ``job``)."""
    check_kernel_fields(geo, target, job)
    if geo.depthwise and geo.kernel_z != geo.out_channels:
        raise CoefficientError(f"{job}: depthwise job with {geo.kernel_z} input and {geo.out_channels} output "
                               f"channels")
    if geo.depthwise and 1 < geo.out_channels < target.nn_cores:
        raise CoefficientError(f"{job}: depthwise kernels of {geo.out_channels} channels over {target.nn_cores} "
                               f"cores have no known distribution (Mesa's formula gives channels outside the layer)")
    values = geo.out_channels * geo.superblocks(target) * geo.block_stride * geo.blocks
    if values > MAX_DECODED_VALUES:
        raise CoefficientError(f"{job}: {values} coefficients exceed the simulator's limit of {MAX_DECODED_VALUES}")


def _last_counts(geo: KernelGeometry, target: Target) -> list[int]:
    """Kernels of each core in the last superblock: the rest split as evenly as possible (lower cores first)."""
    cores, full, sbs = geo.cores_used(target), geo.kernels_per_superblock, geo.superblocks(target)
    rest = geo.out_channels - cores * (sbs - 1) * full
    return [rest // cores + (c < rest % cores) for c in range(cores)]


def kernel_channels(geo: KernelGeometry, target: Target) -> list[list[np.ndarray]]:
    """[core][superblock] -> the output channels of that core's kernels in that superblock, in stream order.

    Superblock ``s`` holds ``kernels_per_superblock`` kernels per core, the
    last one the rest split as evenly as possible (lower cores first).
    Regular kernels: each core takes the next consecutive run of channels,
    superblock ``s`` starting at ``s * kernels_per_superblock * cores``.
    Depthwise kernels: core ``c`` takes every ``nn_cores``-th channel from
    ``cores - 1 - c + s * kernels_per_superblock * cores``, the channels past the
    last full round of cores moved back by the cores they lack (Mesa's order;
    a bijection whenever there are at least as many channels as cores).
    """
    cores, full, sbs = geo.cores_used(target), geo.kernels_per_superblock, geo.superblocks(target)
    oc, n = geo.out_channels, target.nn_cores
    last = _last_counts(geo, target)
    out: list[list[np.ndarray]] = [[] for _ in range(cores)]
    for s in range(sbs):
        base = s * full * cores
        for c in range(cores):
            count = full if s < sbs - 1 else last[c]
            k = np.arange(count, dtype=np.int64)
            if geo.depthwise:
                ch = cores - 1 - c + base + k * n
                if oc > 1:
                    ch = np.where(ch >= oc - oc % n, ch - (n - oc % n), ch)
            else:
                ch = base + k
                base += count
            out[c].append(ch)
    return out


@dataclass(frozen=True, eq=False)
class _Layout:
    """Where each core's bytes go in the all-cores byte array: its two count bytes at ``starts[c]``, its
    ``lengths[c]`` kernel values, a pad byte if that makes an odd count, then two dummy pairs (4 bytes)."""

    counts: tuple[int, ...]     # per core: its kernel count (the stream's first two bytes)
    lengths: tuple[int, ...]    # per core: values coded (padding included), without count, pad and dummies
    starts: tuple[int, ...]     # per core: offset of its first byte
    size: int                   # bytes of all cores
    depthwise_order: np.ndarray | None  # depthwise: the channels in stream order, all cores


DUMMY_BYTES = 4


@lru_cache(maxsize=256)
def _layout(kx: int, ky: int, z: int, oc: int, sb_size: int, depthwise: bool, target: Target) -> _Layout:
    geo = KernelGeometry(kernel_x=kx, kernel_y=ky, kernel_z=z, out_channels=oc, kernels_per_superblock=sb_size,
                         depthwise=depthwise)
    cores, sbs = geo.cores_used(target), geo.superblocks(target)
    per_kernel = geo.blocks * geo.block_stride
    lengths = tuple(((sbs - 1) * sb_size + last) * per_kernel for last in _last_counts(geo, target))
    starts, at = [], 0
    for length in lengths:
        starts.append(at)
        at += 2 + length + (length & 1) + DUMMY_BYTES
    order = None
    if depthwise:
        order = np.concatenate([ch for core in kernel_channels(geo, target) for ch in core])
    return _Layout(tuple(geo.kernels_on_core(target, c) for c in range(cores)), lengths, tuple(starts), at, order)


def _layout_of(geo: KernelGeometry, target: Target) -> _Layout:
    return _layout(geo.kernel_x, geo.kernel_y, geo.kernel_z, geo.out_channels, geo.kernels_per_superblock,
                   geo.depthwise, target)


def _fill_blocks(dest: np.ndarray, src: np.ndarray, pad: int) -> None:
    """dest [superblocks][block][kernel][9] <- src [superblocks][kernel][values]: blocks of 9 values, the
    last one padded."""
    blocks = dest.shape[1]
    head = (blocks - 1) * BLOCK
    rest = src.shape[2] - head
    if blocks > 1:
        units(dest[:, :blocks - 1])[...] = units(
            src[:, :, :head].reshape(src.shape[0], src.shape[1], blocks - 1, BLOCK)).transpose(0, 2, 1)
    dest[:, blocks - 1, :, :rest] = src[:, :, head:]
    if rest < BLOCK:
        dest[:, blocks - 1, :, rest:] = pad


def _fill(out: np.ndarray, values: np.ndarray, geo: KernelGeometry, target: Target, lay: _Layout, pad: int) -> None:
    """Write every core's kernel values (``values`` [out_channels][kernel_values], any dtype) in stream order
    into ``out`` (bytes 2.. of each core), padding with ``pad``."""
    cores, full, sbs = geo.cores_used(target), geo.kernels_per_superblock, geo.superblocks(target)
    stride, blocks = geo.block_stride, geo.blocks
    kv = values.shape[1]
    if geo.depthwise:  # one block per kernel, in the channels' order
        assert lay.depthwise_order is not None
        at = 0
        for c in range(cores):
            kernels = lay.lengths[c] // stride
            dest = out[lay.starts[c] + 2:lay.starts[c] + 2 + lay.lengths[c]].reshape(kernels, stride)
            units(dest[:, :kv])[...] = units(values)[lay.depthwise_order[at:at + kernels]]
            if kv < stride:
                dest[:, kv:] = pad
            at += kernels
        return
    regular = values[:(sbs - 1) * full * cores].reshape(sbs - 1, cores, full, kv)
    channel = (sbs - 1) * full * cores
    for c in range(cores):
        at = lay.starts[c] + 2
        if sbs > 1:
            span = (sbs - 1) * blocks * full * stride
            _fill_blocks(out[at:at + span].reshape(sbs - 1, blocks, full, stride), regular[:, c], pad)
            at += span
        count = lay.lengths[c] // (blocks * stride) - (sbs - 1) * full
        _fill_blocks(out[at:at + blocks * count * stride].reshape(1, blocks, count, stride),
                     values[None, channel:channel + count], pad)
        channel += count


def _value_index(geo: KernelGeometry, target: Target, lay: _Layout) -> list[np.ndarray]:
    """Per core: the flat index into [out_channels][kernel_values] of every value it codes, -1 for padding."""
    out = np.full(lay.size, -1, np.int64)
    _fill(out, np.arange(geo.out_channels * geo.kernel_values, dtype=np.int64).reshape(geo.out_channels, -1),
          geo, target, lay, -1)
    return [out[s + 2:s + 2 + n] for s, n in zip(lay.starts, lay.lengths)]


# -- code tables ---------------------------------------------------------------------------------


_BIT_LENGTH = np.array([int(v).bit_length() for v in range(256)], dtype=np.int64)
#: Bit length of each byte's magnitude (negative bytes by their one's complement).
_LENGTH_OF_BYTE = np.array([int(v if v < 128 else 255 - v).bit_length() for v in range(256)], dtype=np.uint8)


def _magnitudes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sign, magnitude, bit length) of coded bytes: negative bytes by their one's complement."""
    v = values.astype(np.int64)
    sign = v >> 7
    mag = np.where(sign == 1, 255 - v, v)
    return sign, mag, _BIT_LENGTH[mag]


def parse_symbol_map(word: int) -> tuple[int, ...] | None:
    """Bit length per symbol from the header word, or None unless it assigns each of 0..7 once."""
    lengths = tuple((word >> (MAP_NIBBLE * s)) & ((1 << MAP_NIBBLE) - 1) for s in range(SYMBOLS))
    return lengths if sorted(lengths) == list(range(BIT_LENGTHS)) else None


def pack_symbol_map(lengths: tuple[int, ...]) -> int:
    return sum(n << (MAP_NIBBLE * s) for s, n in enumerate(lengths))


@dataclass(frozen=True)
class _ByteCodes:
    """How each of the 256 byte values is coded under one symbol map (arrays indexed by the byte)."""

    part0: np.ndarray
    part1: np.ndarray
    part1_bits: np.ndarray
    part2: np.ndarray
    part2_bits: np.ndarray


@lru_cache(maxsize=64)
def _byte_codes(lengths: tuple[int, ...]) -> _ByteCodes:
    symbol_of_length = {n: s for s, n in enumerate(lengths)}
    sign, mag, n = _magnitudes(np.arange(256))
    payload = ((mag & ~(1 << np.maximum(n - 1, 0))) << 1) | sign   # leading one dropped, sign as the lsb
    width = np.maximum(n, 1)
    out = {k: np.zeros(256, np.int64) for k in ("part0", "part1", "part1_bits", "part2", "part2_bits")}
    for b in range(256):
        code = CODE_BOOK[symbol_of_length[int(n[b])]]
        p, lsb = int(payload[b]), int(payload[b]) & 1
        out["part0"][b] = code.part0 | (FREE_PART0 * lsb if code.free == "part0" else 0)
        if code.part1 is not None:
            out["part1"][b] = code.part1 | (FREE_PART1 * lsb if code.free == "part1" else 0)
            out["part1_bits"][b] = PART1_BITS
        out["part2"][b] = p >> 1 if code.free else p
        out["part2_bits"][b] = width[b] - (1 if code.free else 0)
    return _ByteCodes(**out)


#: Where :func:`_pair_codes` puts each part in its 64-bit entries: bytes 0..3 and the 16-bit word 2.
PAIR_PART0, PAIR_PART1, PAIR_PART1_BITS, PAIR_PART2_BITS, PAIR_PART2 = 0, 1, 2, 3, 2


@lru_cache(maxsize=64)
def _pair_codes(lengths: tuple[int, ...]) -> np.ndarray:
    """How each pair of bytes (``first | second << 8``) is coded under one symbol map, one little-endian
    uint64 each: its two part0s (6 bits), its part1s and their width, its payloads' width (bytes 0..3) and its
    payloads (16-bit word 2).  The second byte's part1 and payload follow the first's."""
    b = _byte_codes(lengths)
    u32 = np.uint32
    low = (b.part0 << 8 * PAIR_PART0 | b.part1 << 8 * PAIR_PART1 | b.part1_bits << 8 * PAIR_PART1_BITS
           | b.part2_bits << 8 * PAIR_PART2_BITS).astype(u32)[None, :]               # [.][first]
    # The second byte: its part0 above the first's, its widths added to the first's, its part1 and payload
    # shifted by the first's widths.
    low = low + (b.part0 << 8 * PAIR_PART0 + PART0_BITS | b.part1_bits << 8 * PAIR_PART1_BITS
                 | b.part2_bits << 8 * PAIR_PART2_BITS).astype(u32)[:, None]         # [second][first]
    low |= (b.part1.astype(u32) << u32(8 * PAIR_PART1))[:, None] << b.part1_bits.astype(u32)[None, :]
    high = b.part2.astype(u32)[None, :] | b.part2.astype(u32)[:, None] << b.part2_bits.astype(u32)[None, :]
    table = np.empty((1 << 16, 2), "<u4")
    table[:, 0] = low.ravel()
    table[:, 1] = high.ravel() << u32(16 * PAIR_PART2 - 32)
    return table.view("<u8").ravel()


def _map_for(counts: np.ndarray) -> tuple[int, ...]:
    """The bit length per symbol that codes bytes with ``counts`` of each bit length in the fewest bits.

    A byte of bit length n costs ``max(n, 1) + extra_bits(symbol)``, so the
    most frequent lengths take the symbols with the fewest extra bits (ties:
    the shorter length first, as any order among equals costs the same).
    """
    by_frequency = sorted(range(BIT_LENGTHS), key=lambda n: (-int(counts[n]), n))
    symbols = sorted(range(SYMBOLS), key=lambda s: (CODE_BOOK[s].extra_bits, s))
    lengths = [0] * SYMBOLS
    for s, n in zip(symbols, by_frequency):
        lengths[s] = n
    return tuple(lengths)


def best_symbol_map(values: np.ndarray) -> tuple[int, ...]:
    """The bit length per symbol that codes the bytes ``values`` in the fewest bits (see :func:`_map_for`)."""
    return _map_for(np.bincount(_LENGTH_OF_BYTE[np.asarray(values, np.uint8)], minlength=BIT_LENGTHS))


def _byte_bits(lengths: tuple[int, ...]) -> np.ndarray:
    """Bits a byte of each bit length takes under ``lengths`` (its part0, part1 and payload)."""
    out = np.zeros(BIT_LENGTHS, np.int64)
    for s, n in enumerate(lengths):
        out[n] = max(n, 1) + CODE_BOOK[s].extra_bits
    return out


# -- encoding ------------------------------------------------------------------------------------


def _coded(weights: np.ndarray, geo: KernelGeometry, target: Target, lay: _Layout) -> np.ndarray:
    """All cores' coded bytes: per core its kernel count, values, an even-count pad and two dummy pairs (0)."""
    flat = weights.reshape(geo.out_channels, -1)
    if target.coef_delta_zero_point:
        # Padding positions hold the zero point, which codes as the delta 0.
        values, pad = np.subtract(flat, np.uint8(geo.zero_point & 0xFF), dtype=np.uint8), 0
    else:
        values, pad = flat, geo.zero_point
    out = np.zeros(lay.size, np.uint8)
    for start, count in zip(lay.starts, lay.counts):
        out[start], out[start + 1] = count & 0xFF, count >> 8
    _fill(out, values, geo, target, lay, pad)
    return out


def coded_bytes(weights: np.ndarray, geo: KernelGeometry, target: Target) -> list[np.ndarray]:
    """Per core: the bytes its stream codes (kernel count, values, an even-count pad), in stream order."""
    lay = _layout_of(geo, target)
    coded = _coded(np.asarray(weights, dtype=np.uint8), geo, target, lay)
    return [coded[s:s + 2 + n + (n & 1)] for s, n in zip(lay.starts, lay.lengths)]


def plan_coefficients(weights: np.ndarray, biases: np.ndarray, geo: KernelGeometry, target: Target,
                      symbol_map: tuple[int, ...] | None = None) -> "HuffmanPlan":
    """Plan the v8 coefficient buffer that the job described by ``geo`` reads.

    ``weights`` is [out_channels][kernel_channels][kernel_y][kernel_x] stored
    uint8 bytes (``geo.zero_point`` meaning real zero; one channel for
    depthwise), ``biases`` the 32-bit bias words per output channel.
    ``symbol_map`` (bit length per symbol) None picks the smallest stream's.
    The plan keeps ``weights`` (not a copy): do not change them before packing.
    """
    weights = np.asarray(weights, dtype=np.uint8)
    shape = (geo.out_channels, geo.kernel_channels, geo.kernel_y, geo.kernel_x)
    if weights.shape != shape or np.shape(biases) != (geo.out_channels,):
        raise ValueError(f"v8 coefficients: expected weights {shape} and {geo.out_channels} biases, "
                         f"got {weights.shape}, {np.shape(biases)}")
    if geo.cores_used(target) > MAX_CORES:
        raise ValueError(f"v8 coefficients: the header holds {MAX_CORES} stream lengths, "
                         f"target {target.name} has {target.nn_cores} cores")
    lay = _layout_of(geo, target)
    coded = _coded(weights, geo, target, lay)
    magnitudes = np.minimum(coded, ~coded)   # negative bytes by their one's complement
    del coded
    # Bytes of each core whose magnitude has at least n bits (n = 0..8), by thresholds.
    at_least = np.zeros((len(lay.starts), BIT_LENGTHS + 1), np.int64)
    at_least[:, 0] = [2 + n + (n & 1) for n in lay.lengths]
    for n in range(1, BIT_LENGTHS):
        above = magnitudes >= (1 << (n - 1))
        at_least[:, n] = [np.count_nonzero(above[s:s + 2 + k + (k & 1)]) for s, k in zip(lay.starts, lay.lengths)]
    counts = at_least[:, :-1] - at_least[:, 1:]                            # [core][bit length]
    del magnitudes
    if symbol_map is None:
        symbol_map = _map_for(counts.sum(axis=0))
    symbol_map = tuple(symbol_map)
    # Two dummy steps of two 3-bit part0s drain the pipeline.
    core_bits = counts @ _byte_bits(symbol_map) + 2 * STEP_HEAD_BITS
    return HuffmanPlan(geo=geo, target=target, weights=weights, biases=np.asarray(biases).astype(np.uint32),
                       symbol_map=symbol_map, core_bits=core_bits)


@dataclass(frozen=True)
class HuffmanPlan:
    """A planned v8 coefficient buffer: sizes known, bits packed on demand (:meth:`pack`), not kept."""

    geo: KernelGeometry
    target: Target
    weights: np.ndarray     # the caller's [out_channels][kernel_channels][y][x] (a reference)
    biases: np.ndarray      # uint32 per output channel
    symbol_map: tuple[int, ...]
    core_bits: np.ndarray   # per core used: its stream's length in bits

    @property
    def core_bytes(self) -> np.ndarray:
        """Bytes of each core's padded stream."""
        return -(-self.core_bits // (8 * STREAM_PAD_BYTES)) * STREAM_PAD_BYTES

    @property
    def total_bytes(self) -> int:
        return HEADER_BYTES + int(self.core_bytes.sum()) + BIAS_BYTES * self.geo.out_channels

    @property
    def cache_bytes(self) -> int:
        """What an SRAM kernel cache would hold: the whole buffer, header and biases included (Mesa's figure)."""
        return self.total_bytes

    def pack(self) -> bytes:
        return _pack(self)


def encode_coefficients(weights: np.ndarray, biases: np.ndarray, geo: KernelGeometry, target: Target,
                        symbol_map: tuple[int, ...] | None = None) -> bytes:
    """Encode kernels into a v8 coefficient buffer (see :func:`plan_coefficients`)."""
    return plan_coefficients(weights, biases, geo, target, symbol_map).pack()


def _pack(plan: HuffmanPlan) -> bytes:
    geo, target = plan.geo, plan.target
    lay = _layout_of(geo, target)
    table = _pair_codes(plan.symbol_map)
    coded = _coded(plan.weights, geo, target, lay)
    out = np.zeros(plan.total_bytes // 4 + 1, np.uint32)
    header = {"version": FORMAT_VERSION, "symbol_map": pack_symbol_map(plan.symbol_map)}
    header.update({f"stream_bits_{c}": int(b) for c, b in enumerate(plan.core_bits)})
    out[:HEADER.words] = HEADER.pack_words(header)
    base = HEADER_BYTES * 8
    for start, n, size in zip(lay.starts, lay.lengths, plan.core_bytes.tolist()):
        end = start + 2 + n + (n & 1)
        codes = table.take(coded[start:end + DUMMY_BYTES].view("<u2"))   # per pair, then the two dummies
        # Mesa's dummies: part0 4 when the original byte count was odd, else 0 (no part1, no payload).
        codes[-2:] = (FREE_PART0 | FREE_PART0 << PART0_BITS) if n & 1 else 0
        parts = codes.view(np.uint8).reshape(-1, 8)
        part1_bits = parts[:, PAIR_PART1_BITS].copy()
        # Step k: part0s of pair k, part1s of pair k - 1, payloads of pair k - 2.
        steps = parts[:, PAIR_PART0].astype(np.uint64)
        steps[1:] |= parts[:-1, PAIR_PART1].astype(np.uint64) << np.uint64(STEP_HEAD_BITS)
        payloads = codes.view(np.uint16).reshape(-1, 4)[:-2, PAIR_PART2].astype(np.uint64)
        payloads <<= (part1_bits[1:-1] + np.uint8(STEP_HEAD_BITS)).astype(np.uint64)
        steps[2:] |= payloads
        widths = np.full(steps.size, STEP_HEAD_BITS, np.uint8)
        widths[1:] += part1_bits[:-1]
        widths[2:] += parts[:-2, PAIR_PART2_BITS]
        or_stream(out, base, widths, steps)
        base += size * 8
    out[base // 32:base // 32 + geo.out_channels] = plan.biases
    return out.view(np.uint8)[:plan.total_bytes].tobytes()


# -- decoding ------------------------------------------------------------------------------------


def read_header(data: Buffer, target: Target, job: str) -> dict[str, int]:
    raw = np.frombuffer(as_bytes(data), np.uint8)
    if raw.size < HEADER_BYTES:
        raise CoefficientError(f"{job}: coefficient buffer of {raw.size} bytes is shorter than its "
                               f"{HEADER_BYTES}-byte header")
    return HEADER.unpack(raw[:HEADER_BYTES].tobytes())


def buffer_size(header: Buffer, desc: Mapping[str, int], target: Target, job: str = "coefficients") -> int:
    """Bytes of a v8 coefficient buffer (header, padded streams, biases), from its header and the descriptor."""
    h = read_header(header, target, job)
    cores = min(desc["out_image_z_size"], target.nn_cores, MAX_CORES)
    streams = sum(-(-h[f"stream_bits_{c}"] // (8 * STREAM_PAD_BYTES)) * STREAM_PAD_BYTES for c in range(cores))
    return HEADER_BYTES + streams + BIAS_BYTES * desc["out_image_z_size"]




def decode_coefficients(buf: Buffer, desc: Mapping[str, int], target: Target,
                        job: str = "coefficients") -> DecodedKernels:
    """Decode a v8 coefficient buffer as the NN job described by ``desc`` reads it (CoefficientError naming
    ``job``)."""
    geo = KernelGeometry.from_descriptor(desc)
    geo = KernelGeometry(geo.kernel_x, geo.kernel_y, geo.kernel_z, geo.out_channels, geo.kernels_per_superblock,
                         zero_point=geo.zero_point, depthwise=geo.depthwise)   # in_image_x_size does not matter
    check_geometry(geo, target, job)
    if geo.cores_used(target) > MAX_CORES:
        raise CoefficientError(f"{job}: the coefficient header holds {MAX_CORES} stream lengths, the job uses "
                               f"{geo.cores_used(target)} cores")
    data = np.frombuffer(as_bytes(buf), dtype=np.uint8)
    total = buffer_size(data, desc, target, job)
    if total > data.size:
        raise CoefficientError(f"{job}: header announces {total} bytes, the buffer holds {data.size}")
    used = data[:total]
    return _decode(used, geo, target, job)


@dataclass(frozen=True)
class _ScanTables:
    """Per symbol map: bits of a pair's part1s by its part0s, bits of its payloads by part0s and part1s."""

    part1_bits: list[int]    # [part0 pair (6 bits), or SENTINEL] -> bits
    part2_bits: list[int]    # [(part0 pair << 4) | part1 bits] -> bits
    symbol: np.ndarray       # [part0 (3 bits) << 2 | part1 (2 bits)] -> symbol
    free: np.ndarray         # same index -> the free bit's value, or -1 if the code has none
    width: np.ndarray        # [symbol] -> payload width (bit length, at least 1)
    length: np.ndarray       # [symbol] -> bit length it stands for


#: Index of the "no pair yet" context in the scan tables (the first two steps read no part1/payload).
SENTINEL = 1 << STEP_HEAD_BITS


@lru_cache(maxsize=64)
def _scan_tables(lengths: tuple[int, ...]) -> _ScanTables:
    symbol = np.zeros(32, np.int64)
    free = np.full(32, -1, np.int64)
    for p0 in range(8):
        for p1 in range(4):
            i = p0 << 2 | p1
            if p0 == ESCAPE:
                s = _SYM_BY_PART1[p1]
                if CODE_BOOK[s].free == "part1":
                    free[i] = p1 >> 1
            else:
                s = _SYM_BY_PART0[p0]
                if CODE_BOOK[s].free == "part0":
                    free[i] = p0 >> 2
            symbol[i] = s
    length = np.array(lengths, np.int64)
    width = np.maximum(length, 1)
    part1_bits = [0] * (SENTINEL + 1)
    part2_bits = [0] * ((SENTINEL + 1) << 4)
    for a in range(SENTINEL):
        first, second = a & 7, a >> 3
        part1_bits[a] = PART1_BITS * ((first == ESCAPE) + (second == ESCAPE))
        for b in range(1 << 4):
            p1_first = b & 3 if first == ESCAPE else 0
            p1_second = (b >> (PART1_BITS if first == ESCAPE else 0)) & 3 if second == ESCAPE else 0
            total = 0
            for p0, p1 in ((first, p1_first), (second, p1_second)):
                i = p0 << 2 | p1
                total += int(width[symbol[i]]) - int(free[i] >= 0)
            part2_bits[a << 4 | b] = total
    return _ScanTables(part1_bits, part2_bits, symbol, free, width, length)


def _scan(windows: list[int], start: int, steps: int, t: _ScanTables) -> tuple[list[int], list[int], int]:
    """Step start positions and the part1 bits read at each step of one core's stream, and its end.

    Step k reads the pair's two part0 (6 bits), the previous pair's part1s
    (their count set by that pair's part0s) and the payloads of the pair before
    (their widths set by its part0s and part1s): a sequential recurrence.
    """
    part1_bits, part2_bits = t.part1_bits, t.part2_bits
    starts, ones = [0] * steps, [0] * steps
    pos, a1, a2, b2 = start, SENTINEL, SENTINEL, 0
    for k in range(steps):
        x = windows[pos >> 5] >> (pos & 31)
        n1 = part1_bits[a1]
        b = (x >> STEP_HEAD_BITS) & ((1 << n1) - 1)
        starts[k], ones[k] = pos, b
        pos += STEP_HEAD_BITS + n1 + part2_bits[a2 << 4 | b2]
        a2, b2, a1 = a1, b, x & (SENTINEL - 1)
    return starts, ones, pos


def _read(words: np.ndarray, pos: np.ndarray, width: np.ndarray | int) -> np.ndarray:
    """Fields of ``width`` (<= 32) bits at bit positions ``pos`` (LSB first)."""
    w = pos >> 5
    pair = words[w].astype(np.uint64) | (words[w + 1].astype(np.uint64) << np.uint64(32))
    mask = (np.uint64(1) << np.asarray(width, dtype=np.uint64)) - np.uint64(1)
    return ((pair >> (pos & 31).astype(np.uint64)) & mask).astype(np.int64)


def _decode_core(words: np.ndarray, windows: list[int], start: int, limit: int, nbytes: int, bits: int,
                 t: _ScanTables, core: int, job: str) -> np.ndarray:
    """The ``nbytes`` bytes one core's stream codes (CoefficientError if it does not end where its header says)."""
    pairs = nbytes // 2
    starts, ones, end = _scan(windows, start, pairs + 2, t)
    if end - start != bits:
        raise CoefficientError(f"{job}: core {core} stream codes {nbytes} bytes in {end - start} bits, its header "
                               f"says {bits}")
    if end > limit:
        raise CoefficientError(f"{job}: core {core} stream runs past its {(limit - start) // 8} bytes")
    s = np.array(starts, np.int64)
    heads = _read(words, s, STEP_HEAD_BITS)                              # part0 pairs of steps 0..pairs+1
    part1 = np.array(ones, np.int64)[1:pairs + 1]                         # part1 bits of pairs 0..pairs-1
    first, second = heads[:pairs] & 7, heads[:pairs] >> 3
    esc_first = first == ESCAPE
    p1_first = np.where(esc_first, part1 & 3, 0)
    p1_second = np.where(second == ESCAPE, (part1 >> np.where(esc_first, PART1_BITS, 0)) & 3, 0)
    part1_len = np.array(t.part1_bits, np.int64)[heads[1:pairs + 1]]
    payload_at = s[2:pairs + 2] + STEP_HEAD_BITS + part1_len             # payloads of pair j: step j + 2
    out = np.empty((pairs, 2), np.int64)
    for half, (p0, p1) in enumerate(((first, p1_first), (second, p1_second))):
        i = p0 << 2 | p1
        sym, free = t.symbol[i], t.free[i]
        bits2 = t.width[sym] - (free >= 0)
        part2 = _read(words, payload_at, bits2)
        payload = np.where(free >= 0, part2 << 1 | np.maximum(free, 0), part2)
        n = t.length[sym]
        magnitude = np.where(n > 0, (1 << np.maximum(n - 1, 0)) | (payload >> 1), 0)
        out[:, half] = np.where(payload & 1, 255 - magnitude, magnitude)
        payload_at = payload_at + bits2
    return out.ravel().astype(np.uint8)


def _decode(data: np.ndarray, geo: KernelGeometry, target: Target, job: str) -> DecodedKernels:
    header = HEADER.unpack(data[:HEADER_BYTES].tobytes())
    if header["version"] != FORMAT_VERSION:
        raise CoefficientError(f"{job}: coefficient format version {header['version']} is not modelled (only "
                               f"{FORMAT_VERSION})")
    for name in UNMODELLED_HEADER:
        if header[name]:
            raise CoefficientError(f"{job}: coefficient header {name}={header[name]} is not modelled (only 0)")
    lengths = parse_symbol_map(header["symbol_map"])
    if lengths is None:
        raise CoefficientError(f"{job}: symbol map 0x{header['symbol_map']:08x} does not give each bit length 0..7 "
                               f"one symbol")
    cores = geo.cores_used(target)
    core_bits = tuple(header[f"stream_bits_{c}"] for c in range(MAX_CORES))
    for c in range(cores, MAX_CORES):
        if core_bits[c]:
            raise CoefficientError(f"{job}: core {c} has a {core_bits[c]}-bit stream but only {cores} cores serve "
                                   f"{geo.out_channels} output channels")
    lay = _layout_of(geo, target)
    value_index = _value_index(geo, target, lay)
    tables = _scan_tables(lengths)
    padded = [-(-core_bits[c] // (8 * STREAM_PAD_BYTES)) * STREAM_PAD_BYTES for c in range(cores)]
    streams_end = HEADER_BYTES + sum(padded)
    # Room for the scan to run past a malformed stream's end without leaving the array (checked after).
    slack = (MAX_STEP_BITS * (max(lay.lengths) // 2 + 4)) // 32 + 2
    words = np.concatenate((data[:streams_end].view("<u4"), np.zeros(slack, np.uint32)))
    windows = (words[:-1].astype(np.uint64) | (words[1:].astype(np.uint64) << np.uint64(32))).tolist()
    flat = np.zeros(geo.out_channels * geo.kernel_values, np.uint8)
    start = HEADER_BYTES * 8
    for c in range(cores):
        index = value_index[c]
        nbytes = index.size + 2 + (index.size % 2)
        values = _decode_core(words, windows, start, start + padded[c] * 8, nbytes, core_bits[c], tables, c, job)
        count = int(values[0]) | int(values[1]) << 8
        if count != lay.counts[c]:
            raise CoefficientError(f"{job}: core {c} stream carries {count} kernels, the descriptor's "
                                   f"{geo.out_channels} output channels put {lay.counts[c]} on it")
        body = values[2:2 + index.size]
        keep = index >= 0
        flat[index[keep]] = body[keep]
        start += padded[c] * 8
    if target.coef_delta_zero_point:
        flat = ((flat.astype(np.int64) + geo.zero_point) & 0xFF).astype(np.uint8)
    weights = flat.reshape(geo.out_channels, geo.kernel_channels, geo.kernel_y, geo.kernel_x)
    biases = data[streams_end:streams_end + BIAS_BYTES * geo.out_channels].view("<u4").astype(np.uint32)
    for a in (weights, biases):
        a.flags.writeable = False
    return DecodedKernels(weights=weights, biases=biases, trailers=None, out_channels=geo.out_channels,
                          cores_used=cores, superblocks=geo.superblocks(target),
                          kernels_per_core=geo.kernels_per_core(target),
                          kernels_per_superblock=geo.kernels_per_superblock, header_bytes=HEADER_BYTES,
                          core_bytes=tuple(padded), total_bytes=streams_end + BIAS_BYTES * geo.out_channels,
                          symbol_map=lengths, core_bits=core_bits[:cores])


# -- the codec -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HuffmanCodec:
    """The v8 prefix-coded format on ``target`` (a :class:`npuc.coefs.codec.Codec`)."""

    target: Target

    @property
    def header_bytes(self) -> int:
        """The 64-byte header, which gives the streams' lengths (the descriptor gives the biases')."""
        return HEADER_BYTES

    def encode(self, weights: np.ndarray, biases: np.ndarray, trailers: np.ndarray | None, geo: KernelGeometry,
               symbol_map: tuple[int, ...] | None = None) -> HuffmanPlan:
        """Plan the buffer (see :func:`plan_coefficients`); v8 streams carry no trailers (kernel o writes
        plane o), so ``trailers`` is ignored."""
        return plan_coefficients(weights, biases, geo, self.target, symbol_map)

    def decode(self, buf: Buffer, desc: Mapping[str, int], job: str = "coefficients") -> DecodedKernels:
        return decode_coefficients(buf, desc, self.target, job)

    def size(self, head: Buffer, desc: Mapping[str, int], job: str = "coefficients") -> int:
        return buffer_size(head, desc, self.target, job)
