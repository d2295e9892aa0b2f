"""The v8 NN cores' coefficient buffers (Huffman-style coded weights), both directions.

Source: ../shared/docs/vipnano-nn.md section 4.2 and Mesa's v8 writer
(``etnaviv_ml_nn_v8.c``, facts only), checked bit for bit against Mesa's
golden i.MX 8M Plus submits (every weight, bias and stream length decodes,
and re-encoding with Mesa's symbol map gives Mesa's bytes).  A buffer is

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

Decoding: a step's length depends on the codes of the two steps before it, so
finding the steps is a sequential scan (one small loop per step over
precomputed tables); reading the fields at the found positions and turning
them into weights is vectorised.  Results are cached by the hash of the used
bytes and the descriptor fields that shape the stream.  Malformed buffers
raise :class:`SimError` naming the job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Mapping

import numpy as np

from ..errors import SimError
from .coeffs_v7 import check_kernel_fields
from .decode_cache import DecodeCache, as_bytes
from ..hw.descriptors import kernel_z
from ..hw.coef_v8 import (BIAS_BYTES, BIT_LENGTHS, BLOCK, CODE_BOOK, ESCAPE, FORMAT_VERSION, HEADER, HEADER_BYTES,
                          MAX_CORES, MAX_STEP_BITS, PART0_BITS, PART1_BITS, FREE_PART0, FREE_PART1, MAP_NIBBLE,
                          STEP_HEAD_BITS, STREAM_PAD_BYTES, SYMBOLS, UNMODELLED_HEADER, Code)
from ..hw.target import Target

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


@dataclass(frozen=True)
class KernelGeometryV8:
    """The descriptor fields that define a v8 coefficient stream's structure."""

    kernel_x: int
    kernel_y: int
    kernel_z: int              # input channels of the job (for depthwise: the channels, one per kernel)
    out_channels: int
    kernels_per_superblock: int  # the descriptor's kernels_per_core
    depthwise: bool
    zero_point: int = 0        # coef_zero_point

    @classmethod
    def from_descriptor(cls, desc: Mapping[str, int]) -> "KernelGeometryV8":
        return cls(kernel_x=desc["kernel_xy_size"], kernel_y=desc["kernel_y_size"], kernel_z=kernel_z(desc),
                   out_channels=desc["out_image_z_size"], kernels_per_superblock=desc["kernels_per_core"],
                   depthwise=bool(desc["depthwise"]), zero_point=desc["coef_zero_point"])

    @property
    def kernel_channels(self) -> int:
        """Input channels one kernel spans: 1 for depthwise."""
        return 1 if self.depthwise else self.kernel_z

    @property
    def kernel_values(self) -> int:
        return self.kernel_channels * self.kernel_y * self.kernel_x

    @property
    def block(self) -> int:
        """Values of a kernel per block: 9, or the whole kernel for depthwise kernels above 3x3."""
        return max(self.kernel_values, BLOCK) if self.depthwise else BLOCK

    @property
    def block_stride(self) -> int:
        """Values a kernel's block takes in the stream: depthwise blocks are padded to a multiple of 9."""
        return -(-self.block // BLOCK) * BLOCK

    def cores_used(self, target: Target) -> int:
        return min(self.out_channels, target.nn_cores)

    def superblocks(self, target: Target) -> int:
        per_core = -(-self.out_channels // self.cores_used(target))
        return -(-per_core // self.kernels_per_superblock)

    def check(self, target: Target, job: str) -> None:
        """Refuse shapes the format (or the simulator's memory) cannot hold."""
        check_kernel_fields(self, target, job)
        if self.depthwise and self.kernel_z != self.out_channels:
            raise SimError(f"{job}: depthwise job with {self.kernel_z} input and {self.out_channels} output channels")
        if self.depthwise and 1 < self.out_channels < target.nn_cores:
            raise SimError(f"{job}: depthwise kernels of {self.out_channels} channels over {target.nn_cores} cores "
                           f"have no known distribution (Mesa's formula gives channels outside the layer)")
        values = self.out_channels * self.superblocks(target) * self.block_stride * self._blocks
        if values > MAX_DECODED_VALUES:
            raise SimError(f"{job}: {values} coefficients exceed the simulator's limit of {MAX_DECODED_VALUES}")

    @property
    def _blocks(self) -> int:
        return -(-self.kernel_values // self.block)


#: Most coefficient values one decode may produce (all cores): far above MobileNet's largest layer (1 M).
MAX_DECODED_VALUES = 1 << 25


def kernels_on_core(geo: KernelGeometryV8, target: Target, core: int) -> int:
    """Kernels core ``core`` carries (its stream's count): the channels split as evenly as possible."""
    cores = geo.cores_used(target)
    return geo.out_channels // cores + (core < geo.out_channels % cores)


def kernel_channels(geo: KernelGeometryV8, target: Target) -> list[list[np.ndarray]]:
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
    rest = oc - cores * (sbs - 1) * full
    out: list[list[np.ndarray]] = [[] for _ in range(cores)]
    for s in range(sbs):
        base = s * full * cores
        for c in range(cores):
            count = full if s < sbs - 1 else rest // cores + (c < rest % cores)
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


@dataclass(frozen=True)
class _StreamPlan:
    """Which kernel value every coded byte of every core's stream is (identical for any weights)."""

    value_index: tuple[np.ndarray, ...]  # per core: flat index into [out_channels][kernel_values], -1 = padding
    counts: tuple[int, ...]              # per core: its kernel count (the stream's first two bytes)


@lru_cache(maxsize=128)
def _plan(geo: KernelGeometryV8, target: Target) -> _StreamPlan:
    per_kernel = geo.kernel_values
    blocks = -(-per_kernel // geo.block)
    within = np.arange(geo.block_stride, dtype=np.int64)
    taps = np.arange(blocks, dtype=np.int64)[:, None] * geo.block + within[None, :]       # [block][slot]
    valid = (within[None, :] < geo.block) & (taps < per_kernel)
    index = []
    for c, superblocks in enumerate(kernel_channels(geo, target)):
        pieces = []
        for ch in superblocks:
            flat = ch[None, :, None] * per_kernel + taps[:, None, :]                      # [block][kernel][slot]
            pieces.append(np.where(valid[:, None, :], flat, -1).ravel())
        index.append(np.concatenate(pieces) if pieces else np.zeros(0, np.int64))
    counts = tuple(kernels_on_core(geo, target, c) for c in range(geo.cores_used(target)))
    return _StreamPlan(tuple(index), counts)


def plan_for(geo: KernelGeometryV8, target: Target) -> _StreamPlan:
    """The (cached) stream plan; the zero point does not change it."""
    return _plan(replace(geo, zero_point=0), target)


# -- code tables ---------------------------------------------------------------------------------


_BIT_LENGTH = np.array([int(v).bit_length() for v in range(256)], dtype=np.int64)


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


def best_symbol_map(values: np.ndarray) -> tuple[int, ...]:
    """The bit length per symbol that codes ``values`` in the fewest bits.

    A byte of bit length n costs ``max(n, 1) + extra_bits(symbol)``, so the
    most frequent lengths take the symbols with the fewest extra bits (ties:
    the shorter length first, as any order among equals costs the same).
    """
    counts = np.bincount(_magnitudes(values)[2], minlength=BIT_LENGTHS)
    by_frequency = sorted(range(BIT_LENGTHS), key=lambda n: (-int(counts[n]), n))
    symbols = sorted(range(SYMBOLS), key=lambda s: (CODE_BOOK[s].extra_bits, s))
    lengths = [0] * SYMBOLS
    for s, n in zip(symbols, by_frequency):
        lengths[s] = n
    return tuple(lengths)


# -- encoding ------------------------------------------------------------------------------------


def _coded_bytes(weights: np.ndarray, geo: KernelGeometryV8, target: Target) -> list[np.ndarray]:
    """Per core: the bytes it codes (kernel count, values, an even-count pad), in stream order."""
    flat = weights.reshape(geo.out_channels, -1).ravel()
    values = (flat.astype(np.int64) - geo.zero_point) & 0xFF if target.coef_delta_zero_point else flat
    # Padding positions hold the zero point (value 0 once coded as a delta).
    pad = 0 if target.coef_delta_zero_point else geo.zero_point
    plan = plan_for(geo, target)
    out = []
    for index, count in zip(plan.value_index, plan.counts):
        body = np.where(index >= 0, values[np.maximum(index, 0)], pad).astype(np.uint8)
        head = np.array([count & 0xFF, count >> 8], np.uint8)
        core = np.concatenate((head, body))
        if core.size % 2:
            core = np.append(core, np.uint8(0))
        out.append(core)
    return out


def _stream_fields(coded: np.ndarray, codes: _ByteCodes, odd: bool) -> tuple[np.ndarray, np.ndarray]:
    """(values, bit widths) of one core's stream fields in order: per step, the pair's part0s, the
    previous pair's part1s, the payloads of the pair before that; two dummy pairs drain the pipeline."""
    pairs = coded.size // 2
    steps = pairs + 2
    val = np.zeros((steps, 6), np.int64)
    bits = np.zeros((steps, 6), np.int64)
    b = coded.reshape(pairs, 2).astype(np.int64)
    val[:pairs, 0:2], bits[:pairs, 0:2] = codes.part0[b], PART0_BITS
    # Mesa's dummies: part0 4 when the original byte count was odd, else 0 (no part1, no payload).
    val[pairs:, 0:2], bits[pairs:, 0:2] = (FREE_PART0 if odd else 0), PART0_BITS
    val[1:pairs + 1, 2:4], bits[1:pairs + 1, 2:4] = codes.part1[b], codes.part1_bits[b]
    val[2:pairs + 2, 4:6], bits[2:pairs + 2, 4:6] = codes.part2[b], codes.part2_bits[b]
    return val.ravel(), bits.ravel()


def plan_coefficients_v8(weights: np.ndarray, biases: np.ndarray, geo: KernelGeometryV8, target: Target,
                         symbol_map: tuple[int, ...] | None = None) -> "CoefficientEncodingV8":
    """Plan the v8 coefficient buffer that the job described by ``geo`` reads.

    ``weights`` is [out_channels][kernel_channels][kernel_y][kernel_x] stored
    uint8 bytes (``geo.zero_point`` meaning real zero; one channel for
    depthwise), ``biases`` the 32-bit bias words per output channel.
    ``symbol_map`` (bit length per symbol) None picks the smallest stream's.
    """
    weights = np.asarray(weights, dtype=np.uint8)
    shape = (geo.out_channels, geo.kernel_channels, geo.kernel_y, geo.kernel_x)
    if weights.shape != shape or np.shape(biases) != (geo.out_channels,):
        raise ValueError(f"plan_coefficients_v8: expected weights {shape} and {geo.out_channels} biases, "
                         f"got {weights.shape}, {np.shape(biases)}")
    if geo.cores_used(target) > MAX_CORES:
        raise ValueError(f"plan_coefficients_v8: the header holds {MAX_CORES} stream lengths, "
                         f"target {target.name} has {target.nn_cores} cores")
    coded = _coded_bytes(weights, geo, target)
    if symbol_map is None:
        symbol_map = best_symbol_map(np.concatenate(coded))
    codes = _byte_codes(tuple(symbol_map))
    plan = plan_for(geo, target)
    fields = [_stream_fields(c, codes, (plan.value_index[i].size + 2) % 2 == 1) for i, c in enumerate(coded)]
    core_bits = np.array([int(w.sum()) for _, w in fields], dtype=np.int64)
    return CoefficientEncodingV8(geo, target, tuple(symbol_map), tuple(fields), core_bits,
                                 np.asarray(biases, dtype=np.uint32))


@dataclass(frozen=True)
class CoefficientEncodingV8:
    """A planned v8 coefficient buffer: sizes known, bits packed on demand (:meth:`pack`)."""

    geo: KernelGeometryV8
    target: Target
    symbol_map: tuple[int, ...]
    fields: tuple[tuple[np.ndarray, np.ndarray], ...]
    core_bits: np.ndarray
    biases: np.ndarray

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
        header = {"version": FORMAT_VERSION, "symbol_map": pack_symbol_map(self.symbol_map)}
        header.update({f"stream_bits_{c}": int(b) for c, b in enumerate(self.core_bits)})
        out = np.zeros(self.total_bytes // 4, np.uint32)
        out[:HEADER.words] = HEADER.pack_words(header)
        start = HEADER_BYTES * 8
        for (values, widths), size in zip(self.fields, self.core_bytes):
            offsets = start + np.cumsum(widths) - widths
            used = widths > 0
            _or_bits(out, offsets[used], values[used])
            start += int(size) * 8
        out[start // 32:] = self.biases
        return out.astype("<u4").tobytes()


def _or_bits(words: np.ndarray, offsets: np.ndarray, values: np.ndarray) -> None:
    """OR non-overlapping fields (< 32 bits each) into ``words`` at bit ``offsets``, LSB first."""
    shifted = values.astype(np.uint64) << (offsets & 31).astype(np.uint64)
    index = offsets >> 5
    n = words.size + 1
    low = np.bincount(index, weights=(shifted & np.uint64(0xFFFFFFFF)).astype(np.float64), minlength=n)
    high = np.bincount(index + 1, weights=(shifted >> np.uint64(32)).astype(np.float64), minlength=n)
    words |= (low + high)[:words.size].astype(np.uint64).astype(np.uint32)


def encode_coefficients_v8(weights: np.ndarray, biases: np.ndarray, geo: KernelGeometryV8, target: Target,
                           symbol_map: tuple[int, ...] | None = None) -> bytes:
    """Encode kernels into a v8 coefficient buffer (see :func:`plan_coefficients_v8`)."""
    return plan_coefficients_v8(weights, biases, geo, target, symbol_map).pack()


# -- decoding ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedKernelsV8:
    """What one v8 coefficient buffer holds, by output channel (read-only arrays).

    ``weights`` is [out_channels][kernel_channels][kernel_y][kernel_x] uint8
    stored values (the hardware multiplies ``value - coef_zero_point``);
    ``biases`` the raw 32-bit words.  There are no trailer words: channel ``o``
    goes to output plane ``o``.
    """

    weights: np.ndarray
    biases: np.ndarray
    out_channels: int
    symbol_map: tuple[int, ...]
    core_bits: tuple[int, ...]
    superblocks: int
    cores_used: int
    total_bytes: int
    trailers: None = None


def read_header(data: bytes | np.ndarray, target: Target, job: str) -> dict[str, int]:
    raw = np.frombuffer(as_bytes(data), np.uint8)
    if raw.size < HEADER_BYTES:
        raise SimError(f"{job}: coefficient buffer of {raw.size} bytes is shorter than its {HEADER_BYTES}-byte header")
    return HEADER.unpack(raw[:HEADER_BYTES].tobytes())


def buffer_size_v8(header: bytes | np.ndarray, desc: Mapping[str, int], target: Target,
                   job: str = "coefficients") -> int:
    """Bytes of a v8 coefficient buffer (header, padded streams, biases), from its header and the descriptor."""
    h = read_header(header, target, job)
    cores = min(desc["out_image_z_size"], target.nn_cores, MAX_CORES)
    streams = sum(-(-h[f"stream_bits_{c}"] // (8 * STREAM_PAD_BYTES)) * STREAM_PAD_BYTES for c in range(cores))
    return HEADER_BYTES + streams + BIAS_BYTES * desc["out_image_z_size"]


#: Decoded buffers kept (keyed by a hash of the bytes and the descriptor fields used).
DECODE_CACHE_ENTRIES = 256
_CACHE = DecodeCache(DECODE_CACHE_ENTRIES)


def decode_coefficients_v8(buf: bytes | np.ndarray, desc: Mapping[str, int], target: Target,
                           job: str = "coefficients") -> DecodedKernelsV8:
    """Decode a v8 coefficient buffer as the NN job described by ``desc`` reads it (SimError naming ``job``)."""
    geo = KernelGeometryV8.from_descriptor(desc)
    geo.check(target, job)
    if geo.cores_used(target) > MAX_CORES:
        raise SimError(f"{job}: the coefficient header holds {MAX_CORES} stream lengths, the job uses "
                       f"{geo.cores_used(target)} cores")
    data = np.frombuffer(as_bytes(buf), dtype=np.uint8)
    total = buffer_size_v8(data, desc, target, job)
    if total > data.size:
        raise SimError(f"{job}: header announces {total} bytes, the buffer holds {data.size}")
    used = data[:total]
    return _CACHE.get_or_decode(used, (geo, target), lambda: _decode(used, geo, target, job))


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
    """The ``nbytes`` bytes one core's stream codes (SimError if it does not end where its header says)."""
    pairs = nbytes // 2
    starts, ones, end = _scan(windows, start, pairs + 2, t)
    if end - start != bits:
        raise SimError(f"{job}: core {core} stream codes {nbytes} bytes in {end - start} bits, its header says {bits}")
    if end > limit:
        raise SimError(f"{job}: core {core} stream runs past its {(limit - start) // 8} bytes")
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


def _decode(data: np.ndarray, geo: KernelGeometryV8, target: Target, job: str) -> DecodedKernelsV8:
    header = HEADER.unpack(data[:HEADER_BYTES].tobytes())
    if header["version"] != FORMAT_VERSION:
        raise SimError(f"{job}: coefficient format version {header['version']} is not modelled (only "
                       f"{FORMAT_VERSION})")
    for name in UNMODELLED_HEADER:
        if header[name]:
            raise SimError(f"{job}: coefficient header {name}={header[name]} is not modelled (only 0)")
    lengths = parse_symbol_map(header["symbol_map"])
    if lengths is None:
        raise SimError(f"{job}: symbol map 0x{header['symbol_map']:08x} does not give each bit length 0..7 "
                       f"one symbol")
    cores = geo.cores_used(target)
    core_bits = tuple(header[f"stream_bits_{c}"] for c in range(MAX_CORES))
    for c in range(cores, MAX_CORES):
        if core_bits[c]:
            raise SimError(f"{job}: core {c} has a {core_bits[c]}-bit stream but only {cores} cores serve "
                           f"{geo.out_channels} output channels")
    plan = plan_for(geo, target)
    tables = _scan_tables(lengths)
    padded = [-(-core_bits[c] // (8 * STREAM_PAD_BYTES)) * STREAM_PAD_BYTES for c in range(cores)]
    streams_end = HEADER_BYTES + sum(padded)
    # Room for the scan to run past a malformed stream's end without leaving the array (checked after).
    slack = (MAX_STEP_BITS * (max(i.size for i in plan.value_index) // 2 + 4)) // 32 + 2
    words = np.concatenate((data[:streams_end].view("<u4"), np.zeros(slack, np.uint32)))
    windows = (words[:-1].astype(np.uint64) | (words[1:].astype(np.uint64) << np.uint64(32))).tolist()
    flat = np.zeros(geo.out_channels * geo.kernel_values, np.uint8)
    start = HEADER_BYTES * 8
    for c in range(cores):
        index = plan.value_index[c]
        nbytes = index.size + 2 + (index.size % 2)
        values = _decode_core(words, windows, start, start + padded[c] * 8, nbytes, core_bits[c], tables, c, job)
        count = int(values[0]) | int(values[1]) << 8
        if count != plan.counts[c]:
            raise SimError(f"{job}: core {c} stream carries {count} kernels, the descriptor's {geo.out_channels} "
                           f"output channels put {plan.counts[c]} on it")
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
    return DecodedKernelsV8(weights=weights, biases=biases, out_channels=geo.out_channels,
                            symbol_map=lengths, core_bits=core_bits[:cores], superblocks=geo.superblocks(target),
                            cores_used=cores, total_bytes=streams_end + BIAS_BYTES * geo.out_channels)
