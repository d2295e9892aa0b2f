"""Scatters, diagonals, lookups and buckets on the host against TFLite's reference kernels.

One generator per operator and variant adds seeded random instances:
SCATTER_ND (every update type, indices addressing any number of leading
dimensions, many duplicates so that sums of several updates show their
order), SPARSE_TO_DENSE (every value type, int32 and int64 indices as a
scalar, a vector or a matrix, duplicates and disorder, validate_indices set
or not, a scalar or one value per index), MATRIX_DIAG, MATRIX_SET_DIAG (a
diagonal longer than needed too), EMBEDDING_LOOKUP (rows of every type copied;
int8 and uint8 weights turned into float32 with one scale or one per row),
BUCKETIZE (float32, int32 and int64 inputs, tied boundaries, values on the
boundaries) and ATAN2.  Indices that arrive at run time are computed from a
graph input with FLOOR_MOD, so that they stay inside the output.  The Python
runtime must equal TFLite bit for bit, the C runtime the Python runtime byte
for byte.  Chosen values complete them: signed zeros, infinities and NaN
through ATAN2, a lone -0 update and wrapping sums through SCATTER_ND, integers
that round as float32 against BUCKETIZE's boundaries, uint8 weights read as
int8 by the float EMBEDDING_LOOKUP.  Indices TFLite fails on fail the run
with a one-line error in Python and in C; models npuc cannot run (DENSIFY's
sparse constant among them) are refused at compile time, and blobs whose
tensors would take a C kernel outside them when it loads them.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pytest

from c_build import fake_env
from host_cases import (CASES, Generator, Refusals, check_chosen, compile_cpu, edited_blob_error, host_step,
                        kernel_tests, model_of, pick, refusal_tests, small_dims, tflite_outputs)
from model_builder import SubgraphBuilder, options
from ai_edge_litert import schema_py_generated as schema
from npuc import vipbin
from npuc.errors import UnsupportedError

SCATTER_TYPES = ("bool", "uint8", "int8", "int32", "int64", "float32")
SPARSE_TYPES = ("uint8", "int8", "int32", "int64", "float32")
DIAG_TYPES = ("uint8", "int8", "int16", "int32", "int64", "float32")
ALL = ("bool", "uint8", "int8", "int16", "int32", "int64", "float32")


# -- random pieces ------------------------------------------------------------------------------

def _in_range(g: SubgraphBuilder, shape: tuple[int, ...], dtype: str, dims: tuple[int, ...]) -> int:
    """A run-time integer tensor whose last axis holds components in [0, dims[k]): a graph input FLOOR_MOD dims."""
    x = g.input(shape, dtype)
    y = g.tensor(shape, dtype)
    divisor = np.array(dims, dtype) if shape else np.array(dims[0], dtype)
    g.op("FLOOR_MOD", [x, g.const(divisor)], [y])
    return y


def _components(rng: np.random.Generator, count: int, dims: tuple[int, ...]) -> np.ndarray:
    """``count`` random indices into ``dims`` (one row of components each), unordered, often repeated."""
    return np.stack([rng.integers(0, d, count) for d in dims], axis=-1).reshape(count, len(dims))


def _indices(rng: np.random.Generator, g: SubgraphBuilder, shape: tuple[int, ...], dtype: str,
             dims: tuple[int, ...]) -> int:
    """Indices of ``shape`` (components last) into ``dims``: at run time (60 %) or constant."""
    if rng.random() < 0.6 and math.prod(shape):
        return _in_range(g, shape, dtype, dims)
    return g.const(_components(rng, math.prod(shape[:-1]), dims).reshape(shape).astype(dtype))


# -- SCATTER_ND and SPARSE_TO_DENSE -------------------------------------------------------------

def _scatter_nd(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """Updates of any type at indices addressing 1 to all of the output's dimensions; many slices."""
    dtype = pick(rng, SCATTER_TYPES)
    shape = small_dims(rng, int(rng.integers(1, 5)))
    k = int(rng.integers(1, len(shape) + 1))
    outer = small_dims(rng, int(rng.integers(1, 3)), 6)
    indices = _indices(rng, g, outer + (k,), "int32", shape[:k])
    y = g.tensor(shape, dtype)
    g.op("SCATTER_ND", [indices, g.input(outer + shape[k:], dtype), g.const(np.array(shape, np.int32))], [y])
    return [y]


def _sparse_to_dense(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """One index, a vector of them or a matrix [n, rank]; one value or one per index; any default."""
    dtype, index_type = pick(rng, SPARSE_TYPES), pick(rng, ("int32", "int64"))
    form = pick(rng, ("scalar", "vector", "matrix"))
    shape = small_dims(rng, int(rng.integers(1, 5)) if form == "matrix" else 1, 5)
    count = 1 if form == "scalar" else int(rng.integers(0, 8))
    index_shape = {"scalar": (), "vector": (count,), "matrix": (count, len(shape))}[form]
    if form == "matrix":
        indices = _indices(rng, g, index_shape, index_type, shape)
    elif rng.random() < 0.5 and count:
        indices = _in_range(g, index_shape, index_type, shape)
    else:
        indices = g.const(rng.integers(0, shape[0], index_shape).astype(index_type))
    one = rng.random() < 0.3
    values = g.input(() if one else (count,), dtype) if rng.random() < 0.7 else \
        g.const(rng.integers(-100, 100, () if one else (count,)).astype(dtype))
    default = g.input((), dtype) if rng.random() < 0.5 else g.const(np.array(rng.integers(-5, 5)).astype(dtype))
    y = g.tensor(shape, dtype)
    g.op("SPARSE_TO_DENSE", [indices, g.const(np.array(shape, index_type)), values, default], [y],
         options("SparseToDenseOptions", validateIndices=bool(rng.random() < 0.5)))
    return [y]


# -- MATRIX_DIAG and MATRIX_SET_DIAG ------------------------------------------------------------

def _matrix_diag(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, DIAG_TYPES)
    shape = small_dims(rng, int(rng.integers(1, 5)), 5)
    y = g.tensor(shape + shape[-1:], dtype)
    g.op("MATRIX_DIAG", [g.input(shape, dtype)], [y])
    return [y]


def _matrix_set_diag(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """Matrices of any proportions; the diagonal shaped as TensorFlow makes it, or flat with values to spare."""
    dtype = pick(rng, DIAG_TYPES)
    shape = small_dims(rng, int(rng.integers(2, 6)), 5)
    need = shape[:-2] + (min(shape[-2:]),)
    diagonal = need if rng.random() < 0.7 else (math.prod(need) + int(rng.integers(0, 4)),)
    y = g.tensor(shape, dtype)
    g.op("MATRIX_SET_DIAG", [g.input(shape, dtype), g.input(diagonal, dtype)], [y])
    return [y]


# -- EMBEDDING_LOOKUP ---------------------------------------------------------------------------

def _ids(rng: np.random.Generator, g: SubgraphBuilder, rows: int) -> int:
    n = int(rng.integers(1, 8))
    return _in_range(g, (n,), "int32", (rows,)) if rng.random() < 0.6 else \
        g.const(rng.integers(0, rows, n).astype(np.int32))


def _embedding_lookup(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """Rows of any type copied, from a constant or a graph input (8-bit ones quantized or not)."""
    dtype = pick(rng, ALL)
    rows, inner = int(rng.integers(1, 9)), small_dims(rng, int(rng.integers(1, 4)))
    quant = {"scale": 0.05, "zero_point": int(rng.integers(-3, 4))} if dtype == "int8" and rng.random() < 0.5 else {}
    if rng.random() < 0.5:
        value = g.input((rows,) + inner, dtype, **quant)
    else:
        value = g.const(rng.integers(-100, 100, (rows,) + inner).astype(dtype), **quant)
    ids = _ids(rng, g, rows)
    y = g.tensor(tuple(g.sg.tensors[ids].shape) + inner, dtype, **quant)
    g.op("EMBEDDING_LOOKUP", [ids, value], [y])
    return [y]


def _embedding_lookup_float(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """int8 or uint8 weights (constant or not) with one scale or one per row, zero points 0; a float32 output."""
    dtype = pick(rng, ("int8", "uint8"))
    rows, inner = int(rng.integers(1, 9)), small_dims(rng, int(rng.integers(1, 3)), 6)
    scales = np.exp(rng.uniform(-6, 1, rows if rng.random() < 0.5 else 1)).astype(np.float32)
    quant = {"scale": list(scales), "zero_point": [0] * scales.size}
    if rng.random() < 0.5:
        value = g.input((rows,) + inner, dtype, **quant)
    else:
        value = g.const(rng.integers(0, 256, (rows,) + inner).astype(np.uint8).view(dtype), **quant)
    ids = _ids(rng, g, rows)
    y = g.tensor(tuple(g.sg.tensors[ids].shape) + inner, "float32")
    g.op("EMBEDDING_LOOKUP", [ids, value], [y])
    return [y]


# -- BUCKETIZE and ATAN2 ------------------------------------------------------------------------

def _bucketize(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """Sorted boundaries with ties; float inputs floored half the time, so that they fall on integer boundaries."""
    dtype = pick(rng, ("float32", "int32", "int64"))
    shape = small_dims(rng, int(rng.integers(0, 4)), 5)
    spread = 4.0 if dtype == "float32" else 1200.0
    boundaries = np.sort(rng.uniform(-spread, spread, int(rng.integers(0, 9))).astype(np.float32))
    if rng.random() < 0.5:
        boundaries = np.floor(boundaries)
    x = g.input(shape, dtype)
    if dtype == "float32" and rng.random() < 0.5:
        x2 = g.tensor(shape, dtype)
        g.op("FLOOR", [x], [x2])
        x = x2
    y = g.tensor(shape, "int32")
    g.op("BUCKETIZE", [x], [y], options("BucketizeOptions", boundaries=[float(b) for b in boundaries]))
    return [y]


def _atan2(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """y and x of one shape, or of one rank and element count (TFLite walks both flat)."""
    shape = small_dims(rng, int(rng.integers(0, 5)), 5)
    other = shape[::-1] if rng.random() < 0.3 else shape
    y = g.tensor(shape, "float32")
    g.op("ATAN2", [g.input(shape, "float32"), g.input(other, "float32")], [y])
    return [y]


GENERATORS: dict[str, Generator] = {
    "SCATTER_ND": _scatter_nd,
    "SPARSE_TO_DENSE": _sparse_to_dense,
    "MATRIX_DIAG": _matrix_diag,
    "MATRIX_SET_DIAG": _matrix_set_diag,
    "EMBEDDING_LOOKUP": _embedding_lookup,
    "EMBEDDING_LOOKUP_float": _embedding_lookup_float,
    "BUCKETIZE": _bucketize,
    "ATAN2": _atan2,
}

test_python_kernels_match_tflite, test_c_kernels_match_python = kernel_tests(GENERATORS)


# -- chosen values ----------------------------------------------------------------------------------

_NAN, _INF = np.float32(np.nan), np.float32(np.inf)
_TINY = np.float32(1e-45)
#: Every pair of these: signed zeros, infinities, NaN, the smallest subnormal, the largest finite, ordinary values.
_SPECIALS = np.array([0.0, -0.0, _INF, -_INF, _NAN, _TINY, -_TINY, 3.4e38, -3.4e38, 1.0, -1.0, 0.5, 1e-30],
                     dtype=np.float32)
_Y, _X = (a.reshape(-1) for a in np.meshgrid(_SPECIALS, _SPECIALS, indexing="ij"))


def _atan2_specials(g: SubgraphBuilder) -> list[int]:
    y = g.tensor(_Y.shape, "float32")
    g.op("ATAN2", [g.input(_Y.shape, "float32"), g.input(_X.shape, "float32")], [y])
    return [y]


def test_atan2_special_values_match_tflite(tmp_path, c_npu_run, c_fake):
    check_chosen(model_of(_atan2_specials), [_Y, _X], tmp_path, c_npu_run, fake_env(c_fake))


#: Updates to positions 0 (a lone -0, which the sum from +0 turns into +0), 1 (cancelling, then tiny), 2 (three
#: large values whose order shows in the rounding).
_FLOAT_UPDATES = np.array([-0.0, 1e30, -1e30, 1e-30, 3.0e38, 3.0e38, -3.0e38, 0.1, 0.2, 0.3], np.float32)
_FLOAT_AT = np.array([[0], [1], [1], [1], [2], [2], [2], [3], [3], [3]], np.int32)


def _scatter_specials(g: SubgraphBuilder) -> list[int]:
    """Float sums in update order, int8 sums that wrap, bools that or."""
    outs = [g.tensor((4,), "float32"), g.tensor((2,), "int8"), g.tensor((3,), "bool")]
    g.op("SCATTER_ND", [g.input(_FLOAT_AT.shape, "int32"), g.input(_FLOAT_UPDATES.shape, "float32"),
                        g.const(np.array([4], np.int32))], outs[:1])
    g.op("SCATTER_ND", [g.const(np.array([[0], [0], [1], [0]], np.int32)), g.input((4,), "int8"),
                        g.const(np.array([2], np.int32))], outs[1:2])
    g.op("SCATTER_ND", [g.const(np.array([[1], [1], [2]], np.int32)), g.input((3,), "bool"),
                        g.const(np.array([3], np.int32))], outs[2:])
    return outs


def test_scatter_nd_sums_match_tflite(tmp_path, c_npu_run, c_fake):
    inputs = [_FLOAT_AT, _FLOAT_UPDATES, np.array([100, 100, -128, 90], np.int8), np.array([True, True, False])]
    check_chosen(model_of(_scatter_specials), inputs, tmp_path, c_npu_run, fake_env(c_fake))


#: int32 and int64 values that round (to nearest even) onto or past a float32 boundary, NaN and infinities.
_BOUNDARIES = [-1.0, -0.0, 16777220.0, float((1 << 60) + (1 << 37))]
_INTS32 = np.array([16777219, 16777218, 16777221, 16777223, -1, 0, -2, 2147483647], np.int32)
_INTS64 = np.array([(1 << 60) + (1 << 36) + 1, (1 << 60) + (1 << 36), 16777219, 0, -1, -(1 << 62), 1 << 62,
                    (1 << 60) + (1 << 37)], np.int64)
_FLOATS = np.array([_NAN, -_INF, _INF, -0.0, 0.0, -1.0, 16777220.0, -1e-45], np.float32)


def _bucketize_specials(g: SubgraphBuilder) -> list[int]:
    outs = []
    for dtype in ("int32", "int64", "float32"):
        outs.append(g.tensor((8,), "int32"))
        g.op("BUCKETIZE", [g.input((8,), dtype)], outs[-1:], options("BucketizeOptions", boundaries=_BOUNDARIES))
    return outs


def test_bucketize_compares_as_float32_like_tflite(tmp_path, c_npu_run, c_fake):
    check_chosen(model_of(_bucketize_specials), [_INTS32, _INTS64, _FLOATS], tmp_path, c_npu_run, fake_env(c_fake))


def _lookups_and_dense(g: SubgraphBuilder) -> list[int]:
    """uint8 weights at and past 128 (read as int8), per-row scales; SPARSE_TO_DENSE's duplicates and disorder
    with validate_indices set; a scalar index; SCATTER_ND indices addressing no dimension (every update lands on
    the whole output)."""
    weights = np.array([[0, 127, 128, 255], [1, 200, 64, 129], [255, 254, 2, 3]], np.uint8)
    outs = [g.tensor((4, 4), "float32"), g.tensor((4, 4), "float32"), g.tensor((3, 3), "int64"),
            g.tensor((5,), "uint8"), g.tensor((2, 2), "float32")]
    ids = g.input((4,), "int32")
    g.op("EMBEDDING_LOOKUP", [ids, g.const(weights, scale=0.25, zero_point=0)], outs[:1])
    g.op("EMBEDDING_LOOKUP", [ids, g.const(weights.view(np.int8), scale=[0.5, 1e-3, 3.0], zero_point=[0, 0, 0])],
         outs[1:2])
    g.op("SPARSE_TO_DENSE", [g.const(np.array([[2, 2], [0, 1], [2, 2], [1, 0], [0, 1]], np.int64)),
                             g.const(np.array([3, 3], np.int64)), g.input((5,), "int64"),
                             g.const(np.array(-7, np.int64))], outs[2:3],
         options("SparseToDenseOptions", validateIndices=True))
    g.op("SPARSE_TO_DENSE", [g.const(np.array(3, np.int32)), g.const(np.array([5], np.int32)),
                             g.const(np.array(200, np.uint8)), g.const(np.array(9, np.uint8))], outs[3:4])
    g.op("SCATTER_ND", [g.const(np.zeros((3, 0), np.int32)), g.input((3, 2, 2), "float32"),
                        g.const(np.array([2, 2], np.int32))], outs[4:])
    return outs


def test_lookups_and_dense_writes_match_tflite(tmp_path, c_npu_run, c_fake):
    inputs = [np.array([2, 0, 1, 2], np.int32), np.array([1, 2, 3, 4, 5], np.int64),
              np.arange(12, dtype=np.float32).reshape(3, 2, 2) - 5.5]
    check_chosen(model_of(_lookups_and_dense), inputs, tmp_path, c_npu_run, fake_env(c_fake))


# -- indices TFLite fails on ----------------------------------------------------------------------

def _scatter_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((3, 4), "float32")
    g.op("SCATTER_ND", [g.input((2, 2), "int32"), g.input((2,), "float32"), g.const(np.array([3, 4], np.int32))], [y])
    return [y]


def _sparse_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((3, 4), "int32")
    g.op("SPARSE_TO_DENSE", [g.input((2, 2), "int64"), g.const(np.array([3, 4], np.int64)), g.input((2,), "int32"),
                             g.const(np.array(0, np.int32))], [y])
    return [y]


def _lookup_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((3, 2), "float32")
    g.op("EMBEDDING_LOOKUP", [g.input((3,), "int32"), g.input((4, 2), "float32")], [y])
    return [y]


_ROWS = np.zeros((4, 2), np.float32)
#: Models, inputs TFLite fails on, and what both runtimes' one-line errors say.  [0, 5] lies inside the 3x4
#: output when flattened, yet outside its dimension; int64 indices are not cut to int32.
_REFUSED: Refusals = {
    "SCATTER_ND": (_scatter_model, [np.array([[1, 1], [0, 5]], np.int32), np.ones(2, np.float32)],
                   "index 5 is outside dimension 1 of size 4"),
    "SPARSE_TO_DENSE": (_sparse_model, [np.array([[0, 1], [0, (1 << 32) + 1]], np.int64), np.ones(2, np.int32)],
                        f"index {(1 << 32) + 1} is outside dimension 1 of size 4"),
    "EMBEDDING_LOOKUP": (_lookup_model, [np.array([0, -1, 9], np.int32), _ROWS],
                         "index -1 is outside dimension 0 of size 4"),
}


(test_values_tflite_refuses_are_an_input_error_in_python,
 test_values_tflite_refuses_fail_the_c_run_with_one_line) = refusal_tests(_REFUSED, tflite_raises=True)


# -- models npuc refuses ------------------------------------------------------------------------------

def _scatter_shape_at_run_time(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((3,), "float32")
    g.op("SCATTER_ND", [g.const(np.array([[1]], np.int32)), g.input((1,), "float32"), g.input((1,), "int32")], [y])
    return [y]


def _scatter_int64_indices(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((3,), "float32")
    g.op("SCATTER_ND", [g.const(np.array([[1]], np.int64)), g.input((1,), "float32"),
                        g.const(np.array([3], np.int64))], [y])
    return [y]


def _scatter_constant_outside(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((3,), "int32")
    g.op("SCATTER_ND", [g.const(np.array([[3]], np.int32)), g.input((1,), "int32"),
                        g.const(np.array([3], np.int32))], [y])
    return [y]


def _sparse_five_dimensions(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((1, 1, 1, 1, 2), "float32")
    g.op("SPARSE_TO_DENSE", [g.const(np.zeros((1, 5), np.int32)), g.const(np.array([1, 1, 1, 1, 2], np.int32)),
                             g.input((1,), "float32"), g.const(np.array(0, np.float32))], [y])
    return [y]


def _diag_bool(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2, 2), "bool")
    g.op("MATRIX_DIAG", [g.input((2,), "bool")], [y])
    return [y]


def _short_diagonal(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2, 3, 3), "float32")
    g.op("MATRIX_SET_DIAG", [g.input((2, 3, 3), "float32"), g.input((5,), "float32")], [y])
    return [y]


def _lookup_zero_point(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((1, 2), "float32")
    g.op("EMBEDDING_LOOKUP", [g.input((1,), "int32"), g.const(np.ones((3, 2), np.int8), scale=0.5, zero_point=1)],
         [y])
    return [y]


def _lookup_int16_to_float(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((1, 2), "float32")
    g.op("EMBEDDING_LOOKUP", [g.input((1,), "int32"), g.const(np.ones((3, 2), np.int16), scale=0.5, zero_point=0)],
         [y])
    return [y]


def _unsorted_boundaries(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2,), "int32")
    g.op("BUCKETIZE", [g.input((2,), "float32")], [y], options("BucketizeOptions", boundaries=[1.0, 0.0]))
    return [y]


def _infinite_boundary(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2,), "int32")
    g.op("BUCKETIZE", [g.input((2,), "float32")], [y], options("BucketizeOptions", boundaries=[0.0, float("inf")]))
    return [y]


def _atan2_sizes(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2, 3), "float32")
    g.op("ATAN2", [g.input((2, 3), "float32"), g.input((2, 2), "float32")], [y])
    return [y]


def _densify(g: SubgraphBuilder) -> list[int]:
    """A 2x2 constant stored as CSR (dimension 0 dense, dimension 1 sparse), densified."""
    x = g.const(np.array([3.0, 4.0], np.float32))
    sparsity = schema.SparsityParametersT()
    sparsity.traversalOrder, sparsity.blockMap = [0, 1], []
    dense, sparse = schema.DimensionMetadataT(), schema.DimensionMetadataT()
    dense.format, dense.denseSize = schema.DimensionType.DENSE, 2
    sparse.format = schema.DimensionType.SPARSE_CSR
    sparse.arraySegmentsType, sparse.arrayIndicesType = schema.SparseIndexVector.Int32Vector, \
        schema.SparseIndexVector.Int32Vector
    sparse.arraySegments, sparse.arrayIndices = schema.Int32VectorT(), schema.Int32VectorT()
    sparse.arraySegments.values, sparse.arrayIndices.values = [0, 1, 2], [1, 0]
    sparsity.dimMetadata = [dense, sparse]
    g.sg.tensors[x].shape, g.sg.tensors[x].sparsity = [2, 2], sparsity
    y = g.tensor((2, 2), "float32")
    g.op("DENSIFY", [x], [y])
    z = g.tensor((2, 2), "float32")
    g.op("ADD", [g.input((2, 2), "float32"), y], [z], options("AddOptions"))
    return [z]


@pytest.mark.parametrize("build, fragment", [
    (_scatter_shape_at_run_time, "must be a constant: it decides the output shape"),
    (_scatter_int64_indices, "has type int64; the host kernel takes int32"),
    (_scatter_constant_outside, "index 3 is outside dimension 0 of size 3, which TFLite refuses"),
    (_sparse_five_dimensions, "for at most 4 dimensions"),
    (_diag_bool, "no host kernel for these types"),
    (_short_diagonal, "fewer than the 6 values TFLite reads"),
    (_lookup_zero_point, "non-zero zero point"),
    (_lookup_int16_to_float, "turns uint8/int8 weights into float32"),
    (_unsorted_boundaries, "are not sorted, which TFLite refuses"),
    (_infinite_boundary, "are not all finite"),
    (_atan2_sizes, "must have one rank and one element count"),
    (_densify, "is stored sparse, which npuc does not support"),
])
def test_instances_npuc_cannot_run_are_refused_in_one_line(build, fragment, tmp_path):
    with pytest.raises(UnsupportedError, match=fragment) as e:
        compile_cpu(model_of(build), tmp_path)
    assert "\n" not in str(e.value)


def test_densify_of_a_sparse_constant_runs_in_tflite():
    """What npuc refuses above is a model TFLite runs: the refusal is npuc's (its reader has no sparse tensors)."""
    x = np.array([[1, 2], [3, 4]], np.float32)
    (got,) = tflite_outputs(model_of(_densify), [x])
    assert np.array_equal(got, x + np.array([[0, 3], [4, 0]], np.float32))


# -- hostile blobs ---------------------------------------------------------------------------------

def _all_kinds(g: SubgraphBuilder) -> list[int]:
    """One instance of each kernel, with tensors a hostile blob can swap around."""
    outs = [g.tensor((3, 4), "float32"), g.tensor((3, 4), "int32"), g.tensor((2, 3, 3), "float32"),
            g.tensor((3, 4), "float32"), g.tensor((3, 2), "float32"), g.tensor((4,), "int32"),
            g.tensor((2, 3), "float32")]
    g.op("SCATTER_ND", [g.input((2, 2), "int32"), g.input((2,), "float32"), g.const(np.array([3, 4], np.int32))],
         outs[:1])
    g.op("SPARSE_TO_DENSE", [g.input((2, 2), "int32"), g.const(np.array([3, 4], np.int32)), g.input((2,), "int32"),
                             g.const(np.array(0, np.int32))], outs[1:2])
    g.op("MATRIX_DIAG", [g.input((2, 3), "float32")], outs[2:3])
    g.op("MATRIX_SET_DIAG", [g.input((3, 4), "float32"), g.input((3,), "float32")], outs[3:4])
    g.op("EMBEDDING_LOOKUP", [g.input((3,), "int32"), g.const(np.ones((4, 2), np.int8), scale=[1, 2, 3, 4],
                                                                zero_point=[0, 0, 0, 0])], outs[4:5])
    g.op("BUCKETIZE", [g.input((4,), "float32")], outs[5:6], options("BucketizeOptions", boundaries=[0.0]))
    g.op("ATAN2", [g.input((2, 3), "float32"), g.input((2, 3), "float32")], outs[6:])
    return outs


def _swap(kernel: str, k: int, other: str, j: int, output: bool = False) -> Callable[[vipbin.Blob], None]:
    """An edit: tensor k of ``kernel``'s step (input, or output) becomes input j of ``other``'s step."""
    def edit(blob: vipbin.Blob) -> None:
        step = host_step(blob, kernel)
        (step.outputs if output else step.inputs)[k] = host_step(blob, other).inputs[j]
    return edit


def _set_param(kernel: str, name: str, value: np.ndarray) -> Callable[[vipbin.Blob], None]:
    def edit(blob: vipbin.Blob) -> None:
        host_step(blob, kernel).params[name] = value
    return edit


@pytest.mark.parametrize("change, fragment", [
    (_swap("SCATTER_ND", 1, "ATAN2", 0), "SCATTER_ND has indices 't"),
    (_swap("SCATTER_ND", 0, "SPARSE_TO_DENSE", 2), "do not fit output"),
    (_swap("SPARSE_TO_DENSE", 2, "SCATTER_ND", 0), "that do not fit output"),
    (_swap("SPARSE_TO_DENSE", 3, "ATAN2", 0), "cannot take tensor"),
    (_swap("SPARSE_TO_DENSE", 0, "ATAN2", 0), "cannot take tensor"),
    (_swap("MATRIX_DIAG", 0, "ATAN2", 0, output=True), "not the square matrices"),
    (_swap("MATRIX_SET_DIAG", 1, "SCATTER_ND", 1), "of fewer than 3 values"),
    (_swap("EMBEDDING_LOOKUP", 0, "MATRIX_SET_DIAG", 1), "cannot take tensor"),
    (_set_param("EMBEDDING_LOOKUP", "scales", np.ones(3, np.float32)), "needs one scale or one per row"),
    (_set_param("EMBEDDING_LOOKUP", "scales", np.ones(0, np.float32)), "needs one scale or one per row"),
    (_swap("BUCKETIZE", 0, "ATAN2", 0, output=True), "cannot take tensor"),
    (_swap("ATAN2", 1, "MATRIX_SET_DIAG", 1), "needs y, x and output of one size"),
])
def test_c_runtime_refuses_steps_whose_tensors_do_not_fit(change, fragment, tmp_path, c_npu_run):
    """The blob's tensors and parameters are checked when it is loaded, before any kernel could index past them."""
    err = edited_blob_error(c_npu_run, compile_cpu(model_of(_all_kinds), tmp_path), change, tmp_path)
    assert fragment in err, err


def test_every_case_count_is_dozens():
    assert CASES >= 24
