"""The performance model against Mesa's measured latencies, the hardware's peak rates and the model's own MACs.

Both targets are calibrated on Mesa's golden submits for their board (A311D: 6.6 and 6.9 ms; i.MX 8M Plus:
7.9 and 8.0 ms, with only the DRAM rate fitted there); bench/fit_perf_model.py holds the boards and the fit.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
from pathlib import Path

import pytest

import golden_jobs as G
import oracle
from npuc import vipbin
from npuc.hw.perf_host import host_macs, host_seconds
from npuc.hw.target import VIPNANO_QI as TARGET
from npuc.hw.target import VIPNANO_SI_PLUS
from npuc.blob_program import decode_blob
from npuc.driver import compile_model
from npuc.frontend_tflite import load_tflite
from npuc.latency import estimate_blob, estimate_golden
from npuc.program_meta import NN

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fit_perf_model", ROOT / "bench" / "fit_perf_model.py")
FIT = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = FIT   # its dataclasses look their module up
_spec.loader.exec_module(FIT)
BOARDS = {board.target.name: board for board in FIT.BOARDS}
GOLDEN_RUNS = [(target, model) for target in (G.V7, G.V8) for model in G.GOLDEN_MODELS]


@pytest.mark.parametrize("target, model", GOLDEN_RUNS)
def test_mesa_golden_jobs_give_mesas_measured_latency_within_10_percent(target, model):
    board = BOARDS[target]
    est = estimate_golden(G.model_dir(model, target), board.target)
    print(f"\n{target} {model}: Mesa's jobs estimated at {est.total_seconds * 1e3:.2f} ms, measured "
          f"{board.measured[model] * 1e3} ms; {est.breakdown()}")
    assert abs(est.total_seconds / board.measured[model] - 1) <= 0.10
    # Every golden job was read: Mesa's NN jobs, its TP jobs, its three CPU operators, its two submits.
    kinds = [s.kind for s in est.steps]
    assert kinds.count(NN) == len(G.nn_jobs(model, target))
    assert kinds.count("HOST") == 3 and est.submits == 2


@pytest.mark.parametrize("target", sorted(BOARDS))
def test_target_holds_the_documented_fit(target):
    """The fitted constants in target.py are what bench/fit_perf_model.py finds (so the docs' fit is the code's)."""
    board = BOARDS[target]
    dram, submit, _ = FIT.fit(board)
    assert dram == board.target.perf_dram_bytes_per_cycle
    assert math.isclose(submit, board.target.perf_submit_seconds, rel_tol=1e-9)


@pytest.mark.parametrize("target, model", GOLDEN_RUNS)
def test_no_golden_job_beats_the_hardwares_peak_rates(target, model):
    """Physically sensible: no job computes faster than the cores' MADs times their dot-product width, or
    moves its bytes faster than the modelled DRAM rate, and caching never saves more than it would have read."""
    t = BOARDS[target].target
    peak = t.nn_cores * t.mads_per_core * t.perf_dp_rows * t.perf_dp_columns
    for step in estimate_golden(G.model_dir(model, target), t).steps:
        c = step.cost
        if c is None or step.kind != NN:
            continue
        assert c.compute_cycles >= c.macs / peak
        assert c.cycles >= c.dram_bytes / t.perf_dram_bytes_per_cycle
        assert c.cycles == max(c.compute_cycles, c.dram_cycles) + t.perf_nn_job_cycles
        assert c.sram_saved_bytes >= 0


def test_dram_rates_are_within_what_the_boards_memory_gives():
    # anchors.md: 6.4-12.8 GB/s for the A311D's DRAM; the i.MX 8M Plus's 32-bit LPDDR4-4000 peaks at 16 GB/s.
    rate = TARGET.perf_dram_bytes_per_cycle * TARGET.clock_hz
    assert 6.4e9 <= rate <= 12.8e9
    assert VIPNANO_SI_PLUS.perf_dram_bytes_per_cycle * VIPNANO_SI_PLUS.clock_hz <= 16e9


def test_host_macs_of_mobilenet_v1_are_the_published_568_7_million():
    """The host model counts a convolution's MACs from TFLite's shapes (anchors.md: 568.7 M for MobileNet v1)."""
    g = load_tflite(oracle.model_path("mobilenet_quant_v1_224"))
    total = sum(host_macs(op.opcode, [None if t is None else g.tensors[t].shape for t in op.inputs],
                          [g.tensors[t].shape for t in op.outputs]) for op in g.ops)
    assert abs(total / 568.7e6 - 1) < 0.001
    # At the XNNPACK rate the host model is built on, the whole network takes the published 31.2 ms.
    seconds = sum(host_seconds(op.opcode, [None if t is None else g.tensors[t].shape for t in op.inputs],
                               [g.tensors[t].shape for t in op.outputs], 0, 0, TARGET.perf_host)
                  for op in g.ops if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    assert 28e-3 < seconds < 34e-3


def test_recurrent_kernels_count_every_weight_once_per_row():
    """An LSTM over 7 steps of batch 2 (20 inputs, 16 cells, 12 outputs, CIFG: no input gate) and an SVDF of
    batch 3 (10 inputs, 8 filters, memory 5): every weight multiplies once per row of the input."""
    lstm_inputs = [(7, 2, 20), None, (16, 20), (16, 20), (16, 20), None, (16, 12), (16, 12), (16, 12)]
    assert host_macs("UNIDIRECTIONAL_SEQUENCE_LSTM", lstm_inputs, [(7, 2, 12)]) == 14 * 3 * 16 * (20 + 12)
    assert host_macs("SVDF", [(3, 10), (8, 10), (8, 5)], [(3, 8)]) == 3 * 8 * (10 + 5)


@pytest.mark.parametrize("target", sorted(BOARDS))
def test_npucs_mobilenets_estimated_below_mesas_with_the_same_model(target):
    """npuc's own jobs, read back from its blob, against Mesa's jobs under the same model."""
    t = BOARDS[target].target
    for model in G.GOLDEN_MODELS:
        blob = vipbin.read_blob(compile_model(oracle.model_path(model), target).blob)
        ours = estimate_blob(decode_blob(blob))
        mesa = estimate_golden(G.model_dir(model, target), t)
        print(f"\n{target} {model}: npuc {ours.total_seconds * 1e3:.2f} ms ({ours.npu_cost.dram_bytes:,} DRAM "
              f"bytes), Mesa's jobs {mesa.total_seconds * 1e3:.2f} ms ({mesa.npu_cost.dram_bytes:,})")
        assert ours.total_seconds < mesa.total_seconds
        if target == G.V7:
            assert ours.npu_cost.macs < mesa.npu_cost.macs   # depthwise as channel groups, not expanded


def test_slower_dram_makes_dram_bound_jobs_slower_and_no_job_faster():
    slow = dataclasses.replace(TARGET, perf_dram_bytes_per_cycle=TARGET.perf_dram_bytes_per_cycle / 2)
    model = "mobilenet_quant_v1_224"
    fast_steps = estimate_golden(G.model_dir(model), TARGET).steps
    slow_steps = estimate_golden(G.model_dir(model), slow).steps
    assert all(s.seconds >= f.seconds for f, s in zip(fast_steps, slow_steps))
    assert any(s.seconds > f.seconds for f, s in zip(fast_steps, slow_steps) if f.cost and f.cost.bound == "DRAM")
