"""Sequences, selections, segments, bits and NMS on the host against TFLite's reference kernels.

One generator per operator and variant adds seeded random instances: RANGE,
BROADCAST_ARGS, CUMSUM (exclusive, reverse), ONE_HOT (every output type, an
axis anywhere), TOPK_V2 (ties from floored floats, rows with NaN from square
roots of negatives), REVERSE_SEQUENCE, DYNAMIC_UPDATE_SLICE (start indices
clamped), SEGMENT_SUM, UNSORTED_SEGMENT_SUM/MAX/MIN/PROD, RIGHT_SHIFT,
BITWISE_XOR, NON_MAX_SUPPRESSION_V4 and V5 (tied scores, thresholds at run
time, soft NMS).  Operands that would take random graph inputs out of the
range TFLite accepts (indices, lengths, segment ids) are computed from a graph
input with FLOOR_MOD, so that they still arrive at run time.  RANGE and
constant BROADCAST_ARGS write graph outputs, which constant folding leaves to
the blob.  The Python runtime must equal TFLite bit for bit, the C runtime the
Python runtime byte for byte.  SEGMENT_SUM is not among TFLite's reference
kernels: it is checked against its builtin kernel.  Chosen values complete
them: NaN, infinities and signed zeros through TOPK_V2, CUMSUM and the segment
reductions; boxes that coincide, lack area or hold NaN, tied scores and odd
thresholds through NMS; int64 values beyond int32 where TFLite reads a C int.
Values TFLite refuses when it runs fail the run with a one-line error in
Python and in C; models npuc cannot run are refused at compile time, and
blobs whose parameters would take a C kernel outside its tensors when loaded.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

from c_build import fake_env
from host_cases import (CASES, Generator, Refusals, check_chosen, compile_cpu, edited_blob_error, host_step,
                        kernel_tests, model_of, pick, refusal_tests, small_dims)
from model_builder import SubgraphBuilder, options
from npuc import vipbin
from npuc.errors import UnsupportedError

ALL = ("bool", "uint8", "int8", "int16", "int32", "int64", "float32")
INTEGER_INDICES = ("int32", "int64")


# -- random pieces ------------------------------------------------------------------------------

def _modulo(g: SubgraphBuilder, shape: tuple[int, ...], dtype: str, modulus: int, offset: int = 0) -> int:
    """A run-time integer tensor with values in [offset, offset + modulus): a graph input FLOOR_MOD modulus, plus
    offset."""
    x = g.input(shape, dtype)
    y = g.tensor(shape, dtype)
    g.op("FLOOR_MOD", [x, g.const(np.array(modulus, dtype))], [y])
    if not offset:
        return y
    z = g.tensor(shape, dtype)
    g.op("ADD", [y, g.const(np.array(offset, dtype))], [z], options("AddOptions"))
    return z


def _float_from(g: SubgraphBuilder, shape: tuple[int, ...], opcode: str) -> int:
    """A float32 graph input passed through a unary operator (FLOOR: ties; SQRT: NaN for negatives)."""
    y = g.tensor(shape, "float32")
    g.op(opcode, [g.input(shape, "float32")], [y])
    return y


# -- RANGE, BROADCAST_ARGS, CUMSUM ----------------------------------------------------------------

def _range_operands(rng: np.random.Generator, dtype: str) -> tuple[Any, Any, Any, int]:
    """start, limit, delta (limit on delta's side of start) and the count TFLite's GetSize gives them."""
    if dtype == "float32":
        start, delta = np.float32(rng.uniform(-5, 5)), np.float32(rng.uniform(0.05, 1.5) * pick(rng, (-1, 1)))
        limit = np.float32(start + delta * np.float32(rng.uniform(0.5, 30)))
        return start, limit, delta, int(np.ceil(np.abs((limit - start) / delta)))
    start, delta = int(rng.integers(-50, 50)), int(rng.integers(1, 6)) * pick(rng, (-1, 1))
    limit = start + int(np.sign(delta)) * int(rng.integers(1, 60))
    return start, limit, delta, (abs(limit - start) + abs(delta) - 1) // abs(delta)


def _range(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ("int32", "int64", "float32"))
    start, limit, delta, count = _range_operands(rng, dtype)
    y = g.tensor((count,), dtype)
    g.op("RANGE", [g.const(np.array(v, dtype)) for v in (start, limit, delta)], [y])
    return [y]


def _broadcast_args(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """Two constant shapes (written to a graph output), a graph input and ones, or one graph input twice."""
    dtype = pick(rng, INTEGER_INDICES)
    n, m = int(rng.integers(1, 5)), int(rng.integers(0, 5))
    kind = pick(rng, ("constants", "input", "same"))
    if kind == "constants":
        full = small_dims(rng, max(n, m), 5)
        shapes = [g.const(np.array([1 if rng.random() < 0.4 else d for d in full[len(full) - k:]], dtype))
                  for k in (n, m)]
    elif kind == "input":
        shapes = [g.input((n,), dtype), g.const(np.ones(m, dtype))]
    else:
        shapes, m = [g.input((n,), dtype)] * 2, n
    if rng.random() < 0.5:
        shapes.reverse()
    y = g.tensor((max(n, m),), dtype)
    g.op("BROADCAST_ARGS", shapes, [y])
    return [y]


def _cumsum(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ("int32", "int64", "float32"))
    shape = small_dims(rng, int(rng.integers(1, 7)), 5)
    axis = int(rng.integers(-len(shape), len(shape)))
    y = g.tensor(shape, dtype)
    g.op("CUMSUM", [g.input(shape, dtype), g.const(np.array(axis, np.int32))], [y],
         options("CumsumOptions", exclusive=bool(rng.random() < 0.5), reverse=bool(rng.random() < 0.5)))
    return [y]


# -- ONE_HOT, TOPK_V2 ---------------------------------------------------------------------------

def _one_hot(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """Indices in [-1, depth] (at run time, or constant with run-time on and off values)."""
    dtype = pick(rng, ("bool", "uint8", "int8", "int32", "int64", "float32"))
    index_type = pick(rng, INTEGER_INDICES)
    shape = small_dims(rng, int(rng.integers(0, 4)))
    depth = int(rng.integers(0, 6))
    axis = int(rng.integers(-1, len(shape) + 1))
    if rng.random() < 0.6:
        indices = _modulo(g, shape, index_type, depth + 2, -1)
        on, off = (g.const(np.array(v).astype(dtype)) for v in rng.integers(-3, 4, 2))
    else:
        indices = g.const(rng.integers(-1, depth + 1, shape).astype(index_type))
        on, off = g.input((), dtype), g.input((1,), dtype)
    where = len(shape) if axis == -1 else axis
    y = g.tensor(shape[:where] + (depth,) + shape[where:], dtype)
    g.op("ONE_HOT", [indices, g.const(np.array(depth, np.int32)), on, off], [y], options("OneHotOptions", axis=axis))
    return [y]


def _topk(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """Any input type; float rows with ties (floored) or NaN (square roots of negatives), each about a third of
    the time."""
    dtype = pick(rng, ("uint8", "int8", "int16", "int32", "int64", "float32"))
    shape = small_dims(rng, int(rng.integers(1, 4)))[:-1] + (int(rng.integers(1, 24)),)
    k = int(rng.integers(0, shape[-1] + 1))
    if dtype == "float32" and rng.random() < 0.7:
        x = _float_from(g, shape, pick(rng, ("FLOOR", "SQRT")))
    else:
        x = g.input(shape, dtype)
    values, indices = g.tensor(shape[:-1] + (k,), dtype), g.tensor(shape[:-1] + (k,), "int32")
    g.op("TOPK_V2", [x, g.const(np.array(k, np.int32))], [values, indices])
    return [values, indices]


# -- REVERSE_SEQUENCE, DYNAMIC_UPDATE_SLICE ----------------------------------------------------------

def _reverse_sequence(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """Lengths in [0, size] (constant, some negative, or at run time)."""
    dtype = pick(rng, ("uint8", "int16", "int32", "int64", "float32"))
    shape = small_dims(rng, int(rng.integers(2, 6)), 5)
    seq_dim, batch_dim = (int(v) for v in rng.choice(len(shape), 2, replace=False))
    length_type = pick(rng, INTEGER_INDICES)
    size, batches = shape[seq_dim], shape[batch_dim]
    if rng.random() < 0.5:
        lengths = _modulo(g, (batches,), length_type, size + 1)
    else:
        values = rng.integers(-2, size + 1, batches)
        values[0] = max(values[0], 0) if rng.random() < 0.5 else values[0]
        lengths = g.const(values.astype(length_type))
    y = g.tensor(shape, dtype)
    g.op("REVERSE_SEQUENCE", [g.input(shape, dtype), lengths], [y],
         options("ReverseSequenceOptions", seqDim=seq_dim, batchDim=batch_dim))
    return [y]


def _dynamic_update_slice(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    """Start indices from graph inputs (mostly clamped), within [-2, dim + 2) at run time, or constant."""
    dtype = pick(rng, ALL)
    shape = small_dims(rng, int(rng.integers(1, 6)), 5)
    update = tuple(int(rng.integers(0, d + 1)) if rng.random() < 0.8 else d for d in shape)
    index_type = pick(rng, INTEGER_INDICES)
    kind = pick(rng, ("input", "modulo", "constant"))
    rank = (len(shape),)
    if kind == "input":
        starts = g.input(rank, index_type)
    elif kind == "modulo":
        starts = _modulo(g, rank, index_type, max(shape) + 4, -2)
    else:
        starts = g.const(np.array([rng.integers(-2, d + 3) for d in shape], index_type).reshape(rank))
    y = g.tensor(shape, dtype)
    g.op("DYNAMIC_UPDATE_SLICE", [g.input(shape, dtype), g.input(update, dtype), starts], [y])
    return [y]


# -- segment reductions --------------------------------------------------------------------------

def _unsorted_segment(opcode: str) -> Generator:
    """Segment ids over the data's leading axes in [-1, segments) (constant or at run time)."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = pick(rng, ("int32", "float32"))
        shape = small_dims(rng, int(rng.integers(1, 5)))
        ids_shape = shape[:int(rng.integers(1, len(shape) + 1))]
        segments = int(rng.integers(1, 6))
        if rng.random() < 0.5:
            ids = _modulo(g, ids_shape, "int32", segments + 1, -1)
        else:
            ids = g.const(rng.integers(-1, segments, ids_shape).astype(np.int32))
        count = g.const(np.array(segments if rng.random() < 0.7 else [segments], np.int32))
        y = g.tensor((segments,) + shape[len(ids_shape):], dtype)
        g.op(opcode, [g.input(shape, dtype), ids, count], [y])
        return [y]
    return generate


def _segment_sum(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ("int32", "float32"))
    shape = small_dims(rng, int(rng.integers(1, 5)), 6)
    ids = np.cumsum(rng.random(shape[0]) < 0.5) - 1
    ids -= ids[0]
    y = g.tensor((int(ids[-1]) + 1,) + shape[1:], dtype)
    g.op("SEGMENT_SUM", [g.input(shape, dtype), g.const(ids.astype(np.int32))], [y])
    return [y]


# -- bitwise operators ---------------------------------------------------------------------------

def _broadcast_pair(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Two shapes (ranks 0 to 6) and the shape they broadcast to."""
    out = small_dims(rng, int(rng.integers(0, 7)), 3)
    shapes = []
    for _ in range(2):
        kept = out[len(out) - int(rng.integers(0, len(out) + 1)):]
        shapes.append(tuple(1 if rng.random() < 0.3 else d for d in kept))
    return shapes[0], shapes[1], tuple(np.broadcast_shapes(*shapes))


def _bitwise(opcode: str) -> Generator:
    """Integer operands of one type, broadcasting; RIGHT_SHIFT's shifts from graph inputs or small constants."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = pick(rng, ("uint8", "int8", "int16", "int32"))
        a, b, out = _broadcast_pair(rng)
        second = g.input(b, dtype) if rng.random() < 0.6 else g.const(rng.integers(-2, 40, b).astype(dtype))
        y = g.tensor(out, dtype)
        g.op(opcode, [g.input(a, dtype), second], [y])
        return [y]
    return generate


# -- NMS -----------------------------------------------------------------------------------------

def _scalar(g: SubgraphBuilder, rng: np.random.Generator, value: float, runtime_chance: float) -> int:
    """A float32 scalar: a constant, or (sometimes) a graph input (random values: any sign, often beyond 1)."""
    return g.input((), "float32") if rng.random() < runtime_chance else g.const(np.array(value, np.float32))


def _nms(soft: bool) -> Generator:
    """Random boxes (corners in any order), scores floored to tie a third of the time, thresholds constant or not;
    V5's sigma constant (zero a quarter of the time) or the absolute value of a graph input."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        n = int(rng.integers(1, 30))
        size = int(rng.integers(0, n + 4))
        boxes = g.input((n, 4), "float32")
        scores = _float_from(g, (n,), "FLOOR") if rng.random() < 0.35 else g.input((n,), "float32")
        inputs = [boxes, scores, g.const(np.array(size, np.int32)),
                  _scalar(g, rng, float(rng.uniform(0, 1)), 0.3), _scalar(g, rng, float(rng.uniform(-3, 1)), 0.2)]
        if soft:
            if rng.random() < 0.3:
                sigma = g.tensor((), "float32")
                g.op("ABS", [g.input((), "float32")], [sigma])
            else:
                sigma = g.const(np.array(0 if rng.random() < 0.25 else rng.uniform(0.05, 2), np.float32))
            inputs.append(sigma)
        outs = [g.tensor((size,), "int32")] + ([g.tensor((size,), "float32")] if soft else []) + [g.tensor((), "int32")]
        g.op("NON_MAX_SUPPRESSION_V5" if soft else "NON_MAX_SUPPRESSION_V4", inputs, outs)
        return outs
    return generate


GENERATORS: dict[str, Generator] = {
    "RANGE": _range,
    "BROADCAST_ARGS": _broadcast_args,
    "CUMSUM": _cumsum,
    "ONE_HOT": _one_hot,
    "TOPK_V2": _topk,
    "REVERSE_SEQUENCE": _reverse_sequence,
    "DYNAMIC_UPDATE_SLICE": _dynamic_update_slice,
    **{f"UNSORTED_SEGMENT_{name}": _unsorted_segment(f"UNSORTED_SEGMENT_{name}")
       for name in ("SUM", "MAX", "MIN", "PROD")},
    "RIGHT_SHIFT": _bitwise("RIGHT_SHIFT"),
    "BITWISE_XOR": _bitwise("BITWISE_XOR"),
    "NON_MAX_SUPPRESSION_V4": _nms(False),
    "NON_MAX_SUPPRESSION_V5": _nms(True),
}

#: Operators TFLite's reference resolver lacks: checked against its builtin kernels (no delegate).
NOT_REFERENCE: dict[str, Generator] = {"SEGMENT_SUM": _segment_sum}


test_python_kernels_match_tflite, test_c_kernels_match_python = kernel_tests(GENERATORS)
test_python_kernels_match_tflite_builtin, test_c_kernels_match_python_builtin = kernel_tests(NOT_REFERENCE, builtin=True)


# -- chosen values ----------------------------------------------------------------------------------

_NAN, _INF = np.float32(np.nan), np.float32(np.inf)
#: Rows of special values: NaN among numbers, signed zeros and ties, extremes, all NaN.
_SPECIAL_ROWS = np.array([
    [_NAN, 1, 2, -3, 0.5, _NAN, -_INF, _INF], [-0.0, 0.0, -0.0, 0.0, 5, 5, -5, _NAN],
    [_INF, -_INF, 3e38, 3e38, -3e38, 1e-45, -1e-45, 0], [_NAN] * 8], dtype=np.float32)


def _specials(g: SubgraphBuilder) -> list[int]:
    """TOPK_V2, CUMSUM and the segment reductions of one input made of the special rows."""
    x = g.input(_SPECIAL_ROWS.shape, "float32")
    outs = [g.tensor((4, 6), "float32"), g.tensor((4, 6), "int32")]
    g.op("TOPK_V2", [x, g.const(np.array(6, np.int32))], outs)
    for exclusive, reverse in ((False, False), (True, True)):
        outs.append(g.tensor(_SPECIAL_ROWS.shape, "float32"))
        g.op("CUMSUM", [x, g.const(np.array(1, np.int32))], outs[-1:],
             options("CumsumOptions", exclusive=exclusive, reverse=reverse))
    ids = np.random.default_rng(5).integers(-1, 3, _SPECIAL_ROWS.shape).astype(np.int32)
    for name in ("SUM", "MAX", "MIN", "PROD"):
        outs.append(g.tensor((3,), "float32"))
        g.op(f"UNSORTED_SEGMENT_{name}", [x, g.const(ids), g.const(np.array(3, np.int32))], outs[-1:])
    return outs


def test_special_values_match_tflite(tmp_path, c_npu_run, c_fake):
    check_chosen(model_of(_specials), [_SPECIAL_ROWS], tmp_path, c_npu_run, fake_env(c_fake))


#: Boxes that tie, coincide (corners swapped too), lack area, hold NaN or infinities; scores that tie.
_BOXES = np.array([[0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1], [0.5, 0.5, 1.5, 1.5], [_NAN, 0, 1, 1],
                   [0, 0, _INF, 1], [-1, -1, 2, 2], [0.2, 0.1, 1.2, 1.1], [5, 5, 6, 6]], dtype=np.float32)
_SCORES = np.array([0.5, 0.5, 0.9, 0.5, 0.7, 0.6, 0.6, 0.5, 0.8, 0.5], dtype=np.float32)


def _nms_model(soft: bool) -> bytes:
    """NMS with every threshold (and sigma) a graph input; eight selections at most."""
    def build(g: SubgraphBuilder) -> list[int]:
        inputs = [g.input(_BOXES.shape, "float32"), g.input(_SCORES.shape, "float32"), g.const(np.array(8, np.int32))]
        inputs += [g.input((), "float32") for _ in range(3 if soft else 2)]
        outs = [g.tensor((8,), "int32")] + ([g.tensor((8,), "float32")] if soft else []) + [g.tensor((), "int32")]
        g.op("NON_MAX_SUPPRESSION_V5" if soft else "NON_MAX_SUPPRESSION_V4", inputs, outs)
        return outs
    return model_of(build)


@pytest.mark.parametrize("iou, score, sigma", [(0.5, 0.0, 0.5), (1.5, -_INF, 0.0), (0.0, 0.5, 1.0), (_NAN, 0.4, _NAN),
                                               (0.3, 0.5, _INF), (1.0, 0.45, 0.05)])
@pytest.mark.parametrize("soft", [False, True])
def test_nms_ties_and_special_boxes_match_tflite(iou, score, sigma, soft, tmp_path, c_npu_run, c_fake):
    """Tied scores leave TFLite's heap in libstdc++'s order; an IoU threshold above 1 selects boxes again."""
    thresholds = [np.array(v, np.float32) for v in (iou, score, sigma)[:3 if soft else 2]]
    check_chosen(_nms_model(soft), [_BOXES, _SCORES, *thresholds], tmp_path, c_npu_run, fake_env(c_fake))


def _int64_as_int(g: SubgraphBuilder) -> list[int]:
    """BROADCAST_ARGS and ONE_HOT read int64 shapes and indices as C ints."""
    shape, indices = g.input((3,), "int64"), g.input((4,), "int64")
    outs = [g.tensor((3,), "int64"), g.tensor((4, 3), "float32")]
    g.op("BROADCAST_ARGS", [shape, g.const(np.ones(3, np.int64))], outs[:1])
    g.op("ONE_HOT", [indices, g.const(np.array(3, np.int32)), g.const(np.array(1, np.float32)),
                     g.const(np.array(-0.0, np.float32))], outs[1:], options("OneHotOptions", axis=-1))
    return outs


def test_int64_values_are_read_as_c_ints(tmp_path, c_npu_run, c_fake):
    big = np.array([(1 << 31) + 7, 1 << 32, -(1 << 33) + 2], np.int64)
    indices = np.array([(1 << 32) + 1, -(1 << 32), (1 << 31) + 2, 2], np.int64)
    check_chosen(model_of(_int64_as_int), [big, indices], tmp_path, c_npu_run, fake_env(c_fake))


# -- values TFLite refuses when it runs ---------------------------------------------------------------

def _broadcast_args_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2,), "int32")
    g.op("BROADCAST_ARGS", [g.input((2,), "int32"), g.input((2,), "int32")], [y])
    return [y]


def _reverse_sequence_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2, 3), "float32")
    g.op("REVERSE_SEQUENCE", [g.input((2, 3), "float32"), g.input((2,), "int32")], [y],
         options("ReverseSequenceOptions", seqDim=1, batchDim=0))
    return [y]


def _segment_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2,), "int32")
    g.op("UNSORTED_SEGMENT_SUM", [g.input((3,), "int32"), g.input((3,), "int32"), g.const(np.array(2, np.int32))],
         [y])
    return [y]


def _sigma_model(g: SubgraphBuilder) -> list[int]:
    """Soft NMS whose sigma arrives at run time."""
    outs = [g.tensor((2,), "int32"), g.tensor((2,), "float32"), g.tensor((), "int32")]
    g.op("NON_MAX_SUPPRESSION_V5", [g.const(_BOXES[:3]), g.const(_SCORES[:3]), g.const(np.array(2, np.int32)),
                                    g.const(np.array(0.5, np.float32)), g.const(np.array(0.0, np.float32)),
                                    g.input((), "float32")], outs)
    return outs


_X = np.arange(6, dtype=np.float32).reshape(2, 3)
#: Models, inputs TFLite fails on, and what both runtimes' one-line errors say.
_REFUSED: Refusals = {
    "BROADCAST_ARGS": (_broadcast_args_model, [np.array([2, 3], np.int32), np.array([1, 4], np.int32)],
                       "do not broadcast"),
    "REVERSE_SEQUENCE": (_reverse_sequence_model, [_X, np.array([2, 4], np.int32)], "reaches past"),
    "UNSORTED_SEGMENT_SUM": (_segment_model, [np.array([1, 2, 4], np.int32), np.array([0, 2, 0], np.int32)],
                             "segment id 2 is not below the 2 segments"),
    "NON_MAX_SUPPRESSION_V5": (_sigma_model, [np.array(-1, np.float32)], "sigma .* is negative"),
}


(test_values_tflite_refuses_are_an_input_error_in_python,
 test_values_tflite_refuses_fail_the_c_run_with_one_line) = refusal_tests(_REFUSED)


# -- models npuc refuses ------------------------------------------------------------------------------

def _range_at_run_time(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((3,), "int32")
    g.op("RANGE", [g.input((), "int32"), g.const(np.array(9, np.int32)), g.const(np.array(3, np.int32))], [y])
    return [y]


def _one_hot_int16(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2, 3), "int16")
    g.op("ONE_HOT", [g.input((2,), "int32"), g.const(np.array(3, np.int32)), g.const(np.array(1, np.int16)),
                     g.const(np.array(0, np.int16))], [y], options("OneHotOptions", axis=-1))
    return [y]


def _topk_at_run_time(g: SubgraphBuilder) -> list[int]:
    outs = [g.tensor((2,), "float32"), g.tensor((2,), "int32")]
    g.op("TOPK_V2", [g.input((5,), "float32"), g.input((), "int32")], outs)
    return outs


def _segment_ids_that_skip(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2,), "float32")
    g.op("SEGMENT_SUM", [g.input((3,), "float32"), g.const(np.array([0, 2, 2], np.int32))], [y])
    return [y]


def _clashing_shapes(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2,), "int32")
    g.op("BROADCAST_ARGS", [g.const(np.array([2, 3], np.int32)), g.const(np.array([4], np.int32))], [y])
    return [y]


def _nms_size_at_run_time(g: SubgraphBuilder) -> list[int]:
    outs = [g.tensor((2,), "int32"), g.tensor((), "int32")]
    g.op("NON_MAX_SUPPRESSION_V4", [g.input((3, 4), "float32"), g.input((3,), "float32"), g.input((), "int32"),
                                    g.const(np.array(0.5, np.float32)), g.const(np.array(0.0, np.float32))], outs)
    return outs


@pytest.mark.parametrize("build, fragment", [
    (_range_at_run_time, "must be a constant: it decides the output shape"),
    (_one_hot_int16, "no host kernel for these types"),
    (_topk_at_run_time, "must be a constant: it decides the output shape"),
    (_segment_ids_that_skip, "must start at 0 and rise by 0 or 1"),
    (_clashing_shapes, "do not broadcast, which TFLite refuses"),
    (_nms_size_at_run_time, "must be a constant integer tensor"),
])
def test_instances_npuc_cannot_run_are_refused(build, fragment, tmp_path):
    with pytest.raises(UnsupportedError, match=fragment):
        compile_cpu(model_of(build), tmp_path)


# -- hostile blobs ---------------------------------------------------------------------------------

def _cumsum_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2, 3), "float32")
    g.op("CUMSUM", [g.input((2, 3), "float32"), g.const(np.array(1, np.int32))], [y], options("CumsumOptions"))
    return [y]


def _one_hot_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2, 4), "float32")
    g.op("ONE_HOT", [g.input((2,), "int32"), g.const(np.array(4, np.int32)), g.const(np.array(1, np.float32)),
                     g.const(np.array(0, np.float32))], [y], options("OneHotOptions", axis=-1))
    return [y]


#: One-operator models, a parameter change a hostile blob could make, and what npu-run --check says of it.
_HOSTILE: dict[str, tuple[Callable, str, int, str]] = {
    "CUMSUM": (_cumsum_model, "axis", 2, "has axis 2 outside the input"),
    "ONE_HOT": (_one_hot_model, "axis", 0, "with a depth axis 0"),
    "REVERSE_SEQUENCE": (_reverse_sequence_model, "batch_dim", 1, "needs distinct seq_dim and batch_dim"),
}


@pytest.mark.parametrize("name", sorted(_HOSTILE))
def test_parameters_that_leave_the_tensors_are_refused_when_c_loads_the_blob(name, tmp_path, c_npu_run):
    build, param, value, fragment = _HOSTILE[name]

    def edit(blob: vipbin.Blob) -> None:
        host_step(blob, name).params[param] = value

    err = edited_blob_error(c_npu_run, compile_cpu(model_of(build), tmp_path), edit, tmp_path)
    assert f"{name} " in err and fragment in err, err


def test_every_case_count_is_dozens():
    assert CASES >= 24
