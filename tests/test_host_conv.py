"""Convolutions, matrix products and quantization conversions on the host, against TFLite's reference kernels.

Seeded random instances of CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV,
FULLY_CONNECTED, BATCH_MATMUL, QUANTIZE and DEQUANTIZE (every element type
TFLite's kernels take, per-tensor and per-channel filters, strides, dilations,
groups, SAME/VALID, fused activations, optional biases, broadcasting, zero
points at the extremes) run on the Python runtime and must equal TFLite bit
for bit; the C runtime must then equal the Python runtime byte for byte.  The
float kernels are also fed NaN, infinities, signed zeros and extremes.  The
fully integer UNIDIRECTIONAL_SEQUENCE_LSTM (batch-major and time-major, cell
clip) is checked the same way, and on the shared Keras MNIST model.
"""

from __future__ import annotations

import numpy as np
import oracle
import pytest
from ai_edge_litert.schema_py_generated import TensorType
from c_build import fake_env
from host_cases import (
    CASES,
    Batch,
    activation,
    batch_model,
    check_c,
    check_python,
    compile_cpu,
    differences,
    kernel_tests,
    python_outputs,
    random_inputs,
    tflite_outputs,
    values,
)
from model_builder import SubgraphBuilder, options

INT_RANGE = {"uint8": (0, 255), "int8": (-128, 127), "int16": (-32768, 32767)}


# -- quantization ----------------------------------------------------------------------------

def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _zero_point(rng: np.random.Generator, dtype: str) -> int:
    """A zero point inside the type, at one of its ends one time in five (int16: always 0, as TFLite wants)."""
    if dtype in ("int16", "int32"):
        return 0
    lo, hi = INT_RANGE[dtype]
    return int(rng.choice([lo, hi])) if rng.random() < 0.2 else int(rng.integers(lo, hi, endpoint=True))


def _act_quant(rng: np.random.Generator, dtype: str, scale: float | None = None) -> dict:
    if dtype == "float32":
        return {}
    return {"scale": scale or _log_uniform(rng, 1e-3, 0.5), "zero_point": _zero_point(rng, dtype)}


def _spread(dtype: str) -> float:
    """Typical magnitude of a value of ``dtype`` about its zero point (random inputs span the whole type)."""
    return {"uint8": 74.0, "int8": 74.0, "int16": 19000.0}[dtype]


def _out_quant(rng: np.random.Generator, dtype: str, real_sigma: float) -> dict:
    """An output quantization under which results of typical magnitude ``real_sigma`` use the type's range."""
    return _act_quant(rng, dtype, real_sigma * _log_uniform(rng, 0.3, 3) / _spread(dtype) * 2)


def _filter(rng: np.random.Generator, g: SubgraphBuilder, shape: tuple[int, ...], dtype: str, axis: int,
            per_channel: bool) -> tuple[int, np.ndarray]:
    """A constant quantized filter (symmetric int8, per tensor or channel; asymmetric uint8) and its scales."""
    channels = shape[axis]
    wdtype = "uint8" if dtype == "uint8" else "int8"
    lo, hi = INT_RANGE[wdtype]
    data = rng.integers(lo, hi, size=shape, endpoint=True)
    if per_channel:
        scales = np.array([_log_uniform(rng, 1e-3, 0.1) for _ in range(channels)], np.float32)
        return g.const(data, wdtype, scale=scales.tolist(), zero_point=[0] * channels, axis=axis), scales
    scale = _log_uniform(rng, 1e-3, 0.1)
    zp = _zero_point(rng, "uint8") if wdtype == "uint8" else 0
    return g.const(data, wdtype, scale=scale, zero_point=zp), np.full(channels, scale, np.float32)


def _bias(rng: np.random.Generator, g: SubgraphBuilder, in_scale: float, w_scales: np.ndarray, typical: float,
          bias_type: str) -> int:
    """A constant bias of the accumulator's scale (input scale times each filter scale, in float32)."""
    products = [float(np.float32(in_scale) * np.float32(s)) for s in w_scales]
    data = np.round(rng.standard_normal(w_scales.size) * typical).astype(bias_type)
    scale = products if w_scales.size > 1 and len(set(products)) > 1 else products[0]
    return g.const(data, bias_type, scale=scale, zero_point=[0] * w_scales.size if isinstance(scale, list) else 0)


def _bias_type(rng: np.random.Generator, dtype: str, option: bool = True) -> tuple[str, dict]:
    """The bias type of a 16x8 or 8-bit kernel, and the quantized_bias_type option an int32 16x8 bias needs
    (only operators with that option can have one)."""
    if dtype != "int16":
        return "int32", {}
    if option and rng.random() < 0.3:
        return "int32", {"quantizedBiasType": TensorType.INT32}
    return "int64", {}


#: Float values whose handling TFLite's kernels fix: NaN, infinities, signed zeros, subnormals (float32 and
#: float16), the largest float16, huge values.
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, 1e-6, 65504.0, 3e38, -3e38, 1e30], np.float32)


def _sprinkled(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Float ``x`` with about a fifth of its elements replaced by special values (of its type)."""
    out = x.copy()
    chosen = rng.random(x.shape) < 0.2
    with np.errstate(over="ignore"):
        out[chosen] = rng.choice(SPECIAL, size=int(chosen.sum())).astype(x.dtype)
    return out


def _float_const(rng: np.random.Generator, g: SubgraphBuilder, shape: tuple[int, ...], special: bool) -> int:
    """Constant float32 weights or bias: normal values, sprinkled with special ones when ``special``."""
    data = rng.standard_normal(shape).astype(np.float32)
    return g.const(_sprinkled(rng, data) if special else data, "float32")


def _weighted(rng: np.random.Generator, g: SubgraphBuilder, dtype: str, qx: dict, fshape: tuple[int, ...],
              axis: int, terms: float, bias_chance: float, special: bool, bias_option: bool = True
              ) -> tuple[int, int, dict, dict]:
    """Filter, bias (-1: none), output quantization and options of a weighted operator with ``terms`` products
    per output; the filter's output channels lie along ``axis``."""
    channels = fshape[axis]
    biased = rng.random() < bias_chance
    if dtype == "float32":
        return (_float_const(rng, g, fshape, special), _float_const(rng, g, (channels,), special) if biased else -1,
                {}, {})
    w, w_scales = _filter(rng, g, fshape, dtype, axis, dtype != "uint8" and rng.random() < 0.6)
    typical = float(np.sqrt(max(terms, 1))) * _spread(dtype) * 74
    bias_type, extra = _bias_type(rng, dtype, bias_option)
    b = _bias(rng, g, qx["scale"], w_scales, typical, bias_type) if biased else -1
    return w, b, _out_quant(rng, dtype, qx["scale"] * float(np.median(w_scales)) * typical), extra


def _optional_bias(rng: np.random.Generator, inputs: list[int], b: int) -> list[int]:
    """``inputs`` and the bias; an absent bias is an input of -1 or no input at all."""
    return inputs + [b] if b != -1 or rng.random() < 0.5 else inputs


# -- windows ---------------------------------------------------------------------------------

def _out_size(size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    eff = (k - 1) * dilation + 1
    return (size + stride - 1) // stride if padding == "SAME" else (size - eff + stride) // stride


def _window(rng: np.random.Generator) -> dict:
    """Filter size, strides, dilations, padding and an input height and width every window fits."""
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    sh, sw = (int(v) for v in rng.integers(1, 4, 2))
    dh, dw = (int(v) for v in rng.integers(1, 3, 2)) if rng.random() < 0.4 else (1, 1)
    padding = str(rng.choice(["SAME", "VALID"]))
    h = int(rng.integers((kh - 1) * dh + 1, (kh - 1) * dh + 7))
    w = int(rng.integers((kw - 1) * dw + 1, (kw - 1) * dw + 7))
    return {"kh": kh, "kw": kw, "sh": sh, "sw": sw, "dh": dh, "dw": dw, "padding": padding, "h": h, "w": w,
            "oh": _out_size(h, kh, sh, dh, padding), "ow": _out_size(w, kw, sw, dw, padding)}


def _convolution(depthwise: bool, types: tuple[str, ...], special: bool = False):
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(types))
        win = _window(rng)
        n = int(rng.integers(1, 3))
        if depthwise:
            ic, mult = int(rng.integers(1, 5)), int(rng.integers(1, 4))
            oc, depth = ic * mult, 1
            fshape, axis = (1, win["kh"], win["kw"], oc), 3
        else:
            groups = int(rng.choice([1, 1, 2, 3]))
            depth, per = int(rng.integers(1, 4)), int(rng.integers(1, 4))
            ic, oc = groups * depth, groups * per
            fshape, axis = (oc, win["kh"], win["kw"], depth), 0
        qx = _act_quant(rng, dtype)
        x = g.input((n, win["h"], win["w"], ic), dtype, **qx)
        # TFLite's convolutions need a bias; DEPTHWISE_CONV_2D has no quantized_bias_type option.
        w, b, qy, extra = _weighted(rng, g, dtype, qx, fshape, axis, win["kh"] * win["kw"] * depth, 1.0, special,
                                    not depthwise)
        y = g.tensor((n, win["oh"], win["ow"], oc), dtype, **qy)
        common = {"padding": win["padding"], "strideH": win["sh"], "strideW": win["sw"], "dilationHFactor": win["dh"],
                  "dilationWFactor": win["dw"], "fusedActivationFunction": activation(rng)}
        if depthwise:
            opts = options("DepthwiseConv2DOptions", depthMultiplier=oc // ic, **common)
        else:
            opts = options("Conv2DOptions", **common, **extra)
        g.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [x, w, b], [y], opts)
        return [y]
    return generate


def _transpose_conv(types: tuple[str, ...], special: bool = False):
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(types))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        sh, sw = (int(v) for v in rng.integers(1, 4, 2))
        padding = str(rng.choice(["SAME", "VALID"]))
        h, w, n = int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 3))
        # Output sizes the convolution from output to input maps back onto the input size.
        if padding == "SAME":
            oh, ow = int(rng.integers((h - 1) * sh + 1, h * sh + 1)), int(rng.integers((w - 1) * sw + 1, w * sw + 1))
        else:
            oh = int(rng.integers((h - 1) * sh + kh, h * sh + kh))
            ow = int(rng.integers((w - 1) * sw + kw, w * sw + kw))
        ic, oc = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        qx = _act_quant(rng, dtype)
        x = g.input((n, h, w, ic), dtype, **qx)
        wt, b, qy, extra = _weighted(rng, g, dtype, qx, (oc, kh, kw, ic), 0, kh * kw * ic / (sh * sw), 0.6, special)
        y = g.tensor((n, oh, ow, oc), dtype, **qy)
        shape = g.const(np.array([n, oh, ow, oc], np.int32))
        g.op("TRANSPOSE_CONV", _optional_bias(rng, [shape, wt, x], b), [y],
             options("TransposeConvOptions", padding=padding, strideH=sh, strideW=sw,
                     fusedActivationFunction=activation(rng), **extra))
        return [y]
    return generate


# -- matrix products -------------------------------------------------------------------------

def _fully_connected(types: tuple[str, ...], special: bool = False):
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(types))
        depth, units = int(rng.integers(1, 9)), int(rng.integers(1, 7))
        keep = bool(rng.random() < 0.4)
        lead = tuple(int(v) for v in rng.integers(1, 4, int(rng.integers(0, 6))))
        shape = lead + (depth,)
        qx = _act_quant(rng, dtype)
        x = g.input(shape, dtype, **qx)
        w, b, qy, extra = _weighted(rng, g, dtype, qx, (units, depth), 0, depth, 0.7, special)
        rows = int(np.prod(lead, dtype=np.int64))
        y = g.tensor(lead + (units,) if keep else (rows, units), dtype, **qy)
        g.op("FULLY_CONNECTED", _optional_bias(rng, [x, w], b), [y],
             options("FullyConnectedOptions", fusedActivationFunction=activation(rng), keepNumDims=keep, **extra))
        return [y]
    return generate


def _batch_dims(rng: np.random.Generator, rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Batch dimensions of two operands that broadcast (one may have fewer, or 1 where the other has more)."""
    full = tuple(int(v) for v in rng.integers(1, 4, rank))
    a = tuple(d if rng.random() < 0.7 else 1 for d in full)
    b = tuple(d if rng.random() < 0.7 else 1 for d in full)
    return a[int(rng.integers(0, rank + 1)):], b[int(rng.integers(0, rank + 1)):]


def _batch_matmul(types: tuple[str, ...], special: bool = False):
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(types))
        ba, bb = _batch_dims(rng, int(rng.integers(0, 4)))
        m, k, n = (int(v) for v in rng.integers(1, 6, 3))
        adj_x, adj_y = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        a_shape = ba + ((k, m) if adj_x else (m, k))
        b_shape = bb + ((n, k) if adj_y else (k, n))
        qa, qb = _act_quant(rng, dtype), _act_quant(rng, dtype)
        a = g.input(a_shape, dtype, **qa)
        if rng.random() < 0.5:
            b = g.input(b_shape, dtype, **qb)
        else:
            data = values(rng, b_shape, dtype)
            b = g.const(_sprinkled(rng, data) if special else data, dtype, **qb)
        qy = {} if dtype == "float32" else _out_quant(rng, dtype, qa["scale"] * qb["scale"] * np.sqrt(k)
                                                      * _spread(dtype) ** 2)
        y = g.tensor(tuple(np.broadcast_shapes(ba, bb)) + (m, n), dtype, **qy)
        g.op("BATCH_MATMUL", [a, b], [y], options("BatchMatMulOptions", adjX=adj_x, adjY=adj_y))
        return [y]
    return generate


# -- quantization conversions ----------------------------------------------------------------

#: TFLite's QUANTIZE: from each input type, the output types.
_QUANTIZE_PAIRS = [("float32", t) for t in ("uint8", "int8", "int16")] + [
    ("uint8", "uint8"), ("uint8", "int8"), ("uint8", "int16"), ("int8", "uint8"), ("int8", "int8"),
    ("int8", "int16"), ("int16", "int8"), ("int16", "int16"), ("int16", "int32"), ("int32", "int8"),
    ("int32", "int16")]


def _shape(rng: np.random.Generator) -> tuple[int, ...]:
    return tuple(int(v) for v in rng.integers(1, 5, int(rng.integers(1, 7))))


def _per_channel(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> dict:
    axis = int(rng.integers(0, len(shape)))
    scales = [_log_uniform(rng, 1e-3, 0.5) for _ in range(shape[axis])]
    return {"scale": scales, "zero_point": [_zero_point(rng, dtype) for _ in scales], "axis": axis}


def _quantize(rng: np.random.Generator, g: SubgraphBuilder, pairs: list[tuple[str, str]] = _QUANTIZE_PAIRS
              ) -> list[int]:
    src, dst = pairs[int(rng.integers(0, len(pairs)))]
    shape = _shape(rng)
    x = g.input(shape, src, **_act_quant(rng, src, _log_uniform(rng, 1e-3, 0.5)))
    if src == "float32" and rng.random() < 0.4:
        qy = _per_channel(rng, shape, dst)
    else:
        qy = _act_quant(rng, dst, _log_uniform(rng, 1e-3, 0.5))
    y = g.tensor(shape, dst, **qy)
    g.op("QUANTIZE", [x], [y])
    return [y]


def _dequantize(rng: np.random.Generator, g: SubgraphBuilder,
                sources: tuple[str, ...] = ("uint8", "int8", "int16", "float16")) -> list[int]:
    src = str(rng.choice(sources))
    shape = _shape(rng)
    if src == "float16":
        qx: dict = {}
    elif src != "int16" and rng.random() < 0.4:
        qx = _per_channel(rng, shape, src)
    else:
        qx = _act_quant(rng, src)
    x = g.input(shape, src, **qx)
    y = g.tensor(shape, "float32")
    g.op("DEQUANTIZE", [x], [y])
    return [y]


# -- the integer LSTM -------------------------------------------------------------------------

def _lstm(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """TFLite's fully integer LSTM (8x8_16, no CIFG, peephole, projection or layer norm), as converters emit it."""
    batch, steps, n_input, n_cell = (int(v) for v in rng.integers(1, 5, 4))
    time_major = bool(rng.random() < 0.5)
    lead = (steps, batch) if time_major else (batch, steps)
    x = g.input(lead + (n_input,), "int8", **_act_quant(rng, "int8"))
    hidden = _act_quant(rng, "int8", _log_uniform(rng, 2e-3, 2e-2))
    weights = [g.const(rng.integers(-127, 127, (n_cell, depth), endpoint=True), "int8",
                       scale=_log_uniform(rng, 2e-3, 2e-2), zero_point=0)
               for depth in [n_input] * 4 + [n_cell] * 4]
    biases = [g.const(rng.integers(-20000, 20000, n_cell), "int32", scale=1e-5, zero_point=0) for _ in range(4)]
    out_state = g.tensor((batch, n_cell), "int8", **hidden, variable=True)
    cell_state = g.tensor((batch, n_cell), "int16", scale=2.0 ** -int(rng.integers(11, 16)), zero_point=0,
                          variable=True)
    gates = [g.tensor((0,), "float32", name=f"intermediate{k}") for k in range(4)]
    effective_hidden = g.tensor((0,), "int8", **hidden)
    y = g.tensor(lead + (n_cell,), "int8", **hidden)
    g.op("UNIDIRECTIONAL_SEQUENCE_LSTM", [x, *weights, -1, -1, -1, *biases, -1, -1, out_state, cell_state,
                                          -1, -1, -1, -1], [y],
         options("UnidirectionalSequenceLSTMOptions", fusedActivationFunction="TANH", timeMajor=time_major,
                 cellClip=float(rng.choice([0.0, 1.0, 4.0]))))
    g.sg.operators[-1].intermediates = [*gates, effective_hidden]
    return [y]


GENERATORS = {
    "CONV_2D": _convolution(False, ("uint8", "int8", "int16", "float32")),
    "DEPTHWISE_CONV_2D": _convolution(True, ("uint8", "int8", "int16", "float32")),
    "TRANSPOSE_CONV": _transpose_conv(("uint8", "int8", "int16", "float32")),
    "FULLY_CONNECTED": _fully_connected(("uint8", "int8", "int16", "float32")),
    "BATCH_MATMUL": _batch_matmul(("int8", "int16", "float32")),
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm,
}


#: The float kernels, with weights, biases and inputs sprinkled with NaN, infinities, signed zeros and extremes.
SPECIAL_GENERATORS = {
    "CONV_2D": _convolution(False, ("float32",), special=True),
    "DEPTHWISE_CONV_2D": _convolution(True, ("float32",), special=True),
    "TRANSPOSE_CONV": _transpose_conv(("float32",), special=True),
    "FULLY_CONNECTED": _fully_connected(("float32",), special=True),
    "BATCH_MATMUL": _batch_matmul(("float32",), special=True),
    "QUANTIZE": lambda rng, g: _quantize(rng, g, [p for p in _QUANTIZE_PAIRS if p[0] == "float32"]),
    "DEQUANTIZE": lambda rng, g: _dequantize(rng, g, ("float16",)),
}


test_python_kernels_match_tflite, test_c_kernels_match_python = kernel_tests(GENERATORS)


@pytest.mark.parametrize("name", sorted(SPECIAL_GENERATORS))
def test_special_float_values(name, tmp_path, c_npu_run, c_fake):
    """NaN, infinities, signed zeros and extremes: Python against TFLite, then C against Python."""
    batch = batch_model(SPECIAL_GENERATORS[name], range(CASES))
    blob = compile_cpu(batch.model, tmp_path)
    rng = np.random.default_rng(7)
    inputs = [_sprinkled(rng, x) if x.dtype.kind == "f" else x for x in random_inputs(batch.model, 0)]
    failures = differences(python_outputs(blob, inputs), tflite_outputs(batch.model, inputs), batch.labels)
    assert not failures, "\n".join(failures[:20])
    check_c(batch, blob, [inputs], c_npu_run, fake_env(c_fake), tmp_path)


def test_lstm_in_c_matches_python(tmp_path, c_npu_run, c_fake):
    """The integer LSTM (Keras MNIST, TFLite's 8x8_16 kernel) in C, on the inputs Python matched TFLite with."""
    batch = Batch(oracle.model_path("keras_lstm_mnist_ptq").read_bytes(), ["output 0"])
    blob, used = check_python(batch, tmp_path)
    check_c(batch, blob, used, c_npu_run, fake_env(c_fake), tmp_path)
