"""Declarative bit-field layouts and the one generic packer/unpacker.

Every hardware or file layout in npuc (NN and TP descriptors, coefficient
headers, the .vipbin records, the etnaviv ioctl structures) is declared once as
a :class:`Layout`: a list of :class:`Field` rows ``(name, word, bit, width)``
over little-endian 32-bit words.  The compiler packs with it, the simulator and
``npuc inspect`` unpack with it, and the C runtime template renders its
accessors from the same rows, so a layout can never be written twice.

A field may be 64 bits wide only when it starts at bit 0 of a word; it then
occupies that word and the next (low word first), as a C ``uint64_t`` does.
Values that the hardware splits over several fields (a post-multiplier spread
over three words, a 4-bit offset whose bit 3 lives elsewhere) are declared as
:class:`Composite` rows, so their split is data too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..errors import NpucError


class LayoutError(NpucError):
    """A value does not fit its field, or a name is not part of the layout."""


@dataclass(frozen=True)
class Field:
    """One bit field: ``width`` bits starting at ``bit`` of 32-bit ``word``."""

    name: str
    word: int
    bit: int
    width: int
    signed: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        if self.width == 64:
            if self.bit != 0:
                raise ValueError(f"{self.name}: a 64-bit field must start at bit 0")
        elif not (0 < self.width <= 32 and 0 <= self.bit and self.bit + self.width <= 32):
            raise ValueError(f"{self.name}: bits {self.bit}+{self.width} do not fit a word")

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1

    @property
    def byte_offset(self) -> int:
        return self.word * 4

    def value_range(self) -> tuple[int, int]:
        if self.signed:
            return -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        return 0, self.mask


@dataclass(frozen=True)
class Part:
    """A slice of a composite value: value bits [lsb, lsb+width) go to ``field``."""

    field: str
    lsb: int
    width: int


@dataclass(frozen=True)
class Composite:
    """A logical value split over several fields, listed low bits first."""

    name: str
    parts: tuple[Part, ...]
    signed: bool = False
    doc: str = ""

    @property
    def width(self) -> int:
        return max(p.lsb + p.width for p in self.parts)


@dataclass
class Layout:
    """A fixed-size record of ``words`` little-endian 32-bit words."""

    name: str
    words: int
    fields: tuple[Field, ...]
    composites: tuple[Composite, ...] = ()
    defaults: Mapping[str, int] = field(default_factory=dict)
    doc: str = ""

    def __post_init__(self) -> None:
        self._by_name = {f.name: f for f in self.fields}
        self._composites = {c.name: c for c in self.composites}
        if len(self._by_name) != len(self.fields):
            raise ValueError(f"{self.name}: duplicate field names")
        occupied = [0] * self.words  # the bits of each word that earlier fields hold (a mask per word, not
        for f in self.fields:         # a set of bits: every layout is checked at import, on every start-up)
            if f.word + (2 if f.width == 64 else 1) > self.words:
                raise ValueError(f"{self.name}.{f.name}: outside the record")
            for word, bits in _word_masks(f):
                if occupied[word] & bits:
                    raise ValueError(f"{self.name}: {f.name} overlaps {self._holder(word, occupied[word] & bits)}")
                occupied[word] |= bits
        for c in self.composites:
            for p in c.parts:
                if p.field not in self._by_name:
                    raise ValueError(f"{self.name}.{c.name}: unknown part {p.field}")
        # Packing runs thousands of times per compile (every descriptor, header and record), so what it
        # needs of each field and composite is worked out once here, as plain tuples, instead of through
        # the dataclasses' properties on every value.
        self._slots: dict[str, tuple[int, int, int, int, int, int]] = {
            f.name: (f.word, f.bit, *f.value_range(), f.mask, f.width) for f in self.fields}
        self._splits: dict[str, tuple[int, int, int, int, tuple[tuple[str, int, int], ...]]] = {
            c.name: (*_range(c.width, c.signed), (1 << c.width) - 1, c.width,
                     tuple((p.field, p.lsb, (1 << p.width) - 1) for p in c.parts)) for c in self.composites}
        self._struct = struct.Struct(f"<{self.words}I")

    def _holder(self, word: int, bits: int) -> str:
        """The field that holds the lowest of ``bits`` in ``word`` (for the overlap error)."""
        lowest = bits & -bits
        return next(f.name for f in self.fields if any(w == word and m & lowest for w, m in _word_masks(f)))

    @property
    def size(self) -> int:
        """Size of the record in bytes."""
        return self.words * 4

    def __getitem__(self, name: str) -> Field:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name or name in self._composites

    def composite(self, name: str) -> Composite:
        return self._composites[name]

    # -- packing ---------------------------------------------------------------

    def _expand(self, values: Mapping[str, int]) -> dict[str, int]:
        """Resolve composite names into their part fields (later values win where they share a field)."""
        flat: dict[str, int] = {}
        slots, splits = self._slots, self._splits
        for name, value in values.items():
            split = splits.get(name)
            if split is None:
                if name not in slots:
                    raise LayoutError(f"{self.name}: no field named {name!r}")
                flat[name] = int(value)
                continue
            value = int(value)
            lo, hi, mask, width, parts = split
            if not lo <= value <= hi:
                raise LayoutError(f"{self.name}.{name}: {value} does not fit {width} bits")
            raw = value & mask
            for part, lsb, part_mask in parts:
                flat[part] = (raw >> lsb) & part_mask
        return flat

    def pack_words(self, values: Mapping[str, int]) -> list[int]:
        """Pack named values (defaults first) into a list of 32-bit words.

        Names are resolved first (an unknown name or a composite that does not
        fit is refused there), then each field's range is checked in order.
        """
        merged = dict(self.defaults)
        merged.update(values)
        words = [0] * self.words
        slots = self._slots
        for name, value in self._expand(merged).items():
            word, bit, lo, hi, mask, width = slots[name]
            if not lo <= value <= hi:
                raise LayoutError(f"{self.name}.{name}: {value} does not fit {width} bits")
            if width == 64:
                raw = value & mask
                words[word] = raw & 0xFFFFFFFF
                words[word + 1] = raw >> 32
            else:
                words[word] |= (value & mask) << bit
        return words

    def pack(self, values: Mapping[str, int]) -> bytes:
        """Pack named values into the record's bytes."""
        return self._struct.pack(*self.pack_words(values))

    def unpack_words(self, words: Iterable[int]) -> dict[str, int]:
        """Read every field (and composite) from a sequence of 32-bit words."""
        w = list(words)
        if len(w) < self.words:
            raise LayoutError(f"{self.name}: need {self.words} words, got {len(w)}")
        out: dict[str, int] = {}
        for f in self.fields:
            if f.width == 64:
                raw = w[f.word] | (w[f.word + 1] << 32)
            else:
                raw = (w[f.word] >> f.bit) & f.mask
            out[f.name] = _sign(raw, f.width) if f.signed else raw
        for c in self.composites:
            raw = 0
            for p in c.parts:
                raw |= (out[p.field] & ((1 << p.width) - 1)) << p.lsb
            out[c.name] = _sign(raw, c.width) if c.signed else raw
        return out

    def unpack(self, data: bytes | bytearray | memoryview, offset: int = 0) -> dict[str, int]:
        """Read every field from ``data`` starting at byte ``offset``."""
        if offset < 0 or offset + self.size > len(data):
            raise LayoutError(f"{self.name}: record at byte {offset} runs past the end ({len(data)} bytes)")
        return self.unpack_words(self._struct.unpack_from(data, offset))


def _word_masks(f: Field) -> tuple[tuple[int, int], ...]:
    """``(word, mask)`` of the bits ``f`` occupies: one word, or two for a 64-bit field."""
    if f.width == 64:
        return (f.word, 0xFFFFFFFF), (f.word + 1, 0xFFFFFFFF)
    return ((f.word, f.mask << f.bit),)


def _range(width: int, signed: bool) -> tuple[int, int]:
    if signed:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    return 0, (1 << width) - 1


def _sign(raw: int, width: int) -> int:
    return raw - (1 << width) if raw >> (width - 1) else raw


def fields_from_rows(rows: Iterable[tuple]) -> tuple[Field, ...]:
    """Build Field objects from compact ``(name, word, bit, width[, signed])`` rows."""
    out = []
    for row in rows:
        name, word, bit, width, *rest = row
        out.append(Field(name, word, bit, width, bool(rest[0]) if rest else False))
    return tuple(out)
