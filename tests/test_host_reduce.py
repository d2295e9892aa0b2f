"""Reductions, arg-max/min, the softmax family, normalizations and resizes on the host, against TFLite.

Seeded random instances of each operator (every element type TFLite's
reference kernel takes, keep_dims, negative and repeated axes, ranks 1 to 6,
size-1 dimensions, input and output quantized alike or not, zero points at
the extremes, every resize mode) run on the Python runtime and must equal
TFLite's BUILTIN_REF kernels bit for bit; the C runtime must then equal the
Python runtime byte for byte.  The glibc float functions the float kernels
reproduce are checked against the C library directly, on every kind of
float.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import numpy as np
import pytest
from c_build import fake_env
from host_cases import (
    c_outputs,
    compile_cpu,
    differences,
    kernel_tests,
    python_outputs,
    quant,
    tflite_outputs,
)
from model_builder import ModelBuilder, SubgraphBuilder, options

from npuc.errors import UnsupportedError
from npuc.host.kernels import softmax

_QUANTIZED = ("uint8", "int8", "int16")


def _shape(rng: np.random.Generator, min_rank: int = 1, max_rank: int = 6, max_dim: int = 5) -> tuple[int, ...]:
    """A random shape; dimensions of 1 are common."""
    rank = int(rng.integers(min_rank, max_rank, endpoint=True))
    return tuple(int(rng.integers(1, max_dim, endpoint=True)) for _ in range(rank))


def _extreme_quant(rng: np.random.Generator, dtype: str, scale: tuple[float, float] = (1e-3, 0.5)) -> dict:
    """A per-tensor quantization whose zero point is, half the time, at an end of the type's range."""
    q = quant(rng, dtype, scale)
    if dtype != "int16" and rng.random() < 0.5:
        info = np.iinfo(dtype)
        q["zero_point"] = int(rng.choice([info.min, info.max]))
    return q


# -- SOFTMAX and LOG_SOFTMAX ---------------------------------------------------------------------------------------

def _softmax(dtypes: tuple[str, ...], out_int16: bool = False):
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(dtypes))
        shape = _shape(rng, max_rank=4 if dtype == "int16" else 6, max_dim=9)
        beta = float(rng.choice([1.0, 0.5, 2.0, float(rng.uniform(0.05, 3))]))
        if dtype == "float32":
            x, y = g.input(shape, dtype), g.tensor(shape, dtype)
        elif dtype == "int16":
            x = g.input(shape, dtype, scale=float(np.exp(rng.uniform(np.log(1e-4), np.log(2e-3)))), zero_point=0)
            y = g.tensor(shape, dtype, scale=1 / 32768, zero_point=0)
        else:
            x = g.input(shape, dtype, **_extreme_quant(rng, dtype))
            out = "int16" if out_int16 else dtype
            y = g.tensor(shape, out, scale=1 / 65536 if out_int16 else 1 / 256, zero_point=int(np.iinfo(out).min))
        g.op("SOFTMAX", [x], [y], options("SoftmaxOptions", beta=beta))
        return [y]
    return generate


def _log_softmax(dtypes: tuple[str, ...]):
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(dtypes))
        shape = _shape(rng, max_dim=9)
        if dtype == "float32":
            x, y = g.input(shape, dtype), g.tensor(shape, dtype)
        else:
            x = g.input(shape, dtype, **_extreme_quant(rng, dtype))
            y = g.tensor(shape, dtype, scale=16 / 256, zero_point=int(np.iinfo(dtype).max))
        g.op("LOG_SOFTMAX", [x], [y], options("LogSoftmaxOptions"))
        return [y]
    return generate


# -- reductions and ARG_MAX/ARG_MIN ------------------------------------------------------------------------------

def _random_axes(rng: np.random.Generator, rank: int) -> list[int]:
    """Some axes (at least one: an empty constant has no buffer) of a rank-``rank`` tensor, each given from the
    front or the back, maybe one twice."""
    chosen = [int(a) for a in rng.permutation(rank)[:int(rng.integers(1, rank, endpoint=True))]]
    axes = [a - rank if rng.random() < 0.5 else a for a in chosen]
    if rng.random() < 0.2:
        axes.append(axes[0] - rank if axes[0] >= 0 else axes[0] + rank)
    return axes


def _reduced_shape(shape: tuple[int, ...], axes: list[int], keep_dims: bool) -> tuple[int, ...]:
    resolved = {a % len(shape) for a in axes}
    if keep_dims:
        return tuple(1 if k in resolved else d for k, d in enumerate(shape))
    return tuple(d for k, d in enumerate(shape) if k not in resolved)


def _reducer(opcode: str, dtypes: tuple[str, ...], requantize: bool = False):
    """An instance of a reduction: random axes and keep_dims; quantized types requantized or quantized alike."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(dtypes))
        shape = _shape(rng)
        axes = _random_axes(rng, len(shape))
        keep_dims = bool(rng.random() < 0.5)
        qx = _extreme_quant(rng, dtype) if dtype in _QUANTIZED else {}
        qy = quant(rng, dtype) if requantize and rng.random() < 0.7 else qx
        x = g.input(shape, dtype, **qx)
        axis = g.const(np.array(axes, dtype=np.int32))
        y = g.tensor(_reduced_shape(shape, axes, keep_dims), dtype, **qy)
        g.op(opcode, [x, axis], [y], options("ReducerOptions", keepDims=keep_dims))
        return [y]
    return generate


def _quantized_prod(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """REDUCE_PROD of int8/int16 over at most 8 elements, the output scale near scale_in^n (TFLite rescales every
    product by scale_in / scale_out^(1/n), which must stay below 2^8)."""
    dtype = str(rng.choice(["int8", "int16"]))
    shape = _shape(rng, max_rank=4, max_dim=3)
    axes = _random_axes(rng, len(shape))
    count = int(np.prod([shape[a] for a in {a % len(shape) for a in axes}]))
    keep_dims = bool(rng.random() < 0.5)
    qx = _extreme_quant(rng, dtype, scale=(0.3, 1.0))
    ratio = float(rng.uniform(0.3, 3.0))
    qy = {"scale": float((qx["scale"] / ratio) ** count),
          "zero_point": 0 if dtype == "int16" else int(rng.integers(-128, 128))}
    x = g.input(shape, dtype, **qx)
    y = g.tensor(_reduced_shape(shape, axes, keep_dims), dtype, **qy)
    axis = g.const(np.array(axes, dtype=np.int32))
    g.op("REDUCE_PROD", [x, axis], [y], options("ReducerOptions", keepDims=keep_dims))
    return [y]


def _arg(opcode: str):
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(["float32", "uint8", "int8", "int32", "bool"]))
        shape = _shape(rng)
        axis = int(rng.integers(-len(shape), len(shape)))
        out_type = str(rng.choice(["int32", "int64"]))
        x = g.input(shape, dtype, **(_extreme_quant(rng, dtype) if dtype in _QUANTIZED else {}))
        a = g.const(np.array([axis] if rng.random() < 0.5 else axis, dtype=str(rng.choice(["int32", "int64"]))))
        y = g.tensor(shape[:axis % len(shape)] + shape[axis % len(shape) + 1:], out_type)
        name = "ArgMaxOptions" if opcode == "ARG_MAX" else "ArgMinOptions"
        g.op(opcode, [x, a], [y], options(name, outputType=out_type.upper()))
        return [y]
    return generate


# -- L2_NORMALIZATION and LOCAL_RESPONSE_NORMALIZATION ----------------------------------------------------------

def _l2_normalization(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = str(rng.choice(["uint8", "int8", "float32"]))
    shape = _shape(rng, max_rank=4, max_dim=9)
    if dtype == "float32":
        x, y = g.input(shape, dtype), g.tensor(shape, dtype)
    else:
        x = g.input(shape, dtype, **_extreme_quant(rng, dtype))
        y = g.tensor(shape, dtype, scale=1 / 128, zero_point=128 if dtype == "uint8" else 0)
    g.op("L2_NORMALIZATION", [x], [y], options("L2NormOptions"))
    return [y]


def _local_response_normalization(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 12)))
    x, y = g.input(shape, "float32"), g.tensor(shape, "float32")
    g.op("LOCAL_RESPONSE_NORMALIZATION", [x], [y],
         options("LocalResponseNormalizationOptions", radius=int(rng.integers(0, 6)),
                 bias=float(rng.choice([1.0, 2.0, float(rng.uniform(0.1, 3))])),
                 alpha=float(rng.choice([1e-4, float(rng.uniform(0.01, 1))])),
                 beta=float(rng.choice([0.75, 0.5, float(rng.uniform(0.1, 2))]))))
    return [y]


# -- RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR --------------------------------------------------------------

def _resize(opcode: str, dtypes: tuple[str, ...]):
    """Up- or down-sampling by unrelated factors; every flag combination TFLite accepts."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(dtypes))
        n, h, w, c = (int(rng.integers(1, 3)), int(rng.integers(1, 8)), int(rng.integers(1, 8)),
                      int(rng.integers(1, 4)))
        out_h, out_w = int(rng.integers(1, 12)), int(rng.integers(1, 12))
        align, half = (bool(v) for v in rng.integers(0, 2, 2))
        if opcode == "RESIZE_BILINEAR" and align and half:
            align = False
        q = _extreme_quant(rng, dtype) if dtype in _QUANTIZED else {}
        x = g.input((n, h, w, c), dtype, **q)
        size = g.const(np.array([out_h, out_w], dtype=np.int32))
        y = g.tensor((n, out_h, out_w, c), dtype, **q)
        name = "ResizeBilinearOptions" if opcode == "RESIZE_BILINEAR" else "ResizeNearestNeighborOptions"
        g.op(opcode, [x, size], [y], options(name, alignCorners=align, halfPixelCenters=half))
        return [y]
    return generate


GENERATORS = {
    "RESIZE_BILINEAR": _resize("RESIZE_BILINEAR", ("float32", "uint8", "int8", "int16")),
    "RESIZE_NEAREST_NEIGHBOR": _resize("RESIZE_NEAREST_NEIGHBOR",
                                       ("float32", "uint8", "int8", "int16", "int32", "bool")),
    "L2_NORMALIZATION": _l2_normalization,
    "LOCAL_RESPONSE_NORMALIZATION": _local_response_normalization,
    "MEAN_QUANTIZED": _reducer("MEAN", _QUANTIZED, requantize=True),
    "MEAN_PLAIN": _reducer("MEAN", ("float32", "int32", "int64")),
    "SUM_UINT8": _reducer("SUM", ("uint8",), requantize=True),
    "SUM_PLAIN": _reducer("SUM", ("float32", "int32", "int64")),
    "REDUCE_MAX": _reducer("REDUCE_MAX", ("bool", "uint8", "int8", "int16", "int32", "int64", "float32")),
    "REDUCE_MIN": _reducer("REDUCE_MIN", ("bool", "uint8", "int8", "int16", "int32", "int64", "float32")),
    "REDUCE_PROD_QUANTIZED": _quantized_prod,
    "REDUCE_PROD_PLAIN": _reducer("REDUCE_PROD", ("float32", "int32", "int64")),
    "REDUCE_ANY": _reducer("REDUCE_ANY", ("bool",)),
    "REDUCE_ALL": _reducer("REDUCE_ALL", ("bool",)),
    "ARG_MAX": _arg("ARG_MAX"),
    "ARG_MIN": _arg("ARG_MIN"),
    "SOFTMAX_8BIT": _softmax(("uint8", "int8")),
    "SOFTMAX_8BIT_TO_INT16": _softmax(("uint8", "int8"), out_int16=True),
    "SOFTMAX_INT16": _softmax(("int16",)),
    "SOFTMAX_F32": _softmax(("float32",)),
    "LOG_SOFTMAX_8BIT": _log_softmax(("uint8", "int8")),
    "LOG_SOFTMAX_F32": _log_softmax(("float32",)),
}


test_python_kernels_match_tflite, test_c_kernels_match_python = kernel_tests(GENERATORS)


# -- refusals -----------------------------------------------------------------------------------------------------

def _one_op(opcode: str, dtype: str, in_q: dict, out_q: dict, options_object, axis_constant: bool = True) -> bytes:
    """A (2, 3) -> (2,) reduction over axis 1, or a same-shape operator when ``opcode`` takes no axis."""
    m = ModelBuilder()
    g = m.main
    x = g.input((2, 3), dtype, **in_q)
    if opcode in ("SUM", "MEAN", "REDUCE_MAX"):
        axis = g.const(np.array([1], np.int32)) if axis_constant else g.input((1,), "int32")
        y = g.output(g.tensor((2,), dtype, **out_q))
        g.op(opcode, [x, axis], [y], options_object)
    else:
        y = g.output(g.tensor((2, 3), dtype, **out_q))
        g.op(opcode, [x], [y], options_object)
    return m.build()


@pytest.mark.parametrize("model, fragment", [
    (_one_op("SUM", "int8", {"scale": 0.1, "zero_point": 3}, {"scale": 0.2, "zero_point": 0},
             options("ReducerOptions")), "reads int8 input"),
    (_one_op("MEAN", "uint8", {"scale": 0.1, "zero_point": 3}, {"scale": 0.1, "zero_point": 3},
             options("ReducerOptions"), axis_constant=False), "must be a constant integer tensor"),
    (_one_op("REDUCE_MAX", "int8", {"scale": 0.1, "zero_point": 3}, {"scale": 0.2, "zero_point": 3},
             options("ReducerOptions")), "must be quantized alike"),
    (_one_op("LOG_SOFTMAX", "uint8", {"scale": 0.1, "zero_point": 3}, {"scale": 1 / 256, "zero_point": 0},
             options("LogSoftmaxOptions")), "must have scale 16/256 and zero point 255"),
    (_one_op("SOFTMAX", "int16", {"scale": 0.001, "zero_point": 5}, {"scale": 1 / 32768, "zero_point": 0},
             options("SoftmaxOptions", beta=1.0)), "need zero point 0"),
])
def test_instances_tflite_refuses_or_misreads_are_refused(model, fragment, tmp_path):
    """What TFLite's Prepare refuses, and int8 SUM (which its reference kernel reads as uint8), get a one-line
    refusal naming the operator."""
    with pytest.raises(UnsupportedError, match=fragment):
        compile_cpu(model, tmp_path)


# -- NaN, infinities and signed zeros ------------------------------------------------------------------------------

_NAN, _INF = np.float32(np.nan), np.float32(np.inf)
#: Rows of special values: NaN first, NaN inside, all NaN, all -inf, all +inf, signed zeros, zeros and a huge value.
_SPECIAL_ROWS = np.array([
    [_NAN, 1, 2, -3, 0.5], [1, _NAN, 2, _NAN, -7], [_NAN] * 5, [-_INF] * 5, [_INF, 1, _INF, 2, 3],
    [-0.0, 0.0, -0.0, 0.0, -0.0], [-0.0] * 5, [0.0] * 5, [3e38, -3e38, 1e-45, -1e-45, 2], [-_INF, _NAN, -_INF, 1, 0],
    [0.0, -0.0, 0.0, -0.0, 0.0], [5, 5, -5, 5, -5]], dtype=np.float32)


def _special_model() -> tuple[bytes, list[str]]:
    """Every float kernel of this family on one (2, 3, 2, 5) input made of the special rows."""
    m = ModelBuilder()
    g = m.main
    x = g.input((2, 3, 2, 5), "float32")
    labels = []

    def out(opcode: str, shape: tuple[int, ...], inputs: list[int], opts=None, dtype: str = "float32") -> None:
        y = g.output(g.tensor(shape, dtype))
        g.op(opcode, inputs, [y], opts)
        labels.append(f"{opcode} {len(labels)}")

    for opcode in ("REDUCE_MAX", "REDUCE_MIN", "SUM", "MEAN", "REDUCE_PROD"):
        for axes, shape in (([3], (2, 3, 2)), ([0, 1, 2, 3], ()), ([1, 3], (2, 2))):
            out(opcode, shape, [x, g.const(np.array(axes, np.int32))], options("ReducerOptions", keepDims=False))
    # Not along the last axis: there TFLite's x86 build vectorizes float rows of 4 or more, and which index it
    # returns when they hold a NaN depends on the SIMD lanes the NaN falls in.
    for opcode, name in (("ARG_MAX", "ArgMaxOptions"), ("ARG_MIN", "ArgMinOptions")):
        for axis, shape in ((1, (2, 2, 5)), (2, (2, 3, 5))):
            out(opcode, shape, [x, g.const(np.array([axis], np.int32))], options(name, outputType="INT32"),
                dtype="int32")
    out("SOFTMAX", (2, 3, 2, 5), [x], options("SoftmaxOptions", beta=1.0))
    out("LOG_SOFTMAX", (2, 3, 2, 5), [x], options("LogSoftmaxOptions"))
    out("L2_NORMALIZATION", (2, 3, 2, 5), [x], options("L2NormOptions"))
    out("LOCAL_RESPONSE_NORMALIZATION", (2, 3, 2, 5), [x],
        options("LocalResponseNormalizationOptions", radius=2, bias=1.0, alpha=0.5, beta=0.75))
    out("RESIZE_BILINEAR", (2, 4, 3, 5), [x, g.const(np.array([4, 3], np.int32))],
        options("ResizeBilinearOptions", halfPixelCenters=True))
    return m.build(), labels


def test_special_floats_match_tflite_and_c(tmp_path, c_npu_run, c_fake):
    """NaN, infinities, subnormals and signed zeros go where TFLite's reference kernels send them, in both runtimes."""
    model, labels = _special_model()
    blob = compile_cpu(model, tmp_path)
    rng = np.random.default_rng(7)
    for _ in range(3):
        x = _SPECIAL_ROWS[rng.integers(0, len(_SPECIAL_ROWS), 12)].reshape(2, 3, 2, 5)
        got = python_outputs(blob, [x])
        assert not differences(got, tflite_outputs(model, [x]), labels)
        assert not differences(c_outputs(c_npu_run, fake_env(c_fake), blob, [x], tmp_path), got, labels)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the float kernels reproduce glibc's expf and logf")
def test_expf_and_logf_are_glibcs():
    """The numpy expf and logf equal the C library's on floats of every magnitude, sign and kind."""
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    for name in ("expf", "logf"):
        getattr(libm, name).restype, getattr(libm, name).argtypes = ctypes.c_float, [ctypes.c_float]
    rng = np.random.default_rng(0)
    bits = np.concatenate([rng.integers(0, 1 << 32, 40_000, dtype=np.uint64).astype(np.uint32),
                           np.float32([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 88.7, -103.5, -104.0,
                                       1e-45, 1e-40]).view(np.uint32)])
    x = bits.view(np.float32)
    x = np.concatenate([x[~np.isnan(x)], np.float32([np.nan]), (rng.standard_normal(20_000) * 20).astype(np.float32)])
    for ours, theirs in ((softmax.expf, libm.expf), (softmax.logf, libm.logf)):
        want = np.array([theirs(float(v)) for v in x], dtype=np.float32)
        got = ours(x)
        same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
        assert same.all(), f"{theirs.__name__}({x[~same][:5]}) = {want[~same][:5]}, not {got[~same][:5]}"
