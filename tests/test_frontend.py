"""Tests of the TFLite frontend (npuc/frontend_tflite.py).

Facts about the shared models are checked against TFLite's own interpreter
(ai-edge-litert) and the model table in shared/README.md; robustness is
checked with truncated and byte-flipped copies of real models, targeted
corruptions at field positions located with the ``tflite`` package, and small
synthetic models built with the flatbuffers builder for features the shared
models do not use (several subgraphs, external buffers, custom ops, strings,
BuiltinOptions2, ...).
"""

from __future__ import annotations

import collections
import importlib
import inspect
import random
import struct
import time
from functools import lru_cache
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
import tflite
from oracle import MODELS, model_path

from npuc.errors import GraphError, LimitError, ModelError, NpucError, UnsupportedError
from npuc.frontend_tflite import MAX_TENSOR_ELEMENTS, load_tflite, parse_tflite

ALL_MODELS = sorted(p.stem for p in MODELS.glob("*.tflite"))

#: Errors a damaged model may legitimately produce.  UnsupportedError is here
#: because a flipped byte can turn a tensor type into INT4/BFLOAT16, which the
#: frontend refuses as unsupported rather than as corrupt.
LOAD_ERRORS = (ModelError, GraphError, LimitError, UnsupportedError)

#: Op counts per opcode, from the model table of shared/README.md.
README_OP_COUNTS = {
    "mobilenet_quant_v1_224": {"CONV_2D": 15, "DEPTHWISE_CONV_2D": 13, "AVERAGE_POOL_2D": 1, "RESHAPE": 1,
                               "SOFTMAX": 1},
    "mobilenet_v1_0.25_128_quant": {"CONV_2D": 15, "DEPTHWISE_CONV_2D": 13, "AVERAGE_POOL_2D": 1,
                                    "RESHAPE": 1, "SOFTMAX": 1},
    "mobilenet_v1_0.75_192_quant": {"CONV_2D": 15, "DEPTHWISE_CONV_2D": 13, "AVERAGE_POOL_2D": 1,
                                    "RESHAPE": 1, "SOFTMAX": 1},
    "mobilenet_v2_1.0_224_quant": {"CONV_2D": 36, "DEPTHWISE_CONV_2D": 17, "ADD": 10, "AVERAGE_POOL_2D": 1,
                                   "RESHAPE": 1, "SOFTMAX": 1},
    "tf2_mobilenet_v2_1.0_224_ptq": {"QUANTIZE": 2, "CONV_2D": 36, "DEPTHWISE_CONV_2D": 17, "ADD": 10,
                                     "MEAN": 1, "RESHAPE": 1, "SOFTMAX": 1},
    "deeplabv3_mnv2_pascal_quant": {"CONV_2D": 38, "DEPTHWISE_CONV_2D": 17, "ADD": 10, "AVERAGE_POOL_2D": 1,
                                    "RESIZE_BILINEAR": 3, "CONCATENATION": 1, "QUANTIZE": 1, "ARG_MAX": 1},
    "split_concat": {"SPLIT": 1, "CONCATENATION": 2},
}
#: Models the README describes only partly: (total op count or None, {opcode or custom code: count or None}).
#: The second table ("Models people deploy") names operators without counts, except the TRANSPOSEs.
README_OP_MENTIONS: dict[str, tuple[int | None, dict[str, int | None]]] = {
    "movenet_single_pose_lightning_ptq": (157, dict.fromkeys(
        ("CAST", "QUANTIZE", "MUL", "SUB", "RESIZE_BILINEAR", "LOGISTIC", "GATHER_ND", "ARG_MAX"))),
    "keras_lstm_mnist_ptq": (None, dict.fromkeys(("UNIDIRECTIONAL_SEQUENCE_LSTM", "FULLY_CONNECTED"))),
    "ssd_mobilenet_v1_coco_quant_postprocess": (None, dict.fromkeys(
        ("CONV_2D", "DEPTHWISE_CONV_2D", "CONCATENATION", "LOGISTIC", "RESHAPE", "TFLite_Detection_PostProcess"))),
    "yolov5n_int8": (None, dict.fromkeys(
        ("QUANTIZE", "MAX_POOL_2D", "RESIZE_NEAREST_NEIGHBOR", "STRIDED_SLICE", "CONCATENATION", "LOGISTIC", "MUL",
         "ADD", "PAD"))),
    "posenet_mobilenet_v1_075_481_641_quant": (None, {}),
    "posenet_mobilenet_v1_075_481_641_quant_decoder": (None, {"PosenetDecoderOp": 1}),
    "retinaface_int8_nchw": (None, {"QUANTIZE": None, "DEQUANTIZE": None, "TRANSPOSE": 95, "LEAKY_RELU": None,
                                    "RESIZE_NEAREST_NEIGHBOR": None}),
    "mobilenet_v2_int8_nchw": (None, dict.fromkeys(("TRANSPOSE", "PAD", "MEAN", "FULLY_CONNECTED"))),
    "vww_96_int8": (None, {}),
    "resnet8_cifar10_int8": (None, {}),
    "micro_speech_int8": (None, {}),
}
#: Models whose custom operator has no kernel in TFLite: its interpreter loads them but cannot prepare them.
TFLITE_CANNOT_RUN = {"posenet_mobilenet_v1_075_481_641_quant_decoder"}


def assert_clean_error(exc: NpucError, name: str) -> None:
    """The CLI contract: one line that names the file."""
    message = str(exc)
    assert "\n" not in message and message.strip() == message
    assert name in message, message


@lru_cache(maxsize=None)
def model_bytes(name: str) -> bytes:
    return model_path(name).read_bytes()


@lru_cache(maxsize=None)
def interpreter(name: str):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(model_path(name)),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    if name in TFLITE_CANNOT_RUN:
        with pytest.raises(RuntimeError, match="unresolved custom op"):
            it.allocate_tensors()
    else:
        it.allocate_tensors()
    return it


#: For a model TFLite cannot prepare: the model whose interpreter holds the same constants, and the output
#: shapes its custom kernel's Prepare gives where the file leaves them empty (Coral's PosenetDecoderOp: the
#: pose count is a 1-element float tensor).
SIBLING = {"posenet_mobilenet_v1_075_481_641_quant_decoder": "posenet_mobilenet_v1_075_481_641_quant"}
PREPARED_SHAPES = {("posenet_mobilenet_v1_075_481_641_quant_decoder", "poses:3"): (1,)}


# -- the shared models ----------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_MODELS)
def test_tensors_match_the_interpreter(name: str) -> None:
    graph = load_tflite(model_path(name))
    it = interpreter(name)
    details = {d["index"]: d for d in it.get_tensor_details()}
    data_source = interpreter(SIBLING.get(name, name))
    by_name = {d["name"]: d["index"] for d in data_source.get_tensor_details()}
    assert len(graph.tensors) > 0
    constants = 0
    for t in graph.tensors:
        d = details[t.index]
        assert t.name == d["name"]
        assert t.shape == PREPARED_SHAPES.get((name, t.name), tuple(d["shape"].tolist())), t.name
        assert t.dtype == np.dtype(d["dtype"]).name
        qp = d["quantization_parameters"]
        if t.quant is None:
            assert qp["scales"].size == 0
        else:
            np.testing.assert_array_equal(t.quant.scale, qp["scales"])
            np.testing.assert_array_equal(t.quant.zero_point, qp["zero_points"])
            assert t.quant.scale.dtype == np.float32 and t.quant.zero_point.dtype == np.int64
            if t.quant.per_channel:
                assert t.quant.axis == qp["quantized_dimension"]
        if t.is_constant:
            constants += 1
            np.testing.assert_array_equal(t.data, data_source.get_tensor(by_name[t.name]), err_msg=t.name)
            assert t.data.dtype == np.dtype(d["dtype"])
    assert constants > 0
    inputs = [d["index"] for d in it.get_input_details()]
    outputs = [d["index"] for d in it.get_output_details()]
    assert graph.inputs == inputs and graph.outputs == outputs


@pytest.mark.parametrize("name", ALL_MODELS)
def test_operators_match_the_interpreter(name: str) -> None:
    graph = load_tflite(model_path(name))
    ops = interpreter(name)._get_ops_details()
    assert len(graph.ops) == len(ops)
    for op, d in zip(graph.ops, ops):
        assert (op.custom_code if op.opcode == "CUSTOM" else op.opcode) == d["op_name"]
        assert [-1 if t is None else t for t in op.inputs] == d["inputs"].tolist()
        assert op.outputs == d["outputs"].tolist()
        assert op.version >= 1


@pytest.mark.parametrize("name", ALL_MODELS)
def test_op_counts_match_the_readme(name: str) -> None:
    ops = load_tflite(model_path(name)).ops
    if name in README_OP_COUNTS:
        assert dict(collections.Counter(op.opcode for op in ops)) == README_OP_COUNTS[name]
    else:
        counts = collections.Counter(op.custom_code if op.opcode == "CUSTOM" else op.opcode for op in ops)
        total, mentioned = README_OP_MENTIONS[name]
        assert total is None or sum(counts.values()) == total
        for opcode, count in mentioned.items():
            assert counts[opcode] == count if count is not None else counts[opcode] > 0, opcode


@pytest.mark.parametrize("name", ALL_MODELS)
def test_dump_lists_every_op(name: str) -> None:
    graph = load_tflite(model_path(name))
    text = graph.dump()
    lines = text.splitlines()
    outputs_per_op = sum(len(op.outputs) for op in graph.ops)
    assert len(lines) == 1 + len(graph.inputs) + len(graph.outputs) + len(graph.ops) + outputs_per_op
    for op in graph.ops:
        assert op.opcode in text


def test_mobilenet_v1_options_and_metadata() -> None:
    graph = load_tflite(model_path("mobilenet_quant_v1_224"))
    assert graph.name == "main" and graph.description == "MLIR Converted." and graph.num_subgraphs == 1
    first = graph.ops[0]  # MobileNet v1's stem: 3x3 conv, stride 2, SAME, ReLU6, 32 filters
    assert first.opcode == "CONV_2D"
    assert first.options["stride_h"] == first.options["stride_w"] == 2
    assert first.options["padding"] == "SAME"
    assert first.options["fused_activation_function"] == "RELU6"
    assert first.options["dilation_h_factor"] == 1
    assert graph.tensors[first.inputs[1]].shape == (32, 3, 3, 3)
    depthwise = [op for op in graph.ops if op.opcode == "DEPTHWISE_CONV_2D"]
    assert all(op.options["depth_multiplier"] == 1 for op in depthwise)
    assert sorted({op.options["stride_h"] for op in depthwise}) == [1, 2]
    pool = next(op for op in graph.ops if op.opcode == "AVERAGE_POOL_2D")
    assert (pool.options["filter_height"], pool.options["filter_width"], pool.options["padding"]) == (7, 7, "VALID")
    softmax = next(op for op in graph.ops if op.opcode == "SOFTMAX")
    assert softmax.options == {"beta": 1.0} and isinstance(softmax.options["beta"], float)
    for op in graph.ops:
        assert op.custom_code is None and "custom_options" not in op.options
    assert all(t.shape_signature is None and not t.is_variable for t in graph.tensors)


def test_lstm_model_options_and_variables() -> None:
    graph = load_tflite(model_path("keras_lstm_mnist_ptq"))
    lstm = next(op for op in graph.ops if op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    assert lstm.options["fused_activation_function"] == "TANH"  # Keras LSTM's default activation
    assert lstm.options["time_major"] is False
    assert isinstance(lstm.options["cell_clip"], float)
    assert None in lstm.inputs  # no peephole / projection weights: absent optional inputs
    # The LSTM's state tensors are variables, without data, and the interpreter knows them by name.
    variables = [graph.tensors[t] for t in lstm.inputs if t is not None and graph.tensors[t].is_variable]
    assert len(variables) == 2 and not any(v.is_constant for v in variables)
    fc = next(op for op in graph.ops if op.opcode == "FULLY_CONNECTED")
    assert fc.options["keep_num_dims"] is False and fc.options["weights_format"] == "DEFAULT"


def test_tf2_per_channel_weights() -> None:
    graph = load_tflite(model_path("tf2_mobilenet_v2_1.0_224_ptq"))
    conv = next(op for op in graph.ops if op.opcode == "CONV_2D")
    w = graph.tensors[conv.inputs[1]]
    assert w.dtype == "int8" and w.quant.per_channel and w.quant.axis == 0
    assert w.quant.scale.size == w.shape[0]


def test_constants_are_private_copies() -> None:
    graph = load_tflite(model_path("mobilenet_v1_0.25_128_quant"))
    for t in graph.tensors:
        if t.is_constant:
            assert t.data.flags.writeable, t.name  # a view of the file bytes would be read-only
            base = t.data
            while base is not None:
                assert not isinstance(base, (bytes, memoryview)), t.name
                base = getattr(base, "base", None)


def test_load_time_of_the_biggest_mobilenet() -> None:
    path = model_path("mobilenet_quant_v1_224")
    best = min(_timed(lambda: load_tflite(path)) for _ in range(3))
    assert best < 0.3, f"loading took {best:.3f} s"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- files that are not models --------------------------------------------------------

def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such file") as e:
        load_tflite(tmp_path / "absent.tflite")
    assert_clean_error(e.value, "absent.tflite")
    with pytest.raises(ModelError, match="directory") as e:
        load_tflite(tmp_path)
    assert_clean_error(e.value, str(tmp_path))


@pytest.mark.parametrize("content", [b"", b"TFL3", b"\x00" * 7])
def test_too_small(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "small.tflite"
    path.write_bytes(content)
    with pytest.raises(ModelError, match="too small") as e:
        load_tflite(path)
    assert_clean_error(e.value, "small.tflite")


def test_wrong_identifier(tmp_path: Path) -> None:
    data = bytearray(model_bytes("split_concat"))
    data[4:8] = b"TFL2"
    path = tmp_path / "old.tflite"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="not a TFLite model") as e:
        load_tflite(path)
    assert_clean_error(e.value, "old.tflite")
    png = tmp_path / "image.tflite"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ModelError, match="identifier"):
        load_tflite(png)


# -- truncation and random damage -----------------------------------------------------

def _outcomes(name: str, variants) -> collections.Counter:
    """Load every variant; each must give a graph or a clean one-line load error."""
    seen: collections.Counter = collections.Counter()
    for data in variants:
        try:
            parse_tflite(data, f"{name}.tflite")
            seen["ok"] += 1
        except LOAD_ERRORS as e:
            assert_clean_error(e, f"{name}.tflite")
            seen[type(e).__name__] += 1
    return seen


def test_every_prefix_of_split_concat() -> None:
    data = model_bytes("split_concat")
    seen = _outcomes("split_concat", (data[:n] for n in range(len(data))))
    assert seen["ModelError"] > len(data) // 2, seen


@pytest.mark.parametrize("name", ["mobilenet_v1_0.25_128_quant", "keras_lstm_mnist_ptq"])
def test_sampled_prefixes(name: str) -> None:
    data = model_bytes(name)
    rng = random.Random(1234)
    cuts = sorted(rng.sample(range(len(data)), 300))
    seen = _outcomes(name, (data[:n] for n in cuts))
    assert seen["ModelError"] >= 250, seen


def _payload_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each buffer's data in the file, found with the tflite package."""
    model = tflite.Model.GetRootAs(data, 0)
    base = np.frombuffer(data, np.uint8).ctypes.data
    spans = []
    for i in range(model.BuffersLength()):
        view = model.Buffers(i).DataAsNumpy()
        if isinstance(view, np.ndarray) and view.size:
            start = view.ctypes.data - base
            spans.append((start, start + view.size))
    return spans


def _flipped_copies(data: bytes, count: int, seed: int):
    """Copies with 1-8 bytes changed; half of the positions avoid the weight payloads,
    so the damage reaches the flatbuffer structure and not only the weights."""
    payload = np.zeros(len(data), dtype=bool)
    for start, end in _payload_spans(data):
        payload[start:end] = True
    structure = np.flatnonzero(~payload)
    rng = random.Random(seed)
    for _ in range(count):
        copy = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(data)) if rng.random() < 0.5 else int(structure[rng.randrange(structure.size)])
            copy[pos] ^= rng.randint(1, 255)
        yield bytes(copy)


@pytest.mark.parametrize("name", ["mobilenet_v1_0.25_128_quant", "keras_lstm_mnist_ptq"])
def test_random_byte_flips(name: str) -> None:
    seen = _outcomes(name, _flipped_copies(model_bytes(name), 1000, seed=20240607))
    # The damage must really reach the parser: a good share of copies is refused.
    assert sum(seen.values()) == 1000
    assert seen["ok"] < 900 and seen["ModelError"] > 100, seen


# -- targeted corruptions of a real model ---------------------------------------------

def _field_pos(table, slot: int) -> int:
    """File position of a scalar field (vtable slot 4 + 2 * field number)."""
    off = table._tab.Offset(slot)
    assert off, "field absent from this table"
    return table._tab.Pos + off


def _vector_pos(table, slot: int) -> int:
    """File position of the first element of a vector field (its length is 4 bytes before)."""
    return table._tab.Vector(table._tab.Offset(slot))


_TENSOR_SHAPE, _TENSOR_BUFFER, _TENSOR_QUANT = 4, 8, 12
_SUBGRAPH_TENSORS = 4
_QUANT_SCALE = 8


def _lstm_parts(data: bytes):
    model = tflite.Model.GetRootAs(data, 0)
    sg = model.Subgraphs(0)
    const = next(i for i in range(sg.TensorsLength()) if sg.Tensors(i).Buffer() != 0
                 and model.Buffers(sg.Tensors(i).Buffer()).DataLength())
    return model, sg, const


def _patched(data: bytes, pos: int, fmt: str, value) -> bytes:
    copy = bytearray(data)
    struct.pack_into(fmt, copy, pos, value)
    return bytes(copy)


def test_huge_vector_length_is_refused_quickly() -> None:
    data = model_bytes("keras_lstm_mnist_ptq")
    _, sg, _ = _lstm_parts(data)
    bad = _patched(data, _vector_pos(sg, _SUBGRAPH_TENSORS) - 4, "<I", 0x7FFFFFFF)
    start = time.perf_counter()
    with pytest.raises(ModelError, match="2147483647 entries") as e:
        parse_tflite(bad, "lstm.tflite")
    assert time.perf_counter() - start < 0.5
    assert_clean_error(e.value, "lstm.tflite")


def test_out_of_range_buffer_index() -> None:
    data = model_bytes("keras_lstm_mnist_ptq")
    model, sg, const = _lstm_parts(data)
    bad = _patched(data, _field_pos(sg.Tensors(const), _TENSOR_BUFFER), "<I", 400)
    name = sg.Tensors(const).Name().decode()
    expected = f'tensor {const} ("{name}") refers to buffer 400, but the model has {model.BuffersLength()} buffers'
    with pytest.raises(ModelError) as e:
        parse_tflite(bad, "lstm.tflite")
    assert str(e.value) == f"lstm.tflite: {expected}"


def test_negative_dimension() -> None:
    data = model_bytes("keras_lstm_mnist_ptq")
    _, sg, _ = _lstm_parts(data)
    bad = _patched(data, _vector_pos(sg.Tensors(0), _TENSOR_SHAPE) + 4, "<i", -5)
    with pytest.raises(ModelError, match="negative dimension") as e:
        parse_tflite(bad, "lstm.tflite")
    assert_clean_error(e.value, "lstm.tflite")


def test_buffer_size_mismatch() -> None:
    data = model_bytes("keras_lstm_mnist_ptq")
    _, sg, const = _lstm_parts(data)
    t = sg.Tensors(const)
    bad = _patched(data, _vector_pos(t, _TENSOR_SHAPE), "<i", int(t.ShapeAsNumpy()[0]) + 1)
    with pytest.raises(ModelError, match=r"buffer \d+ holds \d+ bytes") as e:
        parse_tflite(bad, "lstm.tflite")
    assert_clean_error(e.value, "lstm.tflite")


def test_too_many_elements_is_a_limit_error() -> None:
    data = model_bytes("keras_lstm_mnist_ptq")
    _, sg, _ = _lstm_parts(data)
    pos = _vector_pos(sg.Tensors(0), _TENSOR_SHAPE)  # input 1x28x28 -> 1 x 2**31-1 x 28
    bad = _patched(data, pos + 4, "<i", 2 ** 31 - 1)
    with pytest.raises(LimitError, match=str(MAX_TENSOR_ELEMENTS)) as e:
        parse_tflite(bad, "lstm.tflite")
    assert_clean_error(e.value, "lstm.tflite")


@pytest.mark.parametrize("scale", [float("nan"), 0.0, -0.5])
def test_odd_scales_still_load(scale: float) -> None:
    data = model_bytes("keras_lstm_mnist_ptq")
    _, sg, _ = _lstm_parts(data)
    q = sg.Tensors(0).Quantization()
    bad = _patched(data, _vector_pos(q, _QUANT_SCALE), "<f", scale)
    graph = parse_tflite(bad, "lstm.tflite")
    np.testing.assert_array_equal(graph.tensors[0].quant.scale, np.array([scale], dtype=np.float32))


# -- synthetic models -----------------------------------------------------------------

def _gen(name: str):
    """A generated module of the tflite package (its builder functions), not the class it re-exports."""
    return importlib.import_module(f"tflite.{name}")


def _table_vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _ints(b: flatbuffers.Builder, values, dtype=np.int32) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype=dtype))


def _build(spec: dict, external_at: list[int]) -> bytes:
    b = flatbuffers.Builder(1024)
    T, Q, Bf, Op, Oc, Sg, M = (_gen(n) for n in ("Tensor", "QuantizationParameters", "Buffer", "Operator",
                                                 "OperatorCode", "SubGraph", "Model"))
    buffers = []
    ext = iter(external_at)
    for entry in spec["buffers"]:
        data = None if isinstance(entry, tuple) else (_ints(b, np.frombuffer(entry, np.uint8), np.uint8)
                                                       if entry else None)
        Bf.Start(b)
        if isinstance(entry, tuple):
            Bf.AddOffset(b, next(ext))
            Bf.AddSize(b, len(entry[1]))
        elif data is not None:
            Bf.AddData(b, data)
        buffers.append(Bf.End(b))
    tensors = []
    for t in spec["tensors"]:
        name = b.CreateString(t["name"])
        shape = _ints(b, t["shape"]) if t.get("shape") is not None else None
        signature = _ints(b, t["signature"]) if t.get("signature") is not None else None
        quant = None
        if t.get("quant"):
            scales, zps, axis = t["quant"]
            s, z = _ints(b, scales, np.float32), _ints(b, zps, np.int64)
            Q.Start(b)
            Q.AddScale(b, s)
            Q.AddZeroPoint(b, z)
            Q.AddQuantizedDimension(b, axis)
            quant = Q.End(b)
        sparsity = None
        if t.get("sparse"):
            _gen("SparsityParameters").Start(b)
            sparsity = _gen("SparsityParameters").End(b)
        T.Start(b)
        if shape is not None:
            T.AddShape(b, shape)
        T.AddType(b, t["type"])
        T.AddBuffer(b, t.get("buffer", 0))
        T.AddName(b, name)
        if quant is not None:
            T.AddQuantization(b, quant)
        if t.get("variable"):
            T.AddIsVariable(b, True)
        if sparsity is not None:
            T.AddSparsity(b, sparsity)
        if signature is not None:
            T.AddShapeSignature(b, signature)
        tensors.append(T.End(b))
    ops = []
    for o in spec["ops"]:
        ins, outs = _ints(b, o["inputs"]), _ints(b, o["outputs"])
        opts = o["options"][1](b) if o.get("options") else None
        opts2 = o["options2"][1](b) if o.get("options2") else None
        custom = _ints(b, np.frombuffer(o["custom"], np.uint8), np.uint8) if o.get("custom") else None
        Op.Start(b)
        Op.AddOpcodeIndex(b, o["code"])
        Op.AddInputs(b, ins)
        Op.AddOutputs(b, outs)
        if opts is not None:
            Op.AddBuiltinOptionsType(b, o["options"][0])
            Op.AddBuiltinOptions(b, opts)
        if opts2 is not None:
            Op.AddBuiltinOptions2Type(b, o["options2"][0])
            Op.AddBuiltinOptions2(b, opts2)
        if custom is not None:
            Op.AddCustomOptions(b, custom)
        if o.get("large_custom"):
            Op.AddLargeCustomOptionsOffset(b, next(ext))
            Op.AddLargeCustomOptionsSize(b, len(o["large_custom"]))
        ops.append(Op.End(b))
    codes = []
    for c in spec["opcodes"]:
        custom = b.CreateString(c["custom"]) if c.get("custom") else None
        Oc.Start(b)
        Oc.AddDeprecatedBuiltinCode(b, c.get("deprecated", min(c["builtin"], 127)))
        Oc.AddBuiltinCode(b, c["builtin"])
        if custom is not None:
            Oc.AddCustomCode(b, custom)
        Oc.AddVersion(b, c.get("version", 1))
        codes.append(Oc.End(b))
    subgraphs = []
    for k in range(spec.get("subgraphs", 1)):
        name = b.CreateString(spec["name"] if k == 0 else f"sub{k}")
        if k == 0:
            tv, ov = _table_vector(b, tensors), _table_vector(b, ops)
            iv, outv = _ints(b, spec["inputs"]), _ints(b, spec["outputs"])
        Sg.Start(b)
        if k == 0:
            Sg.AddTensors(b, tv)
            Sg.AddOperators(b, ov)
            Sg.AddInputs(b, iv)
            Sg.AddOutputs(b, outv)
        Sg.AddName(b, name)
        subgraphs.append(Sg.End(b))
    sv, cv, bv = _table_vector(b, subgraphs), _table_vector(b, codes), _table_vector(b, buffers)
    desc = b.CreateString(spec.get("description", "synthetic"))
    M.Start(b)
    M.AddVersion(b, spec.get("version", 3))
    M.AddOperatorCodes(b, cv)
    M.AddSubgraphs(b, sv)
    M.AddDescription(b, desc)
    M.AddBuffers(b, bv)
    b.Finish(M.End(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def build_model(spec: dict) -> bytes:
    """A .tflite file from a small dict spec; ("external", bytes) buffers and "large_custom"
    operator options go after the flatbuffer, in that order."""
    payloads = [e[1] for e in spec["buffers"] if isinstance(e, tuple)]
    payloads += [o["large_custom"] for o in spec["ops"] if o.get("large_custom")]
    probe = _build(spec, [1 << 40] * len(payloads))  # offsets do not change the size
    offsets, end = [], (len(probe) + 15) // 16 * 16
    for p in payloads:
        offsets.append(end)
        end = (end + len(p) + 15) // 16 * 16
    data = _build(spec, offsets)
    assert len(data) == len(probe)
    out = bytearray(data)
    for off, p in zip(offsets, payloads):
        out.extend(bytes(off - len(out)))
        out.extend(p)
    return bytes(out)


def _conv_options(b: flatbuffers.Builder) -> int:
    m = _gen("Conv2DOptions")
    m.Start(b)
    m.AddPadding(b, tflite.Padding.VALID)
    m.AddStrideW(b, 1)
    m.AddStrideH(b, 1)
    m.AddFusedActivationFunction(b, tflite.ActivationFunctionType.RELU)
    return m.End(b)


def _while_options(b: flatbuffers.Builder) -> int:
    m = _gen("WhileOptions")
    m.Start(b)
    m.AddCondSubgraphIndex(b, 1)
    m.AddBodySubgraphIndex(b, 2)
    return m.End(b)


def _reshape_options(b: flatbuffers.Builder) -> int:
    new_shape = _ints(b, [1, 2])
    m = _gen("ReshapeOptions")
    m.Start(b)
    m.AddNewShape(b, new_shape)
    return m.End(b)


def _compare_options(b: flatbuffers.Builder) -> int:
    m = _gen("StablehloCompareOptions")
    m.Start(b)
    m.AddComparisonDirection(b, tflite.StablehloComparisonDirection.STABLEHLO_COMPARISON_DIRECTION_LT)
    m.AddCompareType(b, tflite.StablehloComparisonType.STABLEHLO_COMPARISON_TYPE_SIGNED)
    return m.End(b)


TT = tflite.TensorType
BO = tflite.BuiltinOperator
STRINGS = [b"ab", b""]
STRING_BUFFER = (struct.pack("<4i", 2, 16, 18, 18) + b"ab")
WEIGHTS = np.arange(6, dtype=np.int8).reshape(3, 1, 1, 2) - 3
BIAS = np.array([100, -200, 300], dtype=np.int32)


def synthetic_spec() -> dict:
    """CONV_2D (builtin_code only) -> CUSTOM -> WHILE -> RESHAPE, plus a STABLEHLO_COMPARE
    with BuiltinOptions2; three subgraphs; a bias stored after the flatbuffer."""
    return {
        "name": "synthetic",
        "subgraphs": 3,
        "buffers": [b"", WEIGHTS.tobytes(), ("external", BIAS.tobytes()), STRING_BUFFER],
        "tensors": [
            {"name": "in", "shape": [1, 4, 4, 2], "signature": [-1, 4, 4, 2], "type": TT.UINT8,
             "quant": ([0.5], [3], 0)},
            {"name": "w", "shape": [3, 1, 1, 2], "type": TT.INT8, "buffer": 1,
             "quant": ([0.1, 0.2, 0.3], [0, 0, 0], 0)},
            {"name": "b", "shape": [3], "type": TT.INT32, "buffer": 2},
            {"name": "conv", "shape": [1, 4, 4, 3], "type": TT.UINT8, "quant": ([0.25], [0], 0)},
            {"name": "words", "shape": [2], "type": TT.STRING, "buffer": 3},
            {"name": "state", "shape": [2], "type": TT.FLOAT32, "variable": True},
            {"name": "custom_out", "shape": [2], "type": TT.FLOAT32},
            {"name": "loop_out", "shape": [2], "type": TT.FLOAT32},
            {"name": "out", "shape": [1, 2], "type": TT.FLOAT32},
            {"name": "lt", "shape": [2], "type": TT.BOOL},
        ],
        "opcodes": [
            {"builtin": BO.CONV_2D, "deprecated": 0, "version": 3},
            {"builtin": BO.CUSTOM, "custom": "MyOp"},
            {"builtin": BO.WHILE},
            {"builtin": BO.RESHAPE},
            {"builtin": BO.STABLEHLO_COMPARE},
        ],
        "ops": [
            {"code": 0, "inputs": [0, 1, 2], "outputs": [3],
             "options": (tflite.BuiltinOptions.Conv2DOptions, _conv_options)},
            {"code": 1, "inputs": [3, -1, 4, 5], "outputs": [6], "custom": b"\x01\x02\x03"},
            {"code": 2, "inputs": [6], "outputs": [7],
             "options": (tflite.BuiltinOptions.WhileOptions, _while_options)},
            {"code": 3, "inputs": [7], "outputs": [8],
             "options": (tflite.BuiltinOptions.ReshapeOptions, _reshape_options)},
            {"code": 4, "inputs": [7, 6], "outputs": [9],
             "options2": (tflite.BuiltinOptions2.StablehloCompareOptions, _compare_options)},
        ],
        "inputs": [0],
        "outputs": [8, 9],
    }


def test_synthetic_model_features(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.tflite"
    path.write_bytes(build_model(synthetic_spec()))
    g = load_tflite(path)
    assert (g.name, g.description, g.num_subgraphs) == ("synthetic", "synthetic", 3)
    assert [op.opcode for op in g.ops] == ["CONV_2D", "CUSTOM", "WHILE", "RESHAPE", "STABLEHLO_COMPARE"]
    conv, custom, loop, reshape, compare = g.ops
    assert conv.version == 3
    assert conv.options["padding"] == "VALID" and conv.options["fused_activation_function"] == "RELU"
    assert conv.options["dilation_h_factor"] == 1  # schema default of an absent field
    assert custom.custom_code == "MyOp" and custom.name == "#1 CUSTOM(MyOp)"
    assert custom.options == {"custom_options": b"\x01\x02\x03"}
    assert custom.inputs == [3, None, 4, 5]
    assert loop.options == {"cond_subgraph_index": 1, "body_subgraph_index": 2}
    assert reshape.options == {"new_shape": [1, 2]}
    assert compare.options == {"comparison_direction": "STABLEHLO_COMPARISON_DIRECTION_LT",
                               "compare_type": "STABLEHLO_COMPARISON_TYPE_SIGNED"}
    t = g.tensors
    assert t[0].shape == (1, 4, 4, 2) and t[0].shape_signature == (-1, 4, 4, 2) and t[0].quant.axis is None
    assert t[0].quant.single_scale == 0.5 and t[0].quant.single_zero_point == 3
    np.testing.assert_array_equal(t[1].data, WEIGHTS)
    assert t[1].quant.axis == 0 and t[1].quant.scale.tolist() == pytest.approx([0.1, 0.2, 0.3])
    np.testing.assert_array_equal(t[2].data, BIAS)  # from the external (offset/size) buffer
    assert t[4].data.tolist() == STRINGS and t[4].data.shape == (2,)
    assert t[5].is_variable and not t[5].is_constant and t[5].quant is None
    assert t[9].dtype == "bool" and t[3].data is None
    assert "CUSTOM(MyOp)" in g.dump()


def _spec_with(**changes) -> dict:
    spec = synthetic_spec()
    spec.update(changes)
    return spec


def _error(spec: dict, kind: type = ModelError) -> str:
    with pytest.raises(kind) as e:
        parse_tflite(build_model(spec), "syn.tflite")
    assert_clean_error(e.value, "syn.tflite")
    return str(e.value)


def test_synthetic_corruptions() -> None:
    spec = synthetic_spec()
    spec["version"] = 2
    assert "schema version 2" in _error(spec)

    spec = synthetic_spec()
    spec["opcodes"][3] = {"builtin": 250}
    assert "unknown builtin operator code 250" in _error(spec)

    spec = synthetic_spec()
    spec["ops"][0]["code"] = 9
    assert "operator 0 uses operator code 9, but the model has 5 operator codes" in _error(spec)

    spec = synthetic_spec()
    spec["ops"][3]["inputs"] = [70]
    assert "refer to tensor 70, but the subgraph has 10 tensors" in _error(spec)

    spec = synthetic_spec()
    spec["ops"][3]["outputs"] = [-1]
    assert "outputs refer to tensor -1" in _error(spec)

    spec = synthetic_spec()
    spec["tensors"][0]["quant"] = ([0.5, 0.25], [3], 0)
    assert "2 quantization scales but 1 zero points" in _error(spec)

    spec = synthetic_spec()
    spec["tensors"][0]["type"] = 99
    assert "unknown tensor type 99" in _error(spec)

    spec = synthetic_spec()
    spec["tensors"][0]["signature"] = [-1, 4, 4]
    assert "shape signature" in _error(spec)

    spec = synthetic_spec()
    spec["buffers"][3] = struct.pack("<4i", 2, 16, 30, 18) + b"ab"
    assert "string offsets" in _error(spec)

    spec = synthetic_spec()
    spec["opcodes"][1] = {"builtin": BO.CUSTOM}
    assert "CUSTOM operator without a custom code" in _error(spec)

    spec = synthetic_spec()
    spec["ops"][0]["options"] = (200, _conv_options)
    assert "unknown builtin_options type 200" in _error(spec)

    spec = synthetic_spec()
    spec["tensors"][1]["buffer"] = 4
    assert 'tensor 1 ("w") refers to buffer 4, but the model has 4 buffers' in _error(spec)


def test_large_custom_options_after_the_flatbuffer() -> None:
    spec = synthetic_spec()
    del spec["ops"][1]["custom"]
    spec["ops"][1]["large_custom"] = b"big options"
    graph = parse_tflite(build_model(spec), "syn.tflite")
    assert graph.ops[1].options == {"custom_options": b"big options"}
    del spec["ops"][1]["large_custom"]
    graph = parse_tflite(build_model(spec), "syn.tflite")
    assert graph.ops[1].options == {"custom_options": b""}  # a CUSTOM op always has the key


def test_external_buffer_beyond_the_file() -> None:
    data = bytearray(build_model(synthetic_spec()))
    cut = bytes(data[:-4])  # the bias (12 bytes, last in the file) loses its tail
    with pytest.raises(ModelError, match="beyond the end") as e:
        parse_tflite(cut, "syn.tflite")
    assert_clean_error(e.value, "syn.tflite")


def test_unsupported_tensor_kinds() -> None:
    spec = synthetic_spec()
    spec["tensors"][6]["type"] = TT.INT4
    assert "INT4" in _error(spec, UnsupportedError)
    spec = synthetic_spec()
    spec["tensors"][6]["sparse"] = True
    assert "sparse" in _error(spec, UnsupportedError)


def test_graph_errors_name_the_file() -> None:
    spec = synthetic_spec()
    spec["tensors"][3]["shape"] = [1, 4, 4, 4]  # conv output channels != filters
    assert "CONV_2D" in _error(spec, GraphError)
    spec = synthetic_spec()
    spec["ops"][0]["inputs"] = [0, -1, 2]  # CONV_2D without its filter
    assert "absent" in _error(spec, GraphError)


def test_scalar_fully_connected_output_is_a_graph_error() -> None:
    data = model_bytes("keras_lstm_mnist_ptq")
    graph = parse_tflite(data, "lstm.tflite")
    fc = next(op for op in graph.ops if op.opcode == "FULLY_CONNECTED")
    _, sg, _ = _lstm_parts(data)
    bad = _patched(data, _vector_pos(sg.Tensors(fc.outputs[0]), _TENSOR_SHAPE) - 4, "<I", 0)  # rank 0
    with pytest.raises(GraphError, match="FULLY_CONNECTED") as e:
        parse_tflite(bad, "lstm.tflite")
    assert_clean_error(e.value, "lstm.tflite")


# -- the options reflection covers the whole schema -----------------------------------

def _options_classes() -> list[type]:
    unions = [tflite.BuiltinOptions, tflite.BuiltinOptions2]
    names = {n for u in unions for n in vars(u) if not n.startswith("_") and n != "NONE"}
    return [getattr(_gen(n), n) for n in sorted(names)]


def test_every_options_table_reads_with_defaults() -> None:
    """An empty table of every options type reads as its schema defaults, enums as names."""
    from npuc.frontend_tflite import _ENUM_FIELDS, _Fb, _Loader

    b = flatbuffers.Builder(64)
    b.StartObject(0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    buf = bytes(b.Output())
    loader = _Loader("defaults", buf)
    seen_enums: set[str] = set()
    for cls in _options_classes():
        obj = cls()
        obj.Init(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
        fields = loader.fields(_Fb(obj, loader, cls.__name__))
        for key, value in fields.items():
            assert key == key.lower() and " " not in key
            if key in _ENUM_FIELDS:
                assert isinstance(value, str), (cls.__name__, key)
                seen_enums.add(key)
            else:
                assert isinstance(value, (bool, int, float)), (cls.__name__, key, value)
    assert seen_enums == set(_ENUM_FIELDS)


def test_every_byte_wide_option_is_in_the_enum_table() -> None:
    """Schema enums are stored as (u)int8 fields; each such field must be decoded to a name."""
    from npuc.frontend_tflite import _ENUM_FIELDS, _table_fields

    for cls in _options_classes():
        for attr, key, kind in _table_fields(cls):
            source = inspect.getsource(getattr(cls, attr))
            if kind == "scalar" and ("Int8Flags" in source or "Uint8Flags" in source):
                assert key in _ENUM_FIELDS, f"{cls.__name__}.{key}"
