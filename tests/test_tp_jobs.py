"""npuc's TP job builders (npuc/backend_vip/tp_jobs.py): Mesa's golden descriptors, and results on the simulator.

Golden equality: every TP job of the four golden sets, rebuilt from the
model's shapes, packs to the exact bytes Mesa submitted.  Numerics: each job
runs on npuc's simulator (npuc/sim/tp.py) and is compared with numpy (layout
changes, space-to-depth) or with TFLite's reference kernels (PAD, RELU,
LOGISTIC), on square, non-square, odd, one-channel and one-pixel shapes and
over every split over the TP cores.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import oracle
import tp_mesa as M
from tflite_builder import OpSpec, T, build_model
from tp_harness import (FILL, SRC, DST, TP_CORES, descriptors_at, detranspose_job, lut_job, pad_job, program,
                        reshuffle_job, rng_bytes, run_job, run_tp, space_to_depth, transpose_job)
from npuc.backend_vip import tp_jobs
from npuc.hw.descriptors import TP_DESCRIPTOR
from npuc.passes.npu_program import NHWC, PLANAR, Program
from npuc.backend_vip.jobs import TPJob
from npuc.hw.target import VIPNANO_QI
from npuc.errors import SimError, UnsupportedError
from npuc.frontend_tflite import load_tflite
from npuc.ir import Graph, Op

# -- Mesa's golden descriptors ------------------------------------------------------------

GOLDEN_SETS = sorted(p for p in (oracle.SHARED / "golden").glob("*/*") if (p / "jobs.json").exists())

#: The i.MX 8M Plus NPU of the second golden set has 3 TP cores (golden README).
SI_PLUS_TP = replace(VIPNANO_QI, name="vipnano-si-plus (TP cores)", tp_cores=3)


def _space_to_depth_extent(n: int, k: int, padding: str) -> tuple[int, int]:
    """(rows of the space-to-depth image, TFLite's padding before) for a stride-2 convolution over n rows."""
    if padding == "SAME":
        out = math.ceil(n / 2)
        before = max((out - 1) * 2 + k - n, 0) // 2
    else:
        out, before = (n - k) // 2 + 1, 0
    return out + math.ceil(k / 2) - 1, before  # a ceil(k/2) kernel at stride 1 then gives ``out`` rows


def _golden_job(p: Program, op: Op, role: str) -> TPJob:
    """Build the job Mesa emitted for ``op`` in ``role``, with npuc's builders over the model's own tensors."""
    g = p.graph
    if role == "transpose":
        t = g.tensors[op.inputs[0]]
        dst = p.new_tensor("planar", t.shape, t.dtype, t.quant, PLANAR)
        return tp_jobs.transpose(p, op.index, t.index, dst, p.target)
    if role == "detranspose":
        t = g.tensors[op.outputs[0]]
        src = p.new_tensor("planar", t.shape, t.dtype, t.quant, PLANAR)
        return tp_jobs.detranspose(p, op.index, src, t.index, p.target)
    assert role == "reshuffle" and op.options["stride_h"] == op.options["stride_w"] == 2
    t = g.tensors[op.inputs[0]]
    _, h, w, c = t.shape
    _, kh, kw, _ = g.tensors[op.inputs[1]].shape
    ho, pad_top = _space_to_depth_extent(h, kh, op.options["padding"])
    wo, pad_left = _space_to_depth_extent(w, kw, op.options["padding"])
    src = p.new_tensor("planar", t.shape, t.dtype, t.quant, PLANAR)
    dst = p.new_tensor("space-to-depth", (1, ho, wo, 4 * c), t.dtype, t.quant, PLANAR)
    return tp_jobs.reshuffle(p, op.index, src, dst, kh, kw, pad_top, pad_left, p.target)


@pytest.mark.parametrize("golden", GOLDEN_SETS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_tp_descriptors_are_reproduced_byte_for_byte(golden: Path) -> None:
    graph = load_tflite(oracle.model_path(golden.name))
    p = Program(graph, SI_PLUS_TP if "si-plus" in golden.parent.name else VIPNANO_QI)
    roles = []
    for e in json.loads((golden / "jobs.json").read_text()):
        if e.get("type") != "TP":
            continue
        role = e["lowered"]["tp_role"]
        job = _golden_job(p, graph.ops[e["lowered"]["tflite_op_index"]], role)
        assert job.kind == role and len(job.cores) == len(e["jobs"])
        for core, gj in zip(job.cores, e["jobs"]):
            assert (core.input.offset, core.output.offset) == (gj["input"]["offset"], gj["output"]["offset"])
            fields = dict(core.desc, in_image_base_address=int(gj["input"]["addr"], 16),
                          out_image_base_address=int(gj["output"]["addr"], 16))
            want = (golden / e["submit"] / f"bo_{gj['config_bo']:03d}.bin").read_bytes()
            assert TP_DESCRIPTOR.pack(fields) == want, f"{role} of op {e['lowered']['tflite_op_index']}"
        roles.append(role)
    assert sorted(roles) == ["detranspose", "detranspose", "reshuffle", "transpose", "transpose"]


# -- layout conversions ---------------------------------------------------------------------

SHAPES = [(224, 224, 3), (5, 7, 3), (7, 5, 16), (1, 1, 1024), (1, 1, 1001), (3, 1, 8), (7, 7, 1024),
          (1, 9, 1), (13, 1, 1), (1, 1, 1), (17, 3, 2)]


@pytest.mark.parametrize("shape", SHAPES)
def test_transpose_gives_planar_layout(shape):
    h, w, c = shape
    x = rng_bytes(1, shape)
    out = run_job(transpose_job(shape, 128), x)
    assert np.array_equal(out[:x.size].reshape(c, h, w), x.transpose(2, 0, 1))
    assert (out[x.size:x.size + 64] == FILL).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_detranspose_gives_nhwc(shape):
    h, w, c = shape
    x = rng_bytes(2, shape)
    out = run_job(detranspose_job(shape, 7), x.transpose(2, 0, 1).copy())
    assert np.array_equal(out[:x.size].reshape(h, w, c), x)
    assert (out[x.size:x.size + 64] == FILL).all()


# -- space-to-depth -------------------------------------------------------------------------

def _split_axis(job: TPJob, shape: tuple[int, int, int], out: tuple[int, int]) -> str | None:
    """The axis the cores share (None on one core), read back from the descriptors."""
    if len(job.cores) == 1:
        return None
    totals = {"x": ("out_loop_1_count", out[1]), "y": ("out_loop_3_count", out[0]), "z": ("in_image_z_size", shape[2])}
    split = [axis for axis, (field, full) in totals.items() if all(c.desc[field] < full for c in job.cores)]
    assert len(split) == 1 and sum(c.desc[totals[split[0]][0]] for c in job.cores) == totals[split[0]][1]
    return split[0]


def _check_reshuffle(shape, zp, kernel, pads, out, seed=3, target=VIPNANO_QI) -> TPJob:
    """Build, run and compare with the builder's contract; returns the job."""
    h, w, c = shape
    x = rng_bytes(seed, (c, h, w))
    job = reshuffle_job(shape, zp, kernel, pads, out, target)
    want = space_to_depth(x, zp, *out, *pads)
    got = run_job(job, x)
    assert np.array_equal(got[:want.size].reshape(want.shape), want), (shape, kernel, pads, out)
    assert (got[want.size:want.size + 64] == FILL).all()
    assert [core.desc.get("no_flush", 0) for core in job.cores] == [1] * (len(job.cores) - 1) + [0]
    return job


def _mesa_request(h, w, kernel, same):
    g = M.reshuffle_geometry(h, w, kernel, same)
    return (kernel, kernel), (g.pad_y, g.pad_x), (g.ho, g.wo)


def test_reshuffle_is_mesas_wherever_mesas_is_right():
    """On square maps, wherever Mesa's descriptors are right with well-formed shares, npuc's are the same bytes."""
    same_bytes = split_same = differ = 0
    for n in range(1, 34):
        for c in (1, 2, 3, 5, 8, 32):
            for k, same in ((3, True), (5, True), (3, False)):
                if not same and n < k:
                    continue
                kernel, pads, out = _mesa_request(n, n, k, same)
                job = _check_reshuffle((n, n, c), 77, kernel, pads, out, seed=n)
                mesa = M.reshuffle(n, n, c, 77, k, same, SRC, DST, TP_CORES)
                x = rng_bytes(n, (c, n, n))
                want = space_to_depth(x, 77, *out, *pads)
                try:
                    mesa_right = np.array_equal(run_tp(x, mesa)[:want.size].reshape(want.shape), want)
                except SimError:  # e.g. an empty window on narrow maps
                    mesa_right = False
                well_formed = all(0 < d[f"in_image_{a}_size"] < 0x8000 for d in mesa for a in "xyz")
                if mesa_right and well_formed:
                    packed = [TP_DESCRIPTOR.pack(d) for d in descriptors_at(job)]
                    assert packed == [TP_DESCRIPTOR.pack(d) for d in mesa], (n, c, k, same)
                    same_bytes += 1
                    split_same += len(mesa) > 1
                else:
                    differ += 1
    assert same_bytes > 500 and split_same > 480 and differ > 60  # 516, 494 and 66 when written


RESHUFFLE_KERNELS = [(3, True), (5, True), (3, False)]


@pytest.mark.parametrize("kernel,same", RESHUFFLE_KERNELS)
@pytest.mark.parametrize("shape,split", [
    ((20, 10, 8), "y"), ((30, 12, 9), "y"), ((10, 20, 8), "x"), ((11, 12, 3), "x"), ((12, 11, 3), "x"),
    ((12, 30, 3), "x"), ((31, 17, 2), "x"), ((13, 7, 40), "z"), ((9, 20, 12), "z"), ((224, 160, 3), None),
    ((112, 112, 32), "x"), ((15, 15, 1), "x"), ((11, 11, 8), "z"),
])
def test_reshuffle_splits_are_exact_on_square_and_non_square_maps(shape, split, kernel, same):
    """Mesa's split axes, with x padded by W's parity, y by H's, and y-split cores writing rows of Wo."""
    kernel_hw, pads, out = _mesa_request(shape[0], shape[1], kernel, same)
    job = _check_reshuffle(shape, 9, kernel_hw, pads, out)
    assert _split_axis(job, shape, out) == split
    assert (split is None) == (len(job.cores) == 1)


@pytest.mark.parametrize("shape,kernel,same,cores", [
    ((40, 6, 2), 3, False, 3),    # Mesa: 4 cores, the last with no output column (an empty window)
    ((9, 9, 1), 3, True, 3),      # Mesa: 4 cores, the last reading an image of 0 columns
    ((10, 3, 1), 5, True, 2),     # Mesa: a negative share, truncated to 0xFFFF columns
    ((2, 2, 2), 3, True, 2),      # Mesa: 4 cores, two of them without channels
])
def test_reshuffle_narrow_maps_use_fewer_cores(shape, kernel, same, cores):
    kernel_hw, pads, out = _mesa_request(shape[0], shape[1], kernel, same)
    job = _check_reshuffle(shape, 200, kernel_hw, pads, out)
    assert len(job.cores) == cores
    assert "Mesa would use 4" in job.note


def test_reshuffle_random_requests():
    """Random sizes, kernels, paddings and output extents (seeded): every request meets the contract."""
    rng = np.random.default_rng(11)
    splits, cores = set(), set()
    for case in range(160):
        h, w = (int(v) for v in rng.integers(1, 41, 2))
        c = int(rng.choice([1, 1, 2, 3, 6, 13, 40]))
        kernel = tuple(int(v) for v in rng.integers(1, 8, 2))
        pads = tuple(int(rng.integers(0, k)) for k in kernel)
        out = tuple(int(rng.integers(1, (n + p + 1) // 2 + 3)) for n, p in zip((h, w), pads))
        job = _check_reshuffle((h, w, c), int(rng.integers(0, 256)), kernel, pads, out, seed=case)
        splits.add(_split_axis(job, (h, w, c), out))
        cores.add(len(job.cores))
    assert splits == {None, "x", "y", "z"} and cores == {1, 2, 3, 4}


def test_reshuffle_on_three_tp_cores():
    job = _check_reshuffle((30, 12, 9), 5, (3, 3), (1, 0), (16, 7), target=SI_PLUS_TP)
    assert len(job.cores) == 3 and _split_axis(job, (30, 12, 9), (16, 7)) == "y"


# -- padding ----------------------------------------------------------------------------------

def _tflite_single_op(tmp_path: Path, tensors: list[T], op: OpSpec, inputs: list[int]) -> tuple[Path, Graph]:
    path = tmp_path / f"{op.opcode.lower()}.tflite"
    path.write_bytes(build_model(tensors, op, inputs, [1]))
    return path, load_tflite(path)


def _stored(x: np.ndarray, layout: str) -> np.ndarray:
    """An NHWC [1, H, W, C] array's bytes as stored in ``layout``."""
    return x[0].transpose(2, 0, 1).copy() if layout == PLANAR else x[0].copy()


PAD_CASES = [  # (shape, pads per H, W, C, layout): z padding (C planar, H in NHWC) is at most 1 per side
    ((8, 8, 5), ((1, 1), (1, 1), (0, 0)), PLANAR),
    ((6, 9, 4), ((0, 2), (2, 0), (1, 1)), PLANAR),
    ((12, 7, 9), ((2, 1), (0, 3), (0, 1)), PLANAR),
    ((2, 2, 2), ((1, 0), (1, 2), (1, 0)), PLANAR),
    ((1, 5, 3), ((0, 0), (2, 1), (1, 1)), PLANAR),   # H == 1: one core (Mesa's rule), z padding still programmed
    ((5, 1, 1), ((3, 0), (0, 1), (1, 1)), PLANAR),   # one channel: one core
    ((8, 8, 5), ((1, 1), (1, 1), (0, 3)), NHWC),
    ((6, 9, 4), ((0, 1), (2, 0), (1, 1)), NHWC),
    ((3, 4, 70), ((1, 0), (0, 0), (2, 5)), NHWC),
]


@pytest.mark.parametrize("shape,pads,layout", PAD_CASES)
def test_pad_matches_tflite(tmp_path, shape, pads, layout):
    h, w, c = shape
    out_shape = tuple(n + a + b for n, (a, b) in zip(shape, pads))
    tensors = [T((1, *shape), "uint8", [0.05], [131]), T((1, *out_shape), "uint8", [0.07], [93]),
               T((4, 2), "int32", data=np.array([[0, 0], *pads], np.int32))]
    path, graph = _tflite_single_op(tmp_path, tensors, OpSpec("PAD", "PadOptions"), [0, 2])
    x = rng_bytes(8, (1, *shape))
    want = oracle.run_reference(path, [x])[0]
    p = Program(graph, VIPNANO_QI)
    p.set_layout(0, layout)
    job = tp_jobs.pad(p, 0, 0, 1, pads, VIPNANO_QI)
    got = run_job(job, _stored(x, layout))
    stored = _stored(want, layout)
    assert np.array_equal(got[:stored.size].reshape(stored.shape), stored)
    z = c if layout == PLANAR else h
    assert len(job.cores) == (1 if h == 1 else min(TP_CORES, z))


def test_pad_of_a_one_pixel_tensor():
    x = rng_bytes(9, (1, 1, 1))
    got = run_job(pad_job((1, 1, 1), ((1, 2), (2, 1), (0, 1)), 40, PLANAR), x)
    want = np.pad(x, ((1, 2), (2, 1), (0, 1)), constant_values=40).transpose(2, 0, 1)
    assert np.array_equal(got[:want.size].reshape(want.shape), want)


# -- LUT activations --------------------------------------------------------------------------

LUT_SHAPES = [(7, 9, 70), (16, 16, 64), (2, 5, 3), (10, 33, 130), (1, 1, 1001), (5, 4, 1)]
QUANT = [((128, 0.05), (128, 0.05)), ((100, 0.0235), (3, 0.0117)), ((37, 0.1), (200, 0.3)), ((0, 1 / 16), (0, 0.5))]


def _lut_cores(kind: str, h: int) -> int:
    return 1 if kind != "abs" and h < 6 else min(TP_CORES, h)


def _real_truth(kind: str, x: np.ndarray, in_q: tuple[int, float], out_q: tuple[int, float]) -> np.ndarray:
    """The activation of the real input, rounded once (half away from zero) to the output quantization."""
    real = (x.astype(np.float64) - in_q[0]) * in_q[1]
    real = {"relu": lambda r: np.maximum(r, 0), "abs": np.abs, "logistic": lambda r: 1 / (1 + np.exp(-r))}[kind](real)
    return np.clip(np.floor(real / out_q[1] + 0.5) + out_q[0], 0, 255)


@pytest.mark.parametrize("kind", ["relu", "logistic"])
@pytest.mark.parametrize("quant", QUANT)
@pytest.mark.parametrize("shape", LUT_SHAPES)
def test_lut_matches_tflite(tmp_path, kind, shape, quant):
    """Within one step of TFLite; RELU is exactly the once-rounded real result (TFLite's fixed-point
    multiply rounds twice, e.g. 3/8 -> 1), LOGISTIC interpolates 16 samples per octave."""
    in_q, out_q = quant
    if kind == "logistic":
        out_q = (0, 1 / 256)  # TFLite's fixed uint8 LOGISTIC output
    tensors = [T((1, *shape), "uint8", [in_q[1]], [in_q[0]]), T((1, *shape), "uint8", [out_q[1]], [out_q[0]])]
    path, graph = _tflite_single_op(tmp_path, tensors, OpSpec(kind.upper()), [0])
    x = rng_bytes(11, (1, *shape))
    want = oracle.run_reference(path, [x])[0][0]
    p = Program(graph, VIPNANO_QI)
    p.set_layout(0, NHWC)
    job = tp_jobs.lut(p, 0, 0, 1, kind, VIPNANO_QI)
    assert len(job.cores) == _lut_cores(kind, shape[0]) and len(job.lut) == 4096
    got = run_job(job, x)
    assert (got[x.size:x.size + 64] == FILL).all()
    got = got[:x.size].reshape(shape).astype(int)
    assert np.abs(got - want).max() <= 1
    if kind == "relu":
        q = graph.tensors[0].quant, graph.tensors[1].quant  # the model's float32 scales
        truth = _real_truth(kind, x[0], (in_q[0], float(q[0].scale[0])), (out_q[0], float(q[1].scale[0])))
        assert np.array_equal(got, truth)


@pytest.mark.parametrize("quant", QUANT)
@pytest.mark.parametrize("shape", LUT_SHAPES)
def test_abs_is_exact(shape, quant):
    """TFLite has no uint8 ABS: the truth is |real input| rounded to the output quantization."""
    (in_zp, in_scale), (out_zp, out_scale) = quant
    x = rng_bytes(12, shape)
    job = lut_job("abs", shape, (in_zp, in_scale), (out_zp, out_scale), layout=PLANAR)
    assert len(job.cores) == _lut_cores("abs", shape[0])
    want = _real_truth("abs", x, (in_zp, in_scale), (out_zp, out_scale))
    assert np.array_equal(run_job(job, x)[:x.size].reshape(shape), want)


def test_lut_output_multiplier_is_the_nearest_representable():
    """(1 + m / 2**15) * 2**-shift, the shift a signed 7-bit value, is the closest such number to the scale."""
    rng = np.random.default_rng(5)
    for ratio in [256.0, 1.0, 0.5, 1 / 3, 3.0, *np.exp(rng.uniform(-20, 20, 300))]:
        in_scale, out_scale = 0.01 * float(ratio), 0.01
        d = lut_job("relu", (2, 2, 2), (0, in_scale), (0, out_scale)).cores[0].desc
        shift = d["alu_output_postshift_value"]
        shift -= 128 if shift >= 64 else 0
        got = (1 + d["alu_output_post_multiplier"] / 2 ** 15) * 2.0 ** -shift
        exact = in_scale / out_scale
        assert abs(got - exact) <= 2.0 ** (math.floor(math.log2(exact)) - 16), ratio


# -- requests the TP cannot serve -------------------------------------------------------------

@pytest.mark.parametrize("build,message", [
    (lambda: transpose_job((1, 1, 40000)), r"operator #0: TP transpose cannot be described .*in_window_x_end: "
                                           r"39999 does not fit 16 bits"),
    (lambda: detranspose_job((1, 40000, 1)), r"TP detranspose cannot be described .*in_window_y_end"),
    (lambda: transpose_job((70000, 1, 1)), r"in_image_z_size: 70000 does not fit 16 bits"),
    (lambda: pad_job((8, 8, 5), ((0, 0), (0, 0), (2, 0)), 0, PLANAR), r"channel padding \(2, 0\) of a planar "
                                                                      r"tensor: a TP core adds at most 1 plane"),
    (lambda: pad_job((8, 8, 5), ((0, 2), (0, 0), (0, 0)), 0, NHWC), r"row padding \(0, 2\)"),
    (lambda: reshuffle_job((8, 8, 2), 0, (3, 3), (3, 0), (5, 4)), r"padding top of 3 for a kernel of 3"),
    (lambda: lut_job("relu", (2, 2, 2), (0, 1e30), (0, 1e-10)), r"output scale factor 1e\+40 is out of the TP "
                                                                r"multiplier's range"),
    (lambda: tp_jobs.transpose(program(((2, 4, 4, 3), NHWC, 0, 0.1), ((2, 4, 4, 3), PLANAR, 0, 0.1)), 0, 0, 1,
                               VIPNANO_QI), r"TP jobs take \[1, H, W, C\] tensors, not t0 uint8\[2x4x4x3\]"),
    (lambda: tp_jobs.transpose(program(((1, 4, 4, 3), NHWC, 0, 0.1), ((1, 4, 4, 3), PLANAR, 0, 0.1)), 0, 0, 1,
                               replace(VIPNANO_QI, tp_cores=0)), r"target vipnano-qi has no TP cores"),
])
def test_requests_the_tp_cannot_serve_are_unsupported(build, message):
    with pytest.raises(UnsupportedError, match=message) as e:
        build()
    assert "\n" not in str(e.value)


def test_int8_and_per_channel_tensors_are_refused_naming_the_operator(tmp_path):
    tensors = [T((1, 4, 4, 3), "int8", [0.1], [-3]), T((1, 4, 4, 3), "int8", [0.1], [-3])]
    _, graph = _tflite_single_op(tmp_path, tensors, OpSpec("RELU"), [0])
    p = Program(graph, VIPNANO_QI)
    p.set_layout(0, NHWC)
    with pytest.raises(UnsupportedError, match=r"operator #0 RELU: TP jobs take uint8 tensors, not t0 int8"):
        tp_jobs.lut(p, 0, 0, 1, "relu", VIPNANO_QI)


def test_caller_contract_violations_are_programming_errors():
    p = program(((1, 8, 8, 2), PLANAR, 0, 0.1), ((1, 5, 5, 4), PLANAR, 0, 0.1), ((1, 8, 8, 2), NHWC, 0, 0.1))
    with pytest.raises(ValueError, match="needs 8 output channels"):
        tp_jobs.reshuffle(p, 0, 0, 1, 3, 3, 1, 1, VIPNANO_QI)
    with pytest.raises(ValueError, match="needed as nhwc but stored planar"):
        tp_jobs.transpose(p, 0, 0, 2, VIPNANO_QI)
    with pytest.raises(ValueError, match="TP LUT kind 'tanh'"):
        tp_jobs.lut(p, 0, 0, 2, "tanh", VIPNANO_QI)
