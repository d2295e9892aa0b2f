"""Element-wise unary operators and activations on the host against TFLite's reference kernels.

Seeded random instances of every operator and variant (uint8, int8, int16,
int32, int64, float32, bool as TFLite takes them; ranks 1 to 6; input and
output quantized differently; options such as LEAKY_RELU's alpha, GELU's
approximation, PRELU's broadcast alpha) run on the Python runtime and must
equal TFLite bit for bit; the C runtime must then equal the Python runtime
byte for byte.  Chosen values complete them: every input byte of the 8-bit
table operators for several quantizations, every int16 input of the int16
sigmoids, float specials (NaN, infinities, -0, subnormals, huge values), the
integer types' extremes.  ELU, CEIL and ROUND are not among TFLite's reference
kernels: they are checked against its builtin kernels without delegates.

The float32 transcendental functions (EXP, LOG, SIN, COS, TANH, LOGISTIC, ELU)
are the C library's float functions in TFLite and in both runtimes, so they
too must be exact; the float32 GELU is Eigen's erfc and tanh in TFLite,
repeated operation by operation in both runtimes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from c_build import fake_env
from host_cases import CASES, Generator, check_chosen, kernel_tests, quant
from model_builder import ModelBuilder, SubgraphBuilder, options

QUANTIZED = ("uint8", "int8", "int16")
EIGHT_BIT = ("uint8", "int8")
FLOAT_SPECIALS = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-39, -1e-39, 3.4e38,
                           -3.4e38, 88.7, 88.8, -88.8, -103.9, -104.0, 16.6, 16.7, -9.0, -9.1, 0.5, -0.5, 1.5, 2.5,
                           -2.5, 1e10, -1e10, 2.0 ** 31, -(2.0 ** 31), 3.0, -3.0, 8388609.0, 1.0, -1.0], np.float32)


def _shape(rng: np.random.Generator, max_rank: int = 6) -> tuple[int, ...]:
    """A random shape of rank 1..max_rank, some dimensions 1, at most a few hundred elements."""
    rank = int(rng.integers(1, max_rank + 1))
    dims = [int(rng.integers(1, 6)) if rng.random() < 0.8 else 1 for _ in range(rank)]
    while np.prod(dims) > 400:
        dims[int(np.argmax(dims))] //= 2
    return tuple(dims)


def _scale_near(rng: np.random.Generator, scale: float, spread: float) -> float:
    return float(scale * np.exp(rng.uniform(-np.log(spread), np.log(spread))))


def _unary(opcode: str, dtypes: tuple[str, ...], out_quant: Callable | None = None,
           opts: Callable[[np.random.Generator], object] | None = None, out_dtypes: tuple[str, ...] | None = None,
           quantized: bool = True) -> Generator:
    """Instances of a one-input operator: a type among ``dtypes``, quantized when 8/16-bit (the output as
    ``out_quant(rng, dtype, input quantization)`` gives, by default independently), options from ``opts``;
    a type among ``out_dtypes`` for the output (CAST, unquantized) when given."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(dtypes))
        out_dtype = str(rng.choice(out_dtypes)) if out_dtypes else dtype
        shape = _shape(rng)
        qx = quant(rng, dtype) if dtype in QUANTIZED and quantized and out_dtypes is None else {}
        if not qx:
            qy = {}
        elif out_quant is not None:
            qy = out_quant(rng, dtype, qx)
        else:
            qy = qx if rng.random() < 0.25 else quant(rng, dtype)
        x = g.input(shape, dtype, **qx)
        y = g.tensor(shape, out_dtype, **qy)
        g.op(opcode, [x], [y], opts(rng) if opts else None)
        return [y]
    return generate


def _fixed_output(scale: float, zero_points: dict[str, int]) -> Callable:
    """The output quantization TFLite's table operators expect (or, a quarter of the time, another zero point)."""
    def out_quant(rng: np.random.Generator, dtype: str, qx: dict) -> dict:
        zp = zero_points[dtype]
        if dtype != "int16" and rng.random() < 0.25:
            zp = int(rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, endpoint=True))
        return {"scale": scale, "zero_point": zp}
    return out_quant


def _near_input(spread: float) -> Callable:
    """An output scale within a factor ``spread`` of the input's, random zero point."""
    def out_quant(rng: np.random.Generator, dtype: str, qx: dict) -> dict:
        return {**quant(rng, dtype), "scale": _scale_near(rng, qx["scale"], spread)}
    return out_quant


def _int16_sigmoid(opcode: str, power_of_two_scales: tuple[float, ...]) -> Generator:
    """int16 LOGISTIC/TANH: input scale a power of two TFLite special-cases, or any; output 1/32768."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        shape = _shape(rng)
        scale = float(rng.choice(power_of_two_scales)) if rng.random() < 0.5 else \
            float(np.exp(rng.uniform(np.log(1e-4), np.log(2e-3))))
        x = g.input(shape, "int16", scale=scale, zero_point=0)
        y = g.tensor(shape, "int16", scale=1 / 32768, zero_point=0)
        g.op(opcode, [x], [y])
        return [y]
    return generate


def _prelu(dtypes: tuple[str, ...]) -> Generator:
    """PRELU with an alpha broadcasting to the input (trailing dimensions kept or 1), constant or not."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(dtypes))
        shape = _shape(rng, 4)
        keep = int(rng.integers(0, len(shape) + 1))
        alpha_shape = tuple(d if rng.random() < 0.7 else 1 for d in shape[len(shape) - keep:])
        q = (lambda: quant(rng, dtype)) if dtype != "float32" else (lambda: {})
        x = g.input(shape, dtype, **q())
        if rng.random() < 0.7:
            raw = rng.uniform(-1, 1, alpha_shape) if dtype == "float32" else \
                rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, alpha_shape, endpoint=True)
            alpha = g.const(np.asarray(raw).astype(dtype), dtype, **q())
        else:
            alpha = g.input(alpha_shape, dtype, **q())
        y = g.tensor(shape, dtype, **q())
        g.op("PRELU", [x, alpha], [y])
        return [y]
    return generate


def _cast(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    types = ("bool", "uint8", "int8", "int16", "int32", "int64", "float32")
    return _unary("CAST", types, out_dtypes=types)(rng, g)


def _leaky_alpha(rng: np.random.Generator) -> object:
    return options("LeakyReluOptions", alpha=float(rng.choice([0.2, 0.01, rng.uniform(-1.5, 2.5)])))


def _gelu_options(rng: np.random.Generator) -> object:
    return options("GeluOptions", approximate=bool(rng.random() < 0.5))


def _rsqrt_int8(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """int8 RSQRT with the input zero point at -128: TFLite refuses to run on inputs below it."""
    shape = _shape(rng)
    x = g.input(shape, "int8", scale=quant(rng, "int8")["scale"], zero_point=-128)
    y = g.tensor(shape, "int8", **quant(rng, "int8"))
    g.op("RSQRT", [x], [y])
    return [y]


FLOATS = ("float32",)
GENERATORS: dict[str, Generator] = {
    "EXP_F32": _unary("EXP", FLOATS),
    "LOG_F32": _unary("LOG", FLOATS),
    "SIN": _unary("SIN", FLOATS),
    "COS": _unary("COS", FLOATS),
    "TANH_F32": _unary("TANH", FLOATS),
    "LOGISTIC_F32": _unary("LOGISTIC", FLOATS),
    "RELU": _unary("RELU", ("uint8", "int8", "int16", "float32")),
    "RELU6": _unary("RELU6", ("uint8", "int8", "int16", "float32")),
    "RELU_N1_TO_1": _unary("RELU_N1_TO_1", ("uint8", "int8", "float32")),
    "RELU_0_TO_1": _unary("RELU_0_TO_1", ("uint8", "int8", "float32")),
    "LEAKY_RELU": _unary("LEAKY_RELU", ("uint8", "int8", "int16", "float32"), opts=_leaky_alpha),
    "PRELU": _prelu(("uint8", "int8", "float32")),
    "HARD_SWISH": _unary("HARD_SWISH", ("uint8", "int8", "float32"), out_quant=_near_input(60)),
    "LOGISTIC": _unary("LOGISTIC", EIGHT_BIT, out_quant=_fixed_output(1 / 256, {"uint8": 0, "int8": -128})),
    "LOGISTIC_I16": _int16_sigmoid("LOGISTIC", (2.0 ** -12,)),
    "TANH": _unary("TANH", EIGHT_BIT, out_quant=_fixed_output(1 / 128, {"uint8": 128, "int8": 0})),
    "TANH_I16": _int16_sigmoid("TANH", (2.0 ** -12, 2.0 ** -11)),
    "GELU": _unary("GELU", EIGHT_BIT, opts=_gelu_options),
    "GELU_F32": _unary("GELU", FLOATS, opts=_gelu_options),
    "EXP": _unary("EXP", ("int8", "int16")),
    "LOG": _unary("LOG", ("int8", "int16")),
    "RSQRT_I8": _rsqrt_int8,
    "RSQRT_F32": _unary("RSQRT", FLOATS),
    "SQRT": _unary("SQRT", FLOATS),
    "SQUARE": _unary("SQUARE", FLOATS),
    "FLOOR": _unary("FLOOR", FLOATS),
    "ABS": _unary("ABS", ("int8", "int16", "int32", "float32")),
    "ABS_RAW_I16": _unary("ABS", ("int16",), quantized=False),
    "NEG": _unary("NEG", ("int8", "int16", "int32", "int64", "float32")),
    "SIGN": _unary("SIGN", ("int32", "float32")),
    "CAST": _cast,
}

#: Operators TFLite's reference resolver lacks: checked against its builtin kernels (no delegate).
NOT_REFERENCE: dict[str, Generator] = {
    "ELU": _unary("ELU", ("int8",)),
    "ELU_F32": _unary("ELU", FLOATS),
    "CEIL": _unary("CEIL", FLOATS),
    "ROUND": _unary("ROUND", FLOATS),
}


test_python_kernels_match_tflite, test_c_kernels_match_python = kernel_tests(GENERATORS)
test_python_kernels_match_tflite_builtin, test_c_kernels_match_python_builtin = kernel_tests(NOT_REFERENCE, builtin=True)


# -- chosen values -----------------------------------------------------------------------------------

def _one_op(opcode: str, x_shape: tuple[int, ...], dtype: str, out_dtype: str | None = None, qx: dict | None = None,
            qy: dict | None = None, opts: object = None) -> bytes:
    m = ModelBuilder()
    x = m.main.input(x_shape, dtype, **(qx or {}))
    y = m.main.tensor(x_shape, out_dtype or dtype, **(qy or {}))
    m.main.op(opcode, [x], [y], opts)
    m.main.output(y)
    return m.build()


def _check_values(model: bytes, x: np.ndarray, directory: Path, label: str, npu_run: Path, env: dict[str, str],
                  builtin: bool = False) -> None:
    """Chosen input values ``x``: Python exactly as TFLite, C exactly as Python."""
    check_chosen(model, [x], directory, npu_run, env, [label], builtin)


def _every_byte(dtype: str) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.arange(int(info.min), int(info.max) + 1).astype(dtype)


#: 8-bit table operators, the output quantization each is tried with.
TABLE_CASES = {
    "LOGISTIC": lambda dtype: {"scale": 1 / 256, "zero_point": -128 if dtype == "int8" else 0},
    "TANH": lambda dtype: {"scale": 1 / 128, "zero_point": 0 if dtype == "int8" else 128},
    "GELU": lambda dtype: {"scale": 0.03, "zero_point": -20 if dtype == "int8" else 40},
    "GELU_APPROXIMATE": lambda dtype: {"scale": 0.05, "zero_point": 5 if dtype == "int8" else 100},
    "EXP": lambda dtype: {"scale": 0.4, "zero_point": -128},
    "LOG": lambda dtype: {"scale": 0.06, "zero_point": 30},
    "RSQRT": lambda dtype: {"scale": 0.02, "zero_point": -128},
    "ELU": lambda dtype: {"scale": 0.05, "zero_point": -60},
}
_TABLE_TYPES = {"EXP": ("int8",), "LOG": ("int8",), "RSQRT": ("int8",), "ELU": ("int8",)}
INPUT_QUANTIZATIONS = [(0.282217, 114), (0.02, -128), (1.7, 0), (0.37, 127), (0.0123, 3)]


def _table_cases() -> list[tuple[str, str, float, int]]:
    return [(name, dtype, scale, zp) for name in sorted(TABLE_CASES) for dtype in _TABLE_TYPES.get(name, EIGHT_BIT)
            for scale, zp in INPUT_QUANTIZATIONS]


@pytest.mark.parametrize("name, dtype, scale, zero_point", _table_cases())
def test_tables_match_tflite_for_every_input(name, dtype, scale, zero_point, tmp_path, c_npu_run, c_fake):
    opcode = name.removesuffix("_APPROXIMATE")
    zero_point = zero_point + 128 if dtype == "uint8" else zero_point
    if opcode == "RSQRT":
        zero_point = -128
    opts = options("GeluOptions", approximate=name.endswith("_APPROXIMATE")) if opcode == "GELU" else None
    model = _one_op(opcode, (256,), dtype, qx={"scale": scale, "zero_point": zero_point},
                    qy=TABLE_CASES[name](dtype), opts=opts)
    _check_values(model, _every_byte(dtype), tmp_path, f"{name} {dtype} {scale} {zero_point}", c_npu_run,
                  fake_env(c_fake), builtin=opcode == "ELU")


def _float_values() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.concatenate([FLOAT_SPECIALS, (rng.standard_normal(400) * 10).astype(np.float32),
                           rng.uniform(-1e-3, 1e-3, 100).astype(np.float32)])


#: float32 operators checked on special values.
FLOAT_OPS = ("RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU", "HARD_SWISH", "RSQRT", "SQRT", "SQUARE",
             "FLOOR", "ABS", "NEG", "SIGN", "CEIL", "ROUND", "EXP", "LOG", "SIN", "COS", "TANH", "LOGISTIC", "ELU")


@pytest.mark.parametrize("opcode", sorted(FLOAT_OPS))
def test_float_specials_match_tflite(opcode, tmp_path, c_npu_run, c_fake):
    opts = options("LeakyReluOptions", alpha=-0.3) if opcode == "LEAKY_RELU" else None
    x = _float_values()
    _check_values(_one_op(opcode, x.shape, "float32", opts=opts), x, tmp_path, opcode, c_npu_run, fake_env(c_fake),
                  builtin=opcode in NOT_REFERENCE)


@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_float_specials_match_tflite(approximate, tmp_path, c_npu_run, c_fake):
    """Eigen's erfc and tanh on special values, with elements both in its four-wide code and in its tail, and
    inputs whose exp(-x^2 / 2) Eigen scales into subnormals (-14.5 to -13)."""
    x = np.concatenate([_float_values(), np.linspace(-14.5, -13, 301, dtype=np.float32)])
    model = _one_op("GELU", x.shape, "float32", opts=options("GeluOptions", approximate=approximate))
    _check_values(model, x, tmp_path, f"GELU approximate={approximate}", c_npu_run, fake_env(c_fake))


def test_float_to_integer_casts_saturate_like_tflite(tmp_path, c_npu_run, c_fake):
    x = _float_values()
    for out_dtype in ("bool", "uint8", "int8", "int16", "int32", "int64"):
        directory = tmp_path / out_dtype
        directory.mkdir()
        _check_values(_one_op("CAST", x.shape, "float32", out_dtype), x, directory, out_dtype, c_npu_run,
                      fake_env(c_fake))


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_extremes_match_tflite(dtype, tmp_path, c_npu_run, c_fake):
    info = np.iinfo(dtype)
    x = np.array([info.min, info.min + 1, -1, 0, 1, info.max, 1 << 24 | 1, -(1 << 30)], dtype=dtype)
    ops = [("NEG", dtype), ("CAST", "float32"), ("CAST", "int8"), ("CAST", "uint8"), ("CAST", "int16"),
           ("CAST", "bool"), ("CAST", "int64" if dtype == "int32" else "int32")]
    if dtype == "int32":
        ops += [("ABS", dtype), ("SIGN", dtype)]
    for k, (opcode, out_dtype) in enumerate(ops):
        directory = tmp_path / str(k)
        directory.mkdir()
        _check_values(_one_op(opcode, x.shape, dtype, out_dtype), x, directory, f"{opcode} to {out_dtype}",
                      c_npu_run, fake_env(c_fake))


@pytest.mark.parametrize("opcode, scale", [("RSQRT", 0.02), ("RSQRT", 3e-4), ("LOG", 0.01), ("EXP", 2e-4),
                                           ("EXP", 1e-3)])
def test_int16_tables_match_tflite(opcode, scale, tmp_path, c_npu_run, c_fake):
    """int16 lookup tables on every 7th int16 value (non-negative ones for RSQRT, which refuses the others)."""
    x = np.arange(0 if opcode == "RSQRT" else -32768, 32768, 7).astype(np.int16)
    model = _one_op(opcode, x.shape, "int16", qx={"scale": scale, "zero_point": 0},
                    qy={"scale": 3e-4, "zero_point": 0})
    _check_values(model, x, tmp_path, f"{opcode} {scale}", c_npu_run, fake_env(c_fake))


@pytest.mark.parametrize("opcode", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize("scale", [2.0 ** -12, 2.0 ** -11, 3.1e-4, 1.3e-3, 7e-5])
def test_int16_sigmoids_match_tflite_for_every_input(opcode, scale, tmp_path, c_npu_run, c_fake):
    x = np.arange(-32768, 32768).astype(np.int16)
    model = _one_op(opcode, x.shape, "int16", qx={"scale": scale, "zero_point": 0},
                    qy={"scale": 1 / 32768, "zero_point": 0})
    _check_values(model, x, tmp_path, f"{opcode} {scale}", c_npu_run, fake_env(c_fake))


def test_every_case_count_is_dozens():
    assert CASES >= 24
