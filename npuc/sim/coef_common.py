"""What the simulator's two coefficient decoders share: the decoded result, its cache, a bit reader, shape checks.

The simulator reads coefficient buffers with its own decoders (``coef_v7``,
``coef_v8``), written from the format documentation (vipnano-nn.md 4.1 and
4.2, docs/simulator.md) and independent of the compiler's encoders, so that an
encoder bug shows up as a wrong simulated result instead of being mirrored.
Only the format *declarations* (``npuc.hw.coef_v7``, ``npuc.hw.coef_v8``) are
shared with the compiler.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable, Mapping

import numpy as np

from ..errors import SimError
from ..hw.descriptors import kernel_fields_fault, kernel_z
from ..hw.target import Target

#: Most weights one decode may produce (all kernels of a buffer, padding slots included).
#: MobileNet's largest job (a 1024-channel depthwise convolution expanded to a dense v7
#: kernel) has 9.4 M; a descriptor asking for far more is refused instead of exhausting
#: the host's memory (docs/simulator.md: "2^25 decoded weights").
MAX_DECODED_WEIGHTS = 1 << 25

#: Decoded buffers the cache keeps (a whole model's NN jobs, several models).
CACHE_ENTRIES = 256


@dataclass(frozen=True)
class DecodedCoefficients:
    """What one coefficient buffer holds, by output slot (read-only arrays).

    ``weights`` is [slots][channels][kernel_y][kernel_x] stored uint8 values
    (the MAC array multiplies ``value - coef_zero_point``); ``biases`` the raw
    32-bit bias words; ``trailers`` the raw 32-bit trailer words (each slot's
    output plane offset) of v7 streams, None on v8 (slot ``o`` writes plane
    ``o``).  On v7 ``slots`` is the output channels rounded up to a multiple
    of the cores used (the rest are padding kernels); on v8 it is the output
    channels, and a depthwise kernel has one channel.
    """

    weights: np.ndarray
    biases: np.ndarray
    trailers: np.ndarray | None
    out_channels: int
    cores_used: int
    superblocks: int
    total_bytes: int                        # bytes of the buffer the job reads
    zrl_bits: int | None = None             # v7: zero-run field width
    ordering: str | None = None             # v7: hw.coef_v7.ORDER_* read
    core_bytes: tuple[int, ...] = ()        # v7: size table (every NN core)
    symbol_map: tuple[int, ...] | None = None  # v8: bit length per symbol
    stream_bits: tuple[int, ...] = ()       # v8: per core used, from the header


@dataclass(frozen=True)
class KernelShape:
    """The descriptor fields both formats take a buffer's structure from."""

    kernel_x: int          # kernel_xy_size (columns, along the image's contiguous axis)
    kernel_y: int          # kernel_y_size (rows)
    kernel_z: int          # input channels
    out_channels: int      # out_image_z_size
    per_superblock: int    # kernels_per_core: kernels per core in one superblock

    @classmethod
    def of(cls, desc: Mapping[str, int]) -> "KernelShape":
        return cls(desc["kernel_xy_size"], desc["kernel_y_size"], kernel_z(desc), desc["out_image_z_size"],
                   desc["kernels_per_core"])

    def check(self, target: Target, job: str) -> None:
        """Sizes within the target's kernel limit, at least one channel, output and kernel per superblock."""
        fault = kernel_fields_fault(self.kernel_x, self.kernel_y, self.kernel_z, self.out_channels,
                                    self.per_superblock, target.kernel_size_max)
        if fault is not None:
            raise SimError(f"{job}: {fault}")

    def cores_used(self, target: Target) -> int:
        return min(self.out_channels, target.nn_cores)


def check_weight_count(count: int, job: str) -> None:
    if count > MAX_DECODED_WEIGHTS:
        raise SimError(f"{job}: {count} coefficients exceed the simulator's limit of {MAX_DECODED_WEIGHTS}")


def as_array(buf: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """The buffer as a flat uint8 array (no copy when it already is one)."""
    if isinstance(buf, np.ndarray):
        return buf.reshape(-1).view(np.uint8)
    return np.frombuffer(buf, dtype=np.uint8)


class BitReader:
    """Fields of up to 32 bits at any bit position of a little-endian word stream, LSB first.

    Bit ``p`` is bit ``p % 8`` of byte ``p // 8``.  The bytes are padded with
    zero words, and positions beyond them read zeros, so that a malformed
    stream never reads outside the array (callers check positions against the
    real stream ends).
    """

    def __init__(self, data: np.ndarray) -> None:
        words = -(-data.size // 4)
        raw = np.zeros(4 * (words + 2), np.uint8)
        raw[:data.size] = data
        w = raw.view("<u4").astype(np.uint64)
        #: windows[i]: words i and i + 1 as one 64-bit value, so that a field never needs a third word.
        #: Held as int64: a field of at most 32 bits shifted down by at most 31 never reaches bit 63,
        #: so the arithmetic shift's sign fill stays above it.
        self.windows = (w[:-1] | (w[1:] << np.uint64(32))).view(np.int64)
        self.bits = 32 * words

    def read(self, pos: np.ndarray, width: np.ndarray | int) -> np.ndarray:
        """The ``width``-bit fields (int64) at bit positions ``pos`` (int64, any shape)."""
        pos = np.minimum(pos, self.bits)
        return (self.windows[pos >> 5] >> (pos & 31)) & ((np.int64(1) << width) - 1)


class DecodeCache:
    """Decoded buffers by a hash of the bytes read and the fields that shape the decode, least recent first out."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        self._items: OrderedDict[tuple, DecodedCoefficients] = OrderedDict()

    def get(self, used: np.ndarray, shape: Hashable,
            decode: Callable[[], DecodedCoefficients]) -> DecodedCoefficients:
        key = (hashlib.blake2b(np.ascontiguousarray(used), digest_size=16).digest(), shape)
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
            return hit
        value = decode()
        self._items[key] = value
        while len(self._items) > self.entries:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()


def frozen(*arrays: np.ndarray | None) -> None:
    for a in arrays:
        if a is not None:
            a.flags.writeable = False
