"""Stateful models (resource variables) against TFLite over sequences of invocations, in Python and in C.

A streaming model keeps a window of past frames in a variable: CALL_ONCE runs an
initialization subgraph that assigns it, each invocation reads it, appends the
new frame, writes the shifted window back and computes an output from the
window.  TFLite keeps the variable between invokes; so must one npuc runtime
session.  Twenty invocations must give TFLite's outputs at every step, in the
Python runtime and in the C runtime (one session of ``tests/c_programs/run_sequence.c``
on the fake etnaviv device).  Models npuc cannot run this way are refused with
one-line errors.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from c_build import STRICT, fake_env
from model_builder import ModelBuilder, SubgraphBuilder, options
from npuc import vipbin
from npuc.driver import compile_model
from npuc.errors import UnsupportedError
from npuc.runtime.runtime import Runtime
from npuc.sim.device import SimDevice

STEPS = 20
FRAME = 6
Q = {"scale": 0.05, "zero_point": -3}


def _variable(g: SubgraphBuilder, name: str) -> int:
    handle = g.tensor((), "resource")
    g.op("VAR_HANDLE", [], [handle], options("VarHandleOptions", container="", sharedName=name))
    return handle


def _init(m: ModelBuilder, values: dict[str, np.ndarray], quant: dict[str, dict]) -> int:
    """An initialization subgraph assigning each variable its constant start value."""
    index, init = m.subgraph("init")
    for name, value in values.items():
        init.op("ASSIGN_VARIABLE", [_variable(init, name), init.const(value, **quant.get(name, {}))], [])
    return index


def streaming_model(read_is_output: bool = False) -> bytes:
    """A keyword-spotter-like window of 3 int8 frames plus a float32 running sum, both kept between runs."""
    m = ModelBuilder()
    g = m.main
    index = _init(m, {"window": np.full((1, 3, FRAME), -3, np.int8), "total": np.zeros((1, FRAME), np.float32)},
                  {"window": Q})
    x = g.input((1, 1, FRAME), "int8", **Q)
    g.op("CALL_ONCE", [], [], options("CallOnceOptions", initSubgraphIndex=index))
    window, total = _variable(g, "window"), _variable(g, "total")
    old = g.tensor((1, 3, FRAME), "int8", **Q)
    g.op("READ_VARIABLE", [window], [old])
    buf = g.tensor((1, 4, FRAME), "int8", **Q)
    g.op("CONCATENATION", [old, x], [buf], options("ConcatenationOptions", axis=1))
    parts = [g.tensor((1, 1, FRAME), "int8", **Q) for _ in range(4)]
    g.op("SPLIT", [g.const(np.array(1, np.int32)), buf], parts, options("SplitOptions", numSplits=4))
    shifted = g.tensor((1, 3, FRAME), "int8", **Q)
    g.op("CONCATENATION", parts[1:], [shifted], options("ConcatenationOptions", axis=1))
    g.op("ASSIGN_VARIABLE", [window, shifted], [])
    mean = g.output(g.tensor((1, FRAME), "int8", scale=0.02, zero_point=1))
    g.op("MEAN", [buf, g.const(np.array([1], np.int32))], [mean], options("ReducerOptions", keepDims=False))
    frame = g.tensor((1, FRAME), "float32")
    g.op("DEQUANTIZE", [mean], [frame])
    running = g.tensor((1, FRAME), "float32")
    g.op("READ_VARIABLE", [total], [running])
    new_total = g.output(g.tensor((1, FRAME), "float32"))
    g.op("ADD", [running, frame], [new_total], options("AddOptions"))
    g.op("ASSIGN_VARIABLE", [total, new_total], [])
    if read_is_output:
        again = g.output(g.tensor((1, 3, FRAME), "int8", **Q))
        g.op("READ_VARIABLE", [window], [again])
    return m.build()


def _tflite_sequence(model: bytes, frames: list[np.ndarray]) -> list[list[np.ndarray]]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    out = []
    for x in frames:
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        out.append([it.get_tensor(d["index"]).copy() for d in it.get_output_details()])
    return out


def _frames(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, (1, 1, FRAME)).astype(np.int8) for _ in range(STEPS)]


def _compiled(model: bytes, tmp_path: Path, **kw) -> Path:
    src, blob = tmp_path / "stream.tflite", tmp_path / "stream.vipbin"
    src.write_bytes(model)
    blob.write_bytes(compile_model(src, **kw).blob)
    return blob


@pytest.mark.parametrize("read_is_output", [False, True])
@pytest.mark.parametrize("npu", [True, False])
def test_twenty_invocations_give_tflites_outputs(read_is_output, npu, tmp_path):
    model = streaming_model(read_is_output)
    runtime = Runtime(vipbin.load_blob(_compiled(model, tmp_path, npu=npu)), SimDevice())
    frames = _frames(0)
    for step, (x, want) in enumerate(zip(frames, _tflite_sequence(model, frames))):
        runtime.set_input(0, x)
        for k, (g, w) in enumerate(zip(runtime.run(), want)):
            assert np.array_equal(g, w), f"step {step} output {k}: {g} != {w}"


def test_a_new_session_starts_from_the_initial_state(tmp_path):
    blob = vipbin.load_blob(_compiled(streaming_model(), tmp_path))
    frames = _frames(1)
    first = Runtime(blob, SimDevice())
    for x in frames[:5]:
        first.set_input(0, x)
        first.run()
    second = Runtime(blob, SimDevice())
    second.set_input(0, frames[0])
    want = _tflite_sequence(streaming_model(), frames[:1])[0]
    assert all(np.array_equal(g, w) for g, w in zip(second.run(), want))


def test_c_runtime_keeps_the_state_across_runs_of_a_session(tmp_path, c_sources, c_npu_run, c_fake):
    program = tmp_path / "run_sequence"
    source = Path(__file__).parent / "c_programs" / "run_sequence.c"
    p = subprocess.run(["gcc", *STRICT.split(), "-I", str(c_sources), "-o", str(program), str(source),
                        str(c_sources / "libnpu_runtime.a"), "-lm"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    model = streaming_model(read_is_output=True)
    blob = _compiled(model, tmp_path)
    frames = _frames(2)
    for k, x in enumerate(frames):
        (tmp_path / f"in_{k}_0.bin").write_bytes(x.tobytes())
    run = subprocess.run([str(program), str(blob), str(STEPS), str(tmp_path)], capture_output=True, text=True,
                         env=fake_env(c_fake), timeout=300)
    assert run.returncode == 0, run.stderr
    for k, want in enumerate(_tflite_sequence(model, frames)):
        for j, w in enumerate(want):
            assert (tmp_path / f"out_{k}_{j}.bin").read_bytes() == w.tobytes(), f"step {k} output {j}"


def _refused(model: bytes, tmp_path: Path, *fragments: str) -> None:
    src = tmp_path / "m.tflite"
    src.write_bytes(model)
    with pytest.raises(UnsupportedError) as e:
        compile_model(src)
    message = str(e.value)
    assert "\n" not in message and all(f in message for f in fragments), message


def test_a_variable_read_before_anything_assigns_it_is_refused(tmp_path):
    m = ModelBuilder()
    g = m.main
    x = g.input((1, 4), "float32")
    value = g.tensor((1, 4), "float32")
    g.op("READ_VARIABLE", [_variable(g, "never")], [value])
    y = g.output(g.tensor((1, 4), "float32"))
    g.op("ADD", [value, x], [y], options("AddOptions"))
    _refused(m.build(), tmp_path, "READ_VARIABLE", "'/never'", "before anything assigns it")


def test_while_loops_are_refused_by_name(tmp_path):
    m = ModelBuilder()
    g = m.main
    cond_index, cond = m.subgraph("cond")
    body_index, body = m.subgraph("body")
    for sg in (cond, body):
        t = sg.input((1,), "int32")
        sg.output(t)
    x = g.input((1,), "int32")
    y = g.output(g.tensor((1,), "int32"))
    g.op("WHILE", [x], [y], options("WhileOptions", condSubgraphIndex=cond_index, bodySubgraphIndex=body_index))
    _refused(m.build(), tmp_path, "WHILE", "control flow")
