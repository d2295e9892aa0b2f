"""The v8 NN cores' coefficient buffer format (prefix-coded weights), as data.

Source: ../shared/docs/vipnano-nn.md section 4.2, checked bit for bit against Mesa's golden
i.MX 8M Plus submits.  A buffer is a 64-byte :data:`HEADER` (format version, the symbol map, each
core's stream length in bits), one stream per core used (padded to :data:`STREAM_PAD_BYTES`) whose
weights travel in blocks of :data:`BLOCK` values coded with :data:`CODE_BOOK`, and the raw 32-bit
bias words.  The encoder lives in ``npuc/coefs``, the simulator's own decoder in ``npuc/sim``; both
read these declarations.
"""

from __future__ import annotations

from dataclasses import dataclass

from .fields import Layout, fields_from_rows

#: Bytes of the header and the unit every core's stream is padded to.
HEADER_BYTES = 64
STREAM_PAD_BYTES = 64
#: Cores whose stream length the 64-byte header can hold (words 7..15).
FIRST_SIZE_WORD = 7
MAX_CORES = HEADER_BYTES // 4 - FIRST_SIZE_WORD
#: The only header version Mesa writes (and the only one modelled).
FORMAT_VERSION = 1
#: Values per block: a kernel is cut into blocks of 9 (a 3x3 patch, or 3 channels of a 1x3 row ...).
BLOCK = 9
BIAS_BYTES = 4

RUN_LENGTH_TABLE = 18
HEADER = Layout("coef_header_v8", HEADER_BYTES // 4, fields_from_rows(
    [("precode", 0, 0, 1), ("bit16", 0, 1, 1), ("fp16", 0, 2, 1), ("reserved1", 0, 3, 1), ("version", 0, 4, 4),
     ("run_length_size", 0, 8, 8)]
    + [(f"run_length_table_{i}", (2 + i) // 4, (2 + i) % 4 * 8, 8) for i in range(RUN_LENGTH_TABLE)]
    + [("symbol_map", 5, 0, 32), ("avg_bias", 6, 0, 16), ("reserved2", 6, 16, 16)]
    + [(f"stream_bits_{c}", FIRST_SIZE_WORD + c, 0, 32) for c in range(MAX_CORES)]),
    doc="header of a v8 coefficient buffer; stream_bits_c is core c's stream length in bits before padding")
#: Header fields selecting features Mesa never uses (zero-run mode, 16-bit or float kernels, an average
#: bias subtracted from every value): their semantics are unverified, so only 0 is modelled.
UNMODELLED_HEADER = ("precode", "bit16", "fp16", "run_length_size", "avg_bias")

#: Bits of the symbol map per symbol, and the symbols / bit lengths it relates.
MAP_NIBBLE = 4
SYMBOLS = 8
#: Magnitude bit lengths a byte can have (0..7: a byte >= 128 is coded by the one's complement).
BIT_LENGTHS = 8


@dataclass(frozen=True)
class Code:
    """One code-book entry: its fixed 3-bit part, its optional 2-bit part, and where a free bit sits.

    Numeric values, LSB first as written.  A free bit (bit 2 of part0, or bit 1
    of part1) carries the payload's lowest bit, which the payload then omits.
    """

    part0: int
    part1: int | None = None
    free: str = ""           # "part0", "part1" or "" (no free bit)

    @property
    def extra_bits(self) -> int:
        """Bits the code adds to the payload's own width."""
        return 3 + (2 if self.part1 is not None else 0) - (1 if self.free else 0)


#: The v8 code book (vipnano-nn.md 4.2), symbol 0 first: in MSB-first notation 00_, 10_, 111, 110, 011,
#: 010 1_, 010 01, 010 00.  Part0 2 announces a part1.
CODE_BOOK = (Code(0, free="part0"), Code(1, free="part0"), Code(7), Code(3), Code(6),
             Code(2, 1, "part1"), Code(2, 2), Code(2, 0))
ESCAPE = 2
PART0_BITS, PART1_BITS = 3, 2
FREE_PART0, FREE_PART1 = 1 << 2, 1 << 1
#: Fixed 3-bit parts of the pair read per step (two codes).
STEP_HEAD_BITS = 2 * PART0_BITS
#: Most bits one step can take: two part0, two part1, two 8-bit payloads.
MAX_STEP_BITS = STEP_HEAD_BITS + 2 * PART1_BITS + 2 * BIT_LENGTHS
#: Bits of one coded value: a byte, its sign bit 7, a negative byte's magnitude its one's complement.
VALUE_BITS = 8
#: Coded bytes that start every core's stream: the core's kernel count, low byte first (Mesa's
#: encode_uint16), coded like any other byte but without the zero-point delta.
KERNEL_COUNT_BYTES = 2
