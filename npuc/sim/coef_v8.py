"""The simulator's reader of v8 coefficient buffers (prefix-coded weights).

Written from vipnano-nn.md 4.2 and docs/simulator.md ("v8 coefficient
buffers"), independently of the compiler's encoder; layouts and constants come
from :mod:`npuc.hw.coef_v8`.  A buffer is a 64-byte header (format version,
symbol map, each core's stream length in bits), one stream per core used
(``min(out channels, nn_cores)``) padded to ``STREAM_PAD_BYTES``, then one raw
32-bit bias word per output channel.

A stream codes bytes: the core's kernel count (two bytes, low first), then
its kernels' values (each weight minus ``coef_zero_point`` modulo 256, or the
raw weight on targets without ``coef_delta_zero_point``), then a zero byte if
the count is odd.  A byte is a sign (bit 7), a magnitude (the byte, or its
one's complement when negative) of bit length n in 0..7, and an n-bit payload
(at least 1 bit): the magnitude without its leading one, the sign as its
lowest bit.  The symbol map gives each bit length one of the 8 codes of
:data:`CODE_BOOK`: a 3-bit part0, for the escape part0 a 2-bit part1, some
with a free bit that carries the payload's lowest bit.  Codes travel in a
3-deep pipeline of steps: step k holds the part0s of bytes 2k and 2k+1, the
part1s of the pair before and the payloads of the pair before that; two dummy
pairs drain it.  Everything is LSB first in little-endian 32-bit words.

Which output channel each kernel of a core is follows from the descriptor
(:func:`kernel_channels`); inside a superblock a kernel is cut into blocks of
``BLOCK`` values and the stream holds block 0 of every kernel of the
superblock, then block 1, and so on.

Decoding: where step k starts depends on the codes of steps k-1 and k-2, so
the step starts of a core are found by one scalar pass (a few table lookups
per step, the payloads skipped unread); every field is then read at the found
positions and turned into bytes with numpy.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import numpy as np

from ..errors import SimError
from ..hw.coef_v8 import (BIAS_BYTES, BIT_LENGTHS, BLOCK, CODE_BOOK, ESCAPE, FORMAT_VERSION, FREE_PART0, FREE_PART1,
                          HEADER, HEADER_BYTES, KERNEL_COUNT_BYTES, MAP_NIBBLE, MAX_CORES, PART0_BITS, PART1_BITS,
                          STEP_HEAD_BITS, STREAM_PAD_BYTES, SYMBOLS, UNMODELLED_HEADER, VALUE_BITS)
from ..hw.target import Target
from .coef_common import (BitReader, DecodeCache, DecodedCoefficients, KernelShape, as_array, check_weight_count,
                          frozen)

_CACHE = DecodeCache()

_PART0_MASK = (1 << PART0_BITS) - 1
_PART1_MASK = (1 << PART1_BITS) - 1
#: A byte with every bit set: a negative byte is the one's complement of its magnitude.
_ONES = (1 << VALUE_BITS) - 1
#: The part0 pair of one step and the part1 bits one pair can have (two escapes).
_PAIR_PART0_MASK = (1 << STEP_HEAD_BITS) - 1
_PAIR_PART1_BITS = 2 * PART1_BITS
#: Scanner context for "no pair before": the first step reads no part1 and no payload.
_NO_PAIR = 1 << STEP_HEAD_BITS


def clear_cache() -> None:
    _CACHE.clear()
    _layout.cache_clear()


def _padded(bits: int) -> int:
    """Bytes a stream of ``bits`` bits takes in the buffer."""
    unit = 8 * STREAM_PAD_BYTES
    return -(-bits // unit) * STREAM_PAD_BYTES


def _header(data: np.ndarray, job: str) -> dict[str, int]:
    if data.size < HEADER_BYTES:
        raise SimError(f"{job}: coefficient buffer of {data.size} bytes is shorter than its "
                       f"{HEADER_BYTES}-byte header")
    return HEADER.unpack(data[:HEADER_BYTES].tobytes())


def buffer_size_v8(head: bytes | np.ndarray, desc: Mapping[str, int], target: Target,
                   job: str = "coefficients") -> int:
    """Bytes of the buffer (header, padded streams, biases) whose leading bytes are ``head``."""
    h = _header(as_array(head), job)
    oc = desc["out_image_z_size"]
    cores = min(oc, target.nn_cores, MAX_CORES)
    return HEADER_BYTES + sum(_padded(h[f"stream_bits_{c}"]) for c in range(cores)) + BIAS_BYTES * oc


# -- which value is where -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """The descriptor fields a v8 stream's structure depends on."""

    kernel: KernelShape
    depthwise: bool

    @property
    def channels(self) -> int:
        """Input channels of one kernel: a depthwise kernel reads one."""
        return 1 if self.depthwise else self.kernel.kernel_z

    @property
    def values(self) -> int:
        return self.channels * self.kernel.kernel_y * self.kernel.kernel_x

    @property
    def block(self) -> int:
        """Kernel values per block: ``BLOCK``, a whole depthwise kernel if that is more."""
        return max(self.values, BLOCK) if self.depthwise else BLOCK

    @property
    def block_slots(self) -> int:
        """Stream values a kernel's block takes: depthwise blocks are padded to a multiple of ``BLOCK``."""
        return -(-self.block // BLOCK) * BLOCK


def core_kernel_counts(out_channels: int, target: Target) -> list[int]:
    """Kernels each core used carries: the channels split as evenly as possible, lower cores first."""
    cores = min(out_channels, target.nn_cores)
    return [out_channels // cores + (c < out_channels % cores) for c in range(cores)]


def kernel_channels(out_channels: int, per_superblock: int, depthwise: bool,
                    target: Target) -> list[list[list[int]]]:
    """[core][superblock] -> output channels of that core's kernels in the superblock, in stream order.

    vipnano-nn.md 4.2: ``per_superblock`` (the descriptor's kernels_per_core)
    kernels per core in every superblock but the last, which splits the rest
    as evenly as possible, lower cores first.  Regular kernels: superblock s
    starts at channel ``s * per_superblock * cores`` and the cores take
    consecutive runs.  Depthwise kernels: core c takes every ``nn_cores``-th
    channel from ``cores - 1 - c + s * per_superblock * cores``, a channel at
    or past ``oc - oc % nn_cores`` moved back by ``nn_cores - oc % nn_cores``.
    """
    oc, n = out_channels, target.nn_cores
    cores = min(oc, n)
    superblocks = -(-(-(-oc // cores)) // per_superblock)
    rest = oc - cores * (superblocks - 1) * per_superblock
    out: list[list[list[int]]] = [[] for _ in range(cores)]
    for s in range(superblocks):
        base = s * per_superblock * cores
        last = s == superblocks - 1
        for c in range(cores):
            count = rest // cores + (c < rest % cores) if last else per_superblock
            if depthwise:
                channels = [cores - 1 - c + base + k * n for k in range(count)]
                if oc > 1:
                    cut = oc - oc % n
                    channels = [ch - (n - oc % n) if ch >= cut else ch for ch in channels]
            else:
                channels = list(range(base, base + count))
                base += count
            out[c].append(channels)
    return out


@dataclass(frozen=True)
class _Layout:
    """Where every coded byte of the cores' streams goes (the bytes of all cores in core order)."""

    pairs: tuple[int, ...]     # per core: byte pairs its stream codes (count, values, an even-count pad)
    counts: tuple[int, ...]    # per core: its kernel count (the stream's first two bytes)
    source: np.ndarray         # coded byte of each kernel value, as an index into all cores' bytes
    dest: np.ndarray           # that value's flat [out channel][value] index
    superblocks: int


@lru_cache(maxsize=128)
def _layout(shape: _Shape, target: Target) -> _Layout:
    values, block, slots = shape.values, shape.block, shape.block_slots
    blocks = -(-values // block)
    k = shape.kernel
    cores_channels = kernel_channels(k.out_channels, k.per_superblock, shape.depthwise, target)
    # Offset within the kernel of every stream slot of its blocks ([block][slot]); -1: padding.
    within = np.arange(slots, dtype=np.int64)
    offset = np.arange(blocks, dtype=np.int64)[:, None] * block + within[None, :]
    offset = np.where((within[None, :] < block) & (offset < values), offset, -1)
    pairs, sources, dests = [], [], []
    first = 0                                                   # the core's first byte among all cores' bytes
    for superblocks in cores_channels:
        # Superblocks of equal kernel counts at once: [superblock][block][kernel][slot].
        parts = []
        for group in (superblocks[:-1], superblocks[-1:]):
            if group and group[0]:
                ch = np.array(group, np.int64)[:, None, :, None]
                at = offset[None, :, None, :]
                parts.append(np.where(at >= 0, ch * values + at, -1).ravel())
        index = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        kept = np.flatnonzero(index >= 0)
        sources.append((first + KERNEL_COUNT_BYTES + kept).astype(np.int32))
        dests.append(index[kept].astype(np.int32))
        pairs.append(-(-(KERNEL_COUNT_BYTES + index.size) // 2))
        first += 2 * pairs[-1]
    source, dest = np.concatenate(sources), np.concatenate(dests)
    for a in (source, dest):
        a.flags.writeable = False
    return _Layout(tuple(pairs), tuple(core_kernel_counts(k.out_channels, target)), source, dest,
                   len(cores_channels[0]))


def _check_shape(shape: _Shape, target: Target, job: str) -> None:
    k = shape.kernel
    k.check(target, job)
    if shape.depthwise and k.kernel_z != k.out_channels:
        raise SimError(f"{job}: depthwise job with {k.kernel_z} input and {k.out_channels} output channels")
    if shape.depthwise and 1 < k.out_channels < target.nn_cores:
        raise SimError(f"{job}: depthwise kernels of {k.out_channels} channels over {target.nn_cores} cores "
                       f"have no known distribution (Mesa's formula gives channels outside the layer)")
    cores = k.cores_used(target)
    if cores > MAX_CORES:
        raise SimError(f"{job}: the coefficient header holds {MAX_CORES} stream lengths, the job uses {cores} cores")
    superblocks = -(-(-(-k.out_channels // cores)) // k.per_superblock)
    per_kernel = -(-shape.values // shape.block) * shape.block_slots
    # Stream values: the kernels of the most loaded core in every superblock, on every core.
    check_weight_count(cores * superblocks * k.per_superblock * per_kernel, job)


# -- codes -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Codes:
    """How codes read back under one symbol map (tables indexed by field values).

    A pair's "fields" are its two part0s (6 bits) and the part1 bits that follow
    them one step later (4 bits, as many as used), ``fields = part0s | part1s << 6``.
    """

    lengths: tuple[int, ...]       # bit length per symbol
    byte: np.ndarray               # [code << VALUE_BITS | payload bits read] -> the coded byte;
                                   # code = part0 << PART1_BITS | part1
    part1_bits: np.ndarray         # [part0 pair] -> part1 bits that pair has
    first_code: np.ndarray         # [fields] -> code of the pair's first byte
    second_code: np.ndarray        # [fields] -> code of its second byte
    first_payload: np.ndarray      # [fields] -> payload bits of the first byte
    pair_payload: np.ndarray       # [fields] -> payload bits of both
    next_step: list[int]           # [part0s of pair k-1 << 10 | 10 bits at step k] -> bits of step k + 1


def parse_symbol_map(word: int) -> tuple[int, ...] | None:
    """Bit length per symbol, or None unless the map gives each bit length 0..7 exactly one symbol."""
    lengths = tuple((word >> (MAP_NIBBLE * s)) & ((1 << MAP_NIBBLE) - 1) for s in range(SYMBOLS))
    return lengths if sorted(lengths) == list(range(BIT_LENGTHS)) else None


def _code_of(part0: int, part1: int) -> tuple[int, int]:
    """(symbol, free bit or -1) of the code with these fields (part1 only counts after the escape part0)."""
    for symbol, code in enumerate(CODE_BOOK):
        if code.part1 is None:
            fixed = part0 & ~(FREE_PART0 if code.free == "part0" else 0)
            if part0 != ESCAPE and fixed == code.part0:
                return symbol, int(bool(part0 & FREE_PART0)) if code.free == "part0" else -1
        elif part0 == ESCAPE:
            fixed = part1 & ~(FREE_PART1 if code.free == "part1" else 0)
            if fixed == code.part1:
                return symbol, int(bool(part1 & FREE_PART1)) if code.free == "part1" else -1
    raise AssertionError(f"no code for part0 {part0}, part1 {part1}")  # the code book covers every value


def _byte(length: int, payload: int) -> int:
    """The byte whose magnitude has ``length`` bits, from its payload (the magnitude without its
    leading one, then the sign as the lowest bit); a negative byte's magnitude is its one's complement."""
    magnitude = (1 << (length - 1)) | payload >> 1 if length else 0
    return _ONES - magnitude if payload & 1 else magnitude


_CODES = 1 << (PART0_BITS + PART1_BITS)
#: Bits of a step the scan looks at: the pair's part0s and up to two part1s of the pair before.
_SCAN_BITS = STEP_HEAD_BITS + _PAIR_PART1_BITS
#: The scan's table row for the next step, from the bits it saw: this pair's part0s.
_CONTEXT = [(seen & _PAIR_PART0_MASK) << _SCAN_BITS for seen in range(1 << _SCAN_BITS)]


@lru_cache(maxsize=64)
def _codes(lengths: tuple[int, ...]) -> _Codes:
    payload_bits = np.zeros(_CODES, np.int64)
    byte = np.zeros(_CODES << VALUE_BITS, np.uint8)
    for code in range(_CODES):
        part0, part1 = code >> PART1_BITS, code & _PART1_MASK
        if part0 != ESCAPE and part1:
            continue                        # never looked up: part1 is 0 unless part0 escapes
        symbol, free = _code_of(part0, part1)
        length = lengths[symbol]
        width = max(length, 1) - (free >= 0)
        payload_bits[code] = width
        for read in range(1 << width):
            byte[code << VALUE_BITS | read] = _byte(length, read << 1 | free if free >= 0 else read)
    part1_bits = np.array([PART1_BITS * ((pair & _PART0_MASK) == ESCAPE) + PART1_BITS * ((pair >> PART0_BITS) == ESCAPE)
                           for pair in range(_NO_PAIR + 1)], np.int64)
    part1_bits[_NO_PAIR] = 0

    # Codes and payload bits of a pair from its fields.
    fields = np.arange(1 << _SCAN_BITS, dtype=np.int64)
    pair, ones = fields & _PAIR_PART0_MASK, fields >> STEP_HEAD_BITS
    first, second = pair & _PART0_MASK, pair >> PART0_BITS
    esc_first = first == ESCAPE
    first_code = first << PART1_BITS | np.where(esc_first, ones & _PART1_MASK, 0)
    second_code = second << PART1_BITS | np.where(second == ESCAPE,
                                                  ones >> np.where(esc_first, PART1_BITS, 0) & _PART1_MASK, 0)
    first_payload = payload_bits[first_code]
    pair_payload = first_payload + payload_bits[second_code]
    # Step k + 1 takes its head, the part1s of pair k (from pair k's part0s, seen at step k) and the
    # payloads of pair k - 1 (its fields: its part0s, and the part1 bits seen at step k).
    before = np.arange(_NO_PAIR + 1, dtype=np.int64)[:, None]
    payload = np.where(before == _NO_PAIR, 0, pair_payload[(before & _PAIR_PART0_MASK) | (ones << STEP_HEAD_BITS)])
    next_step = (STEP_HEAD_BITS + part1_bits[pair])[None, :] + payload                  # [before][seen]
    return _Codes(lengths, byte, part1_bits, first_code, second_code, first_payload, pair_payload,
                  next_step.ravel().tolist())


def _step_starts(windows: list[int], start: int, steps: int, codes: _Codes, out: array, at: int) -> int:
    """Write the bit position of each of ``steps`` steps of a stream starting at ``start`` to ``out``
    from index ``at``; return where the last step ends.

    Step k is the part0 pair of pair k, the part1s of pair k-1 (as many as its part0s escape) and
    the payloads of pair k-2 (widths from its codes): how long step k + 1 is follows from pair k-1
    and the bits at the start of step k, so one pass finds every step (payloads skipped unread).
    """
    next_step, context, mask = codes.next_step, _CONTEXT, (1 << _SCAN_BITS) - 1
    pos, length, before = start, STEP_HEAD_BITS, _NO_PAIR << _SCAN_BITS
    for k in range(at, at + steps):
        out[k] = pos
        seen = windows[pos >> 5] >> (pos & 31) & mask
        pos += length
        length = next_step[before | seen]
        before = context[seen]
    return pos


def _pair_bytes(reader: BitReader, starts: np.ndarray, first_step: np.ndarray, codes: _Codes) -> np.ndarray:
    """The bytes coded by the pairs whose first steps (of three) are at ``first_step`` in ``starts``
    (all cores' steps): two per pair, in order."""
    seen = reader.read(starts[first_step + 1], _SCAN_BITS)         # part0s of the pair after, this pair's part1s
    fields = reader.read(starts[first_step], STEP_HEAD_BITS) | (seen >> STEP_HEAD_BITS) << STEP_HEAD_BITS
    at = starts[first_step + 2] + STEP_HEAD_BITS + codes.part1_bits[seen & _PAIR_PART0_MASK]
    width = codes.first_payload[fields]
    both = reader.read(at, codes.pair_payload[fields])
    out = np.empty((fields.size, 2), np.uint8)
    out[:, 0] = codes.byte[codes.first_code[fields] << VALUE_BITS | (both & ((1 << width) - 1))]
    out[:, 1] = codes.byte[codes.second_code[fields] << VALUE_BITS | (both >> width)]
    return out.ravel()


def decode_v8(buf: bytes | np.ndarray, desc: Mapping[str, int], target: Target,
              job: str = "coefficients") -> DecodedCoefficients:
    """The kernels a v8 NN job reads from ``buf`` (SimError naming ``job`` when it cannot be read)."""
    shape = _Shape(KernelShape.of(desc), bool(desc["depthwise"]))
    _check_shape(shape, target, job)
    data = as_array(buf)
    total = buffer_size_v8(data, desc, target, job)
    if total > data.size:
        raise SimError(f"{job}: header announces {total} bytes, the buffer holds {data.size}")
    used = data[:total]
    zero_point = desc["coef_zero_point"]
    return _CACHE.get(used, (shape, zero_point, target), lambda: _decode(used, shape, zero_point, target, job))


def _decode(data: np.ndarray, shape: _Shape, zero_point: int, target: Target, job: str) -> DecodedCoefficients:
    header = _header(data, job)
    if header["version"] != FORMAT_VERSION:
        raise SimError(f"{job}: coefficient format version {header['version']} is not modelled "
                       f"(only {FORMAT_VERSION})")
    for name in UNMODELLED_HEADER:
        if header[name]:
            raise SimError(f"{job}: coefficient header {name}={header[name]} is not modelled (only 0)")
    lengths = parse_symbol_map(header["symbol_map"])
    if lengths is None:
        raise SimError(f"{job}: symbol map 0x{header['symbol_map']:08x} does not give each bit length "
                       f"0..{BIT_LENGTHS - 1} one symbol")
    k = shape.kernel
    cores = k.cores_used(target)
    bits = [header[f"stream_bits_{c}"] for c in range(MAX_CORES)]
    for c in range(cores, MAX_CORES):
        if bits[c]:
            raise SimError(f"{job}: core {c} has a {bits[c]}-bit stream but only {cores} cores serve "
                           f"{k.out_channels} output channels")
    # Byte pairs each core's stream codes: its kernel count, its kernels' blocks, an even-count pad.
    blocks = -(-shape.values // shape.block) * shape.block_slots
    pairs = [-(-(KERNEL_COUNT_BYTES + count * blocks) // 2) for count in core_kernel_counts(k.out_channels, target)]
    steps = [p + 2 for p in pairs]                          # two dummy pairs drain the pipeline
    start = 8 * HEADER_BYTES
    for c in range(cores):
        # Each step takes at least its part0 pair: a stream too short for that is refused before any work.
        if steps[c] * STEP_HEAD_BITS > 8 * _padded(bits[c]):
            raise SimError(f"{job}: core {c} stream of {bits[c]} bits cannot hold {2 * pairs[c]} coded bytes")
    layout = _layout(shape, target)
    assert layout.pairs == tuple(pairs)
    codes = _codes(lengths)
    reader = BitReader(data)
    windows = reader.windows.view(np.uint64).tolist()
    starts = array("q", bytes(8 * sum(steps)))
    first_steps = []
    at = 0
    for c in range(cores):
        limit = start + 8 * _padded(bits[c])
        try:
            end = _step_starts(windows, start, steps[c], codes, starts, at)
        except IndexError:  # the codes run past the end of the buffer
            raise SimError(f"{job}: core {c} stream's codes run past the end of the buffer") from None
        if end - start != bits[c]:
            raise SimError(f"{job}: core {c} stream codes {2 * layout.pairs[c]} bytes in {end - start} bits, "
                           f"its header says {bits[c]}")
        first_steps.append(at + np.arange(layout.pairs[c], dtype=np.int64))
        start, at = limit, at + steps[c]
    values = _pair_bytes(reader, np.frombuffer(starts, np.int64), np.concatenate(first_steps), codes)
    first = 0
    for c in range(cores):
        count = int.from_bytes(values[first:first + KERNEL_COUNT_BYTES].tobytes(), "little")
        if count != layout.counts[c]:
            raise SimError(f"{job}: core {c} stream carries {count} kernels, the descriptor's {k.out_channels} "
                           f"output channels put {layout.counts[c]} on it")
        first += 2 * layout.pairs[c]
    flat = np.zeros(k.out_channels * shape.values, np.uint8)
    flat[layout.dest] = values[layout.source]
    if target.coef_delta_zero_point:
        flat = (flat + np.uint8(zero_point)).astype(np.uint8)            # modulo 256
    weights = flat.reshape(k.out_channels, shape.channels, k.kernel_y, k.kernel_x)
    streams_end = start // 8
    biases = data[streams_end:streams_end + BIAS_BYTES * k.out_channels].view("<u4").astype(np.uint32)
    frozen(weights, biases)
    return DecodedCoefficients(weights=weights, biases=biases, trailers=None, out_channels=k.out_channels,
                               cores_used=cores, superblocks=layout.superblocks,
                               total_bytes=streams_end + BIAS_BYTES * k.out_channels, symbol_map=lengths,
                               stream_bits=tuple(bits[:cores]))
