"""The simulator's front end (command-stream parser) and SimDevice's kernel-boundary checks."""

from __future__ import annotations

import json
import struct
import time

import numpy as np
import pytest

import oracle
from tp_harness import descriptors_at, pad_job, transpose_job
from npuc.hw import registers as R
from npuc.hw.descriptors import TP_DESCRIPTOR
from npuc.passes.npu_program import PLANAR
from npuc.hw.target import VIPNANO_QI
from npuc.errors import SimError
from npuc.hw.kernel_abi import BO_READ, BO_WRITE, SubmitBo
from npuc.sim import cmdstream
from npuc.sim.cmdstream import CommandProcessor
from npuc.sim.device import SimDevice
from npuc.golden import load_golden
from npuc.sim.memory import Memory

GOLDEN_SETS = sorted(p for p in (oracle.SHARED / "golden").glob("*/*") if (p / "jobs.json").exists())


def words(*ws: int) -> bytes:
    return struct.pack(f"<{len(ws)}I", *ws)


def ls(register: int, *values: int) -> list[int]:
    """A LOAD_STATE of ``values`` to consecutive registers, padded to 64 bits."""
    header = R.LOAD_STATE.pack_words({"opcode": R.OP_LOAD_STATE, "count": len(values) % 1024,
                                      "address": register >> 2})[0]
    out = [header, *values]
    return out + [0] * (len(out) % 2)


@pytest.fixture
def recorded(monkeypatch):
    """Replace the job runners by recorders: the parser alone is under test."""
    calls = []
    monkeypatch.setattr(cmdstream, "run_nn_job", lambda mem, a, t, job: calls.append(("NN", a, job)))
    monkeypatch.setattr(cmdstream, "run_tp_job", lambda mem, a, t, job: calls.append(("TP", a, job)))
    return calls


def golden_memory(submit) -> Memory:
    mem = Memory()
    for bo in submit.bos:
        data = np.zeros(bo.size, np.uint8)
        kept = bo.contents()
        data[:len(kept)] = np.frombuffer(kept, np.uint8)
        mem.map(bo.address, data, f"bo {bo.handle}")
    return mem


@pytest.mark.parametrize("golden", GOLDEN_SETS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_streams_start_exactly_the_recorded_jobs(golden, recorded):
    """All four golden sets parse; the jobs started are jobs.json's, in order, with their names."""
    g = load_golden(golden)
    cp = CommandProcessor(VIPNANO_QI)
    for s in g.submits:
        trace = cp.run(s.stream, golden_memory(s), f"submit {s.index}")
        assert len(trace.flushes) == (2 if trace.jobs else 0)
        assert all(j.flags == 0 for j in trace.jobs)
    expected = [(j.kind, j.descriptor) for op in g.ops for j in op.jobs]
    assert [(k, a) for k, a, _ in recorded] == expected
    entries = [e for e in json.loads((golden / "jobs.json").read_text()) if not e.get("init")]
    assert recorded[0][2] == f"submit {int(entries[0]['submit'][-3:])} job 0 ({recorded[0][0]})"
    assert cp.registers[R.GL_API_MODE] == R.GL_API_MODE_OPENCL
    assert cp.registers[R.PA_SYSTEM_MODE] == R.PA_SYSTEM_MODE_INIT
    assert cp.registers[R.GL_FLUSH_CACHE] == R.GL_FLUSH_CACHE_NPU


@pytest.mark.parametrize("word", [R.LOAD_STATE.pack_words({"opcode": op})[0] | 5 for op in
                                  (R.OP_END, R.OP_NOP, R.OP_WAIT, R.OP_LINK, R.OP_STALL, 31)] + [0x1234])
def test_unknown_command_word_names_word_and_offset(word, recorded):
    stream = words(0, 0, *ls(R.GL_TP_CONFIG, 0), word, 0)
    with pytest.raises(SimError, match=rf"^s: unknown command word 0x{word:08x} at byte offset 16 "):
        CommandProcessor(VIPNANO_QI).run(stream, Memory(), "s")


def test_load_state_of_several_values_and_padding(recorded):
    cp = CommandProcessor(VIPNANO_QI)
    stream = words(*ls(R.GL_OCB_REMAP_START, 7, 8), *ls(0x20000, *range(1, 1025)), *ls(R.GL_UNK03950, 8))
    trace = cp.run(stream, Memory(), "s")
    assert cp.registers[R.GL_OCB_REMAP_START] == 7 and cp.registers[R.GL_OCB_REMAP_END] == 8
    assert cp.registers[0x20000] == 1 and cp.registers[0x20000 + 4 * 1023] == 1024  # count 0 means 1024
    assert cp.registers[R.GL_UNK03950] == 8
    assert trace.writes[0] == (4, R.GL_OCB_REMAP_START, 7) and len(trace.writes) == 1027
    assert not recorded


@pytest.mark.parametrize("stream,message", [
    (words(*ls(R.GL_TP_CONFIG, 1, 2)[:2]), r"announces 2 values but the stream ends after 1"),
    (words(0, *ls(R.GL_TP_CONFIG, 0), 0), r"at byte offset 4 is not 64-bit aligned"),
    (words(*ls(R.GL_TP_CONFIG, 0, 0)[:3]), r"lacks the padding word"),
    (words(ls(R.GL_TP_CONFIG, 0)[0] | 1 << 26, 0), r"asks for fixed-point conversion"),
    (b"\0\0\0\0\0\0", r"6 bytes is not a whole number of 32-bit words"),
], ids=["truncated", "misaligned", "unpadded", "fixp", "partial-word"])
def test_malformed_load_state(stream, message, recorded):
    with pytest.raises(SimError, match=message):
        CommandProcessor(VIPNANO_QI).run(stream, Memory(), "s")


# -- TP jobs split over cores ---------------------------------------------------------------

SRC, DST, DESC = 0x0100_0000, 0x0200_0000, 0x0300_0000


def tp_stream(descs: list[int], flags: list[int], unk03950: list[int]) -> bytes:
    """The stream Mesa emits for one TP operation over len(descs) cores, then the batch end."""
    ws = [0] * 8
    for addr, flag, unk in zip(descs, flags, unk03950):
        ws += ls(R.GL_OCB_REMAP_START, 0) + ls(R.GL_OCB_REMAP_END, 0) + ls(R.GL_TP_CONFIG, 0)
        ws += ls(R.GL_UNK03950, unk) + ls(R.PS_TP_INST_ADDR, addr + flag)
    ws += ls(R.PS_UNK10A4, 0) + ls(R.GL_FLUSH_CACHE, R.GL_FLUSH_CACHE_NPU) * 2 + [0, 0]
    return words(*ws)


def pad_memory(fields: list[dict]) -> tuple[Memory, np.ndarray, np.ndarray]:
    mem = Memory()
    src, dst = np.zeros(1 << 16, np.uint8), np.zeros(1 << 16, np.uint8)
    mem.map(SRC, src, "src")
    mem.map(DST, dst, "dst")
    for i, f in enumerate(fields):
        mem.map(DESC + 4096 * i, np.frombuffer(TP_DESCRIPTOR.pack(f) + bytes(4096 - 124), np.uint8).copy(), f"d{i}")
    return mem, src, dst


def test_pad_split_over_four_cores_runs_from_the_stream():
    shape, pads = (8, 8, 5), ((1, 1), (2, 0), (1, 1))
    fields = descriptors_at(pad_job(shape, pads, 40, PLANAR), SRC, DST)
    mem, src, dst = pad_memory(fields)
    x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    src[:x.size] = x.transpose(2, 0, 1).ravel()
    chained = [R.TP_INST_ADDR_CHAINED] * 3 + [0]
    trace = CommandProcessor(VIPNANO_QI).run(tp_stream([DESC + 4096 * i for i in range(4)], chained,
                                                       [R.GL_UNK03950_TP_SPLIT] * 3 + [0]), mem, "submit 7")
    want = np.pad(x, pads, constant_values=40).transpose(2, 0, 1)
    assert np.array_equal(dst[:want.size].reshape(want.shape), want)
    assert [j.name for j in trace.jobs] == [f"submit 7 job {i} (TP)" for i in range(4)]
    assert [j.flags for j in trace.jobs] == chained
    assert [j.descriptor for j in trace.jobs] == [DESC + 4096 * i for i in range(4)]


@pytest.mark.parametrize("flags,no_flush,message", [
    ([0, 0, 0, 0], None, r"submit 7 job 0 \(TP\): PS_TP_INST_ADDR value 0x03000000 at byte offset 68 has the "
                         r"chaining flag clear but the descriptor's no_flush is 1"),
    ([1, 1, 1, 1], None, r"job 3 \(TP\): .* chaining flag set but the descriptor's no_flush is 0"),
    ([1, 1, 1], [1, 1, 1], r"ends while the TP job chain started at byte offset 68 is still open"),
    ([1, 1, 1, 1, 0], [1, 1, 1, 1, 0], r"job 4 \(TP\): TP job chain started at byte offset 68 has 5 descriptors, "
                                       r"more than the 4 TP cores"),
])
def test_tp_chain_checks(flags, no_flush, message):
    fields = descriptors_at(pad_job((8, 8, 5), ((1, 1), (1, 1), (0, 0)), 0, PLANAR), SRC, DST)
    fields += [dict(fields[-1])]
    if no_flush is not None:
        for f, n in zip(fields, no_flush):
            f["no_flush"] = n
    mem, _, _ = pad_memory(fields[:len(flags)])
    stream = tp_stream([DESC + 4096 * i for i in range(len(flags))], flags, [0] * len(flags))
    with pytest.raises(SimError, match=message):
        CommandProcessor(VIPNANO_QI).run(stream, mem, "submit 7")


def test_nn_job_inside_an_open_tp_chain_is_refused(recorded):
    mem, _, _ = pad_memory([dict(descriptors_at(transpose_job((2, 2, 2)), SRC, DST)[0], no_flush=1)])
    stream = words(*ls(R.PS_TP_INST_ADDR, DESC | 1), *ls(R.PS_NN_INST_ADDR, 0x5000))
    with pytest.raises(SimError, match=r"s job 1 \(NN\): NN job started at byte offset 12 while the TP job chain "
                                       r"started at byte offset 4 is still open"):
        CommandProcessor(VIPNANO_QI).run(stream, mem, "s")


def test_nn_job_address_has_its_flag_bits_masked(recorded):
    trace = CommandProcessor(VIPNANO_QI).run(words(*ls(R.PS_NN_INST_ADDR, 0x12345000 | 0x21)), Memory(), "s")
    assert recorded == [("NN", 0x12345000, "s job 0 (NN)")]
    assert trace.jobs[0].flags == 0x21


def test_fuzzed_streams_only_raise_simerror(monkeypatch):
    """Random streams of zeros, LOAD_STATEs to the NPU registers and garbage: SimError or success."""
    from npuc.sim import tp
    monkeypatch.setattr(tp, "MAX_TP_ELEMENTS", 1 << 14)
    rng = np.random.default_rng(7)
    fields = descriptors_at(pad_job((6, 6, 4), ((1, 1), (1, 0), (0, 1)), 3, PLANAR), SRC, DST)
    regs = list(R.REGISTER_NAMES) + [0x1234]
    ran = failed = 0
    deadline = time.perf_counter() + 20
    for case in range(400):
        mem, _, _ = pad_memory(fields)
        ws: list[int] = []
        for _ in range(int(rng.integers(1, 12))):
            r = rng.random()
            if r < 0.2:
                ws += [0, 0]
            elif r < 0.85:
                reg = int(rng.choice(regs))
                value = (DESC + 4096 * int(rng.integers(0, 5)) + int(rng.integers(0, 2))
                         if reg in (R.PS_TP_INST_ADDR,) and rng.random() < 0.7 else int(rng.integers(0, 1 << 32)))
                ws += ls(reg, *([value] * int(rng.integers(1, 4))))
            else:
                ws += [int(rng.integers(0, 1 << 32))]
        if rng.random() < 0.3:
            ws[int(rng.integers(0, len(ws)))] = int(rng.integers(0, 1 << 32))
        try:
            CommandProcessor(VIPNANO_QI).run(words(*ws), mem, f"fuzz {case}")
            ran += 1
        except SimError as e:
            assert f"fuzz {case}" in str(e)
            failed += 1
        assert time.perf_counter() < deadline, "fuzzing exceeded its time bound"
    assert ran > 40 and failed > 40


# -- SimDevice: what the kernel checks ------------------------------------------------------

VA = SimDevice.va_start


def test_device_identity_and_address_space():
    dev = SimDevice()
    assert dev.identity == VIPNANO_QI.identity
    assert (dev.va_start, dev.va_end, dev.va_align) == (4 << 20, 1 << 32, 4096)
    b = dev.new_buffer(100)
    assert b.size == 100 and b.data.dtype == np.uint8 and not b.data.any()
    assert dev.new_buffer(1).handle != b.handle


def test_device_submit_runs_the_stream_over_pinned_buffers():
    dev = SimDevice()
    src, dst, desc = dev.new_buffer(4096), dev.new_buffer(4096), dev.new_buffer(4096)
    a_src, a_dst, a_desc = VA, VA + 0x10000, VA + 0x20000
    fields = descriptors_at(transpose_job((3, 4, 5)), a_src, a_dst)[0]
    desc.data[:124] = np.frombuffer(TP_DESCRIPTOR.pack(fields), np.uint8)
    x = np.random.default_rng(1).integers(0, 256, (3, 4, 5), dtype=np.uint8)
    src.data[:x.size] = x.ravel()
    bos = [SubmitBo(src, a_src, BO_READ), SubmitBo(dst, a_dst, BO_READ | BO_WRITE), SubmitBo(desc, a_desc, BO_READ)]
    dev.submit(tp_stream([a_desc], [0], [0]), bos, "submit 1")
    assert np.array_equal(dst.data[:x.size].reshape(5, 3, 4), x.transpose(2, 0, 1))
    assert [j.name for j in dev.trace.jobs] == ["submit 1 job 0 (TP)"]
    dev.submit(words(0, 0), bos[:1])  # the same buffer at the same address again: fine


@pytest.mark.parametrize("case,message", [
    ("below", r"buffer 1 at 0x1000 \(\+8192\) lies outside the pinnable range"),
    ("unaligned", r"buffer 1 at 0x400010 is not aligned to 4096 bytes"),
    ("top", r"lies outside the pinnable range"),
    ("overlap", r"buffer 2 at 0x401000 \(\+4096\) overlaps buffer 1 pinned at 0x400000"),
    ("moved", r"buffer 1 at 0x500000 was pinned at 0x400000 before; a buffer keeps its address"),
    ("twice", r"buffer 1 at 0x400000 is listed twice"),
    ("foreign", r"was not created by this device"),
    ("flags", r"has invalid flags 0x4"),
    ("stream", r"command stream of 12 bytes must be a multiple of 8 bytes and at most 65536"),
    ("big", r"command stream of 65544 bytes"),
])
def test_device_refuses_what_the_kernel_refuses(case, message):
    dev = SimDevice()
    a, b = dev.new_buffer(8192), dev.new_buffer(4096)
    ok = SubmitBo(a, VA, BO_READ)
    stream = words(0, 0)
    bos = {"below": [SubmitBo(a, 0x1000, BO_READ)], "unaligned": [SubmitBo(a, VA + 16, BO_READ)],
           "top": [SubmitBo(a, (1 << 32) - 4096, BO_READ)],
           "overlap": [ok, SubmitBo(b, VA + 4096, BO_READ)], "moved": [SubmitBo(a, VA + 0x100000, BO_READ)],
           "twice": [ok, ok], "foreign": [SubmitBo(SimDevice().new_buffer(4096), VA, BO_READ)],
           "flags": [SubmitBo(a, VA, 4)], "stream": [ok], "big": [ok]}[case]
    if case == "moved":
        dev.submit(stream, [ok])
    if case == "stream":
        stream = words(0, 0, 0)
    if case == "big":
        stream = bytes(65544)
    with pytest.raises(SimError, match=message):
        dev.submit(stream, bos, "submit 3")


def test_device_refuses_a_buffer_overlapping_one_pinned_by_an_earlier_submit():
    dev = SimDevice()
    a, b = dev.new_buffer(8192), dev.new_buffer(4096)
    dev.submit(words(0, 0), [SubmitBo(a, VA, BO_READ)])
    with pytest.raises(SimError, match="overlaps buffer 1"):
        dev.submit(words(0, 0), [SubmitBo(b, VA + 4096, BO_WRITE)])


def test_device_reports_accesses_outside_every_buffer():
    dev = SimDevice()
    desc = dev.new_buffer(4096)
    fields = descriptors_at(transpose_job((3, 4, 5)), 0x7000_0000, VA)[0]
    desc.data[:124] = np.frombuffer(TP_DESCRIPTOR.pack(fields), np.uint8)
    with pytest.raises(SimError, match=r"submit 2 job 0 \(TP\): TP input read at 0x70000000 is outside every buffer"):
        dev.submit(tp_stream([VA + 0x8000], [0], [0]), [SubmitBo(desc, VA + 0x8000, BO_READ)], "submit 2")


@pytest.mark.parametrize("size", [0, -5, 1 << 33])
def test_device_refuses_bad_buffer_sizes(size):
    with pytest.raises(SimError):
        SimDevice().new_buffer(size)
