"""The .vipbin container: everything a runtime needs to run one compiled model.

One module writes and reads it (format described in docs/vipbin.md).  A blob
holds no TFLite data: buffers with their initial bytes, relocations that patch
GPU addresses once the runtime has placed the buffers, tensors (where each
value lives, its type, shape and quantization), the program (NPU steps made of
command-stream words, HOST steps naming a host kernel with its parameters),
the graph's inputs and outputs, and metadata such as labels.

Every record is a fixed-size little-endian layout declared with
:class:`~npuc.hw.fields.Layout`, so the C runtime renders its parser
from the same declarations.  The reader checks everything (bounds, overlaps,
alignment, CRCs, version, references) and raises :class:`BlobError` with one
line naming the first fault; a hostile file can make it do nothing else.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .hw.fields import Layout, LayoutError, fields_from_rows
from .hw.target import NpuIdentity
from .errors import BlobError, LimitError
from .hw.kernel_abi import STREAM_MAX_BYTES

MAGIC = 0x42504956  # b"VIPB" read as a little-endian word
FORMAT_MAJOR = 1
FORMAT_MINOR = 0

#: Alignment of every section and of initial data, in bytes.
SECTION_ALIGN = 64
#: Limits the reader enforces before it allocates anything.
MAX_BUFFERS = 1 << 16
MAX_BUFFER_BYTES = 1 << 31          # one buffer
MAX_TOTAL_BUFFER_BYTES = 3 << 30    # all buffers together
MAX_RECORDS = 1 << 22               # records of any one section
MAX_STREAM_BYTES = STREAM_MAX_BYTES  # one NPU step's command stream (older kernels' limit)
MAX_SECTIONS = 64                   # section table entries a reader looks at
MAX_RANK = 6
MAX_ALIGN = 4096
#: Tensor id that marks an absent optional input of a host step.
ABSENT = 0xFFFFFFFF

# -- enumerations ---------------------------------------------------------------------

BUFFER_KINDS = {1: "descriptor", 2: "coefficients", 3: "lut", 4: "tensor", 5: "scratch", 6: "constant"}
DTYPES = {1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "float32", 7: "bool",
          8: "float16", 9: "uint16", 10: "uint32", 11: "uint64", 12: "float64"}
LAYOUTS = {0: "nhwc", 1: "planar"}
STEP_KINDS = {1: "npu", 2: "host"}
PARAM_TYPES = {1: "i32", 2: "f64", 3: "i32[]", 4: "f32[]"}
SITE_KINDS = {0: "buffer", 1: "stream"}
IO_DIRECTIONS = {0: "input", 1: "output"}

_DTYPE_CODE = {v: k for k, v in DTYPES.items()}
_KIND_CODE = {v: k for k, v in BUFFER_KINDS.items()}
_LAYOUT_CODE = {v: k for k, v in LAYOUTS.items()}

# -- record layouts -------------------------------------------------------------------

HEADER = Layout("vipbin_header", 32, fields_from_rows([
    ("magic", 0, 0, 32), ("format_minor", 1, 0, 16), ("format_major", 1, 16, 16),
    ("header_size", 2, 0, 32), ("file_size", 3, 0, 32),
    ("section_table_offset", 4, 0, 32), ("section_count", 5, 0, 32),
    ("npu_model", 6, 0, 32), ("npu_revision", 7, 0, 32), ("npu_product_id", 8, 0, 32),
    ("npu_customer_id", 9, 0, 32), ("npu_eco_id", 10, 0, 32),
    ("target_name", 11, 0, 32), ("compiler_version", 12, 0, 32),  # string-table offsets
    ("flags", 13, 0, 32), ("header_crc32", 14, 0, 32), ("reserved", 15, 0, 32),
    *[(f"model_sha256_{i}", 16 + i, 0, 32) for i in range(8)],
    *[(f"reserved_{i}", 24 + i, 0, 32) for i in range(8)],
]), doc="file header; header_crc32 covers the header with that field zero")

SECTION = Layout("vipbin_section", 4, fields_from_rows([
    ("kind", 0, 0, 32), ("offset", 1, 0, 32), ("size", 2, 0, 32), ("crc32", 3, 0, 32),
]), doc="section table entry; kind is a four-character code")

BUFFER = Layout("vipbin_buffer", 8, fields_from_rows([
    ("size", 0, 0, 32), ("align", 1, 0, 32), ("kind", 2, 0, 32), ("name", 3, 0, 32),
    ("init_offset", 4, 0, 32), ("init_size", 5, 0, 32), ("flags", 6, 0, 32), ("reserved", 7, 0, 32),
]), doc="buffer: init_size bytes from DATA at init_offset, the rest zero-filled")

RELOCATION = Layout("vipbin_relocation", 8, fields_from_rows([
    ("site_kind", 0, 0, 32), ("site_index", 1, 0, 32), ("site_offset", 2, 0, 32),
    ("target_buffer", 3, 0, 32), ("target_offset", 4, 0, 32),
    ("shift", 5, 0, 8), ("bit", 5, 8, 8), ("width", 5, 16, 8), ("reserved0", 5, 24, 8),
    ("reserved1", 6, 0, 32), ("reserved2", 7, 0, 32),
]), doc="the 32-bit word at the site gets bits [bit, bit+width) = (address(target) + target_offset) >> shift")

TENSOR = Layout("vipbin_tensor", 16, fields_from_rows([
    ("name", 0, 0, 32), ("buffer", 1, 0, 32), ("offset", 2, 0, 32), ("dtype", 3, 0, 8),
    ("layout", 3, 8, 8), ("rank", 3, 16, 8), ("per_channel", 3, 24, 8),
    *[(f"dim{i}", 4 + i, 0, 32) for i in range(MAX_RANK)],
    ("scale_bits", 10, 0, 32), ("zero_point", 11, 0, 32, True),
    ("reserved0", 12, 0, 32), ("reserved1", 13, 0, 32), ("reserved2", 14, 0, 32), ("reserved3", 15, 0, 32),
]), doc="a tensor's place, type, shape and per-tensor quantization (scale as float32 bits)")

STEP = Layout("vipbin_step", 16, fields_from_rows([
    ("kind", 0, 0, 32), ("name", 1, 0, 32),
    ("stream_offset", 2, 0, 32), ("stream_words", 3, 0, 32), ("bos_offset", 4, 0, 32), ("bos_count", 5, 0, 32),
    ("kernel", 6, 0, 32), ("inputs_offset", 7, 0, 32), ("inputs_count", 8, 0, 32),
    ("outputs_offset", 9, 0, 32), ("outputs_count", 10, 0, 32),
    ("params_offset", 11, 0, 32), ("params_count", 12, 0, 32),
    ("reserved0", 13, 0, 32), ("reserved1", 14, 0, 32), ("reserved2", 15, 0, 32),
]), doc="NPU step: stream words in STRM, (buffer, flags) pairs in IDXS; HOST step: kernel, tensor ids in IDXS, params")

PARAM = Layout("vipbin_param", 4, fields_from_rows([
    ("name", 0, 0, 32), ("type", 1, 0, 32), ("count", 2, 0, 32), ("offset", 3, 0, 32),
]), doc="host kernel parameter: count values of type at word offset in PDAT")

IO = Layout("vipbin_io", 4, fields_from_rows([
    ("direction", 0, 0, 32), ("tensor", 1, 0, 32), ("reserved0", 2, 0, 32), ("reserved1", 3, 0, 32),
]), doc="graph input or output, in order")

META = Layout("vipbin_meta", 2, fields_from_rows([("key", 0, 0, 32), ("value", 1, 0, 32)]),
              doc="metadata key and value (string-table offsets)")

#: Section kinds in file order, with the record layout of each (None: raw data).
SECTIONS: dict[str, Layout | None] = {
    "STRS": None, "BUFS": BUFFER, "DATA": None, "RELO": RELOCATION, "TENS": TENSOR, "PROG": STEP,
    "STRM": None, "IDXS": None, "PARM": PARAM, "PDAT": None, "IOTN": IO, "META": META,
}


def fourcc(code: str) -> int:
    return struct.unpack("<I", code.encode("ascii"))[0]


_FOURCC = {fourcc(k): k for k in SECTIONS}

# -- in-memory model --------------------------------------------------------------------


@dataclass
class Buffer:
    """A block of NPU-visible memory; ``init`` holds its first bytes, the rest is zero."""

    size: int
    kind: str
    name: str = ""
    align: int = 64
    init: bytes = b""


@dataclass
class Relocation:
    """Patch a 32-bit word with a buffer's final GPU address (shifted, into a bit field)."""

    site_kind: str            # "buffer" or "stream"
    site_index: int           # buffer id, or step index for a stream
    site_offset: int          # byte offset of the 32-bit word
    target_buffer: int
    target_offset: int = 0
    shift: int = 0
    bit: int = 0
    width: int = 32


@dataclass
class TensorInfo:
    """Where a tensor lives and how to read it."""

    name: str
    buffer: int
    offset: int
    dtype: str
    shape: tuple[int, ...]
    layout: str = "nhwc"
    scale: float = 0.0
    zero_point: int = 0
    per_channel: bool = False

    @property
    def nbytes(self) -> int:
        # Exact integers: a hostile shape must not wrap around to a small size.
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


@dataclass
class NpuStep:
    """Command-stream words submitted as one job batch, with the buffers they use (id, READ|WRITE flags)."""

    name: str
    stream: list[int]
    bos: list[tuple[int, int]]


@dataclass
class HostStep:
    """A host kernel run on the CPU over tensors (ids into the tensor table; None = absent optional input)."""

    name: str
    kernel: str
    inputs: list[int | None]
    outputs: list[int]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Blob:
    """The whole content of a .vipbin file."""

    target: str
    identity: NpuIdentity
    compiler_version: str
    model_sha256: bytes
    buffers: list[Buffer]
    relocations: list[Relocation]
    tensors: list[TensorInfo]
    steps: list[NpuStep | HostStep]
    inputs: list[int]
    outputs: list[int]
    metadata: dict[str, str] = field(default_factory=dict)


# -- writing --------------------------------------------------------------------------


class _Strings:
    def __init__(self) -> None:
        self.data = bytearray(b"\0")  # offset 0 is the empty string
        self.index: dict[str, int] = {"": 0}

    def add(self, s: str) -> int:
        if s not in self.index:
            self.index[s] = len(self.data)
            self.data += s.encode("utf-8") + b"\0"
        return self.index[s]


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _f32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _encode_param(name: str, value: Any, pdat: list[int]) -> dict[str, int]:
    """Append one host-kernel parameter's value to the PDAT word pool."""
    offset = len(pdat)
    if isinstance(value, (bool, int, np.integer)):
        v = int(value)
        if not -(1 << 31) <= v < (1 << 31):
            raise LimitError(f"host parameter {name}={v} does not fit 32 bits")
        pdat.append(v & 0xFFFFFFFF)
        return {"type": 1, "count": 1, "offset": offset}
    if isinstance(value, (float, np.floating)):
        lo, hi = struct.unpack("<II", struct.pack("<d", float(value)))
        pdat.extend((lo, hi))
        return {"type": 2, "count": 1, "offset": offset}
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise TypeError(f"host parameter {name} must be a scalar or a 1-D array")
    if arr.dtype.kind in "iub":
        if arr.size and (arr.min() < -(1 << 31) or arr.max() >= (1 << 31)):
            raise LimitError(f"host parameter {name} has values that do not fit 32 bits")
        pdat.extend(int(v) & 0xFFFFFFFF for v in arr.astype(np.int64))
        return {"type": 3, "count": int(arr.size), "offset": offset}
    if arr.dtype.kind == "f":
        pdat.extend(int(v) for v in arr.astype("<f4").view("<u4"))
        return {"type": 4, "count": int(arr.size), "offset": offset}
    raise TypeError(f"host parameter {name} has unsupported type {arr.dtype}")


def write_blob(blob: Blob) -> bytes:
    """Serialize a blob; the same blob always gives the same bytes."""
    strs = _Strings()
    sections: dict[str, bytearray] = {k: bytearray() for k in SECTIONS}

    data = sections["DATA"]
    for b in blob.buffers:
        if len(b.init) > b.size:
            raise ValueError(f"buffer {b.name!r}: {len(b.init)} initial bytes exceed its size {b.size}")
        init_offset = len(data) if b.init else 0
        if b.init:
            data += b.init
            data += bytes(_align(len(data), SECTION_ALIGN) - len(data))
        sections["BUFS"] += BUFFER.pack({"size": b.size, "align": b.align, "kind": _KIND_CODE[b.kind],
                                         "name": strs.add(b.name), "init_offset": init_offset,
                                         "init_size": len(b.init)})
    site_codes = {v: k for k, v in SITE_KINDS.items()}
    for r in blob.relocations:
        sections["RELO"] += RELOCATION.pack({
            "site_kind": site_codes[r.site_kind], "site_index": r.site_index, "site_offset": r.site_offset,
            "target_buffer": r.target_buffer, "target_offset": r.target_offset,
            "shift": r.shift, "bit": r.bit, "width": r.width})
    for t in blob.tensors:
        if len(t.shape) > MAX_RANK:
            raise LimitError(f"tensor {t.name!r} has rank {len(t.shape)}; the container allows {MAX_RANK}")
        rec = {"name": strs.add(t.name), "buffer": t.buffer, "offset": t.offset, "dtype": _DTYPE_CODE[t.dtype],
               "layout": _LAYOUT_CODE[t.layout], "rank": len(t.shape), "per_channel": int(t.per_channel),
               "scale_bits": _f32_bits(t.scale), "zero_point": t.zero_point}
        rec.update({f"dim{i}": d for i, d in enumerate(t.shape)})
        sections["TENS"] += TENSOR.pack(rec)
    idxs: list[int] = []
    stream_words: list[int] = []
    pdat: list[int] = []
    n_params = 0
    for s in blob.steps:
        rec: dict[str, int] = {"name": strs.add(s.name)}
        if isinstance(s, NpuStep):
            rec.update(kind=1, stream_offset=len(stream_words), stream_words=len(s.stream),
                       bos_offset=len(idxs), bos_count=len(s.bos))
            stream_words.extend(s.stream)
            for buf, flags in s.bos:
                idxs.extend((buf, flags))
        else:
            rec.update(kind=2, kernel=strs.add(s.kernel), inputs_offset=len(idxs), inputs_count=len(s.inputs))
            idxs.extend(ABSENT if t is None else t for t in s.inputs)
            rec.update(outputs_offset=len(idxs), outputs_count=len(s.outputs))
            idxs.extend(s.outputs)
            rec.update(params_offset=n_params, params_count=len(s.params))
            for name in sorted(s.params):  # sorted: same bytes whatever the dict order
                p = _encode_param(name, s.params[name], pdat)
                p["name"] = strs.add(name)
                sections["PARM"] += PARAM.pack(p)
                n_params += 1
        sections["PROG"] += STEP.pack(rec)
    sections["STRM"] += struct.pack(f"<{len(stream_words)}I", *stream_words)
    sections["IDXS"] += struct.pack(f"<{len(idxs)}I", *idxs)
    sections["PDAT"] += struct.pack(f"<{len(pdat)}I", *pdat)
    for direction, lst in ((0, blob.inputs), (1, blob.outputs)):
        for t in lst:
            sections["IOTN"] += IO.pack({"direction": direction, "tensor": t})
    for key in sorted(blob.metadata):
        sections["META"] += META.pack({"key": strs.add(key), "value": strs.add(blob.metadata[key])})

    header_values = {
        "magic": MAGIC, "format_major": FORMAT_MAJOR, "format_minor": FORMAT_MINOR, "header_size": HEADER.size,
        "npu_model": blob.identity.model, "npu_revision": blob.identity.revision,
        "npu_product_id": blob.identity.product_id, "npu_customer_id": blob.identity.customer_id,
        "npu_eco_id": blob.identity.eco_id, "target_name": strs.add(blob.target),
        "compiler_version": strs.add(blob.compiler_version),
    }
    if len(blob.model_sha256) != 32:
        raise ValueError("model_sha256 must be 32 bytes")
    header_values.update({f"model_sha256_{i}": w for i, w in enumerate(struct.unpack("<8I", blob.model_sha256))})
    sections["STRS"] = strs.data

    table_offset = HEADER.size
    pos = _align(table_offset + SECTION.size * len(SECTIONS), SECTION_ALIGN)
    table = bytearray()
    body: list[bytes | bytearray] = []  # joined once at the end: megabytes of coefficients copied once, not 4 times
    for kind in SECTIONS:
        content = sections[kind]
        table += SECTION.pack({"kind": fourcc(kind), "offset": pos, "size": len(content),
                               "crc32": zlib.crc32(content)})
        padding = _align(len(content), SECTION_ALIGN) - len(content)
        body += (content, bytes(padding))
        pos += len(content) + padding
    if pos >= 1 << 32:
        raise LimitError(f"blob of {pos} bytes exceeds the 4 GiB container limit")
    header_values.update(file_size=pos, section_table_offset=table_offset, section_count=len(SECTIONS))
    header = bytearray(HEADER.pack(header_values))
    header_values["header_crc32"] = zlib.crc32(header)
    head = HEADER.pack(header_values) + table
    head += bytes(_align(len(head), SECTION_ALIGN) - len(head))
    return b"".join((head, *body))


# -- reading --------------------------------------------------------------------------


class _Reader:
    """Validating parser; every failure is a one-line BlobError prefixed with the file name."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source

    def fail(self, msg: str) -> BlobError:
        return BlobError(f"{self.source}: {msg}")

    def records(self, sec: bytes, layout: Layout, kind: str) -> list[dict[str, int]]:
        if len(sec) % layout.size:
            raise self.fail(f"section {kind} is {len(sec)} bytes, not a whole number of {layout.size}-byte records")
        n = len(sec) // layout.size
        if n > MAX_RECORDS:
            raise self.fail(f"section {kind} has {n} records, more than the limit of {MAX_RECORDS}")
        words = np.frombuffer(sec, dtype="<u4").reshape(n, layout.words) if n else np.zeros((0, layout.words), "<u4")
        return [layout.unpack_words(row.tolist()) for row in words]

    def string(self, strs: bytes, offset: int, what: str) -> str:
        if offset >= len(strs):
            raise self.fail(f"{what}: string offset {offset} is outside the string table ({len(strs)} bytes)")
        end = strs.find(b"\0", offset)
        if end < 0:
            raise self.fail(f"{what}: string at offset {offset} is not terminated")
        try:
            return strs[offset:end].decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what}: string at offset {offset} is not valid UTF-8") from None

    def read(self) -> Blob:
        d = self.data
        if len(d) < HEADER.size:
            raise self.fail(f"file of {len(d)} bytes is too short for a .vipbin header ({HEADER.size} bytes)")
        h = HEADER.unpack(d)
        if h["magic"] != MAGIC:
            raise self.fail("not a .vipbin file (bad magic)")
        if h["format_major"] != FORMAT_MAJOR:
            raise self.fail(f"format version {h['format_major']}.{h['format_minor']} is not supported "
                            f"(this npuc reads {FORMAT_MAJOR}.x)")
        if h["header_size"] != HEADER.size:
            raise self.fail(f"header size {h['header_size']} is not {HEADER.size}")
        if zlib.crc32(HEADER.pack({**h, "header_crc32": 0})) != h["header_crc32"]:
            raise self.fail("header CRC mismatch (the file is corrupted)")
        if h["file_size"] != len(d):
            raise self.fail(f"header says {h['file_size']} bytes but the file has {len(d)} (truncated or padded)")
        n_sec = h["section_count"]
        if n_sec > MAX_SECTIONS:
            raise self.fail(f"section count {n_sec} is implausible")
        table_end = h["section_table_offset"] + n_sec * SECTION.size
        if h["section_table_offset"] < HEADER.size or table_end > len(d):
            raise self.fail("section table lies outside the file")
        sections: dict[str, bytes] = {}
        spans: list[tuple[int, int, str]] = []
        for i in range(n_sec):
            s = SECTION.unpack(d, h["section_table_offset"] + i * SECTION.size)
            kind = _FOURCC.get(s["kind"])
            if kind is None:
                raise self.fail(f"section {i} has unknown kind 0x{s['kind']:08x}")
            if kind in sections:
                raise self.fail(f"section {kind} appears twice")
            if s["offset"] % SECTION_ALIGN or s["offset"] < table_end or s["offset"] + s["size"] > len(d):
                raise self.fail(f"section {kind} at offset {s['offset']} (+{s['size']}) is misaligned or outside the file")
            content = d[s["offset"]:s["offset"] + s["size"]]
            if zlib.crc32(content) != s["crc32"]:
                raise self.fail(f"section {kind} CRC mismatch (the file is corrupted)")
            spans.append((s["offset"], s["offset"] + s["size"], kind))
            sections[kind] = content
        spans.sort()
        for (a0, a1, ka), (b0, b1, kb) in zip(spans, spans[1:]):
            if b0 < a1:
                raise self.fail(f"sections {ka} and {kb} overlap")
        missing = [k for k in SECTIONS if k not in sections]
        if missing:
            raise self.fail(f"section {missing[0]} is missing")
        return self.parse(h, sections)

    def parse(self, h: dict[str, int], sec: dict[str, bytes]) -> Blob:
        strs = sec["STRS"]
        if not strs or strs[0] != 0:
            raise self.fail("string table must start with the empty string")
        s = lambda off, what: self.string(strs, off, what)  # noqa: E731

        buffers: list[Buffer] = []
        total = 0
        data = sec["DATA"]
        recs = self.records(sec["BUFS"], BUFFER, "BUFS")
        if len(recs) > MAX_BUFFERS:
            raise self.fail(f"{len(recs)} buffers exceed the limit of {MAX_BUFFERS}")
        for i, r in enumerate(recs):
            what = f"buffer {i}"
            if r["kind"] not in BUFFER_KINDS:
                raise self.fail(f"{what}: unknown kind {r['kind']}")
            a = r["align"]
            if a == 0 or a & (a - 1) or a > MAX_ALIGN:
                raise self.fail(f"{what}: alignment {a} is not a power of two up to {MAX_ALIGN}")
            if r["size"] == 0 or r["size"] > MAX_BUFFER_BYTES:
                raise self.fail(f"{what}: size {r['size']} is zero or exceeds the limit of {MAX_BUFFER_BYTES} bytes")
            total += r["size"]
            if total > MAX_TOTAL_BUFFER_BYTES:
                raise LimitError(f"{self.source}: buffers need more than {MAX_TOTAL_BUFFER_BYTES} bytes in total")
            if r["init_size"] > r["size"]:
                raise self.fail(f"{what}: {r['init_size']} initial bytes exceed its size {r['size']}")
            if r["init_offset"] + r["init_size"] > len(data):
                raise self.fail(f"{what}: initial data at {r['init_offset']} (+{r['init_size']}) lies outside DATA")
            buffers.append(Buffer(size=r["size"], kind=BUFFER_KINDS[r["kind"]], name=s(r["name"], what), align=a,
                                  init=bytes(data[r["init_offset"]:r["init_offset"] + r["init_size"]])))

        def check_buffer(idx: int, what: str) -> Buffer:
            if idx >= len(buffers):
                raise self.fail(f"{what} refers to buffer {idx}, but the blob has {len(buffers)}")
            return buffers[idx]

        idxs = np.frombuffer(sec["IDXS"][: len(sec["IDXS"]) // 4 * 4], "<u4")
        stream = np.frombuffer(sec["STRM"][: len(sec["STRM"]) // 4 * 4], "<u4")
        pdat = np.frombuffer(sec["PDAT"][: len(sec["PDAT"]) // 4 * 4], "<u4")
        for name, sz in (("IDXS", len(sec["IDXS"])), ("STRM", len(sec["STRM"])), ("PDAT", len(sec["PDAT"]))):
            if sz % 4:
                raise self.fail(f"section {name} is not a whole number of 32-bit words")

        tensors: list[TensorInfo] = []
        for i, r in enumerate(self.records(sec["TENS"], TENSOR, "TENS")):
            what = f"tensor {i}"
            buf = check_buffer(r["buffer"], what)
            if r["dtype"] not in DTYPES or r["layout"] not in LAYOUTS or r["rank"] > MAX_RANK:
                raise self.fail(f"{what}: bad dtype {r['dtype']}, layout {r['layout']} or rank {r['rank']}")
            shape = tuple(r[f"dim{k}"] for k in range(r["rank"]))
            t = TensorInfo(name=s(r["name"], what), buffer=r["buffer"], offset=r["offset"], dtype=DTYPES[r["dtype"]],
                           shape=shape, layout=LAYOUTS[r["layout"]],
                           scale=struct.unpack("<f", struct.pack("<I", r["scale_bits"]))[0],
                           zero_point=r["zero_point"], per_channel=bool(r["per_channel"]))
            if t.offset + t.nbytes > buf.size:
                raise self.fail(f"{what} ({t.name!r}): {t.nbytes} bytes at offset {t.offset} run past its buffer "
                                f"of {buf.size} bytes")
            if t.offset % np.dtype(t.dtype).itemsize:
                raise self.fail(f"{what} ({t.name!r}): offset {t.offset} is not aligned to its element size")
            tensors.append(t)

        def index_list(off: int, count: int, what: str) -> list[int]:
            if off + count > idxs.size:
                raise self.fail(f"{what}: list at {off} (+{count}) lies outside IDXS")
            return idxs[off:off + count].tolist()

        params_recs = self.records(sec["PARM"], PARAM, "PARM")
        steps: list[NpuStep | HostStep] = []
        for i, r in enumerate(self.records(sec["PROG"], STEP, "PROG")):
            what = f"step {i}"
            name = s(r["name"], what)
            if r["kind"] == 1:
                if r["stream_offset"] + r["stream_words"] > stream.size:
                    raise self.fail(f"{what}: command stream at word {r['stream_offset']} lies outside STRM")
                if r["stream_words"] * 4 > MAX_STREAM_BYTES or r["stream_words"] % 2:
                    raise self.fail(f"{what}: command stream of {r['stream_words']} words is odd or exceeds 64 KiB")
                flat = index_list(r["bos_offset"], 2 * r["bos_count"], what)
                bos = list(zip(flat[0::2], flat[1::2]))
                for b, flags in bos:
                    check_buffer(b, what)
                    if flags & ~3 or not flags:
                        raise self.fail(f"{what}: buffer {b} has bad access flags {flags}")
                steps.append(NpuStep(name, stream[r["stream_offset"]:r["stream_offset"] + r["stream_words"]].tolist(),
                                     bos))
            elif r["kind"] == 2:
                ins = [None if t == ABSENT else t for t in index_list(r["inputs_offset"], r["inputs_count"], what)]
                outs = index_list(r["outputs_offset"], r["outputs_count"], what)
                for t in [t for t in ins if t is not None] + outs:
                    if t >= len(tensors):
                        raise self.fail(f"{what}: refers to tensor {t}, but the blob has {len(tensors)}")
                if r["params_offset"] + r["params_count"] > len(params_recs):
                    raise self.fail(f"{what}: parameters at {r['params_offset']} lie outside PARM")
                params = {}
                for p in params_recs[r["params_offset"]:r["params_offset"] + r["params_count"]]:
                    pname = s(p["name"], what)
                    params[pname] = self.param(p, pdat, f"{what} parameter {pname}")
                steps.append(HostStep(name, s(r["kernel"], what), ins, outs, params))
            else:
                raise self.fail(f"{what}: unknown step kind {r['kind']}")

        relocations: list[Relocation] = []
        for i, r in enumerate(self.records(sec["RELO"], RELOCATION, "RELO")):
            what = f"relocation {i}"
            if r["site_kind"] == 0:
                size = check_buffer(r["site_index"], what).size
            elif r["site_kind"] == 1:
                if r["site_index"] >= len(steps) or not isinstance(steps[r["site_index"]], NpuStep):
                    raise self.fail(f"{what}: site step {r['site_index']} is not an NPU step")
                size = 4 * len(steps[r["site_index"]].stream)
            else:
                raise self.fail(f"{what}: unknown site kind {r['site_kind']}")
            if r["site_offset"] % 4 or r["site_offset"] + 4 > size:
                raise self.fail(f"{what}: site offset {r['site_offset']} is unaligned or outside its site of {size} bytes")
            target = check_buffer(r["target_buffer"], what)
            if r["target_offset"] > target.size:
                raise self.fail(f"{what}: target offset {r['target_offset']} is past the end of buffer "
                                f"{r['target_buffer']} ({target.size} bytes)")
            if r["shift"] > 31 or r["width"] == 0 or r["bit"] + r["width"] > 32:
                raise self.fail(f"{what}: bad encoding shift {r['shift']} bits [{r['bit']}, +{r['width']})")
            relocations.append(Relocation(SITE_KINDS[r["site_kind"]], r["site_index"], r["site_offset"],
                                          r["target_buffer"], r["target_offset"], r["shift"], r["bit"], r["width"]))

        inputs: list[int] = []
        outputs: list[int] = []
        for i, r in enumerate(self.records(sec["IOTN"], IO, "IOTN")):
            if r["tensor"] >= len(tensors) or r["direction"] not in IO_DIRECTIONS:
                raise self.fail(f"I/O record {i}: bad tensor {r['tensor']} or direction {r['direction']}")
            (inputs if r["direction"] == 0 else outputs).append(r["tensor"])
        metadata = {}
        for i, r in enumerate(self.records(sec["META"], META, "META")):
            metadata[s(r["key"], f"metadata {i}")] = s(r["value"], f"metadata {i}")

        sha = struct.pack("<8I", *(h[f"model_sha256_{i}"] for i in range(8)))
        identity = NpuIdentity(h["npu_model"], h["npu_revision"], h["npu_product_id"], h["npu_customer_id"],
                               h["npu_eco_id"])
        return Blob(target=s(h["target_name"], "header"), identity=identity,
                    compiler_version=s(h["compiler_version"], "header"), model_sha256=sha, buffers=buffers,
                    relocations=relocations, tensors=tensors, steps=steps, inputs=inputs, outputs=outputs,
                    metadata=metadata)

    def param(self, p: dict[str, int], pdat: np.ndarray, what: str) -> Any:
        if p["type"] not in PARAM_TYPES:
            raise self.fail(f"{what}: unknown type {p['type']}")
        words = {1: 1, 2: 2, 3: p["count"], 4: p["count"]}[p["type"]]
        if p["type"] in (1, 2) and p["count"] != 1:
            raise self.fail(f"{what}: a scalar with count {p['count']}")
        if p["offset"] + words > pdat.size:
            raise self.fail(f"{what}: value at word {p['offset']} lies outside PDAT")
        raw = pdat[p["offset"]:p["offset"] + words]
        if p["type"] == 1:
            return int(raw.view("<i4")[0])
        if p["type"] == 2:
            return float(raw.view("<f8")[0])
        if p["type"] == 3:
            return raw.view("<i4").copy()
        return raw.view("<f4").copy()


def read_blob(data: bytes, source: str = "<blob>") -> Blob:
    """Parse and validate a .vipbin; raises BlobError naming ``source`` and the first fault."""
    try:
        return _Reader(bytes(data), source).read()
    except LayoutError as e:
        raise BlobError(f"{source}: {e}") from None


def read_blob_file(path: str | Path) -> bytes:
    """The raw bytes of a .vipbin file; unreadable paths are a one-line BlobError."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BlobError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BlobError(f"{path}: is a directory, not a .vipbin file") from None
    except OSError as e:
        raise BlobError(f"{path}: cannot read ({e.strerror})") from None


def load_blob(path: str | Path) -> Blob:
    """Read and validate a .vipbin file from disk."""
    return read_blob(read_blob_file(path), str(path))


def patch_word(word: int, address: int, r: Relocation) -> int:
    """The 32-bit ``word`` with the relocation's bit field set from ``address``."""
    mask = ((1 << r.width) - 1) << r.bit
    value = (((address + r.target_offset) >> r.shift) << r.bit) & mask
    return (word & ~mask & 0xFFFFFFFF) | value


def section_summary(data: bytes) -> list[tuple[str, int, int, int]]:
    """(kind, offset, size, crc32) of each section of a valid blob, for ``npuc inspect``."""
    h = HEADER.unpack(data)
    out = []
    for i in range(h["section_count"]):
        s = SECTION.unpack(data, h["section_table_offset"] + i * SECTION.size)
        out.append((_FOURCC.get(s["kind"], "????"), s["offset"], s["size"], s["crc32"]))
    return out


def all_layouts() -> Sequence[Layout]:
    """Every record layout of the container, for the C runtime template."""
    return (HEADER, SECTION, BUFFER, RELOCATION, TENSOR, STEP, PARAM, IO, META)
