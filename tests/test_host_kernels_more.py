"""Host kernels of the non-MobileNet shared models against TFLite's reference kernels, bit for bit.

* every operator of DeepLab v3, MoveNet, the Keras LSTM and split_concat, fed
  TFLite's own input tensors for that operator, reproduces TFLite's output;
* each whole graph run on the host kernels reproduces TFLite's outputs;
* one-operator models cover what those models do not exercise: other types,
  activations, broadcasts and axes, every input value of the LOGISTIC table,
  every RESIZE_BILINEAR mode, requantizing concatenation;
* what the kernels do not handle is refused with a one-line error naming the
  operator, and bad data at run time is an InputError.
"""

from __future__ import annotations

import copy
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tflite

import oracle
from npuc.errors import InputError
from npuc.frontend_tflite import load_tflite
from npuc.ir import NUMPY_DTYPES, Graph, Op
from npuc.host import fixedpoint as fp
from npuc.host.graph_exec import run_graph_on_host, variable_reset_value
from npuc.runtime.image import load_image_input
from test_host_kernels import _one_op_graph, _params, _q, _rand, _refusal, _run_kernel
from tflite_builder import OpSpec, Option, T, build_model

AF = tflite.ActivationFunctionType
TT = tflite.TensorType

DEEPLAB = "deeplabv3_mnv2_pascal_quant"
MOVENET = "movenet_single_pose_lightning_ptq"
LSTM = "keras_lstm_mnist_ptq"
SPLIT_CONCAT = "split_concat"
MODELS = (DEEPLAB, MOVENET, LSTM, SPLIT_CONCAT)


@lru_cache(maxsize=None)
def _graph(model: str) -> Graph:
    return load_tflite(oracle.model_path(model))


def _digit() -> np.ndarray:
    """A white ring on black, 28x28: the kind of input the MNIST LSTM was trained on."""
    yy, xx = np.mgrid[:28, :28]
    r = np.hypot(yy - 14, xx - 13)
    return np.where((r > 6) & (r < 10), 255, 0).astype(np.uint8)[None]


def _model_inputs(model: str, which: int) -> list[np.ndarray]:
    """Input set ``which`` of a model: real images for the image models, seeded data otherwise."""
    graph = _graph(model)
    if model == SPLIT_CONCAT:
        rng = np.random.default_rng(which)
        return [_rand(rng, graph.tensors[i].shape, graph.tensors[i].dtype) for i in graph.inputs]
    if model == LSTM:
        if which == 0:
            return [_digit()]
        image = oracle.all_images()[which % len(oracle.all_images())]
        return [load_image_input(image, 28, 28, "uint8")[..., 0]]
    image = oracle.IMAGES / ("grace_hopper.bmp", "checker224X224.bmp")[which]
    t = graph.tensors[graph.inputs[0]]
    return [load_image_input(image, t.shape[1], t.shape[2], t.dtype)]


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal type, shape and values (NaN equal to NaN: both sides computed the same invalid operation)."""
    return (got.dtype == want.dtype and got.shape == want.shape
            and np.array_equal(got, want, equal_nan=got.dtype.kind == "f"))


# -- the shared models ----------------------------------------------------------------------

def _operand(graph: Graph, index: int, ref: dict[int, np.ndarray]) -> np.ndarray:
    """An operator's input as TFLite saw it: constant data, the reset value of a variable (TFLite's
    copy after the invoke holds the final LSTM state), or the tensor TFLite computed."""
    t = graph.tensors[index]
    if t.is_constant:
        return t.data
    return variable_reset_value(t) if t.is_variable else ref[index]


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("model", MODELS)
def test_each_op_matches_tflite(model: str, which: int) -> None:
    graph = _graph(model)
    ref = oracle.run_reference_all(oracle.model_path(model), _model_inputs(model, which))
    failures = []
    for op in graph.ops:
        ins = [None if i is None else _operand(graph, i, ref) for i in op.inputs]
        outs = [np.zeros(graph.tensors[o].shape, dtype=NUMPY_DTYPES[graph.tensors[o].dtype]) for o in op.outputs]
        _run_kernel(graph, op, ins, outs)
        for o, got in zip(op.outputs, outs):
            if not _same(got, ref[o]):
                failures.append(f"{op.name}: {np.count_nonzero(got != ref[o])}/{got.size} values differ")
    assert not failures, f"{model} input {which}:\n" + "\n".join(failures)


@pytest.mark.parametrize("model, runs", [(DEEPLAB, 2), (MOVENET, 2), (LSTM, 6), (SPLIT_CONCAT, 3)])
def test_whole_graph_matches_tflite(model: str, runs: int) -> None:
    graph = _graph(model)
    for which in range(runs):
        x = _model_inputs(model, which)
        got = run_graph_on_host(graph, x)
        want = oracle.run_reference(oracle.model_path(model), x)
        for g, w in zip(got, want):
            assert _same(g, w), f"{model} input {which}: {np.count_nonzero(g != w)} output values differ"


def _lstm(graph: Graph) -> Op:
    return next(o for o in graph.ops if o.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM")


def test_lstm_state_carries_from_one_run_to_the_next_as_in_tflite(tmp_path: Path) -> None:
    """TFLite's LSTM starts from its state tensors and leaves its final states in them; a session of the CPU
    blob gives TFLite's outputs over a sequence of invokes of one interpreter that is never reset."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from npuc import vipbin
    from npuc.driver import compile_model
    from npuc.runtime.runtime import Runtime
    from npuc.sim.device import SimDevice

    path = oracle.model_path(LSTM)
    runtime = Runtime(vipbin.read_blob(compile_model(path, npu=False).blob), SimDevice())
    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    for which in (0, 1, 0):
        x = _model_inputs(LSTM, which)[0]
        runtime.set_input(0, x)
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        ours, want = runtime.run()[0], it.get_tensor(it.get_output_details()[0]["index"])
        assert np.array_equal(ours, want)


def test_lstm_kernel_reads_and_writes_its_state_tensors() -> None:
    """The LSTM's own output after a second invoke is TFLite's (which carries the state), not a fresh start's."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    graph = _graph(LSTM)
    op = _lstm(graph)
    it = Interpreter(model_path=str(oracle.model_path(LSTM)), experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    ins = [None if i is None else _operand(graph, i, {}) for i in op.inputs[1:]]
    ins.insert(0, None)
    outs = []
    for which in (0, 1):
        it.set_tensor(it.get_input_details()[0]["index"], _model_inputs(LSTM, which)[0])
        it.invoke()
        ins[0] = it.get_tensor(op.inputs[0])          # the LSTM's input in this invoke
        outs.append(np.zeros(graph.tensors[op.outputs[0]].shape, np.int8))
        _run_kernel(graph, op, ins, [outs[-1]])
    assert np.array_equal(outs[1], it.get_tensor(op.outputs[0]))
    fresh = np.zeros_like(outs[1])
    _run_kernel(graph, op, [ins[0]] + [None if i is None else _operand(graph, i, {}) for i in op.inputs[1:]], [fresh])
    assert not np.array_equal(outs[1], fresh)


def test_lstm_batch_rows_are_independent_and_time_major_transposes() -> None:
    """Cases the model does not exercise: two sequences in one batch, and the time-major layout."""
    def run(sequence: np.ndarray, time_major: bool) -> np.ndarray:
        graph = copy.deepcopy(_graph(LSTM))
        op = _lstm(graph)
        op.options["time_major"] = time_major
        batch = sequence.shape[1] if time_major else sequence.shape[0]
        graph.tensors[op.inputs[0]].shape = sequence.shape
        graph.tensors[op.outputs[0]].shape = sequence.shape[:2] + (20,)
        for state in (18, 19):
            graph.tensors[op.inputs[state]].shape = (batch, 20)
        ins = [None if i is None else _operand(graph, i, {}) for i in op.inputs[1:]]   # states: reset
        ins.insert(0, sequence)
        out = np.zeros(sequence.shape[:2] + (20,), np.int8)
        _run_kernel(graph, op, ins, [out])
        return out

    x = _rand(np.random.default_rng(5), (2, 28, 28), "int8")
    together = run(x, False)
    assert np.array_equal(together[:1], run(x[:1], False)) and np.array_equal(together[1:], run(x[1:], False))
    assert np.array_equal(run(x.transpose(1, 0, 2), True).transpose(1, 0, 2), together)


def test_lstm_reads_a_ring_as_zero() -> None:
    """A sanity check with meaning: the MNIST LSTM, run on the host, calls a drawn ring a 0."""
    assert int(np.argmax(run_graph_on_host(_graph(LSTM), [_digit()])[0])) == 0


def test_deeplab_segments_the_person() -> None:
    """A sanity check with meaning: DeepLab labels Grace Hopper's pixels 'person' (15) on the host."""
    labels = run_graph_on_host(_graph(DEEPLAB), _model_inputs(DEEPLAB, 0))[0]
    assert np.count_nonzero(labels == 15) > labels.size // 4


# -- one-operator models --------------------------------------------------------------------

Case = tuple[list[T], OpSpec, list[int], list[int]]


def _binary(opcode: str, options: str | None, shapes: tuple, dtype: str, quants: tuple = (None, None, None),
            act: int | None = None, const_first: np.ndarray | None = None) -> Case:
    tensors = [T(shape, **(q or {"dtype": dtype})) for shape, q in zip(shapes, quants)]
    if const_first is not None:
        tensors[0].data = const_first
    spec = OpSpec(opcode, options, [] if act is None else [Option(0, "b", act)])
    return tensors, spec, [0, 1], [2]


def _case_add_int8_broadcast_relu6(rng):
    return _binary("ADD", "AddOptions", ((1, 4, 1, 3), (1, 1, 5, 3), (1, 4, 5, 3)), "int8",
                   (_q("int8", 0.05, -3), _q("int8", 0.02, 10), _q("int8", 0.04, -128)), AF.RELU6)


def _case_add_uint8_scalar_constant(rng):
    tensors, spec, ins, outs = _binary("ADD", "AddOptions", ((2, 3, 4), (), (2, 3, 4)), "uint8",
                                       (_q("uint8", 0.1, 120), _q("uint8", 0.007, 0), _q("uint8", 0.11, 100)), AF.NONE)
    tensors[1].data = np.array(200, np.uint8)
    return tensors, spec, ins, outs


def _case_sub_int8_constant_first_broadcast(rng):
    return _binary("SUB", "SubOptions", ((6, 1), (1, 7), (6, 7)), "int8",
                   (_q("int8", 0.18, -128), _q("int8", 0.21, -128), _q("int8", 0.39, 10)), AF.NONE,
                   const_first=_rand(rng, (6, 1), "int8"))


def _case_sub_uint8_relu(rng):
    return _binary("SUB", "SubOptions", ((3, 8), (3, 8), (3, 8)), "uint8",
                   (_q("uint8", 0.03, 128), _q("uint8", 0.05, 100), _q("uint8", 0.04, 0)), AF.RELU)


def _case_sub_int32_broadcast(rng):
    return _binary("SUB", "SubOptions", ((3, 1), (1, 4), (3, 4)), "int32", act=AF.NONE)


def _case_mul_int8_broadcast_constant(rng):
    tensors, spec, ins, outs = _binary("MUL", "MulOptions", ((1, 1, 17, 2), (1, 1, 1, 2), (1, 1, 17, 2)), "int8",
                                       (_q("int8", 0.2, -128), _q("int8", 8.2e-5, -128), _q("int8", 0.0041, -128)),
                                       AF.NONE)
    tensors[1].data = np.array([127, 90], np.int8).reshape(1, 1, 1, 2)
    return tensors, spec, ins, outs


def _case_mul_uint8_relu_n1_to_1(rng):
    return _binary("MUL", "MulOptions", ((4, 5), (4, 5), (4, 5)), "uint8",
                   (_q("uint8", 0.02, 128), _q("uint8", 0.03, 120), _q("uint8", 0.01, 128)), AF.RELU_N1_TO_1)


def _case_mul_int32_scalar(rng):
    tensors, spec, ins, outs = _binary("MUL", "MulOptions", ((2, 9), (), (2, 9)), "int32", act=AF.RELU6)
    tensors[1].data = np.array(3, np.int32)
    return tensors, spec, ins, outs


def _case_add_float32_relu(rng):
    return _binary("ADD", "AddOptions", ((2, 1, 5), (3, 1), (2, 3, 5)), "float32", act=AF.RELU)


def _case_div_float32_broadcast(rng):
    return _binary("DIV", "DivOptions", ((4, 6), (6,), (4, 6)), "float32", act=AF.NONE)


def _case_div_float32_relu6(rng):
    return _binary("DIV", "DivOptions", ((3, 5), (3, 5), (3, 5)), "float32", act=AF.RELU6)


def _case_floor_div_int32_broadcast(rng):
    return _binary("FLOOR_DIV", None, ((2, 5), (5,), (2, 5)), "int32")


def _unary(opcode: str, shape: tuple, in_dtype: str, out_dtype: str) -> Case:
    return [T(shape, in_dtype), T(shape, out_dtype)], OpSpec(opcode), [0], [1]


def _case_cast_int32_to_float32(rng):
    return _unary("CAST", (3, 40), "int32", "float32")


def _case_cast_float32_to_int32(rng):
    return _unary("CAST", (3, 40), "float32", "int32")


def _case_cast_int8_to_int32(rng):
    return _unary("CAST", (2, 30), "int8", "int32")


def _case_cast_uint8_to_float32(rng):
    return _unary("CAST", (1, 4, 4, 3), "uint8", "float32")


def _case_sqrt_float32(rng):
    return _unary("SQRT", (5, 20), "float32", "float32")


def _case_concat_uint8_requantized(rng):
    """Scale ratio 1/2 puts half the inputs on rounding ties: float rounding and a fixed-point multiplier differ."""
    return ([T((1, 3, 40), **_q("uint8", 0.05, 100)), T((1, 2, 40), **_q("uint8", 0.013, 7)),
             T((1, 1, 40), **_q("uint8", 0.1, 128)), T((1, 6, 40), **_q("uint8", 0.1, 128))],
            OpSpec("CONCATENATION", "ConcatenationOptions", [Option(0, "i", -2), Option(1, "b", AF.NONE)]),
            [0, 1, 2], [3])


def _case_concat_int32_with_constant(rng):
    return ([T((17, 3), "int32"), T((17, 1), "int32", data=np.arange(17, dtype=np.int32).reshape(17, 1)),
             T((17, 4), "int32")],
            OpSpec("CONCATENATION", "ConcatenationOptions", [Option(0, "i", 1), Option(1, "b", AF.NONE)]),
            [0, 1], [2])


def _case_concat_float32_axis0(rng):
    return ([T((2, 3), "float32"), T((1, 3), "float32"), T((3, 3), "float32")],
            OpSpec("CONCATENATION", "ConcatenationOptions", [Option(0, "i", 0), Option(1, "b", AF.NONE)]),
            [0, 1], [2])


def _case_split_int8_negative_axis(rng):
    return ([T((), "int32", data=np.array(-1, np.int32)), T((2, 3, 6), **_q("int8", 0.1, 3))]
            + [T((2, 3, 2), **_q("int8", 0.1, 3)) for _ in range(3)],
            OpSpec("SPLIT", "SplitOptions", [Option(0, "i", 3)]), [0, 1], [2, 3, 4])


def _case_split_v_inferred_size(rng):
    return ([T((7, 4), "float32"), T((3,), "int32", data=np.array([2, -1, 1], np.int32)),
             T((), "int32", data=np.array(0, np.int32)), T((2, 4), "float32"), T((4, 4), "float32"),
             T((1, 4), "float32")],
            OpSpec("SPLIT_V", "SplitVOptions", [Option(0, "i", 3)]), [0, 1, 2], [3, 4, 5])


def _case_pack_int8_negative_axis(rng):
    return ([T((3, 4), **_q("int8", 0.2, -5)), T((3, 4), **_q("int8", 0.2, -5)), T((3, 4, 2), **_q("int8", 0.2, -5))],
            OpSpec("PACK", "PackOptions", [Option(0, "i", 2), Option(1, "i", -1)]), [0, 1], [2])


def _case_pack_int32_axis0(rng):
    return ([T((5,), "int32"), T((5,), "int32"), T((5,), "int32"), T((3, 5), "int32")],
            OpSpec("PACK", "PackOptions", [Option(0, "i", 3), Option(1, "i", 0)]), [0, 1, 2], [3])


def _case_unpack_float32_negative_axis(rng):
    return ([T((4, 3), "float32"), T((4,), "float32"), T((4,), "float32"), T((4,), "float32")],
            OpSpec("UNPACK", "UnpackOptions", [Option(0, "i", 3), Option(1, "i", -1)]), [0], [1, 2, 3])


def _case_gather_nd_slices(rng):
    indices = np.array([[3, 1], [0, 4], [2, 2]], np.int32)
    return ([T((4, 5, 3), **_q("int8", 0.3, 1)), T((3, 2), "int32", data=indices), T((3, 3), **_q("int8", 0.3, 1))],
            OpSpec("GATHER_ND", "GatherNdOptions"), [0, 1], [2])


def _case_gather_nd_elements_uint8(rng):
    indices = np.array([[[1, 2, 0], [0, 0, 1]], [[1, 1, 1], [0, 2, 1]]], np.int32)
    return ([T((2, 3, 2), **_q("uint8", 0.3, 1)), T((2, 2, 3), "int32", data=indices),
             T((2, 2), **_q("uint8", 0.3, 1))],
            OpSpec("GATHER_ND", "GatherNdOptions"), [0, 1], [2])


def _case_arg_max_uint8_ties(rng):
    return ([T((3, 4, 9), **_q("uint8", 0.1, 0)), T((1,), "int32", data=np.array([-1], np.int32)), T((3, 4), "int32")],
            OpSpec("ARG_MAX", "ArgMaxOptions", [Option(0, "b", TT.INT32)]), [0, 1], [2])


def _case_arg_max_int32_axis0(rng):
    return ([T((6, 5), "int32"), T((), "int32", data=np.array(0, np.int32)), T((5,), "int32")],
            OpSpec("ARG_MAX", "ArgMaxOptions", [Option(0, "b", TT.INT32)]), [0, 1], [2])


CASES: dict[str, Callable[[np.random.Generator], Case]] = {
    name[len("_case_"):]: fn for name, fn in globals().items() if name.startswith("_case_")}


def _feed(graph: Graph, rng: np.random.Generator, case: str) -> list[np.ndarray]:
    """Inputs for a one-operator model: full-range integers (few distinct values where ties matter, no zero
    divisors), floats with zeros, negatives and exact quarters."""
    out = []
    for i in graph.inputs:
        t = graph.tensors[i]
        if t.dtype == "float32":
            x = (rng.integers(-400, 400, size=t.shape) / 4).astype(np.float32)
            if case.startswith("cast"):
                x = (rng.standard_normal(t.shape) * 1e6).astype(np.float32)
        elif case.startswith("arg_max"):
            x = rng.integers(0, 3, size=t.shape).astype(t.dtype)
        elif t.dtype == "int32":
            x = rng.integers(-(1 << 26), 1 << 26, size=t.shape).astype(np.int32)
            if case.startswith("floor_div"):
                x = x % 50 - 25
                x[x == 0] = 7
        else:
            x = _rand(rng, t.shape, t.dtype)
        out.append(x)
    return out


def _matches_tflite(path: Path, x: list[np.ndarray], label: str) -> None:
    want = oracle.run_reference(path, x)
    got = run_graph_on_host(load_tflite(path), x)
    for g, w in zip(got, want):
        assert _same(g, w), f"{label}: {np.count_nonzero(g != w)}/{g.size} values differ"


@pytest.mark.parametrize("case", sorted(CASES))
def test_single_op_model_matches_tflite(case: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    path = tmp_path / f"{case}.tflite"
    path.write_bytes(build_model(*CASES[case](rng)))
    graph = load_tflite(path)
    for _ in range(3):
        _matches_tflite(path, _feed(graph, rng, case), case)


def test_float_division_by_zero_saturates_like_tflite(tmp_path: Path) -> None:
    """x / 0 is infinite, which TFLite's clamp turns into the largest float; 0 / 0 stays NaN."""
    path = tmp_path / "div.tflite"
    path.write_bytes(build_model(*_case_div_float32_broadcast(None)))
    a = np.array([[1.0, -2.0, 0.0, 3.0, -0.0, 5.0]] * 4, np.float32)
    b = np.array([0.0, 0.0, 0.0, -0.0, 1e-30, 2.0], np.float32)
    _matches_tflite(path, [a, b], "division by zero")
    got = run_graph_on_host(load_tflite(path), [a, b])[0]
    assert got[0, 0] == np.finfo(np.float32).max and np.isnan(got[0, 2])


@pytest.mark.parametrize("dtype, scale, zero_point", [
    ("int8", 0.282217, 114), ("int8", 0.280927, 115), ("int8", 0.02, -128), ("int8", 1.7, 0),
    ("uint8", 0.05, 128), ("uint8", 0.0123, 3), ("uint8", 0.37, 250)])
def test_logistic_table_matches_tflite_for_every_input(dtype: str, scale: float, zero_point: int,
                                                       tmp_path: Path) -> None:
    out_zp = -128 if dtype == "int8" else 0
    path = tmp_path / "logistic.tflite"
    tensors = [T((1, 256), **_q(dtype, scale, zero_point)), T((1, 256), **_q(dtype, 1 / 256, out_zp))]
    path.write_bytes(build_model(tensors, OpSpec("LOGISTIC"), [0], [1]))
    info = np.iinfo(dtype)
    _matches_tflite(path, [np.arange(info.min, info.max + 1).astype(dtype).reshape(1, 256)], f"{dtype} {scale}")


_RESIZE_MODES = {"plain": (False, False), "align_corners": (True, False), "half_pixel": (False, True)}


@pytest.mark.parametrize("dtype", ["uint8", "int8", "float32"])
@pytest.mark.parametrize("mode", sorted(_RESIZE_MODES))
@pytest.mark.parametrize("in_hw, out_hw", [((3, 5), (8, 7)), ((9, 8), (4, 5)), ((1, 1), (3, 2))])
def test_resize_bilinear_matches_tflite(dtype: str, mode: str, in_hw: tuple, out_hw: tuple, tmp_path: Path) -> None:
    align, half = _RESIZE_MODES[mode]
    q = {"dtype": dtype} if dtype == "float32" else _q(dtype, 0.1, 3)
    spec = OpSpec("RESIZE_BILINEAR", "ResizeBilinearOptions", [Option(2, "B", align), Option(3, "B", half)])
    tensors = [T((2, *in_hw, 3), **q), T((2,), "int32", data=np.array(out_hw, np.int32)), T((2, *out_hw, 3), **q)]
    path = tmp_path / "resize.tflite"
    path.write_bytes(build_model(tensors, spec, [0, 1], [2]))
    rng = np.random.default_rng(zlib.crc32(f"{dtype}{mode}{in_hw}".encode()))
    x = rng.standard_normal((2, *in_hw, 3)).astype(np.float32) if dtype == "float32" else \
        _rand(rng, (2, *in_hw, 3), dtype)
    _matches_tflite(path, [x], f"{dtype} {mode} {in_hw}->{out_hw}")


def test_int16_fixed_point_logistic_and_tanh_are_accurate() -> None:
    """Sanity of the int16 gemmlowp functions the LSTM uses (bit-exactness is checked through the LSTM)."""
    raw = np.arange(-32768, 32768)                         # Q3.12
    assert np.max(np.abs(fp.logistic(raw, 3, 16) / 32768 - 1 / (1 + np.exp(-raw / 4096)))) < 3e-4
    assert np.max(np.abs(fp.tanh(raw, 3, 16) / 32768 - np.tanh(raw / 4096))) < 5e-4


# -- refusals and run-time errors ------------------------------------------------------------

def test_int8_concatenation_needing_requantization_is_refused(tmp_path: Path) -> None:
    graph = _one_op_graph(tmp_path, ([T((1, 2), **_q("int8", 0.1, 0)), T((1, 2), **_q("int8", 0.2, 0)),
                                      T((1, 4), **_q("int8", 0.1, 0))],
                                     OpSpec("CONCATENATION", "ConcatenationOptions",
                                            [Option(0, "i", 1), Option(1, "b", AF.NONE)]), [0, 1], [2]))
    _refusal(graph, "quantized differently", "only uint8")


def test_int16_arg_max_is_refused(tmp_path: Path) -> None:
    """TFLite's ARG_MAX takes no int16 input, nor does npuc's."""
    graph = _one_op_graph(tmp_path, ([T((2, 5), "int16", [0.1], [0]), T((), "int32", data=np.array(1, np.int32)),
                                      T((2,), "int32")],
                                     OpSpec("ARG_MAX", "ArgMaxOptions", [Option(0, "b", TT.INT32)]), [0, 1], [2]))
    _refusal(graph, "int16")


def test_resize_with_align_corners_and_half_pixel_centers_is_refused(tmp_path: Path) -> None:
    graph = _one_op_graph(tmp_path, ([T((1, 2, 2, 1), "float32"), T((2,), "int32", data=np.array([4, 4], np.int32)),
                                      T((1, 4, 4, 1), "float32")],
                                     OpSpec("RESIZE_BILINEAR", "ResizeBilinearOptions",
                                            [Option(2, "B", True), Option(3, "B", True)]), [0, 1], [2]))
    _refusal(graph, "align_corners and half_pixel_centers")


def test_logistic_with_other_output_scale_is_refused(tmp_path: Path) -> None:
    graph = _one_op_graph(tmp_path, ([T((1, 8), **_q("int8", 0.1, 0)), T((1, 8), **_q("int8", 1 / 128, -128))],
                                     OpSpec("LOGISTIC"), [0], [1]))
    _refusal(graph, "scale 1/256")


def test_floor_div_by_a_constant_zero_is_refused(tmp_path: Path) -> None:
    tensors, spec, ins, outs = _case_floor_div_int32_broadcast(None)
    tensors[1].data = np.array([3, 0, 1, 2, 5], np.int32)
    _refusal(_one_op_graph(tmp_path, (tensors, spec, ins, outs)), "divisor", "zero")


def test_floor_div_by_zero_at_run_time_is_an_input_error(tmp_path: Path) -> None:
    graph = _one_op_graph(tmp_path, _case_floor_div_int32_broadcast(None))
    with pytest.raises(InputError, match="^FLOOR_DIV: division by zero$"):
        run_graph_on_host(graph, [np.ones((2, 5), np.int32), np.array([1, 2, 0, 4, 5], np.int32)])


def test_gather_nd_outside_params_is_an_input_error(tmp_path: Path) -> None:
    tensors, spec, _, outs = _case_gather_nd_slices(None)
    tensors[1].data = None                                 # indices become a graph input
    graph = _one_op_graph(tmp_path, (tensors, spec, [0, 1], outs))
    with pytest.raises(InputError, match=r"^GATHER_ND: index \[4, 0\] lies outside params of shape \[4, 5, 3\]$"):
        run_graph_on_host(graph, [np.zeros((4, 5, 3), np.int8), np.array([[0, 0], [4, 0], [1, 1]], np.int32)])


@pytest.mark.parametrize("change, fragments", [
    ("projection", ("projection (input 16)",)),
    ("peephole", ("peephole (input 10)",)),
    ("intermediates", ("4 intermediates", "needs 5")),
    ("cell_scale", ("power-of-two scale",)),
    ("float", ("float32", "int8")),
])
def test_unsupported_lstm_variants_are_refused(change: str, fragments: tuple[str, ...]) -> None:
    graph = copy.deepcopy(_graph(LSTM))
    op = _lstm(graph)
    if change == "projection":
        op.inputs[16] = op.inputs[5]
    elif change == "peephole":
        op.inputs[10] = op.inputs[12]
    elif change == "intermediates":
        op.intermediates = op.intermediates[:4]
    elif change == "cell_scale":
        graph.tensors[op.inputs[19]].quant.scale[:] = 0.0003
    else:
        graph.tensors[op.inputs[0]].dtype = "float32"
    graph.ops = [op]
    _refusal(graph, *fragments)


def test_params_are_flat_and_serializable() -> None:
    """The .vipbin stores ints, floats and 1-D int32/float32 arrays only."""
    for model in MODELS:
        graph = _graph(model)
        for op in graph.ops:
            for key, value in _params(graph, op).items():
                ok = (type(value) in (int, float)
                      or (isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype in (np.int32, np.float32)))
                assert ok, f"{model} {op.name}: param {key} is {type(value).__name__}"
