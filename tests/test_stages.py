"""The compiler's stages and the data between them (docs/architecture.md, "The pipeline").

Lowering says what to compute (no descriptor field), the scheduler decides how, the encoders turn each
scheduled job into descriptors; a hardware limit that only the scheduler meets sends the operator to the
host and the graph is lowered again, as when lowering finds such a limit itself.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import oracle
from npuc import vipbin
from npuc.backend_vip.jobs import NNJob, TPJob
from npuc.driver import compile_graph, compile_model
from npuc.frontend_tflite import load_tflite
from npuc.hw.target import VIPNANO_QI, VIPNANO_SI_PLUS
from npuc.passes.npu_program import ConvOp, HostCall, LayerOp, TPOp
from npuc.passes.placement import HOST, lower_graph
from npuc.runtime.runtime import Runtime
from npuc.scheduler.nn_schedule import ScheduledConv
from npuc.sim.device import SimDevice
from tflite_builder import OpSpec, Option, T, build_model

MNV1 = oracle.model_path("mobilenet_v1_0.25_128_quant")


@pytest.mark.parametrize("target", [VIPNANO_QI, VIPNANO_SI_PLUS], ids=lambda t: t.name)
def test_lowering_says_what_the_scheduler_decides_how_the_encoders_write_descriptors(target):
    graph = load_tflite(MNV1)
    program = lower_graph(graph, graph.topological_order(), target)
    steps = program.steps
    assert {type(s) for s in steps} <= {ConvOp, LayerOp, TPOp, HostCall}
    assert any(isinstance(s, LayerOp) for s in steps)
    for s in steps:   # no descriptor field in an NPU operation
        assert not {f.name for f in dataclasses.fields(s)} & {"desc", "cores", "coefficients"}
    c = compile_graph(load_tflite(MNV1), target)
    assert not any(isinstance(s, LayerOp) for s in c.schedule.program.steps)   # every layer split into jobs
    assert len(c.jobs) == len(c.schedule.jobs)
    for scheduled, encoded in zip(c.schedule.jobs, c.jobs):
        kind = {ScheduledConv: NNJob, TPOp: TPJob, HostCall: HostCall}[type(scheduled)]
        assert isinstance(encoded, kind)
    assert sum(len(s) for s in c.schedule.submits) == sum(not isinstance(j, HostCall) for j in c.jobs)


def test_lowering_leaves_the_frontends_graph_as_it_was():
    graph = load_tflite(MNV1)
    tensors = [dataclasses.replace(t) for t in graph.tensors]
    first = compile_graph(graph, VIPNANO_QI)
    assert len(graph.tensors) == len(tensors) and [t.name for t in graph.tensors] == [t.name for t in tensors]
    again = compile_graph(graph, VIPNANO_QI)
    assert [j.name for j in again.jobs] == [j.name for j in first.jobs]


def _conv_with_unreachable_rescale(tmp_path):
    """A CONV_2D whose requantization (input x weight scale / output scale) is far above what a post shift
    reaches: lowering accepts the layer, the scheduler's weight-scale grouping meets the limit."""
    rng = np.random.default_rng(3)
    q = lambda s, zp: {"dtype": "uint8", "scale": [s], "zero_point": [zp]}  # noqa: E731
    tensors = [T((1, 8, 8, 4), **q(0.05, 120)),
               T((6, 3, 3, 4), **q(0.004, 130), data=rng.integers(0, 256, (6, 3, 3, 4), dtype=np.uint8)),
               T((6,), "int32", [0.0002], [0], data=rng.integers(-4000, 4000, 6).astype(np.int32)),
               T((1, 8, 8, 6), **q(1e-9, 110))]
    opts = [Option(0, "b", 0), Option(1, "i", 1), Option(2, "i", 1), Option(3, "b", 0), Option(4, "i", 1),
            Option(5, "i", 1)]
    path = tmp_path / "conv_tiny_rescale.tflite"
    path.write_bytes(build_model(tensors, OpSpec("CONV_2D", "Conv2DOptions", opts), [0, 1, 2], [3]))
    return path


def test_a_limit_met_by_the_scheduler_sends_the_operator_to_the_host(tmp_path):
    path = _conv_with_unreachable_rescale(tmp_path)
    graph = load_tflite(path)
    lowered = lower_graph(graph, graph.topological_order(), VIPNANO_QI)
    assert any(isinstance(s, LayerOp) for s in lowered.steps)       # lowering took it ...
    result = compile_model(path)                                      # ... the scheduler refused it
    unit, reason = result.program.units[0]
    assert unit == HOST and "post shift" in reason, reason
    x = np.random.default_rng(4).integers(0, 256, (1, 8, 8, 4), dtype=np.uint8)
    runtime = Runtime(vipbin.read_blob(result.blob), SimDevice())
    runtime.set_input(0, x)
    assert np.array_equal(runtime.run()[0], oracle.run_reference(path, [x])[0])   # the host kernel is TFLite's
