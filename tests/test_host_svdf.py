"""SVDF on the host, fully integer and float32, against TFLite's reference kernel: one invoke, and many.

Seeded random instances (batch, input, units, rank and memory sizes, optional
bias, every activation each kernel takes, zero points anywhere in int8, time
weights up to the int16 extremes so that TFLite's int32 sums wrap) run on the
Python runtime and must equal TFLite bit for bit, then on the C runtime and
must equal Python byte for byte.  SVDF keeps a window of past features in its
state, a variable tensor that TFLite keeps between invokes: sequences of
invokes of one interpreter that is never reset must give the outputs of one
Python runtime session at every step, and of one C runtime session
(``tests/c_programs/run_sequence.c``).  Float instances also meet NaN,
infinities, signed zeros and extremes, which then stay in the state; their
sizes straddle the four lanes of TFLite's float sums.  One hand-made case
pins the float32 arithmetic of the integer kernel's effective scales.  What
npuc does not run is refused in one line; a C runtime refuses a blob whose
SVDF step's tensors or parameters do not fit together.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from c_build import STRICT, fake_env
from host_cases import (
    Batch,
    Generator,
    batch_model,
    check_c,
    compile_cpu,
    differences,
    edited_blob_error,
    host_step,
    kernel_tests,
    python_outputs,
    quant,
    random_inputs,
    tflite_outputs,
    values,
)
from model_builder import ModelBuilder, SubgraphBuilder, options
from npuc import vipbin
from npuc.driver import compile_model
from npuc.errors import UnsupportedError
from npuc.host.kernels.svdf import ACTIVATIONS, STATE_INPUT
from npuc.runtime.runtime import Runtime
from npuc.sim.device import SimDevice

#: Invokes per sequence, and the instances side by side in a sequence's model.
STEPS = 8
INSTANCES = 12
#: NaN, infinities, signed zeros, a denormal and extremes, for the float kernel.
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, 1e-6, 65504.0, 3e38, -3e38, 1e30], np.float32)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _sizes(rng: np.random.Generator, min_memory: int = 1) -> tuple[int, int, int, int, int]:
    """(batch, input, units, rank, memory) of one instance; input, rank and memory from below to beyond two
    of the float sums' four lanes."""
    batch, n_input, units, rank = (int(v) for v in rng.integers(1, [3, 20, 4, 10], endpoint=True))
    return batch, n_input, units, rank, int(rng.integers(min_memory, 10, endpoint=True))


def _sprinkled(rng: np.random.Generator, x: np.ndarray, share: float = 0.1) -> np.ndarray:
    """Float ``x`` with about ``share`` of its elements replaced by special values."""
    out = x.copy()
    chosen = rng.random(x.shape) < share
    out[chosen] = rng.choice(SPECIAL, size=int(chosen.sum()))
    return out


def _svdf(g: SubgraphBuilder, x: int, weights: tuple[int, int, int], state: int, y: int, rank: int,
          activation: str) -> list[int]:
    g.op("SVDF", [x, *weights, state], [y], options("SVDFOptions", rank=rank, fusedActivationFunction=activation))
    return [y]


def _int8(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """TFLite's fully integer SVDF, as its converter emits it (symmetric weights and int16 state)."""
    batch, n_input, units, rank, memory = _sizes(rng)
    filters = units * rank
    x = g.input((batch, n_input), "int8", **quant(rng, "int8", (1e-3, 0.1)))
    wf = g.const(values(rng, (filters, n_input), "int8"), scale=_log_uniform(rng, 1e-3, 0.05), zero_point=0)
    limit = int(rng.choice([300, 4000, 32767]))           # 32767: a filter's int32 sum may wrap
    wt = g.const(rng.integers(-limit, limit, (filters, memory), endpoint=True).astype(np.int16),
                 scale=_log_uniform(rng, 1e-4, 1e-2), zero_point=0)
    bias = g.const(rng.integers(-50_000, 50_000, units).astype(np.int32), scale=1e-6, zero_point=0) \
        if rng.random() < 0.7 else -1
    state = g.tensor((batch, filters * memory), "int16", scale=_log_uniform(rng, 1e-4, 1e-2), zero_point=0,
                     variable=True)
    y = g.tensor((batch, units), "int8", **quant(rng, "int8", (1e-2, 1.0)))
    return _svdf(g, x, (wf, wt, bias), state, y, rank, "RELU")


def _int8_wrapping(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """An integer SVDF whose int32 sums wrap once its state fills: every feature saturates at 32767 (weights
    127, input zero point -128, feature scale 25) and every time weight is 32767, so each filter's sum is
    memory * 32767^2, which leaves int32 from two terms on; the sum's scale 2^-14 keeps the wrapped value
    visible in the output (with a sum that saturated instead, every output would be 127)."""
    batch, n_input, units, rank, memory = _sizes(rng, min_memory=2)
    filters = units * rank
    x = g.input((batch, n_input), "int8", scale=0.05, zero_point=-128)
    wf = g.const(np.full((filters, n_input), 127, np.int8), scale=0.05, zero_point=0)
    wt = g.const(np.full((filters, memory), 32767, np.int16), scale=1e-3, zero_point=0)
    state = g.tensor((batch, filters * memory), "int16", scale=1e-4, zero_point=0, variable=True)
    y = g.tensor((batch, units), "int8", scale=1e-4 * 1e-3 * 2.0 ** 14, zero_point=0)
    return _svdf(g, x, (wf, wt, -1), state, y, rank, "RELU")


def _float32(special: bool) -> Generator:
    """The float SVDF with any activation the host kernel takes; weights sprinkled with special values when
    ``special``, and then no SIGN_BIT, which would output the sign of a NaN: the CPU's (x86 makes NaNs
    negative, Arm positive, and which of two NaNs a sum keeps depends on the compiled operand order)."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        batch, n_input, units, rank, memory = _sizes(rng)
        filters = units * rank

        def const(shape: tuple[int, ...]) -> int:
            data = rng.standard_normal(shape).astype(np.float32)
            return g.const(_sprinkled(rng, data) if special else data, "float32")

        x = g.input((batch, n_input), "float32")
        weights = (const((filters, n_input)), const((filters, memory)), const((units,)) if rng.random() < 0.7 else -1)
        state = g.tensor((batch, filters * memory), "float32", variable=True)
        y = g.tensor((batch, units), "float32")
        activations = [a for a in ACTIVATIONS if not (special and a == "SIGN_BIT")]
        return _svdf(g, x, weights, state, y, rank, str(rng.choice(activations)))
    return generate


GENERATORS: dict[str, Generator] = {"int8": _int8, "float32": _float32(False)}

test_python_kernels_match_tflite, test_c_kernels_match_python = kernel_tests(GENERATORS)


def test_effective_scales_are_computed_in_float32_as_in_tflite(tmp_path: Path, c_npu_run: Path, c_fake: Path) -> None:
    """input_scale * feature_scale / state_scale in float32 gives a multiplier whose feature for this input is
    -3802; in double it would be -3801.  A bias of 3790 and a time scale of exactly 1 bring the feature into
    the output: -12 is TFLite's, and the Python and C runtimes'."""
    m = ModelBuilder()
    g = m.main
    x = g.input((1, 2), "int8", scale=0.0371, zero_point=0)
    wf = g.const(np.array([[127, 1]], np.int8), scale=0.00731, zero_point=0)
    wt = g.const(np.array([[1]], np.int16), scale=1.0, zero_point=0)
    bias = g.const(np.array([3790], np.int32), scale=1.0, zero_point=0)
    state = g.tensor((1, 1), "int16", scale=0.000917, zero_point=0, variable=True)
    y = g.output(g.tensor((1, 1), "int8", scale=0.000917, zero_point=0))
    _svdf(g, x, (wf, wt, bias), state, y, 1, "RELU")
    batch = Batch(m.build(), ["output 0"])
    inputs = [np.array([[-102, 101]], np.int8)]
    want = tflite_outputs(batch.model, inputs)
    assert want[0].item() == -12
    blob = compile_cpu(batch.model, tmp_path)
    assert not differences(python_outputs(blob, inputs), want, batch.labels)
    check_c(batch, blob, [inputs], c_npu_run, fake_env(c_fake), tmp_path)


# -- sequences of invokes: the state ----------------------------------------------------------

#: Sequence cases: the generator, and whether float inputs get special values too.
SEQUENCES: dict[str, tuple[Generator, bool]] = {
    "int8": (_int8, False),
    "int8 wrapping": (_int8_wrapping, False),
    "float32": (_float32(False), False),
    "float32 special": (_float32(True), True),
}


def _steps(model: bytes, special: bool) -> list[list[np.ndarray]]:
    """Each invoke's inputs: random, float ones sprinkled with special values when ``special``."""
    rng = np.random.default_rng(99)
    steps = [random_inputs(model, 100 + k) for k in range(STEPS)]
    return [[_sprinkled(rng, x) if special and x.dtype.kind == "f" else x for x in inputs] for inputs in steps]


def _tflite_sequence(model: bytes, steps: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """The outputs of one TFLite interpreter (reference kernels), never reset, over the steps."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    outs = []
    for inputs in steps:
        for d, x in zip(it.get_input_details(), inputs, strict=True):
            it.set_tensor(d["index"], x)
        it.invoke()
        outs.append([it.get_tensor(d["index"]).copy() for d in it.get_output_details()])
    return outs


def _python_sequence(blob: Path, steps: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """The outputs of one Python runtime session over the steps."""
    runtime = Runtime(vipbin.load_blob(blob), SimDevice())
    outs = []
    for inputs in steps:
        for k, x in enumerate(inputs):
            runtime.set_input(k, x)
        outs.append(runtime.run())
    return outs


def _sequence_case(name: str, tmp_path: Path) -> tuple[list[str], Path, list[list[np.ndarray]], list[list[np.ndarray]]]:
    """(labels, CPU blob, inputs per step, TFLite's outputs per step) of a sequence case."""
    generator, special = SEQUENCES[name]
    batch = batch_model(generator, range(INSTANCES))
    steps = _steps(batch.model, special)
    return batch.labels, compile_cpu(batch.model, tmp_path), steps, _tflite_sequence(batch.model, steps)


def _assert_every_step(got: list[list[np.ndarray]], want: list[list[np.ndarray]], labels: list[str]) -> None:
    for step, (g, w) in enumerate(zip(got, want, strict=True)):
        failures = differences(g, w, labels)
        assert not failures, f"step {step}:\n" + "\n".join(failures[:20])


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_state_carries_from_one_run_to_the_next_as_in_tflite(name: str, tmp_path: Path) -> None:
    """One Python session gives TFLite's outputs at every step, and the last step depends on the state: a fresh
    session fed only the last inputs gives other outputs."""
    labels, blob, steps, want = _sequence_case(name, tmp_path)
    _assert_every_step(_python_sequence(blob, steps), want, labels)
    assert differences(python_outputs(blob, steps[-1]), want[-1], labels)


def test_wrapping_sums_reach_the_output() -> None:
    """The wrapping case does what it is built for: with sums that saturated, every output would be 127."""
    batch = batch_model(_int8_wrapping, range(INSTANCES))
    last = _tflite_sequence(batch.model, _steps(batch.model, False))[-1]
    assert any(np.any(y != 127) for y in last)


@pytest.fixture(scope="module")
def run_sequence(c_sources: Path, c_npu_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/c_programs/run_sequence.c, linked with the C runtime (which c_npu_run has built)."""
    program = tmp_path_factory.mktemp("svdf") / "run_sequence"
    source = Path(__file__).parent / "c_programs" / "run_sequence.c"
    p = subprocess.run(["gcc", *STRICT.split(), "-I", str(c_sources), "-o", str(program), str(source),
                        str(c_sources / "libnpu_runtime.a"), "-lm"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return program


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_c_runtime_carries_the_state_as_tflite_does(name: str, tmp_path: Path, run_sequence: Path,
                                                    c_fake: Path) -> None:
    """One C session (run_sequence on the fake device) gives TFLite's outputs, byte for byte, at every step."""
    labels, blob, steps, want = _sequence_case(name, tmp_path)
    for k, inputs in enumerate(steps):
        for i, x in enumerate(inputs):
            (tmp_path / f"in_{k}_{i}.bin").write_bytes(np.ascontiguousarray(x).tobytes())
    run = subprocess.run([str(run_sequence), str(blob), str(STEPS), str(tmp_path)], capture_output=True, text=True,
                         env=fake_env(c_fake), timeout=300)
    assert run.returncode == 0, run.stderr
    got = [[np.frombuffer((tmp_path / f"out_{k}_{j}.bin").read_bytes(), w.dtype).reshape(w.shape)
            for j, w in enumerate(outs)] for k, outs in enumerate(want)]
    _assert_every_step(got, want, labels)


# -- what npuc refuses ------------------------------------------------------------------------

def _model(input_type: str = "int8", weights_time: str = "int16", state_type: str = "int16",
           activation: str = "RELU", state_is_input: bool = False, weights_feature: str | None = None) -> bytes:
    """One SVDF (batch 2, input 3, 2 units of rank 2, memory 4) of the given types; its state a variable tensor,
    or a graph input (which TFLite refuses when it invokes the SVDF)."""
    m = ModelBuilder()
    g = m.main
    q = {"scale": 0.05, "zero_point": 0} if input_type != "float32" else {}
    feature_type = weights_feature or input_type
    wq = {"scale": 0.05, "zero_point": 0} if feature_type != "float32" else {}
    tq = {"scale": 0.01, "zero_point": 0} if weights_time != "float32" else {}
    x = g.input((2, 3), input_type, **q)
    wf = g.const(np.ones((4, 3)), feature_type, **wq)
    wt = g.const(np.ones((4, 4)), weights_time, **tq)
    state_quant = {"scale": 0.01} if state_type != "float32" else {}
    state = g.input((2, 16), state_type, **state_quant) if state_is_input else \
        g.tensor((2, 16), state_type, variable=True, **state_quant)
    y = g.output(g.tensor((2, 2), input_type, **q))
    _svdf(g, x, (wf, wt, -1), state, y, 2, activation)
    return m.build()


@pytest.mark.parametrize("model, fragments", [
    (lambda: _model(activation="NONE"), ("fused activation NONE", "integer SVDF takes only RELU")),
    (lambda: _model(weights_time="int8"), ("weights_time", "type int8", "takes int16")),
    (lambda: _model(state_type="int8"), ("state", "type int8", "takes int16")),
    (lambda: _model(state_is_input=True), ("state", "must be a variable tensor")),
    (lambda: _model("float32", "float32", "float32", activation="TANH"), ("fused activation TANH",)),
    (lambda: _model("float32", "int8", "float32", weights_feature="int8"), ("hybrid SVDF", "no host kernel")),
])
def test_what_npuc_does_not_run_is_refused_in_one_line(model: Callable[[], bytes], fragments: tuple[str, ...],
                                                       tmp_path: Path) -> None:
    src = tmp_path / "svdf.tflite"
    src.write_bytes(model())
    with pytest.raises(UnsupportedError) as e:
        compile_model(src, npu=False)
    message = str(e.value)
    assert "\n" not in message and all(f in message for f in fragments), message


# -- a hostile blob -----------------------------------------------------------------------------

def _svdf_step(blob: vipbin.Blob) -> vipbin.HostStep:
    return host_step(blob, "SVDF")


def _set_rank(blob: vipbin.Blob, rank: int) -> None:
    _svdf_step(blob).params["rank"] = rank


def _swap_weights(blob: vipbin.Blob) -> None:
    step = _svdf_step(blob)
    step.inputs[1], step.inputs[2] = step.inputs[2], step.inputs[1]


def _state_is_input(blob: vipbin.Blob) -> None:
    step = _svdf_step(blob)
    step.inputs[STATE_INPUT] = step.inputs[0]


@pytest.mark.parametrize("change, fragment", [
    (lambda b: _set_rank(b, 3), "sizes do not fit the input and rank 3"),
    (lambda b: _set_rank(b, 1), "sizes do not fit the input and rank 1"),
    (_swap_weights, "cannot take tensor"),
    (_state_is_input, "cannot take tensor"),
    (lambda b: _svdf_step(b).inputs.pop(), "needs input 4"),
])
def test_c_runtime_refuses_an_svdf_step_whose_parts_do_not_fit(change: Callable[[vipbin.Blob], None], fragment: str,
                                                               tmp_path: Path, c_npu_run: Path, c_fake: Path) -> None:
    """The blob's tensors and parameters are checked when it is loaded, before any kernel could index past them."""
    err = edited_blob_error(c_npu_run, compile_cpu(_model(), tmp_path), change, tmp_path)
    assert fragment in err, err


def test_float_and_integer_instances_run_side_by_side_in_python_as_in_tflite(tmp_path: Path) -> None:
    """Both kernels in one model, one invoke each: the variant follows the input type."""
    def both(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        return _int8(rng, g) + _float32(False)(rng, g)

    batch = batch_model(both, range(4))
    blob = compile_cpu(batch.model, tmp_path)
    inputs = random_inputs(batch.model, 0)
    assert not differences(python_outputs(blob, inputs), tflite_outputs(batch.model, inputs), batch.labels)
    kernels = {s.kernel for s in vipbin.load_blob(blob).steps if isinstance(s, vipbin.HostStep)}
    assert {"SVDF", "SVDF_F32"} <= kernels
