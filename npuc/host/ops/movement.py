"""Data movement on the host: reshapes, joins and cuts, rearrangements and fills: their parameters.

RESHAPE, SQUEEZE, EXPAND_DIMS, CONCATENATION, SPLIT, SPLIT_V, PACK, UNPACK,
TRANSPOSE, TILE, BROADCAST_TO, ZEROS_LIKE and FILL copy elements without
arithmetic, so their folds are mostly the checks TFLite's Prepare makes: types
(each kernel takes the element types TFLite's does), constant shape operands
(permutations, multiples) that TFLite would otherwise resolve at run time into
a shape npuc cannot know, and output shapes equal to the ones TFLite computes
(TFLite resizes its output to them, whatever the model declares).  The one
arithmetic fold is a uint8 CONCATENATION's requantization: for each input
quantized differently from the output, the float32 ``scale = input_scale * (1 /
output_scale)`` and ``bias = -input_zero_point * scale`` TFLite's reference
kernel computes.  Where TFLite requires input and output to be quantized alike
(PACK, UNPACK, FILL, int8 CONCATENATION) the fold does too; elsewhere TFLite
copies the stored values whatever the quantization, and so does npuc.

The helpers here are shared with :mod:`.slicing` and :mod:`.spatial`.
"""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import Floats, HostOp, Int, Ints
from ..kernels import movement
from .common import (NUMERIC_TYPES, Params, constant_int, constant_ints, fail, input_tensor, normalized_axis,
                     output_tensor, per_tensor, require_shape, require_type, same_type)

#: Every element type the data-movement kernels copy.
ALL_TYPES = NUMERIC_TYPES
#: TFLite's SPLIT, SPLIT_V and PACK take no bool; its UNPACK takes no int64; ZEROS_LIKE takes three types.
NO_BOOL = ("uint8", "int8", "int16", "int32", "int64", "float32")
UNPACK_TYPES = ("bool", "uint8", "int8", "int16", "int32", "float32")
ZEROS_LIKE_TYPES = ("int32", "int64", "float32")
#: Types of the integer operands TFLite reads as shapes, multiples or paddings.
SHAPE_TYPES = ("int32", "int64")
#: The types TFLite treats as quantized when it compares quantizations.
QUANTIZED_STORAGE = ("uint8", "int8", "int16")
#: Largest magnitude a requantized uint8 value may reach before rounding: TFLite converts it to int32.
REQUANTIZED_LIMIT = float(1 << 31)
#: The most axes the C kernels' element maps walk (a TILE of a 6-D tensor views its output in 12).
MAX_VIEW_AXES = 12


# -- helpers shared by the data-movement folds -----------------------------------------------

def io(graph: Graph, op: Op, types: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """Input 0 and output 0, of one type among ``types``, the same on both sides."""
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input", types)
    same_type(op, x, y)
    return x, y


def quantization(op: Op, t: Tensor, what: str) -> tuple[float, int]:
    """TFLite's per-tensor (scale, zero point) of ``t``, (0, 0) when it is not quantized."""
    return (0.0, 0) if t.quant is None else per_tensor(op, t, what)


def require_same_quantization(op: Op, a: Tensor, b: Tensor, zero_point_0: bool = True) -> None:
    """TFLite's check that two 8- or 16-bit tensors share scale and zero point (and int16's zero point is 0)."""
    if a.dtype not in QUANTIZED_STORAGE:
        return
    qa, qb = quantization(op, a, "tensor"), quantization(op, b, "tensor")
    if qa != qb:
        raise fail(op, f"{a.describe()} and {b.describe()} are quantized differently, which TFLite refuses")
    if zero_point_0 and a.dtype == "int16" and qa[1] != 0:
        raise fail(op, f"{a.describe()} has a non-zero zero point, which TFLite refuses for int16")


def constant_vector(op: Op, t: Tensor, what: str, length: int,
                    types: tuple[str, ...] = SHAPE_TYPES) -> list[int]:
    """The values of a constant 1-D operand (a permutation, multiples) of ``length`` elements of ``types``."""
    require_type(op, t, what, types)
    values = constant_ints(op, t, what)
    if len(t.shape) != 1 or len(values) != length:
        raise fail(op, f"{what} {t.describe()} must hold {length} values")
    return values


def constant_matrix(op: Op, t: Tensor, what: str, rows: int,
                    types: tuple[str, ...] = SHAPE_TYPES) -> list[tuple[int, int]]:
    """The rows of a constant [rows, 2] operand (paddings, crops) of ``types``, each (before, after)."""
    require_type(op, t, what, types)
    values = constant_ints(op, t, what)
    if tuple(t.shape) != (rows, 2):
        raise fail(op, f"{what} {t.describe()} must have shape [{rows}, 2]")
    return list(zip(values[0::2], values[1::2]))


def require_output(op: Op, y: Tensor, shape: list[int] | tuple[int, ...]) -> None:
    """The model's output shape must be the one TFLite computes (TFLite resizes its output to it)."""
    require_shape(op, y, shape, "output")


def int32_values(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int32)


# -- the folds --------------------------------------------------------------------------------

def _reshape(graph: Graph, op: Op) -> Params:
    """RESHAPE, SQUEEZE and EXPAND_DIMS: the same elements in another shape (the shape operands change no byte)."""
    x, y = io(graph, op, ALL_TYPES)
    if x.num_elements != y.num_elements:
        raise fail(op, f"{x.describe()} and {y.describe()} differ in element count")
    return {}


def _expand_dims(graph: Graph, op: Op) -> Params:
    """EXPAND_DIMS: a reshape, whose input and output TFLite requires to be quantized alike."""
    x, y = io(graph, op, ALL_TYPES)
    if quantization(op, x, "input") != quantization(op, y, "output"):
        raise fail(op, f"{x.describe()} and {y.describe()} are quantized differently, which TFLite refuses")
    return _reshape(graph, op)


def _concatenation(graph: Graph, op: Op) -> Params:
    """Axis, and for uint8 which inputs TFLite requantizes (and how); other types are copied unchanged."""
    y = output_tensor(graph, op)
    require_type(op, y, "output", ALL_TYPES)
    xs = [input_tensor(graph, op, i, f"input {i}") for i in range(len(op.inputs))]
    if op.options.get("fused_activation_function", "NONE") != "NONE":
        raise fail(op, "a fused activation is not supported by TFLite's CONCATENATION")
    axis = normalized_axis(op, int(op.options.get("axis", 0)), len(y.shape))
    for x in xs:
        if len(x.shape) != len(y.shape):
            raise fail(op, f"input {x.describe()} and output {y.describe()} differ in rank")
    _joined(op, xs, y, axis, [x.shape[axis] for x in xs])
    n = len(xs)
    params: Params = {"axis": axis, "rescale": np.zeros(n, np.int32), "scale": np.ones(n, np.float32),
                      "bias": np.zeros(n, np.float32), "output_zero_point": 0}
    if y.dtype == "uint8":
        _requantization(op, xs, y, params)
    elif y.dtype == "int8":
        for x in xs:
            if quantization(op, x, "input") != quantization(op, y, "output"):
                raise fail(op, f"input {x.describe()} is quantized differently from output {y.describe()}; "
                               f"TFLite requantizes only uint8 concatenations")
    elif y.dtype == "int16":
        for t in xs + [y]:
            if quantization(op, t, "tensor")[1] != 0:
                raise fail(op, f"{t.describe()} has a non-zero zero point, which TFLite refuses for int16")
    return params


def _joined(op: Op, parts: list[Tensor], whole: Tensor, axis: int, sizes: list[int]) -> None:
    """Each part has the whole's type and shape but for ``axis``, where ``sizes`` add up to the whole's."""
    for part, size in zip(parts, sizes):
        same_type(op, part, whole)
        require_shape(op, part, whole.shape[:axis] + (size,) + whole.shape[axis + 1:], "operand")
    if sum(sizes) != whole.shape[axis]:
        raise fail(op, f"its parts do not add up to {whole.describe()} along axis {axis}")


def _requantization(op: Op, xs: list[Tensor], y: Tensor, params: Params) -> None:
    """TFLite's float32 scale and bias for each uint8 input quantized unlike the output."""
    if all(quantization(op, x, "input") == quantization(op, y, "output") for x in xs):
        return
    out_scale, out_zp = per_tensor(op, y, "output")
    params["output_zero_point"] = out_zp
    inverse_output_scale = np.float32(1) / np.float32(out_scale)
    for i, x in enumerate(xs):
        scale, zp = per_tensor(op, x, f"input {i}")
        if (scale, zp) == (out_scale, out_zp):
            continue
        with np.errstate(over="ignore"):
            ratio = np.float32(scale) * inverse_output_scale
            bias = np.float32(-zp) * ratio
        if not abs(float(ratio)) * 255 + abs(float(bias)) < REQUANTIZED_LIMIT:
            raise fail(op, f"input {x.describe()} would be requantized beyond the int32 range")
        params["rescale"][i], params["scale"][i], params["bias"][i] = 1, ratio, bias


def _split_outputs(graph: Graph, op: Op, value_index: int, axis: int, sizes: list[int]) -> Params:
    x = graph.tensors[op.inputs[value_index]]
    require_type(op, x, "value", NO_BOOL)
    axis = normalized_axis(op, axis, len(x.shape))
    outs = [graph.tensors[o] for o in op.outputs]
    if len(sizes) != len(outs):
        raise fail(op, f"{len(outs)} outputs for {len(sizes)} parts")
    _joined(op, outs, x, axis, [_resolved_size(op, s, sizes, x.shape[axis]) for s in sizes])
    return {"axis": axis, "value_index": value_index}


def _resolved_size(op: Op, size: int, sizes: list[int], whole: int) -> int:
    """A SPLIT_V size: -1 (at most one) is what the others leave of the whole."""
    if size != -1:
        if size < 0:
            raise fail(op, f"split size {size} is negative")
        return size
    if sizes.count(-1) > 1:
        raise fail(op, "more than one split size is -1")
    return whole - (sum(sizes) + 1)


def _split(graph: Graph, op: Op) -> Params:
    """SPLIT: inputs (axis, value), ``num_splits`` equal parts."""
    axis_t, x = input_tensor(graph, op, 0, "axis"), input_tensor(graph, op, 1, "value")
    axis = constant_int(op, axis_t, "axis")
    parts = len(op.outputs)
    if int(op.options.get("num_splits", parts)) != parts or parts == 0:
        raise fail(op, f"num_splits does not match its {parts} outputs")
    dim = x.shape[normalized_axis(op, axis, len(x.shape))]
    if dim % parts:
        raise fail(op, f"axis {axis} of {x.describe()} does not split into {parts} equal parts")
    return _split_outputs(graph, op, 1, axis, [dim // parts] * parts)


def _split_v(graph: Graph, op: Op) -> Params:
    """SPLIT_V: inputs (value, size_splits, axis)."""
    input_tensor(graph, op, 0, "value")
    sizes = constant_ints(op, input_tensor(graph, op, 1, "size_splits"), "size_splits")
    return _split_outputs(graph, op, 0, constant_int(op, input_tensor(graph, op, 2, "axis"), "axis"), sizes)


def _pack(graph: Graph, op: Op) -> Params:
    y = output_tensor(graph, op)
    require_type(op, y, "output", NO_BOOL)
    xs = [input_tensor(graph, op, i, f"input {i}") for i in range(len(op.inputs))]
    axis = normalized_axis(op, int(op.options.get("axis", 0)), len(y.shape))
    for x in xs:
        same_type(op, x, y)
        require_shape(op, x, y.shape[:axis] + y.shape[axis + 1:], "input")
        require_same_quantization(op, x, y, zero_point_0=False)
    if y.shape[axis] != len(xs):
        raise fail(op, f"output {y.describe()} does not stack {len(xs)} inputs along axis {axis}")
    return {"axis": axis}


def _unpack(graph: Graph, op: Op) -> Params:
    x = input_tensor(graph, op, 0, "input")
    require_type(op, x, "input", UNPACK_TYPES)
    axis = normalized_axis(op, int(op.options.get("axis", 0)), len(x.shape))
    for o in op.outputs:
        y = graph.tensors[o]
        same_type(op, x, y)
        require_shape(op, y, x.shape[:axis] + x.shape[axis + 1:], "output")
        require_same_quantization(op, x, y, zero_point_0=False)
    if x.shape[axis] != len(op.outputs):
        raise fail(op, f"{len(op.outputs)} outputs for {x.shape[axis]} slices of {x.describe()}")
    return {"axis": axis}


def _transpose(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, ALL_TYPES)
    rank = len(x.shape)
    perm = [normalized_axis(op, p, rank)
            for p in constant_vector(op, input_tensor(graph, op, 1, "perm"), "perm", rank, ("int32",))]
    if sorted(perm) != list(range(rank)):
        raise fail(op, f"perm {perm} is not a permutation")
    require_output(op, y, [x.shape[p] for p in perm])
    return {"perm": int32_values(perm)}


def _tile(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, ALL_TYPES)
    multiples = constant_vector(op, input_tensor(graph, op, 1, "multiples"), "multiples", len(x.shape))
    if any(m < 0 for m in multiples):
        raise fail(op, f"multiples {multiples} must not be negative")
    require_output(op, y, [d * m for d, m in zip(x.shape, multiples)])
    if 2 * len(x.shape) > MAX_VIEW_AXES:
        raise fail(op, f"{x.describe()} has more dimensions than the host kernel tiles")
    return {"multiples": int32_values(multiples)}


def _broadcast_to(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, ALL_TYPES)
    shape_t = input_tensor(graph, op, 1, "shape")
    require_output(op, y, constant_vector(op, shape_t, "shape", shape_t.num_elements))
    lead = len(y.shape) - len(x.shape)
    if lead < 0 or any(d not in (1, y.shape[lead + k]) for k, d in enumerate(x.shape)):
        raise fail(op, f"{x.describe()} does not broadcast to {y.describe()}")
    return {}


def _zeros_like(graph: Graph, op: Op) -> Params:
    x, y = io(graph, op, ZEROS_LIKE_TYPES)
    require_output(op, y, x.shape)
    return {}


def _fill(graph: Graph, op: Op) -> Params:
    dims, value, y = input_tensor(graph, op, 0, "dims"), input_tensor(graph, op, 1, "value"), output_tensor(graph, op)
    require_type(op, y, "output", ALL_TYPES)
    same_type(op, value, y)
    if value.shape:
        raise fail(op, f"value {value.describe()} must be a scalar")
    require_output(op, y, constant_vector(op, dims, "dims", dims.num_elements))
    require_same_quantization(op, value, y, zero_point_0=False)
    return {}


_AXIS = (Int("axis", 0, 5),)

OPS = (
    HostOp("RESHAPE", (), _reshape, movement.reshape),
    HostOp("SQUEEZE", (), _reshape, movement.reshape, stem="reshape"),
    HostOp("EXPAND_DIMS", (), _expand_dims, movement.reshape, stem="reshape"),
    HostOp("CONCATENATION", (Int("axis", 0, 5), Ints("rescale", 0, 1), Floats("scale"), Floats("bias"),
                             Int("output_zero_point", 0, 255)), _concatenation, movement.concatenation),
    HostOp("SPLIT", (Int("axis", 0, 5), Int("value_index", 0, 1)), _split, movement.split),
    HostOp("SPLIT_V", (Int("axis", 0, 5), Int("value_index", 0, 1)), _split_v, movement.split, stem="split"),
    HostOp("PACK", _AXIS, _pack, movement.pack),
    HostOp("UNPACK", _AXIS, _unpack, movement.unpack),
    HostOp("TRANSPOSE", (Ints("perm", 0, 5),), _transpose, movement.transpose),
    HostOp("TILE", (Ints("multiples", 0),), _tile, movement.tile),
    HostOp("BROADCAST_TO", (), _broadcast_to, movement.broadcast_to),
    HostOp("ZEROS_LIKE", (), _zeros_like, movement.zeros_like),
    HostOp("FILL", (), _fill, movement.fill),
)
