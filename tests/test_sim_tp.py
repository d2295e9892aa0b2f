"""The simulator's TP jobs: what Mesa's own parameters do where npuc's builders differ, and its refusals.

The simulator interprets TP descriptors generically (npuc/sim/tp.py,
docs/simulator.md "TP jobs").  npuc's builders (npuc/backend_vip/tp_jobs.py)
are checked against Mesa's golden descriptors and against numpy on the
simulator in tests/test_tp_jobs.py; here the simulator shows what Mesa's own
parameter sets do where they are wrong (non-square and narrow maps, z padding,
idle cores: docs/simulator.md), and refuses what it does not model.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import tp_mesa as M
from tp_harness import (BUF, DST, FILL, SRC, TP_CORES, descriptors_at, detranspose_job, lut_job, pad_job,
                        reshuffle_job, rng_bytes, run_tp, space_to_depth, transpose_job)
from npuc.hw.descriptors import TP_DESCRIPTOR
from npuc.passes.npu_program import PLANAR
from npuc.errors import SimError
from npuc.sim import tp


@pytest.mark.parametrize("kernel,same", [(3, True), (5, True)])
@pytest.mark.parametrize("shape", [(11, 12, 3), (12, 31, 3), (13, 30, 3), (16, 21, 3)])
def test_reshuffle_mesa_parameters_take_x_padding_from_h(shape, kernel, same):
    """Mesa pads x by H's parity and y by W's: when they differ, the phases shift by one pixel."""
    h, w, c = shape
    x = rng_bytes(5, (c, h, w))
    descs = M.reshuffle(h, w, c, 9, kernel, same, SRC, DST, TP_CORES)
    g = M.reshuffle_geometry(h, w, kernel, same)
    extra = 1 if kernel == 5 else 0
    mesa = space_to_depth(x, 9, g.ho, g.wo, extra + w % 2, extra + h % 2)
    right = space_to_depth(x, 9, g.ho, g.wo, g.pad_y, g.pad_x)
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
    assert M.split_reshuffle(h, w, c, 3, True, 0, len(descs))[0] == 1
    right = space_to_depth(x, 9, g.ho, g.wo, g.pad_y, g.pad_x)
    # What Mesa's descriptors ask for: core i's rows r0.. written from row offset ho * r0.
    want = np.full(BUF, FILL, np.uint8)
    row0 = 0
    for core in range(len(descs)):
        rows = M.split_reshuffle(h, w, c, 3, True, core, len(descs))[2][1]
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


def test_pad_mesa_two_planes_of_z_padding():
    """Mesa over-fetches one plane for a z padding of 2 but offsets core 1 by 2: one plane stays unwritten.

    Mesa's descriptors for a front padding of 2 channels are npuc's for a padding
    of 1 (over-fetch 1 on core 0) with the later cores' output one plane further.
    """
    shape = (8, 8, 5)
    x = rng_bytes(10, shape)
    descs = descriptors_at(pad_job(shape, ((0, 0), (0, 0), (1, 0)), 93, PLANAR))
    for d in descs[1:]:
        d["out_image_base_address"] += 8 * 8
    out = run_tp(x.transpose(2, 0, 1).copy(), descs)[:7 * 64].reshape(7, 8, 8)
    share0 = descs[0]["in_image_z_size"]
    assert (out[0] == 93).all()                                          # the one over-fetched plane
    assert np.array_equal(out[1:1 + share0], x.transpose(2, 0, 1)[:share0])
    assert (out[1 + share0] == FILL).all()                               # never written
    assert np.array_equal(out[2 + share0:], x.transpose(2, 0, 1)[share0:])


def test_descriptors_without_planes_do_nothing():
    """Mesa splits ABS (and PAD) over 4 cores even with fewer planes: the extra descriptors have z size 0."""
    x = rng_bytes(12, (2, 3, 5))
    job = lut_job("abs", (2, 3, 5), (128, 0.1), (128, 0.1))
    descs = descriptors_at(job)
    assert [d["in_image_z_size"] for d in descs] == [1, 1]
    idle = dict(descs[-1], in_image_z_size=0)
    assert np.array_equal(run_tp(x, descs + [idle, idle], job.lut), run_tp(x, descs, job.lut))


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
    d = descriptors_at(transpose_job((4, 4, 3)))[0]
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
    d = descriptors_at(lut_job("relu", (4, 4, 3), (0, 1.0), (0, 1.0)))[0]
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
    """Mutated descriptors of every TP role (seeded, bounded) either run or raise SimError, nothing else."""
    monkeypatch.setattr(tp, "MAX_TP_ELEMENTS", 1 << 16)
    rng = np.random.default_rng(2024)
    logistic = lut_job("logistic", (7, 9, 70), (5, 0.1), (0, 1 / 256))
    seeds = [d for job in (transpose_job((6, 5, 4), 3), detranspose_job((6, 5, 4), 3),
                           reshuffle_job((12, 10, 8), 3, (5, 5), (1, 1), (8, 7)),
                           pad_job((8, 8, 5), ((0, 2), (2, 0), (1, 1)), 4, PLANAR), logistic)
             for d in descriptors_at(job)]
    names = [f.name for f in TP_DESCRIPTOR.fields]
    x = rng_bytes(16, (6000,))
    lut = logistic.lut
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
