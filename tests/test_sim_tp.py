"""TP jobs of the simulator against numpy ground truth, with descriptors built as Mesa builds them.

The simulator interprets TP descriptors generically (npuc/sim/tp.py,
docs/simulator.md "TP jobs"); these tests check that Mesa's parameter sets for
every TP role give the documented result, on square and non-square shapes and
split over the TP cores like Mesa splits them, and that for non-square maps
Mesa's own parameters do what the notes feared (and what exactly).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import oracle
import tp_mesa as M
from npuc.backend_vip.descriptors import TP_DESCRIPTOR
from npuc.backend_vip.target import VIPNANO_QI
from npuc.errors import SimError
from npuc.frontend_tflite import load_tflite
from npuc.sim import tp
from npuc.sim.memory import Memory

SRC, DST, DESC, LUT = 0x0100_0000, 0x0200_0000, 0x0300_0000, 0x0400_0000
BUF = 1 << 21
FILL = 0xA5  # output bytes no job wrote
TP_CORES = VIPNANO_QI.tp_cores


def run_tp(data: np.ndarray, descs: list[dict], lut: np.ndarray | None = None) -> np.ndarray:
    """Run the TP descriptors (one per core, in order) over ``data`` at SRC; return the DST buffer."""
    mem = Memory()
    src = np.zeros(BUF, np.uint8)
    src[:data.size] = data.ravel()
    dst = np.full(BUF, FILL, np.uint8)
    mem.map(SRC, src, "src")
    mem.map(DST, dst, "dst")
    table = np.zeros(4096 * len(descs), np.uint8)
    mem.map(DESC, table, "descriptors")
    if lut is not None:
        mem.map(LUT, np.frombuffer(lut.astype("<u4").tobytes(), np.uint8).copy(), "lut")
    for i, fields in enumerate(descs):
        table[4096 * i:4096 * i + TP_DESCRIPTOR.size] = np.frombuffer(TP_DESCRIPTOR.pack(fields), np.uint8)
    for i in range(len(descs)):
        tp.run_tp_job(mem, DESC + 4096 * i, VIPNANO_QI, f"test job {i} (TP)")
    return dst


def space_to_depth(planes: np.ndarray, zp: int, wo: int, ho: int, pad_x: int, pad_y: int) -> np.ndarray:
    """Stride-2 space-to-depth: plane 4c + 2*py + px holds input (2y + py - pad_y, 2x + px - pad_x)."""
    c, h, w = planes.shape
    padded = np.full((c, 2 * ho + pad_y, 2 * wo + pad_x), zp, np.uint8)
    padded[:, pad_y:pad_y + h, pad_x:pad_x + w] = planes[:, :2 * ho + pad_y - pad_y, :2 * wo]
    out = np.empty((c, 2, 2, ho, wo), np.uint8)
    for py in range(2):
        for px in range(2):
            out[:, py, px] = padded[:, py:py + 2 * ho:2, px:px + 2 * wo:2]
    return out.reshape(4 * c, ho, wo)


def rng_bytes(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


GOLDEN_SETS = sorted(p for p in (oracle.SHARED / "golden").glob("*/*") if (p / "jobs.json").exists())


@pytest.mark.parametrize("golden", GOLDEN_SETS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_builders_reproduce_mesas_golden_tp_descriptors(golden):
    """The builders' parameter sets are Mesa's: every golden TP descriptor is reproduced byte for byte."""
    g = load_tflite(oracle.model_path(golden.name))
    checked = 0
    for e in json.loads((golden / "jobs.json").read_text()):
        if e.get("type") != "TP":
            continue
        role, op = e["lowered"]["tp_role"], g.ops[e["lowered"]["tflite_op_index"]]
        t = g.tensors[op.outputs[0] if role == "detranspose" else op.inputs[0]]
        _, h, w, c = t.shape
        zp = int(t.quant.zero_point[0])
        src, dst = (int(e["jobs"][0][k]["addr"], 16) for k in ("input", "output"))
        if role == "reshuffle":
            kernel = g.tensors[op.inputs[1]].shape[1]
            fields = M.reshuffle(h, w, c, zp, kernel, op.options["padding"] == "SAME", src, dst, TP_CORES)
        else:
            fields = {"transpose": M.transpose, "detranspose": M.detranspose}[role](h, w, c, zp, src, dst)
        assert len(fields) == len(e["jobs"])
        for job, f in zip(e["jobs"], fields):
            assert TP_DESCRIPTOR.pack(f) == (golden / e["submit"] / f"bo_{job['config_bo']:03d}.bin").read_bytes()
            checked += 1
    assert checked == 5


SHAPES = [(224, 224, 3), (5, 7, 3), (7, 5, 16), (1, 1, 1024), (1, 1, 1001), (3, 1, 8), (7, 7, 1024)]


@pytest.mark.parametrize("shape", SHAPES)
def test_transpose_gives_planar_layout(shape):
    h, w, c = shape
    x = rng_bytes(1, shape)
    out = run_tp(x, M.transpose(h, w, c, 128, SRC, DST))
    assert np.array_equal(out[:x.size].reshape(c, h, w), x.transpose(2, 0, 1))
    assert (out[x.size:x.size + 64] == FILL).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_detranspose_gives_nhwc(shape):
    # Mesa takes the planar input's x size and stride from H, not W; the window is
    # still read contiguously, so under the simulator's semantics the result is
    # right for non-square maps too (the notes feared it might not be).
    h, w, c = shape
    x = rng_bytes(2, shape)
    out = run_tp(x.transpose(2, 0, 1).copy(), M.detranspose(h, w, c, 0, SRC, DST))
    assert np.array_equal(out[:x.size].reshape(h, w, c), x)


RESHUFFLE_KERNELS = [(3, True), (5, True), (3, False)]


@pytest.mark.parametrize("kernel,same", RESHUFFLE_KERNELS)
@pytest.mark.parametrize("shape,cores,split", [
    ((224, 224, 3), 1, 0),    # MobileNet's first convolution: one core (Mesa's TODO)
    ((112, 112, 32), 4, 0),   # split along x
    ((11, 11, 8), 4, 2),      # split along z
    ((10, 10, 8), 4, 2),
    ((15, 15, 1), 4, 0),
])
def test_reshuffle_square(shape, cores, split, kernel, same):
    h, w, c = shape
    x = rng_bytes(3, (c, h, w))
    descs = M.reshuffle(h, w, c, 77, kernel, same, SRC, DST, TP_CORES)
    assert len(descs) == cores
    assert M.split_reshuffle(h, w, c, kernel, same, 0, cores, False)[0] == split
    assert [d["no_flush"] for d in descs] == [1] * (cores - 1) + [0]
    g = M.reshuffle_geometry(h, w, kernel, same)
    want = space_to_depth(x, 77, g.wo, g.ho, g.pad_x, g.pad_y)
    assert np.array_equal(run_tp(x, descs)[:want.size].reshape(want.shape), want)


NON_SQUARE = [((20, 10, 8), 1), ((30, 12, 9), 1), ((10, 20, 8), 0), ((11, 12, 3), 0), ((12, 11, 3), 0),
              ((12, 30, 3), 0), ((31, 17, 2), 0), ((13, 7, 40), 2), ((9, 20, 12), 2)]


@pytest.mark.parametrize("kernel,same", RESHUFFLE_KERNELS)
@pytest.mark.parametrize("shape,split", NON_SQUARE)
def test_reshuffle_non_square_with_corrected_parameters(shape, split, kernel, same):
    """With x padding from W's parity and y-split offsets in output rows of wo, every split is exact."""
    h, w, c = shape
    x = rng_bytes(4, (c, h, w))
    descs = M.reshuffle(h, w, c, 9, kernel, same, SRC, DST, TP_CORES, fixed=True)
    assert M.split_reshuffle(h, w, c, kernel, same, 0, len(descs), True)[0] == split
    g = M.reshuffle_geometry(h, w, kernel, same)
    want = space_to_depth(x, 9, g.wo, g.ho, g.pad_x, g.pad_y)
    assert np.array_equal(run_tp(x, descs)[:want.size].reshape(want.shape), want)


@pytest.mark.parametrize("kernel,same", [(3, True), (5, True)])
@pytest.mark.parametrize("shape", [(11, 12, 3), (12, 31, 3), (13, 30, 3), (16, 21, 3)])
def test_reshuffle_mesa_parameters_take_x_padding_from_h(shape, kernel, same):
    """Mesa pads x by H's parity and y by W's: when they differ, the phases shift by one pixel."""
    h, w, c = shape
    x = rng_bytes(5, (c, h, w))
    descs = M.reshuffle(h, w, c, 9, kernel, same, SRC, DST, TP_CORES)
    g = M.reshuffle_geometry(h, w, kernel, same)
    extra = 1 if kernel == 5 else 0
    mesa = space_to_depth(x, 9, g.wo, g.ho, extra + h % 2, extra + w % 2)
    right = space_to_depth(x, 9, g.wo, g.ho, g.pad_x, g.pad_y)
    got = run_tp(x, descs)[:right.size].reshape(right.shape)
    assert np.array_equal(got, mesa)
    assert not np.array_equal(got, right)


@pytest.mark.parametrize("shape", [(20, 10, 8), (30, 12, 9)])
def test_reshuffle_mesa_parameters_misplace_y_split_rows(shape):
    """Mesa advances a y-split core's output by ho per row instead of wo: rows after core 0 land wrong."""
    h, w, c = shape
    x = rng_bytes(6, (c, h, w))
    g = M.reshuffle_geometry(h, w, 3, True)
    descs = M.reshuffle(h, w, c, 9, 3, True, SRC, DST, TP_CORES)
    assert M.split_reshuffle(h, w, c, 3, True, 0, len(descs), False)[0] == 1
    right = space_to_depth(x, 9, g.wo, g.ho, g.pad_x, g.pad_y)
    # What Mesa's descriptors ask for: core i's rows r0.. written from row offset ho * r0.
    want = np.full(BUF, FILL, np.uint8)
    row0 = 0
    for core in range(len(descs)):
        rows = M.split_reshuffle(h, w, c, 3, True, core, len(descs), False)[2][1]
        for p in range(4 * c):
            for r in range(rows):
                at = g.ho * row0 + p * g.wo * g.ho + r * g.wo
                want[at:at + g.wo] = right[p, row0 + r]
        row0 += rows
    got = run_tp(x, descs)
    assert np.array_equal(got[:right.size + 64], want[:right.size + 64])
    assert not np.array_equal(got[:right.size].reshape(right.shape), right)


def test_reshuffle_mesa_split_of_a_narrow_map_leaves_an_empty_window():
    """VALID 3x3 over W = 6 on 4 cores: Mesa gives the last core no output column, a malformed window."""
    x = rng_bytes(7, (2, 40, 6))
    with pytest.raises(SimError, match=r"test job 3 \(TP\): TP input window x ends at -1"):
        run_tp(x, M.reshuffle(40, 6, 2, 0, 3, False, SRC, DST, TP_CORES))


PADS = [((1, 1), (1, 1), (0, 0)), ((0, 2), (2, 0), (1, 1)), ((2, 1), (0, 2), (0, 1)), ((1, 0), (1, 2), (1, 0))]


# Planar tensors split their channels (z) over the cores, NHWC ones their rows; Mesa over-fetches
# one plane at most, so z paddings of 2 are left to test_pad_mesa_two_planes_of_z_padding.
PAD_CASES = [(pads, planar) for pads in PADS for planar in (True, False)
             if max(pads[2] if planar else pads[0]) <= 1]


@pytest.mark.parametrize("pads,planar", PAD_CASES)
@pytest.mark.parametrize("shape", [(8, 8, 5), (6, 9, 4), (12, 7, 9), (2, 2, 2)])
def test_pad(shape, pads, planar):
    """Padding reads the border, the zero point; the z (channel or row) padding of 1 uses over-fetch."""
    h, w, c = shape
    x = rng_bytes(8, shape)
    descs = M.pad(shape, pads, 93, 93, planar, SRC, DST, TP_CORES)
    want = np.pad(x, pads, constant_values=93)
    if planar:
        x, want = x.transpose(2, 0, 1).copy(), want.transpose(2, 0, 1)
    assert len(descs) == TP_CORES
    assert np.array_equal(run_tp(x, descs)[:want.size].reshape(want.shape), want)


def test_pad_single_core_when_h_is_1():
    x = rng_bytes(9, (1, 5, 3))
    pads = ((0, 0), (2, 1), (0, 0))
    descs = M.pad((1, 5, 3), pads, 17, 17, True, SRC, DST, TP_CORES)
    assert len(descs) == 1
    want = np.pad(x, pads, constant_values=17).transpose(2, 0, 1)
    assert np.array_equal(run_tp(x.transpose(2, 0, 1).copy(), descs)[:want.size].reshape(want.shape), want)


def test_pad_mesa_two_planes_of_z_padding():
    """Mesa over-fetches one plane for a z padding of 2 but offsets core 1 by 2: one plane stays unwritten."""
    shape, pads = (8, 8, 5), ((0, 0), (0, 0), (2, 0))
    x = rng_bytes(10, shape)
    descs = M.pad(shape, pads, 93, 93, True, SRC, DST, TP_CORES)
    out = run_tp(x.transpose(2, 0, 1).copy(), descs)[:7 * 64].reshape(7, 8, 8)
    share0 = descs[0]["in_image_z_size"]
    assert (out[0] == 93).all()                                          # the one over-fetched plane
    assert np.array_equal(out[1:1 + share0], x.transpose(2, 0, 1)[:share0])
    assert (out[1 + share0] == FILL).all()                               # never written
    assert np.array_equal(out[2 + share0:], x.transpose(2, 0, 1)[share0:])


def lut_truth(kind: str, x: np.ndarray, in_zp: int, out_zp: int, in_scale: float, out_scale: float) -> np.ndarray:
    real = (x.astype(np.float64) - in_zp) * in_scale
    real = {"RELU": lambda r: np.maximum(r, 0), "ABS": np.abs, "LOGISTIC": lambda r: 1 / (1 + np.exp(-r))}[kind](real)
    return np.clip(np.floor(real / out_scale + 0.5) + out_zp, 0, 255).astype(np.uint8)


QUANT = [(128, 128, 0.05, 0.05), (100, 3, 0.0235, 0.0117), (37, 200, 0.1, 0.3), (0, 0, 1 / 16, 1 / 256)]


@pytest.mark.parametrize("kind", M.PWL_KINDS)
@pytest.mark.parametrize("quant", QUANT)
@pytest.mark.parametrize("shape", [(7, 9, 70), (16, 16, 64), (2, 5, 3), (10, 33, 130), (1, 1, 1001)])
def test_lut_activations(kind, shape, quant):
    """RELU/ABS through Mesa's identity LUTs are exact; LOGISTIC interpolates samples, within 1 step."""
    in_zp, out_zp, in_scale, out_scale = quant
    if kind == "LOGISTIC":
        out_zp, out_scale = 0, 1 / 256  # TFLite's fixed LOGISTIC output quantization
    h, w, c = shape
    x = rng_bytes(11, shape)
    descs = M.pwl(kind, h, w, c, in_zp, out_zp, in_scale, out_scale, SRC, DST, LUT, TP_CORES)
    assert len(descs) == M.pwl_cores(kind, h, TP_CORES)
    got = run_tp(x, descs, M.LUTS[kind](in_scale))
    want = lut_truth(kind, x, in_zp, out_zp, in_scale, out_scale)
    diff = np.abs(got[:x.size].reshape(shape).astype(int) - want)
    assert diff.max() <= (1 if kind == "LOGISTIC" else 0)
    assert (got[x.size:x.size + 64] == FILL).all()


def test_abs_on_fewer_planes_than_cores_leaves_cores_idle():
    """Mesa always splits ABS over 4 cores: with H = 2 two descriptors get no plane and do nothing."""
    x = rng_bytes(12, (2, 3, 5))
    descs = M.pwl("ABS", 2, 3, 5, 128, 128, 0.1, 0.1, SRC, DST, LUT, TP_CORES)
    assert [d["in_image_z_size"] for d in descs] == [1, 1, 0, 0]
    got = run_tp(x, descs, M.abs_lut())
    assert np.array_equal(got[:x.size].reshape(x.shape), lut_truth("ABS", x, 128, 128, 0.1, 0.1))


def test_overlapping_tiles_write_in_traversal_order():
    """Tiles of 3 every 2 read some columns twice; where writes collide the later one stays."""
    x = np.arange(10, dtype=np.uint8) + 1
    d = {"in_image_x_size": 10, "in_image_y_size": 1, "in_image_z_size": 1, "in_image_stride": 10,
         "in_image_slice": 10, "in_window_x_end": 9, "in_tile_x_size": 3, "in_tile_x_inc": 2,
         "in_tile_y_size": 1, "in_tile_y_inc": 1, "in_image_base_address": SRC, "out_image_base_address": DST,
         "out_loop_1_reset": 1, "out_loop_0_count": 0, "out_loop_0_inc": 1, "out_loop_2_inc": 2}
    # Element (tile t, position p) goes to 2 * t + p: tile t's last byte and tile t+1's first collide.
    got = run_tp(x, [d])[:10]
    assert got.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    d["out_loop_2_inc"] = 0  # every tile onto bytes 0..2: the last tile (columns 8, 9) wins where it writes
    got = run_tp(x, [d])[:4]
    assert got.tolist() == [9, 10, 9, FILL]  # byte 2: column 8 of the tile before the last


# -- malformed descriptors ------------------------------------------------------------------

def _one_transpose(**changes) -> dict:
    d = M.transpose(4, 4, 3, 0, SRC, DST)[0]
    d.update(changes)
    return d


@pytest.mark.parametrize("changes,message", [
    ({"alu_square_enable": 1}, "alu_square_enable = 1 is not modelled"),
    ({"in_image_data_type": 2}, "in_image_data_type = 2 is not modelled"),
    ({"in_image_circular_buf_size": 5}, "in_image_circular_buf_size = 5 is not modelled"),
    ({"last": 0}, "last = 0 is not modelled"),
    ({"alu_pwl_enable": 1}, "alu_load_pwl_lut = 0 is not modelled"),
    ({"out_loop_2_reset": 1, "out_loop_3_reset": 1}, "both out_loop_2_reset and out_loop_3_reset"),
    ({"in_window_x_start": 3, "in_window_x_end": 2}, "window x ends at 2, before its start 3"),
    ({"in_tile_y_inc": 0}, "tile y size 4 and increment 0"),
    ({"in_image_base_address": 0x5000_0000}, "TP input read at 0x50000000 is outside every buffer"),
    ({"out_image_base_address": DST + BUF - 20}, "TP output write of .* runs past the end of dst"),
    ({"out_image_base_address": 0xFFFF_FFF0}, "outside every buffer"),
])
def test_malformed_descriptor_is_a_simerror_naming_the_job(changes, message):
    with pytest.raises(SimError, match=r"test job 0 \(TP\): .*" + message):
        run_tp(rng_bytes(13, (4, 4, 3)), [_one_transpose(**changes)])


def test_unmapped_lut_is_a_simerror():
    d = M.pwl("RELU", 4, 4, 3, 0, 0, 1.0, 1.0, SRC, DST, LUT, TP_CORES)[0]
    with pytest.raises(SimError, match=r"test job 0 \(TP\): PWL LUT read at 0x04000000 is outside every buffer"):
        run_tp(rng_bytes(14, (4, 4, 3)), [d])


def test_huge_job_is_refused_at_once():
    start = time.perf_counter()
    for changes in ({"in_window_x_end": 32767, "in_window_y_end": 32767},
                    {"in_window_x_start": -32768, "in_window_x_end": 32767, "in_tile_x_size": 65535},
                    {"in_image_z_size": 65535, "in_window_y_end": 32767, "in_tile_y_size": 1, "in_tile_y_inc": 1}):
        with pytest.raises(SimError, match="limit"):
            run_tp(rng_bytes(15, (4, 4, 3)), [_one_transpose(**changes)])
    assert time.perf_counter() - start < 2.0


def test_fuzzed_descriptors_only_raise_simerror(monkeypatch):
    """Mutated Mesa descriptors (seeded, bounded) either run or raise SimError, nothing else."""
    monkeypatch.setattr(tp, "MAX_TP_ELEMENTS", 1 << 16)
    rng = np.random.default_rng(2024)
    seeds = ([M.transpose(6, 5, 4, 3, SRC, DST)[0], M.detranspose(6, 5, 4, 3, SRC, DST)[0]]
             + M.reshuffle(12, 10, 8, 3, 5, True, SRC, DST, TP_CORES)
             + M.pad((8, 8, 5), PADS[1], 4, 4, True, SRC, DST, TP_CORES)
             + M.pwl("LOGISTIC", 7, 9, 70, 5, 0, 0.1, 1 / 256, SRC, DST, LUT, TP_CORES))
    names = [f.name for f in TP_DESCRIPTOR.fields]
    x = rng_bytes(16, (6000,))
    lut = M.logistic_lut(0.1)
    ran = refused = 0
    deadline = time.perf_counter() + 20
    for case in range(300):
        d = TP_DESCRIPTOR.unpack(TP_DESCRIPTOR.pack(seeds[case % len(seeds)]))
        d = {f.name: d[f.name] for f in TP_DESCRIPTOR.fields}
        for name in rng.choice(names, size=int(rng.integers(1, 4)), replace=False):
            f = TP_DESCRIPTOR[name]
            lo, hi = f.value_range()
            small = int(rng.integers(-3, 70))
            d[name] = int(np.clip(small if rng.random() < 0.6 else int(rng.integers(lo, hi, endpoint=True)), lo, hi))
        try:
            run_tp(x, [d], lut)
            ran += 1
        except SimError:
            refused += 1
        assert time.perf_counter() < deadline, "fuzzing exceeded its time bound"
    assert ran > 30 and refused > 30  # both paths were exercised
