"""The .vipbin container: round trips of arbitrary blobs, and rejection of corrupted ones."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blob_tools import fix_crcs
from npuc import vipbin
from npuc.hw.target import NpuIdentity
from npuc.errors import BlobError, LimitError

u32 = st.integers(0, 0xFFFFFFFF)
names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12)


@st.composite
def blobs(draw) -> vipbin.Blob:
    nbuf = draw(st.integers(1, 5))
    buffers = []
    for _ in range(nbuf):
        size = draw(st.integers(1, 512))
        init = draw(st.binary(max_size=size))
        buffers.append(vipbin.Buffer(size=size, kind=draw(st.sampled_from(list(vipbin.BUFFER_KINDS.values()))),
                                     name=draw(names), align=2 ** draw(st.integers(0, 12)), init=init))
    tensors = []
    for _ in range(draw(st.integers(1, 6))):
        b = draw(st.integers(0, nbuf - 1))
        dtype = draw(st.sampled_from(["uint8", "int8", "int32", "float32"]))
        item = np.dtype(dtype).itemsize
        rank = draw(st.integers(0, 4))
        shape = tuple(draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank)))
        nbytes = int(np.prod(shape, dtype=np.int64)) * item
        if nbytes > buffers[b].size:
            continue
        offset = draw(st.integers(0, (buffers[b].size - nbytes) // item)) * item
        tensors.append(vipbin.TensorInfo(draw(names), b, offset, dtype, shape, draw(st.sampled_from(["nhwc", "planar"])),
                                         float(np.float32(draw(st.floats(0, 10, allow_nan=False)))),
                                         draw(st.integers(-128, 255)), draw(st.booleans())))
    if not tensors:
        tensors.append(vipbin.TensorInfo("t", 0, 0, "uint8", (1,)))
    nt = len(tensors)
    steps = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            words = draw(st.lists(u32, max_size=20))
            if len(words) % 2:
                words.append(0)
            bos = [(draw(st.integers(0, nbuf - 1)), draw(st.integers(1, 3))) for _ in range(draw(st.integers(0, 3)))]
            steps.append(vipbin.NpuStep(draw(names), words, bos))
        else:
            params = {}
            for k in draw(st.lists(st.text("abcdef_", min_size=1, max_size=6), max_size=4, unique=True)):
                params[k] = draw(st.one_of(
                    st.integers(-(2 ** 31), 2 ** 31 - 1),
                    st.floats(allow_nan=False),
                    st.lists(st.integers(-(2 ** 31), 2 ** 31 - 1), max_size=5).map(lambda v: np.array(v, np.int32)),
                    st.lists(st.floats(-1e6, 1e6, width=32), max_size=5).map(lambda v: np.array(v, np.float32))))
            ins = draw(st.lists(st.one_of(st.none(), st.integers(0, nt - 1)), max_size=3))
            steps.append(vipbin.HostStep(draw(names), draw(st.sampled_from(["CONV_2D", "SOFTMAX"])), ins,
                                         draw(st.lists(st.integers(0, nt - 1), max_size=2)), params))
    relocs = []
    for _ in range(draw(st.integers(0, 4))):
        site = draw(st.integers(0, nbuf - 1))
        if buffers[site].size < 4:
            continue
        width = draw(st.integers(1, 32))
        relocs.append(vipbin.Relocation("buffer", site, draw(st.integers(0, buffers[site].size // 4 - 1)) * 4,
                                        draw(st.integers(0, nbuf - 1)), 0, draw(st.integers(0, 31)),
                                        draw(st.integers(0, 32 - width)), width))
    return vipbin.Blob(
        target="vipnano-qi", identity=NpuIdentity(*(draw(u32) for _ in range(5))), compiler_version=draw(names),
        model_sha256=draw(st.binary(min_size=32, max_size=32)), buffers=buffers, relocations=relocs, tensors=tensors,
        steps=steps, inputs=draw(st.lists(st.integers(0, nt - 1), max_size=2)),
        outputs=draw(st.lists(st.integers(0, nt - 1), max_size=2)),
        metadata=draw(st.dictionaries(names, names, max_size=3)))


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b)) and np.asarray(a).dtype.kind == np.asarray(b).dtype.kind
    return a == b


@settings(max_examples=150, deadline=None)
@given(blobs())
def test_round_trip_preserves_everything(blob):
    raw = vipbin.write_blob(blob)
    back = vipbin.read_blob(raw)
    assert vipbin.write_blob(back) == raw
    assert back.buffers == blob.buffers and back.relocations == blob.relocations
    assert back.inputs == blob.inputs and back.outputs == blob.outputs and back.metadata == blob.metadata
    assert back.identity == blob.identity and back.model_sha256 == blob.model_sha256
    for t0, t1 in zip(blob.tensors, back.tensors):
        assert (t0.name, t0.buffer, t0.offset, t0.dtype, tuple(t0.shape), t0.layout, t0.zero_point, t0.per_channel) == \
               (t1.name, t1.buffer, t1.offset, t1.dtype, tuple(t1.shape), t1.layout, t1.zero_point, t1.per_channel)
        assert np.float32(t0.scale) == np.float32(t1.scale)
    for s0, s1 in zip(blob.steps, back.steps):
        assert type(s0) is type(s1) and s0.name == s1.name
        if isinstance(s0, vipbin.NpuStep):
            assert s0.stream == s1.stream and s0.bos == s1.bos
        else:
            assert (s0.kernel, s0.inputs, s0.outputs) == (s1.kernel, s1.inputs, s1.outputs)
            assert s0.params.keys() == s1.params.keys()
            assert all(_same(s0.params[k], s1.params[k]) for k in s0.params)


def _sample_blob() -> bytes:
    blob = vipbin.Blob(
        target="vipnano-qi", identity=NpuIdentity(0x8000, 0x7120, 0x45080009, 0x88, 0), compiler_version="npuc test",
        model_sha256=bytes(range(32)),
        buffers=[vipbin.Buffer(4096, "tensor", "arena"), vipbin.Buffer(256, "descriptor", "desc", 64, bytes(range(200))),
                 vipbin.Buffer(128, "constant", "weights", 64, b"\x01" * 128)],
        relocations=[vipbin.Relocation("buffer", 1, 20, 2, 0, 6, 0, 26), vipbin.Relocation("stream", 0, 4, 1, 1)],
        tensors=[vipbin.TensorInfo("in", 0, 0, "uint8", (1, 8, 8, 3), scale=0.5, zero_point=128),
                 vipbin.TensorInfo("w", 2, 0, "uint8", (4, 4, 3)), vipbin.TensorInfo("out", 0, 256, "uint8", (1, 4))],
        steps=[vipbin.NpuStep("job", [0x0801042E, 0], [(1, 1), (0, 3)]),
               vipbin.HostStep("conv", "CONV_2D", [0, 1, None], [2], {"stride": 2, "mult": np.arange(4, dtype=np.int32)})],
        inputs=[0], outputs=[2], metadata={"labels": "a\nb\n"})
    return vipbin.write_blob(blob)


def _reject(raw: bytes | bytearray, fragment: str = "") -> str:
    with pytest.raises(BlobError) as e:
        vipbin.read_blob(bytes(raw), "x.vipbin")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("x.vipbin: "), msg
    assert fragment in msg, msg
    return msg


def test_sample_is_valid_and_deterministic():
    assert vipbin.read_blob(_sample_blob()).metadata["labels"] == "a\nb\n"
    assert _sample_blob() == _sample_blob()


@pytest.mark.parametrize("field", [f.name for f in vipbin.HEADER.fields])
def test_each_header_field_is_protected(field):
    raw = bytearray(_sample_blob())
    f = vipbin.HEADER[field]
    word = struct.unpack_from("<I", raw, f.byte_offset)[0]
    struct.pack_into("<I", raw, f.byte_offset, word ^ (1 << f.bit))
    _reject(raw)  # the header CRC catches any change
    if field not in ("header_crc32",):
        fixed = fix_crcs(raw)
        # With a correct CRC the change is either caught semantically or harmless (identity, names, hash).
        try:
            vipbin.read_blob(bytes(fixed), "x.vipbin")
        except BlobError as e:
            assert "\n" not in str(e)


@pytest.mark.parametrize("kind", list(vipbin.SECTIONS))
def test_each_section_is_protected_by_its_crc(kind):
    raw = bytearray(_sample_blob())
    for k, off, size, _ in vipbin.section_summary(bytes(raw)):
        if k == kind:
            if size == 0:
                pytest.skip(f"section {kind} is empty in the sample")
            raw[off] ^= 0x40
            _reject(raw, f"section {kind} CRC mismatch")
            return
    raise AssertionError(kind)


def test_every_truncation_is_rejected():
    raw = _sample_blob()
    for n in range(len(raw)):
        _reject(raw[:n])
    _reject(raw + b"\0" * 64, "header says")


def test_random_byte_flips_never_escape_as_other_exceptions():
    rng = np.random.default_rng(7)
    raw = _sample_blob()
    for _ in range(3000):
        b = bytearray(raw)
        for pos in rng.integers(0, len(b), rng.integers(1, 4)):
            b[pos] = rng.integers(0, 256)
        if rng.random() < 0.7:
            b = fix_crcs(b)  # mostly test the semantic checks behind the CRCs
        try:
            vipbin.read_blob(bytes(b), "x.vipbin")
        except (BlobError, LimitError) as e:
            assert "\n" not in str(e)


@pytest.mark.parametrize("corrupt,fragment", [
    (lambda b: b.buffers.__setitem__(1, vipbin.Buffer(256, "descriptor", "d", 3)), "not a power of two"),
    (lambda b: b.tensors.__setitem__(0, vipbin.TensorInfo("in", 0, 4090, "uint8", (1, 8, 8, 3))), "run past"),
    (lambda b: b.relocations.__setitem__(0, vipbin.Relocation("buffer", 1, 254, 2)), "site offset"),
    (lambda b: b.relocations.__setitem__(0, vipbin.Relocation("buffer", 1, 20, 9)), "refers to buffer 9"),
    (lambda b: b.relocations.__setitem__(0, vipbin.Relocation("buffer", 1, 20, 2, 4096)), "past the end"),
    (lambda b: b.steps.__setitem__(0, vipbin.NpuStep("j", [0, 0, 0], [])), "odd"),
    (lambda b: b.steps.__setitem__(0, vipbin.NpuStep("j", [0, 0], [(7, 1)])), "refers to buffer 7"),
    (lambda b: b.steps.__setitem__(0, vipbin.NpuStep("j", [0] * 20000, [])), "64 KiB"),
    (lambda b: b.outputs.__setitem__(0, 99), "I/O record"),
])
def test_semantic_faults_are_named(corrupt, fragment):
    blob = vipbin.read_blob(_sample_blob())
    corrupt(blob)
    _reject(vipbin.write_blob(blob), fragment)


def test_unknown_major_version_is_rejected():
    raw = bytearray(_sample_blob())
    h = vipbin.HEADER.unpack(raw)
    h["format_major"] = 2
    raw[:vipbin.HEADER.size] = vipbin.HEADER.pack(h)
    _reject(fix_crcs(raw), "format version 2.0 is not supported")
