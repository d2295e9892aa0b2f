"""Data movement on the host (reshapes, joins and cuts, slices, gathers, pads, space/depth/batch) against TFLite.

One generator per operator (and variant) adds seeded random instances: every
element type TFLite's kernel takes, ranks 1 to 6 where TFLite allows them,
negative axes, every option (STRIDED_SLICE's masks and ``offset``, SLICE's -1
sizes, GATHER's batch_dims, MIRROR_PAD's modes), constant and run-time
operands, size-1 dimensions, zero points at the extremes of their types, and
inputs and outputs quantized differently where TFLite copies stored values
regardless.  The Python runtime must equal TFLite bit for bit, the C runtime
the Python runtime byte for byte.  Run-time GATHER and GATHER_ND indices are
computed from constants and a graph input (random inputs would fall outside
the params).  Indices outside the params are an InputError in Python; the C
runtime, whose kernels cannot fail, writes zeros for their slices.  Blobs whose
parameters would take a C kernel outside its tensors are refused when loaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from c_build import fake_env
from host_cases import (CASES, Generator, c_failure, compile_cpu, edited_blob_error, host_step, kernel_tests, pick,
                        python_outputs, quant, small_dims, values)
from model_builder import ModelBuilder, SubgraphBuilder, options

from npuc.errors import InputError

ALL = ("bool", "uint8", "int8", "int16", "int32", "int64", "float32")
NO_BOOL = ("uint8", "int8", "int16", "int32", "int64", "float32")
QUANTIZED = ("uint8", "int8", "int16")


# -- random pieces ------------------------------------------------------------------------------

def _quant(rng: np.random.Generator, dtype: str) -> dict:
    """A quantization for 8- and 16-bit types (zero points at the type's extremes a fifth of the time)."""
    if dtype not in QUANTIZED:
        return {}
    q = quant(rng, dtype)
    if dtype != "int16" and rng.random() < 0.2:
        info = np.iinfo(dtype)
        q["zero_point"] = int(pick(rng, (info.min, info.max)))
    return q


def _output_quant(rng: np.random.Generator, dtype: str, q: dict) -> dict:
    """The input's quantization most of the time, another one otherwise (for kernels that copy stored values)."""
    return q if rng.random() < 0.6 else _quant(rng, dtype)


def _int_const(g: SubgraphBuilder, rng: np.random.Generator, data: Any,
               types: tuple[str, ...] = ("int32", "int64")) -> int:
    """A constant integer operand (an axis, a shape, paddings) of one of ``types``."""
    return g.const(np.array(data), str(pick(rng, types)))


def _axis(rng: np.random.Generator, rank: int) -> int:
    """An axis of ``rank`` dimensions, negative half of the time."""
    axis = int(rng.integers(rank))
    return axis - rank if rng.random() < 0.5 else axis


def _set_version(g: SubgraphBuilder, opcode: str, version: int) -> None:
    """TFLite registers some kernels from version 2 on; the builder writes version 1."""
    code = getattr(schema.BuiltinOperator, opcode)
    for c in g.model.m.operatorCodes:
        if c.builtinCode == code:
            c.version = version


def _operand(g: SubgraphBuilder, rng: np.random.Generator, shape: tuple[int, ...], dtype: str, q: dict,
             constant: float = 0.25) -> int:
    """A graph input, or (with probability ``constant``) a constant."""
    if rng.random() < constant:
        return g.const(values(rng, shape, dtype), dtype, **q)
    return g.input(shape, dtype, **q)


def _run_time(g: SubgraphBuilder, data: np.ndarray, dtype: str) -> int:
    """A tensor holding ``data`` computed from a graph input (so that no constant folding computes it): ``data``
    and the input joined, the input sliced off again, the rest reshaped."""
    n = data.size
    joined, flat, out = g.tensor((n + 1,), dtype), g.tensor((n,), dtype), g.tensor(data.shape, dtype)
    g.op("CONCATENATION", [g.const(data.reshape(-1), dtype), g.input((1,), dtype)], [joined],
         options("ConcatenationOptions", axis=0))
    g.op("SLICE", [joined, g.const(np.array([0], np.int32)), g.const(np.array([n], np.int32))], [flat])
    g.op("RESHAPE", [flat, g.const(np.array(data.shape, np.int32))], [out])
    return out


# -- reshapes ---------------------------------------------------------------------------------

def _reshape(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    shape = small_dims(rng, int(rng.integers(0, 7)))
    dims = list(shape)
    rng.shuffle(dims)
    # A size-1 axis more now and then; a scalar's shape would be an empty constant.
    target = [int(d) for d in dims] + [1] * int(rng.integers(0 if dims else 1, 2 if len(dims) < 6 else 1))
    spec = list(target)
    if spec and rng.random() < 0.5:
        spec[int(rng.integers(len(spec)))] = -1
    q = _quant(rng, dtype)
    x = g.input(shape, dtype, **q)
    y = g.tensor(tuple(target), dtype, **_output_quant(rng, dtype, q))
    g.op("RESHAPE", [x, g.const(np.array(spec, np.int32))], [y])
    return [y]


def _squeeze(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    shape = small_dims(rng, int(rng.integers(1, 7)))
    ones = [k for k, d in enumerate(shape) if d == 1]
    chosen = [k for k in ones if rng.random() < 0.6]
    dims = [k - len(shape) if rng.random() < 0.5 else k for k in chosen] if chosen and rng.random() < 0.7 else None
    dropped = chosen if dims is not None else ones
    q = _quant(rng, dtype)
    x = g.input(shape, dtype, **q)
    y = g.tensor(tuple(d for k, d in enumerate(shape) if k not in dropped), dtype, **_output_quant(rng, dtype, q))
    g.op("SQUEEZE", [x], [y], options("SqueezeOptions", squeezeDims=dims))
    return [y]


def _expand_dims(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    shape = small_dims(rng, int(rng.integers(0, 6)))
    axis = int(rng.integers(-len(shape) - 1, len(shape) + 1))
    at = axis + len(shape) + 1 if axis < 0 else axis
    q = _quant(rng, dtype)
    x = g.input(shape, dtype, **q)
    y = g.tensor(shape[:at] + (1,) + shape[at:], dtype, **q)
    g.op("EXPAND_DIMS", [x, _int_const(g, rng, axis)], [y])
    return [y]


# -- joins and cuts ------------------------------------------------------------------------------

def _concatenation(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    rank = int(rng.integers(1, 7))
    shape = small_dims(rng, rank)
    axis = _axis(rng, rank)
    sizes = [int(rng.integers(1, 4)) for _ in range(int(rng.integers(1, 5)))]
    qy = _quant(rng, dtype)
    xs = []
    for size in sizes:
        # uint8 inputs may be quantized otherwise (TFLite requantizes them); int16 only needs zero point 0.
        q = _quant(rng, dtype) if dtype in ("uint8", "int16") and rng.random() < 0.5 else qy
        part = shape[:axis % rank] + (size,) + shape[axis % rank + 1:]
        xs.append(_operand(g, rng, part, dtype, q))
    y = g.tensor(shape[:axis % rank] + (sum(sizes),) + shape[axis % rank + 1:], dtype, **qy)
    g.op("CONCATENATION", xs, [y], options("ConcatenationOptions", axis=axis))
    return [y]


def _split(variant: str) -> Generator:
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = pick(rng, NO_BOOL)
        rank = int(rng.integers(1, 7))
        shape = list(small_dims(rng, rank))
        axis = _axis(rng, rank)
        parts = int(rng.integers(1, 4))
        if variant == "SPLIT":
            shape[axis] *= parts
            sizes = [shape[axis] // parts] * parts
        else:
            sizes = [int(rng.integers(1, 4)) for _ in range(parts)]
            shape[axis] = sum(sizes)
        q = _quant(rng, dtype)
        x = g.input(tuple(shape), dtype, **q)
        outs = [g.tensor(tuple(shape[:axis % rank] + [n] + shape[axis % rank + 1:]), dtype,
                         **_output_quant(rng, dtype, q)) for n in sizes]
        axis_t = g.const(np.array(axis, np.int32))
        if variant == "SPLIT":
            g.op("SPLIT", [axis_t, x], outs, options("SplitOptions", numSplits=parts))
        else:
            spec = list(sizes)
            if rng.random() < 0.5:
                spec[int(rng.integers(parts))] = -1
            g.op("SPLIT_V", [x, _int_const(g, rng, spec), axis_t], outs, options("SplitVOptions", numSplits=parts))
        return outs
    return generate


def _pack(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, NO_BOOL)
    shape = small_dims(rng, int(rng.integers(0, 6)))
    count = int(rng.integers(1, 4))
    axis = int(rng.integers(-len(shape) - 1, len(shape) + 1))
    at = axis + len(shape) + 1 if axis < 0 else axis
    q = _quant(rng, dtype)
    xs = [_operand(g, rng, shape, dtype, q) for _ in range(count)]
    y = g.tensor(shape[:at] + (count,) + shape[at:], dtype, **q)
    g.op("PACK", xs, [y], options("PackOptions", valuesCount=count, axis=axis))
    return [y]


def _unpack(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ("bool", "uint8", "int8", "int16", "int32", "float32"))
    rank = int(rng.integers(1, 7))
    shape = small_dims(rng, rank)
    axis = _axis(rng, rank)
    q = _quant(rng, dtype)
    x = g.input(shape, dtype, **q)
    outs = [g.tensor(shape[:axis % rank] + shape[axis % rank + 1:], dtype, **q) for _ in range(shape[axis])]
    g.op("UNPACK", [x], outs, options("UnpackOptions", num=shape[axis], axis=axis))
    return outs


# -- rearrangements and fills ------------------------------------------------------------------

def _transpose(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    rank = int(rng.integers(1, 7))
    shape = small_dims(rng, rank)
    perm = [int(p) for p in rng.permutation(rank)]
    spec = [p - rank if rng.random() < 0.3 else p for p in perm]
    q = _quant(rng, dtype)
    x = _operand(g, rng, shape, dtype, q, constant=0.1)
    y = g.tensor(tuple(shape[p] for p in perm), dtype, **_output_quant(rng, dtype, q))
    g.op("TRANSPOSE", [x, g.const(np.array(spec, np.int32))], [y])
    return [y]


def _tile(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    rank = int(rng.integers(1, 7))
    shape = small_dims(rng, rank, hi=3)
    multiples = [int(rng.integers(1, 4 if rank < 4 else 3)) for _ in range(rank)]
    q = _quant(rng, dtype)
    x = g.input(shape, dtype, **q)
    y = g.tensor(tuple(d * m for d, m in zip(shape, multiples)), dtype, **_output_quant(rng, dtype, q))
    g.op("TILE", [x, _int_const(g, rng, multiples)], [y])
    return [y]


def _broadcast_to(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    rank = int(rng.integers(1, 7))
    target = small_dims(rng, rank)
    lead = int(rng.integers(0, rank + 1))
    shape = tuple(1 if rng.random() < 0.4 else d for d in target[lead:])
    q = _quant(rng, dtype)
    x = g.input(shape, dtype, **q)
    y = g.tensor(target, dtype, **_output_quant(rng, dtype, q))
    g.op("BROADCAST_TO", [x, _int_const(g, rng, list(target))], [y])
    _set_version(g, "BROADCAST_TO", 2)
    return [y]


def _zeros_like(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ("int32", "int64", "float32"))
    shape = small_dims(rng, int(rng.integers(0, 7)))
    x = g.input(shape, dtype)
    y = g.tensor(shape, dtype)
    g.op("ZEROS_LIKE", [x], [y])
    return [y]


def _fill(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    shape = small_dims(rng, int(rng.integers(1, 7)))  # dims of a scalar would be an empty constant
    q = _quant(rng, dtype)
    value = _operand(g, rng, (), dtype, q)
    y = g.tensor(shape, dtype, **q)
    g.op("FILL", [_int_const(g, rng, list(shape)), value], [y])
    return [y]


# -- slices ----------------------------------------------------------------------------------------

def _strided_slice(variant: str) -> Generator:
    """STRIDED_SLICE: ``plain`` (begin/end masks, negative strides, indices out of range), ``shrink``,
    ``ellipsis``, ``new_axis``, ``offset``, and ``mixed`` (all masks at once, stray bits included)."""
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = pick(rng, ALL)
        rank = int(rng.integers(1, 6))
        shape = small_dims(rng, rank, hi=6)
        spec = _slice_spec(rng, variant, shape)
        q = _quant(rng, dtype)
        x = g.input(shape, dtype, **q)
        out_shape = np.empty(shape)[spec.index()].shape
        y = g.tensor(out_shape, dtype, **_output_quant(rng, dtype, q))
        g.op("STRIDED_SLICE", [x] + [g.const(np.array(v, np.int32)) for v in (spec.begin, spec.end, spec.strides)],
             [y], options("StridedSliceOptions", beginMask=spec.masks["begin"], endMask=spec.masks["end"],
                          ellipsisMask=spec.masks["ellipsis"], newAxisMask=spec.masks["new_axis"],
                          shrinkAxisMask=spec.masks["shrink"], offset=variant == "offset"))
        return [y]
    return generate


class _SliceSpec:
    """A STRIDED_SLICE's operands and masks, and the numpy index that means the same."""

    def __init__(self, n: int) -> None:
        self.begin, self.end, self.strides = [0] * n, [0] * n, [1] * n
        self.masks = {"begin": 0, "end": 0, "ellipsis": 0, "new_axis": 0, "shrink": 0}
        self.offset = False

    def bit(self, mask: str, i: int) -> bool:
        return bool(self.masks[mask] >> i & 1)

    def index(self) -> tuple:
        out: list = []
        for i, (b, e, s) in enumerate(zip(self.begin, self.end, self.strides)):
            if self.bit("ellipsis", i):
                out.append(Ellipsis)
            elif self.bit("new_axis", i):
                out.append(None)
            elif self.bit("shrink", i):
                out.append(b)
            else:
                stop = b + e if self.offset else e
                out.append(slice(None if self.bit("begin", i) else b, None if self.bit("end", i) else stop, s))
        return tuple(out)


def _slice_spec(rng: np.random.Generator, variant: str, shape: tuple[int, ...]) -> _SliceSpec:
    """The entries of the spec: an ellipsis, new axes and sliced axes as the variant asks, in random order."""
    rank = len(shape)
    ellipsis = variant in ("ellipsis", "mixed") and (variant == "ellipsis" or rng.random() < 0.5)
    # TFLite's ellipsis stands for at least one axis (TensorFlow's may stand for none).
    sliced = int(rng.integers(0, rank) if ellipsis else rng.integers(1, rank + 1)) if variant in ("ellipsis", "mixed") \
        else rank
    new = int(rng.integers(1 if variant == "new_axis" else 0, 7 - rank)) if variant in ("new_axis", "mixed") else 0
    tokens = ["ellipsis"] * ellipsis + ["new"] * new + ["axis"] * sliced
    order = [tokens[int(k)] for k in rng.permutation(len(tokens))]
    spec = _SliceSpec(len(order))
    spec.offset = variant == "offset"
    axis = 0
    for i, token in enumerate(order):
        if token == "ellipsis":
            spec.masks["ellipsis"] |= 1 << i
            axis += rank - sliced
        elif token == "new":
            spec.masks["new_axis"] |= 1 << i
        else:
            _axis_spec(rng, "shrink" if variant == "mixed" else variant, spec, i, shape[axis])
            axis += 1
        if variant == "mixed" and token != "axis" and rng.random() < 0.3:
            # A stray bit where the ellipsis or a new axis takes precedence.
            spec.masks[str(pick(rng, ("new_axis", "shrink", "begin", "end")))] |= 1 << i
    return spec


def _axis_spec(rng: np.random.Generator, variant: str, spec: _SliceSpec, i: int, dim: int) -> None:
    """Begin, end, stride and mask bits of one sliced axis of size ``dim``."""
    if variant == "offset":
        b = int(rng.integers(0, dim))
        spec.begin[i], spec.end[i], spec.strides[i] = b, int(rng.integers(0, dim - b + 1)), int(rng.integers(1, 3))
        if rng.random() < 0.2:
            spec.masks["shrink"] |= 1 << i
        return
    if variant == "shrink" and rng.random() < 0.5:
        spec.begin[i], spec.strides[i] = int(rng.integers(-dim, dim)), 1
        spec.masks["shrink"] |= 1 << i
        return
    stride = int(pick(rng, (1, 1, 2, 3, -1, -2)))
    spec.begin[i], spec.end[i], spec.strides[i] = (int(rng.integers(-dim - 2, dim + 3)),
                                                   int(rng.integers(-dim - 2, dim + 3)), stride)
    for mask in ("begin", "end"):
        if rng.random() < 0.25:
            spec.masks[mask] |= 1 << i


def _slice(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    rank = int(rng.integers(1, 7))
    shape = small_dims(rng, rank, hi=5)
    begin = [int(rng.integers(0, d)) for d in shape]
    size = [int(rng.integers(1, d - b + 1)) for d, b in zip(shape, begin)]
    spec = [-1 if rng.random() < 0.3 else n for n in size]
    out = [d - b if s == -1 else s for d, b, s in zip(shape, begin, spec)]
    q = _quant(rng, dtype)
    x = g.input(shape, dtype, **q)
    y = g.tensor(tuple(out), dtype, **_output_quant(rng, dtype, q))
    types = (str(pick(rng, ("int32", "int64"))),)
    g.op("SLICE", [x, _int_const(g, rng, begin, types), _int_const(g, rng, spec, types)], [y])
    return [y]


def _reverse_v2(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    rank = int(rng.integers(1, 7))
    shape = small_dims(rng, rank)
    first = int(rng.integers(rank))
    count = int(rng.integers(1, rank - first + 1))
    axes = [a - rank if rng.random() < 0.3 else a for a in rng.permutation(range(first, first + count))]
    q = _quant(rng, dtype)
    x = g.input(shape, dtype, **q)
    y = g.tensor(shape, dtype, **_output_quant(rng, dtype, q))
    g.op("REVERSE_V2", [x, g.const(np.array(axes, np.int32))], [y])
    return [y]


# -- gathers ---------------------------------------------------------------------------------------

def _indices(g: SubgraphBuilder, rng: np.random.Generator, data: np.ndarray) -> int:
    """Indices of a random type, constant or (unless a scalar, whose shape is an empty constant) computed."""
    dtype = str(pick(rng, ("int16", "int32", "int64")))
    return g.const(data, dtype) if data.ndim == 0 or rng.random() < 0.5 else _run_time(g, data, dtype)


def _gather(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    rank = int(rng.integers(1, 5))
    shape = small_dims(rng, rank)
    axis = int(rng.integers(rank))
    batch_dims = int(rng.integers(0, axis + 1))
    index_shape = shape[:batch_dims] + small_dims(rng, int(rng.integers(0, 3)))
    positions = np.asarray(rng.integers(0, shape[axis], size=index_shape))
    q = _quant(rng, dtype)
    x = _operand(g, rng, shape, dtype, q)
    y = g.tensor(shape[:axis] + index_shape[batch_dims:] + shape[axis + 1:], dtype, **_output_quant(rng, dtype, q))
    spec_axis = axis - rank if rng.random() < 0.5 else axis
    negative = batch_dims - len(index_shape)
    spec_batch = negative if batch_dims and negative < 0 and rng.random() < 0.5 else batch_dims
    g.op("GATHER", [x, _indices(g, rng, positions)], [y],
         options("GatherOptions", axis=spec_axis, batchDims=spec_batch))
    return [y]


def _gather_nd(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    rank = int(rng.integers(1, 5))
    shape = small_dims(rng, rank)
    depth = int(rng.integers(1, rank + 1))  # indices of depth 0 would be an empty constant
    outer = small_dims(rng, int(rng.integers(0, 3)))
    tuples = np.stack([rng.integers(0, d, size=outer) for d in shape[:depth]], axis=-1)
    q = _quant(rng, dtype)
    x = _operand(g, rng, shape, dtype, q)
    y = g.tensor(outer + shape[depth:], dtype, **_output_quant(rng, dtype, q))
    g.op("GATHER_ND", [x, _indices(g, rng, tuples.reshape(outer + (depth,)))], [y])
    return [y]


# -- pads and space/depth/batch ------------------------------------------------------------------

def _pad(opcode: str) -> Generator:
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = pick(rng, ALL)
        rank = int(rng.integers(1, 6))
        shape = small_dims(rng, rank)
        pads = rng.integers(0, 3, size=(rank, 2))
        q = _quant(rng, dtype)
        x = g.input(shape, dtype, **q)
        # TFLite pads quantized tensors with the output's zero point: it may differ from the input's.
        qy = q if rng.random() < 0.6 or dtype == "int16" else _quant(rng, dtype)
        y = g.tensor(tuple(d + int(p.sum()) for d, p in zip(shape, pads)), dtype, **qy)
        inputs = [x, _int_const(g, rng, pads)]
        if opcode == "PADV2":
            inputs.append(_operand(g, rng, (), dtype, qy, constant=0.5))
        g.op(opcode, inputs, [y])
        return [y]
    return generate


def _mirror_pad(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    rank = int(rng.integers(1, 7))
    shape = small_dims(rng, rank)
    mode = str(pick(rng, ("REFLECT", "SYMMETRIC")))
    limit = [d if mode == "SYMMETRIC" else d - 1 for d in shape]
    pads = np.array([[int(rng.integers(0, m + 1)) for _ in range(2)] for m in limit])
    q = _quant(rng, dtype)
    x = g.input(shape, dtype, **q)
    y = g.tensor(tuple(d + int(p.sum()) for d, p in zip(shape, pads)), dtype, **q)
    g.op("MIRROR_PAD", [x, _int_const(g, rng, pads)], [y], options("MirrorPadOptions", mode=mode))
    return [y]


def _space_to_batch_nd(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    spatial = int(rng.integers(1, 3))
    block = [int(rng.integers(1, 4)) for _ in range(spatial)]
    dims = [int(rng.integers(1, 6)) for _ in range(spatial)]
    pads = []
    for d, b in zip(dims, block):
        before = int(rng.integers(0, 3))
        after = (-(d + before)) % b + b * int(rng.integers(0, 2))
        pads.append([before, after])
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    q = _quant(rng, dtype)
    x = g.input((n, *dims, c), dtype, **q)
    out = [(d + sum(p)) // b for d, p, b in zip(dims, pads, block)]
    y = g.tensor((n * math.prod(block), *out, c), dtype, **q)
    g.op("SPACE_TO_BATCH_ND", [x, g.const(np.array(block, np.int32)), g.const(np.array(pads, np.int32))], [y])
    return [y]


def _batch_to_space_nd(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
    dtype = pick(rng, ALL)
    spatial = int(rng.integers(1, 3))
    block = [int(rng.integers(1, 4)) for _ in range(spatial)]
    dims = [int(rng.integers(1, 5)) for _ in range(spatial)]
    crops = []
    for d, b in zip(dims, block):
        before = int(rng.integers(0, d * b))
        crops.append([before, int(rng.integers(0, d * b - before))])
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    q = _quant(rng, dtype)
    x = g.input((n * math.prod(block), *dims, c), dtype, **q)
    y = g.tensor((n, *[d * b - sum(p) for d, b, p in zip(dims, block, crops)], c), dtype, **q)
    g.op("BATCH_TO_SPACE_ND", [x, g.const(np.array(block, np.int32)), g.const(np.array(crops, np.int32))], [y])
    return [y]


def _depth(opcode: str) -> Generator:
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = pick(rng, ("uint8", "int8", "int32", "int64", "float32"))
        size = int(rng.integers(1, 4))
        n, h, w, c = (int(v) for v in rng.integers(1, 4, 4))
        small, large = (n, h, w, c * size * size), (n, h * size, w * size, c)
        shape, out = (small, large) if opcode == "DEPTH_TO_SPACE" else (large, small)
        q = _quant(rng, dtype)
        x = g.input(shape, dtype, **q)
        y = g.tensor(out, dtype, **_output_quant(rng, dtype, q))
        g.op(opcode, [x], [y], options(f"{opcode.title().replace('_', '')}Options", blockSize=size))
        return [y]
    return generate


GENERATORS: dict[str, Generator] = {
    "RESHAPE": _reshape,
    "SQUEEZE": _squeeze,
    "EXPAND_DIMS": _expand_dims,
    "CONCATENATION": _concatenation,
    "SPLIT": _split("SPLIT"),
    "SPLIT_V": _split("SPLIT_V"),
    "PACK": _pack,
    "UNPACK": _unpack,
    "TRANSPOSE": _transpose,
    "TILE": _tile,
    "BROADCAST_TO": _broadcast_to,
    "ZEROS_LIKE": _zeros_like,
    "FILL": _fill,
    "STRIDED_SLICE": _strided_slice("plain"),
    "STRIDED_SLICE_SHRINK": _strided_slice("shrink"),
    "STRIDED_SLICE_ELLIPSIS": _strided_slice("ellipsis"),
    "STRIDED_SLICE_NEW_AXIS": _strided_slice("new_axis"),
    "STRIDED_SLICE_OFFSET": _strided_slice("offset"),
    "STRIDED_SLICE_MIXED": _strided_slice("mixed"),
    "SLICE": _slice,
    "REVERSE_V2": _reverse_v2,
    "GATHER": _gather,
    "GATHER_ND": _gather_nd,
    "PAD": _pad("PAD"),
    "PADV2": _pad("PADV2"),
    "MIRROR_PAD": _mirror_pad,
    "SPACE_TO_BATCH_ND": _space_to_batch_nd,
    "BATCH_TO_SPACE_ND": _batch_to_space_nd,
    "DEPTH_TO_SPACE": _depth("DEPTH_TO_SPACE"),
    "SPACE_TO_DEPTH": _depth("SPACE_TO_DEPTH"),
}


test_python_kernels_match_tflite, test_c_kernels_match_python = kernel_tests(GENERATORS)


# -- indices outside the params --------------------------------------------------------------------

def _gather_model(opcode: str) -> bytes:
    """params [4, 3] int8 gathered along axis 0 at indices that are a graph input."""
    m = ModelBuilder()
    g = m.main
    x = g.input((4, 3), "int8", scale=0.1, zero_point=3)
    indices = g.input((3, 1) if opcode == "GATHER_ND" else (3,), "int32")
    y = g.tensor((3, 3), "int8", scale=0.1, zero_point=3)
    g.op(opcode, [x, indices], [y], options("GatherOptions") if opcode == "GATHER" else None)
    g.output(y)
    return m.build()


_OUTSIDE: dict[str, Callable[[], np.ndarray]] = {
    "GATHER": lambda: np.array([1, 4, -1], np.int32),
    "GATHER_ND": lambda: np.array([[1], [4], [-1]], np.int32),
}


@pytest.mark.parametrize("opcode", sorted(_OUTSIDE))
def test_indices_outside_params_fail_the_run_in_python_and_c(opcode, tmp_path, c_npu_run, c_fake):
    """TFLite fails on them; the Python runtime raises an InputError and C npu-run exits 1, naming the step."""
    blob = compile_cpu(_gather_model(opcode), tmp_path)
    x = np.arange(12, dtype=np.int8).reshape(4, 3)
    with pytest.raises(InputError, match=f"^{opcode}: index .* lies outside"):
        python_outputs(blob, [x, _OUTSIDE[opcode]()])
    error = c_failure(c_npu_run, fake_env(c_fake), blob, [x, _OUTSIDE[opcode]()], tmp_path)
    assert f"step 0 (#0 {opcode}): {opcode}: index" in error and "lies outside" in error


# -- hostile blobs ---------------------------------------------------------------------------------

def _transpose_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((3, 2), "float32")
    g.op("TRANSPOSE", [g.input((2, 3), "float32"), g.const(np.array([1, 0], np.int32))], [y])
    return [y]


def _strided_slice_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2, 3), "int16")
    operands = [g.const(np.array(v, np.int32)) for v in ([1, 1], [3, 4], [1, 1])]
    g.op("STRIDED_SLICE", [g.input((4, 5), "int16")] + operands, [y], options("StridedSliceOptions"))
    return [y]


def _gather_const_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2, 3), "int32")
    g.op("GATHER", [g.input((4, 3), "int32"), g.const(np.array([0, 3], np.int32))], [y], options("GatherOptions"))
    return [y]


def _concatenation_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((2, 4), "int8")
    g.op("CONCATENATION", [g.input((2, 2), "int8"), g.input((2, 2), "int8")], [y],
         options("ConcatenationOptions", axis=1))
    return [y]


def _split_model(g: SubgraphBuilder) -> list[int]:
    outs = [g.tensor((2, 2), "uint8"), g.tensor((2, 2), "uint8")]
    g.op("SPLIT", [g.const(np.array(1, np.int32)), g.input((2, 4), "uint8")], outs,
         options("SplitOptions", numSplits=2))
    return outs


def _mirror_pad_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((5, 5), "float32")
    g.op("MIRROR_PAD", [g.input((3, 3), "float32"), g.const(np.ones((2, 2), np.int32))], [y],
         options("MirrorPadOptions", mode="REFLECT"))
    return [y]


def _batch_to_space_model(g: SubgraphBuilder) -> list[int]:
    y = g.tensor((1, 4, 4, 1), "int64")
    g.op("BATCH_TO_SPACE_ND", [g.input((4, 2, 2, 1), "int64"), g.const(np.array([2, 2], np.int32)),
                               g.const(np.zeros((2, 2), np.int32))], [y])
    return [y]


def _set(name: str, values: list[int]) -> Callable[[dict], None]:
    """A change setting parameter ``name`` to ``values`` (an int32 array, or its one value for a scalar)."""
    def change(params: dict) -> None:
        params[name] = np.array(values, np.int32) if len(values) > 1 else values[0]
    return change


#: One-operator models, a parameter change a hostile blob could make, and what npu-run --check says of it.
_HOSTILE = {
    "TRANSPOSE": (_transpose_model, _set("perm", [1, 1]), "does not permute"),
    "STRIDED_SLICE": (_strided_slice_model, _set("begin", [3, 3]), "reach outside axis 0"),
    "GATHER": (_gather_const_model, _set("axis", [1]), "do not fit axis 1"),
    "CONCATENATION": (_concatenation_model, _set("axis", [0]), "piece"),
    "SPLIT": (_split_model, _set("axis", [0]), "piece"),
    "MIRROR_PAD": (_mirror_pad_model, _set("before", [3, 3]), "reach outside axis 0"),
    "BATCH_TO_SPACE_ND": (_batch_to_space_model, _set("crop", [1, 1]), "do not move the blocks"),
}


@pytest.mark.parametrize("name", sorted(_HOSTILE))
def test_parameters_that_leave_the_tensors_are_refused_when_c_loads_the_blob(name, tmp_path, c_npu_run):
    build, change, fragment = _HOSTILE[name]
    m = ModelBuilder()
    for t in build(m.main):
        m.main.output(t)
    err = edited_blob_error(c_npu_run, compile_cpu(m.build(), tmp_path), lambda b: change(host_step(b, name).params),
                            tmp_path)
    assert f"{name} " in err and fragment in err, err


def test_every_case_count_is_dozens():
    assert CASES >= 24
