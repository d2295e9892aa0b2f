"""Element-wise arithmetic, comparisons, selection and logic on the host against TFLite's reference kernels.

Seeded random instances (ranks 0 to 6, numpy broadcasting of inputs of lower
rank and size-1 dimensions, every element type each TFLite kernel takes,
inputs and output quantized differently with zero points at the extremes,
fused activations, constants holding extreme values, infinities, NaN and -0)
run on the Python runtime and must equal TFLite bit for bit; the C runtime
must then equal the Python runtime byte for byte.  Divisors of integer
divisions are constants without zeros, since TFLite fails on a zero divisor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from c_build import fake_env
from host_cases import activation, c_failure, compile_cpu, kernel_tests, quant
from model_builder import ModelBuilder, SubgraphBuilder, options

from npuc.errors import InputError, UnsupportedError
from npuc.frontend_tflite import load_tflite
from npuc.host import fold
from npuc.host.graph_exec import run_graph_on_host

Generator = Callable[[np.random.Generator, SubgraphBuilder], list[int]]

QUANTIZED = ("uint8", "int8")
NUMBERS = ("uint8", "int8", "int16", "int32", "int64", "float32")
#: float32 values that exercise IEEE corner cases.
SPECIAL_FLOATS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 3.4028235e38, -3.4028235e38, 1e-45, 1.0, -1.0, 0.5],
                          np.float32)
#: Most elements of one instance: the cases stay small, many fit in one model.
MAX_ELEMENTS = 96
#: The highest rank TFLite's broadcasting kernels (and npuc's blobs) take.
MAX_RANK = 6
OPTIONS = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions", "DIV": "DivOptions"}


# -- shapes, tensors and values ---------------------------------------------------------------

def _shape(rng: np.random.Generator) -> tuple[int, ...]:
    """An output shape of rank 0..MAX_RANK with at most MAX_ELEMENTS elements, size-1 dimensions included."""
    rank = int(rng.integers(0, MAX_RANK + 1)) if rng.random() < 0.9 else MAX_RANK
    dims = []
    for _ in range(rank):
        room = MAX_ELEMENTS // max(1, int(np.prod(dims)))
        dims.append(int(rng.integers(1, max(2, min(5, room) + 1))))
    return tuple(dims)


def _broadcast_shapes(rng: np.random.Generator, shape: tuple[int, ...], n: int) -> list[tuple[int, ...]]:
    """``n`` input shapes that broadcast exactly to ``shape``: dimensions set to 1 or left out in front."""
    if rng.random() < 0.3:
        return [shape] * n
    dims = [[d] * n for d in shape]
    for per_input in dims:
        if per_input[0] > 1:
            keep = int(rng.integers(0, n))                 # one input keeps the full size
            for i in range(n):
                if i != keep and rng.random() < 0.5:
                    per_input[i] = 1
    shapes = [tuple(d[i] for d in dims) for i in range(n)]
    full = int(rng.integers(0, n))                          # one input keeps the full rank
    for i in range(n):
        while i != full and shapes[i] and shapes[i][0] == 1 and rng.random() < 0.6:
            shapes[i] = shapes[i][1:]
    return shapes


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: str, nonzero: bool = False,
            minus_one: bool = True) -> np.ndarray:
    """Constant data: the whole range of an integer type with small and extreme values mixed in, normal or
    special floats, fair booleans; without 0 when ``nonzero``, without -1 unless ``minus_one``."""
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype == "float32":
        normal = (rng.standard_normal(shape) * 3).astype(np.float32)
        special = rng.choice(SPECIAL_FLOATS, size=shape)
        data = np.where(rng.random(shape) < 0.3, special, normal).astype(np.float32)
        return np.where(data == 0, np.float32(2.5), data) if nonzero else data
    info = np.iinfo(dtype)
    data = rng.integers(int(info.min), int(info.max), size=shape, endpoint=True).astype(dtype)
    small = rng.choice(np.array([-1, 1, 2, -2, 3, info.min, info.max], np.int64), size=shape).astype(dtype)
    data = np.where(rng.random(shape) < 0.3, small, data)
    if not minus_one:
        data = np.where(data == -1, np.array(-2, dtype), data)
    return np.where(data == 0, np.array(1, dtype), data) if nonzero else data


def _quant(rng: np.random.Generator, dtype: str, int16_zero_point: bool = False) -> dict:
    """A quantization of a quantized type, zero points sometimes at the extremes of the type (int16: 0 unless
    ``int16_zero_point``, as most of TFLite's int16 kernels require)."""
    if dtype not in ("uint8", "int8", "int16"):
        return {}
    q = quant(rng, dtype)
    info = np.iinfo(dtype)
    if dtype == "int16" and int16_zero_point:
        q["zero_point"] = int(rng.integers(int(info.min), int(info.max), endpoint=True))
    if (dtype != "int16" or int16_zero_point) and rng.random() < 0.25:
        q["zero_point"] = int(rng.choice([info.min, info.max]))
    return q


def _operand(rng: np.random.Generator, g: SubgraphBuilder, shape: tuple[int, ...], dtype: str, q: dict,
             constant: float = 0.0, nonzero: bool = False, minus_one: bool = True) -> int:
    """An input of the graph, or with probability ``constant`` (always when ``nonzero``) a constant."""
    if nonzero or rng.random() < constant:
        return g.const(_values(rng, shape, dtype, nonzero, minus_one), dtype, **q)
    return g.input(shape, dtype, **q)


def _binary(rng: np.random.Generator, g: SubgraphBuilder, opcode: str, dtype: str, *, quantized: bool = False,
            out_dtype: str | None = None, opts=None, divisor: bool = False, minus_one: bool = True,
            int16_zero_point: bool = False) -> list[int]:
    """One instance of a binary operator; a ``divisor`` second input is a constant without zeros (and without
    -1 unless ``minus_one``)."""
    shape = _shape(rng)
    shapes = _broadcast_shapes(rng, shape, 2)
    qa, qb = (_quant(rng, dtype, int16_zero_point), _quant(rng, dtype, int16_zero_point)) if quantized else ({}, {})
    a = _operand(rng, g, shapes[0], dtype, qa, constant=0.15)
    b = _operand(rng, g, shapes[1], dtype, qb, constant=0.3, nonzero=divisor, minus_one=minus_one)
    qy = (_quant(rng, dtype) if rng.random() < 0.7 else qa) if quantized and out_dtype is None else {}
    y = g.tensor(shape, out_dtype or dtype, **qy)
    g.op(opcode, [a, b], [y], opts)
    return [y]


def _act_options(rng: np.random.Generator, opcode: str, **fields) -> object:
    return options(OPTIONS[opcode], fusedActivationFunction=activation(rng), **fields)


# -- generators ----------------------------------------------------------------------------------

def _quantized_add_sub(opcode: str) -> Generator:
    """uint8/int8 with the general rescaling, int16 general or with power-of-two scales (TFLite's POT path)."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(["uint8", "int8", "int16"]))
        if dtype == "int16" and rng.random() < 0.5:
            return _pot_int16(rng, g, opcode)
        pot = bool(rng.random() < 0.5)
        return _binary(rng, g, opcode, dtype, quantized=True, opts=_act_options(rng, opcode, potScaleInt16=pot))
    return generate


def _pot_int16(rng: np.random.Generator, g: SubgraphBuilder, opcode: str) -> list[int]:
    """int16 ADD/SUB with power-of-two scales: one input scaled like the output, the other finer."""
    k = int(rng.integers(4, 14))
    finer = 2.0 ** -(k + int(rng.integers(0, 6)))
    scales = [2.0 ** -k, finer] if rng.random() < 0.5 else [finer, 2.0 ** -k]
    shape = _shape(rng)
    shapes = [shape, shape] if opcode == "ADD" else _broadcast_shapes(rng, shape, 2)
    a, b = (g.input(s, "int16", scale=sc, zero_point=0) for s, sc in zip(shapes, scales))
    y = g.tensor(shape, "int16", scale=2.0 ** -k, zero_point=0)
    g.op(opcode, [a, b], [y], _act_options(rng, opcode))
    return [y]


def _plain_integers(opcode: str, types: tuple[str, ...]) -> Generator:
    """Plain integer arithmetic with a fused activation; constants of the whole range make it wrap."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(types))
        return _binary(rng, g, opcode, dtype, opts=_act_options(rng, opcode), divisor=opcode == "DIV")
    return generate


def _float32(opcode: str) -> Generator:
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        return _binary(rng, g, opcode, "float32", opts=_act_options(rng, opcode))
    return generate


def _quantized(opcode: str, types: tuple[str, ...], *, divisor: bool = False, with_options: bool = True) -> Generator:
    """A quantized binary operator (int16 with zero points 0, as TFLite requires)."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(types))
        opts = _act_options(rng, opcode) if with_options else None
        if divisor:
            return _quantized_divisor(rng, g, opcode, dtype, opts)
        return _binary(rng, g, opcode, dtype, quantized=True, opts=opts)
    return generate


def _quantized_divisor(rng: np.random.Generator, g: SubgraphBuilder, opcode: str, dtype: str, opts) -> list[int]:
    """Quantized DIV: a constant divisor none of whose values is its zero point."""
    shape = _shape(rng)
    shapes = _broadcast_shapes(rng, shape, 2)
    qa, qb, qy = _quant(rng, dtype), _quant(rng, dtype), _quant(rng, dtype)
    data = _values(rng, shapes[1], dtype, nonzero=True)
    other = qb["zero_point"] ^ 2 or 3                     # any nonzero value but the zero point
    data = np.where(data == qb["zero_point"], np.array(other, dtype), data).astype(dtype)
    a = g.input(shapes[0], dtype, **qa)
    b = g.const(data, dtype, **qb)
    y = g.tensor(shape, dtype, **qy)
    g.op(opcode, [a, b], [y], opts)
    return [y]


def _unparameterized(opcode: str, types: tuple[str, ...], *, divisor: tuple[str, ...] = (),
                     no_minus_one: tuple[str, ...] = (), quantized: bool = False) -> Generator:
    """An operator without options; divisors of the types in ``divisor`` are constants without zeros, and
    without -1 for the types in ``no_minus_one`` (where TFLite's result for the minimum divided by -1 is
    undefined: a trap, or what the compiler's vectorized code makes of it)."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(types))
        return _binary(rng, g, opcode, dtype, divisor=dtype in divisor, minus_one=dtype not in no_minus_one,
                       int16_zero_point=True, quantized=quantized and dtype in ("uint8", "int8", "int16"))
    return generate


#: Exponents for which TFLite's broadcasting POW multiplies (integers within 1e-5) and some for which it does not.
SCALAR_EXPONENTS = np.array([1, 2, 3, 4, 7, 9, 100, 2.999999, 0.5, 0, -2, 2.5, 1e10], np.float32)


def _power(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """POW: float32 or int32 (constant exponents from 0 to 7, large results leave int32), the exponent often
    a one-element tensor (TFLite then multiplies for integer exponents)."""
    dtype = str(rng.choice(["int32", "float32"]))
    shape = _shape(rng)
    if rng.random() < 0.4:
        scalars = [(), (1,), (1,) * len(shape)] if shape else [()]
        shapes = [shape, scalars[int(rng.integers(0, len(scalars)))]]
    else:
        shapes = _broadcast_shapes(rng, shape, 2)
    if dtype == "float32":
        b = (g.const(np.full(shapes[1], rng.choice(SCALAR_EXPONENTS), np.float32)) if rng.random() < 0.5
             else _operand(rng, g, shapes[1], dtype, {}, constant=0.3))
    else:
        b = g.const(rng.integers(0, 8, size=shapes[1]).astype(np.int32))
    y = g.tensor(shape, dtype)
    g.op("POW", [g.input(shapes[0], dtype), b], [y])
    return [y]


def _add_n(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = str(rng.choice(["int32", "float32"]))
    shape = _shape(rng)
    ins = [_operand(rng, g, shape, dtype, {}, constant=0.3) for _ in range(int(rng.integers(2, 6)))]
    y = g.tensor(shape, dtype)
    g.op("ADD_N", ins, [y])
    return [y]


def _comparison(opcode: str, types: tuple[str, ...], quantized: tuple[str, ...]) -> Generator:
    """A comparison of ``types``; those in ``quantized`` carry (differing) quantizations."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(types))
        return _binary(rng, g, opcode, dtype, quantized=dtype in quantized, out_dtype="bool", int16_zero_point=True)
    return generate


def _select(version: int) -> Generator:
    """SELECT (a condition shaped like the values, scalar, or over their first dimension) or SELECT_V2."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(["bool", *NUMBERS]))
        shape = _shape(rng)
        if version == 2:
            cond, xs, ys = _broadcast_shapes(rng, shape, 3)
        else:
            cond = [shape, (), shape[:1]][int(rng.integers(0, 3))]
            xs = ys = shape
        q = _quant(rng, dtype)
        c = _operand(rng, g, cond, "bool", {}, constant=0.2)
        x, y = _operand(rng, g, xs, dtype, q, constant=0.2), _operand(rng, g, ys, dtype, q, constant=0.2)
        out = g.tensor(shape, dtype, **q)
        g.op("SELECT" if version == 1 else "SELECT_V2", [c, x, y], [out])
        return [out]
    return generate


def _logical(opcode: str) -> Generator:
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        if opcode != "LOGICAL_NOT":
            return _binary(rng, g, opcode, "bool")
        shape = _shape(rng)
        y = g.tensor(shape, "bool")
        g.op(opcode, [g.input(shape, "bool")], [y])
        return [y]
    return generate


_ORDERINGS = ("LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL")

GENERATORS: dict[str, Generator] = {
    **{f"{op}_quantized": _quantized_add_sub(op) for op in ("ADD", "SUB")},
    "ADD_int": _plain_integers("ADD", ("int16", "int32", "int64")),
    "SUB_int": _plain_integers("SUB", ("int32", "int64")),
    "MUL_quantized": _quantized("MUL", ("uint8", "int8", "int16")),
    "MUL_int": _plain_integers("MUL", ("int16", "int32", "int64")),
    "DIV_quantized": _quantized("DIV", QUANTIZED, divisor=True),
    "DIV_int32": _plain_integers("DIV", ("int32",)),
    **{f"{op}_float32": _float32(op) for op in ("ADD", "SUB", "MUL", "DIV")},
    "FLOOR_DIV": _unparameterized("FLOOR_DIV", ("int8", "int16", "int32", "float32"),
                                  divisor=("int8", "int16", "int32", "float32"), no_minus_one=("int8", "int16")),
    "FLOOR_MOD": _unparameterized("FLOOR_MOD", ("int8", "int16", "int32", "int64", "float32"),
                                  divisor=("int8", "int16", "int32", "int64"), no_minus_one=("int32", "int64")),
    "SQUARED_DIFFERENCE_int8": _quantized("SQUARED_DIFFERENCE", ("int8",), with_options=False),
    "SQUARED_DIFFERENCE_plain": _unparameterized("SQUARED_DIFFERENCE", ("int32", "float32")),
    "MAXIMUM": _unparameterized("MAXIMUM", NUMBERS, quantized=True),
    "MINIMUM": _unparameterized("MINIMUM", NUMBERS, quantized=True),
    "POW": _power,
    "ADD_N": _add_n,
    **{f"{op}_quantized": _comparison(op, ("uint8", "int8", "int16"), ("uint8", "int8", "int16"))
       for op in ("EQUAL", "NOT_EQUAL")},
    "EQUAL_raw": _comparison("EQUAL", ("bool", "int16", "int32", "int64", "float32"), ()),
    "NOT_EQUAL_raw": _comparison("NOT_EQUAL", ("bool", "int32", "int64", "float32"), ()),
    **{f"{op}_quantized": _comparison(op, QUANTIZED, QUANTIZED) for op in _ORDERINGS},
    **{f"{op}_raw": _comparison(op, ("int16", "int32", "int64", "float32"), ("int16",)) for op in _ORDERINGS},
    "SELECT": _select(1),
    "SELECT_V2": _select(2),
    **{op: _logical(op) for op in ("LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT")},
}


test_python_kernels_match_tflite, test_c_kernels_match_python = kernel_tests(GENERATORS)


# -- refusals and run-time errors -------------------------------------------------------------------

def _one_op_graph(tmp_path: Path, build: Callable[[SubgraphBuilder], None]):
    m = ModelBuilder()
    build(m.main)
    path = tmp_path / "model.tflite"
    path.write_bytes(m.build())
    return load_tflite(path)


def _two_inputs(opcode: str, dtype: str, out_dtype: str | None = None, **q) -> Callable[[SubgraphBuilder], None]:
    def build(g: SubgraphBuilder) -> None:
        a, b = g.input((2, 3), dtype, **q), g.input((2, 3), dtype, **q)
        y = g.output(g.tensor((2, 3), out_dtype or dtype, **q))
        g.op(opcode, [a, b], [y])
    return build


@pytest.mark.parametrize("opcode, dtype, out_dtype, q, fragment", [
    ("ADD", "bool", None, {}, "no host kernel for these types"),
    ("SUB", "int16", None, {}, "no host kernel for these types"),
    ("DIV", "int16", None, {"scale": 0.5, "zero_point": 0}, "no host kernel for these types"),
    ("NOT_EQUAL", "int16", "bool", {}, "no host kernel for these types"),
    ("LESS", "bool", "bool", {}, "no host kernel for these types"),
    ("ADD", "int16", None, {"scale": 0.5, "zero_point": 3}, "zero point 0"),
])
def test_unsupported_types_are_refused_in_one_line(tmp_path, opcode, dtype, out_dtype, q, fragment):
    graph = _one_op_graph(tmp_path, _two_inputs(opcode, dtype, out_dtype, **q))
    with pytest.raises(UnsupportedError) as e:
        fold(graph, graph.ops[0])
    message = str(e.value)
    assert message.startswith(f"operator {graph.ops[0].name}:") and fragment in message and "\n" not in message


@pytest.mark.parametrize("opcode, dtype", [("FLOOR_DIV", "int32"), ("FLOOR_MOD", "int16"), ("DIV", "int32"),
                                           ("FLOOR_DIV", "float32")])
def test_a_zero_divisor_at_run_time_fails_in_python_and_c(tmp_path, opcode, dtype, c_npu_run, c_fake):
    """TFLite fails on it; the Python runtime raises an InputError and C npu-run exits 1, naming the step."""
    graph = _one_op_graph(tmp_path, _two_inputs(opcode, dtype))
    inputs = [np.ones((2, 3), dtype), np.array([[1, 2, 3], [4, 0, 6]], dtype)]
    with pytest.raises(InputError, match=f"^{opcode}: division by zero$"):
        run_graph_on_host(graph, inputs)
    (tmp_path / "c").mkdir()
    blob = compile_cpu((tmp_path / "model.tflite").read_bytes(), tmp_path / "c")
    assert f"step 0 (#0 {opcode}): {opcode}: division by zero" in c_failure(c_npu_run, fake_env(c_fake), blob,
                                                                           inputs, tmp_path)
