"""Sequences, selections, segments and bits on the host: RANGE, BROADCAST_ARGS, CUMSUM, ONE_HOT, TOPK_V2,
REVERSE_SEQUENCE, DYNAMIC_UPDATE_SLICE, SEGMENT_SUM, UNSORTED_SEGMENT_SUM/MAX/MIN/PROD, RIGHT_SHIFT, BITWISE_XOR.

Each fold makes the checks TFLite's Prepare makes (element types, ranks,
scalars), takes the options the kernel walks by as parameters (CUMSUM's axis,
ONE_HOT's axis, REVERSE_SEQUENCE's dimensions) and requires the output shape
TFLite computes.  Where that shape depends on an operand's value, the operand
must be a constant: RANGE's start, limit and delta (RANGE is then computed at
compile time, unless it writes a graph output), ONE_HOT's depth, TOPK_V2's k,
the number of segments of the unsorted segment reductions and SEGMENT_SUM's
segment ids.  Operands that do not change the shape may arrive at run time:
ONE_HOT's on and off values, DYNAMIC_UPDATE_SLICE's start indices (clamped
into the operand there, as TFLite clamps them), REVERSE_SEQUENCE's lengths
and the unsorted reductions' segment ids (checked here when constant, as
TFLite's Prepare checks them).  SEGMENT_SUM, once its ids are checked to be
sorted, runs the unsorted reductions' kernel.
"""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import Flag, FoldFn, HostOp, Int, Types
from ..kernels import sequence
from .arith import operands
from .common import (Params, constant_int, constant_ints, fail, input_tensor, normalized_axis, output_tensor,
                     require_type, same_type)
from .movement import ALL_TYPES, require_output

#: Element types of RANGE, CUMSUM (and of BROADCAST_ARGS's shapes, without float32).
SCALAR_TYPES = ("int32", "int64", "float32")
SHAPE_TYPES = ("int32", "int64")
#: ONE_HOT's outputs (TFLite's Prepare also lets int16 through, then fails when it runs).
ONE_HOT_TYPES = ("bool", "uint8", "int8", "int32", "int64", "float32")
TOPK_TYPES = ("uint8", "int8", "int16", "int32", "int64", "float32")
REVERSE_SEQUENCE_TYPES = ("uint8", "int16", "int32", "int64", "float32")
SEGMENT_TYPES = ("int32", "float32")
#: The integer types RIGHT_SHIFT and BITWISE_XOR take that npuc's tensors hold (TFLite also takes uint16/uint32).
BITWISE_TYPES = ("uint8", "int8", "int16", "int32")
#: The reduction parameter of the segment kernels (npuc.host.kernels.sequence.SEGMENT_REDUCTIONS order).
REDUCTIONS = {name: code for code, name in enumerate(sequence.SEGMENT_REDUCTIONS)}
#: The most elements a TFLite tensor dimension holds (an int).
MAX_DIMENSION = (1 << 31) - 1


def _scalar(op: Op, t: Tensor, what: str) -> None:
    """TFLite's kernels read the first value of these operands, and require one."""
    if t.num_elements != 1:
        raise fail(op, f"{what} {t.describe()} must hold one value")


def _constant_scalar(op: Op, t: Tensor, what: str) -> float | int:
    if not t.is_constant:
        raise fail(op, f"{what} {t.describe()} must be a constant: it decides the output shape")
    _scalar(op, t, what)
    value = np.asarray(t.data).reshape(-1)[0]
    return float(value) if t.dtype == "float32" else int(value)


# -- RANGE and BROADCAST_ARGS ------------------------------------------------------------------------

def _integer_range_size(op: Op, dtype: str, start: int, limit: int, delta: int) -> int:
    """(|limit - start| + |delta| - 1) / |delta|, refused where TFLite's arithmetic in ``dtype`` would overflow."""
    span = abs(limit - start) + abs(delta) - 1
    if span > np.iinfo(dtype).max or abs(delta) > np.iinfo(dtype).max:
        raise fail(op, f"start {start}, limit {limit} and delta {delta} overflow TFLite's {dtype} arithmetic")
    return span // abs(delta)


def _range_size(op: Op, dtype: str, start: float | int, limit: float | int, delta: float | int) -> int:
    """TFLite's GetSize: how many values start + k * delta lie before limit, computed in the operands' type."""
    if delta == 0 or not ((start > limit and delta < 0) or (start < limit and delta > 0)):
        raise fail(op, f"start {start}, limit {limit} and delta {delta} describe no sequence, which TFLite refuses")
    if dtype == "float32":
        with np.errstate(all="ignore"):
            size = np.ceil(np.abs((np.float32(limit) - np.float32(start)) / np.float32(delta)))
    else:
        size = _integer_range_size(op, dtype, int(start), int(limit), int(delta))
    if not size <= MAX_DIMENSION:
        raise fail(op, f"start {start}, limit {limit} and delta {delta} give {size} values")
    return int(size)


def _range(graph: Graph, op: Op) -> Params:
    """Constant scalar start, limit and delta of the output's type; the output holds TFLite's count of values."""
    y = output_tensor(graph, op)
    require_type(op, y, "output", SCALAR_TYPES)
    values = []
    for i, what in enumerate(("start", "limit", "delta")):
        t = input_tensor(graph, op, i, what)
        same_type(op, t, y)
        if t.shape:
            raise fail(op, f"{what} {t.describe()} must be a scalar")
        values.append(_constant_scalar(op, t, what))
    require_output(op, y, [_range_size(op, y.dtype, *values)])
    return {}


def _broadcast_args(graph: Graph, op: Op) -> Params:
    """Two 1-D shapes (that broadcast, when constant) and the output, all int32 or all int64; the output as long
    as the longer shape."""
    y = output_tensor(graph, op)
    require_type(op, y, "output", SHAPE_TYPES)
    shapes = [input_tensor(graph, op, i, f"shape {i + 1}") for i in range(2)]
    for i, t in enumerate(shapes):
        same_type(op, t, y)
        if len(t.shape) != 1:
            raise fail(op, f"shape {i + 1} {t.describe()} must be 1-D")
    n = max(t.shape[0] for t in shapes)
    require_output(op, y, [n])
    if all(t.is_constant for t in shapes) and sequence.broadcast_entries(*(t.data for t in shapes), n)[1]:
        raise fail(op, f"shapes {shapes[0].describe()} and {shapes[1].describe()} do not broadcast, which TFLite "
                       f"refuses")
    return {}


# -- CUMSUM, ONE_HOT, TOPK_V2 -------------------------------------------------------------------------

def _cumsum(graph: Graph, op: Op) -> Params:
    """A constant int32 axis (TFLite reads it when it runs; npuc walks by it), the exclusive and reverse flags."""
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input", SCALAR_TYPES)
    same_type(op, x, y)
    axis_t = input_tensor(graph, op, 1, "axis")
    require_type(op, axis_t, "axis", ("int32",))
    if not x.shape:
        raise fail(op, f"input {x.describe()} must have at least one dimension")
    require_output(op, y, x.shape)
    axis = normalized_axis(op, constant_int(op, axis_t, "axis"), len(x.shape))
    return {"axis": axis, "exclusive": int(bool(op.options.get("exclusive", False))),
            "reverse": int(bool(op.options.get("reverse", False)))}


def _one_hot(graph: Graph, op: Op) -> Params:
    """int32/int64 indices, a constant int32 depth, on and off values of the output's type; the depth axis."""
    indices, y = input_tensor(graph, op, 0, "indices"), output_tensor(graph, op)
    require_type(op, indices, "indices", SHAPE_TYPES)
    require_type(op, y, "output", ONE_HOT_TYPES)
    depth_t = input_tensor(graph, op, 1, "depth")
    require_type(op, depth_t, "depth", ("int32",))
    depth = _constant_scalar(op, depth_t, "depth")
    if depth < 0:
        raise fail(op, f"depth {depth} is negative")
    for i, what in ((2, "on value"), (3, "off value")):
        t = input_tensor(graph, op, i, what)
        same_type(op, t, y)
        _scalar(op, t, what)
    rank = len(indices.shape)
    axis = int(op.options.get("axis", -1))
    axis = rank if axis == -1 else axis
    if not 0 <= axis <= rank:
        raise fail(op, f"axis {axis} is out of range for {rank + 1} output dimensions")
    require_output(op, y, indices.shape[:axis] + (int(depth),) + indices.shape[axis:])
    return {"axis": axis}


def _topk_v2(graph: Graph, op: Op) -> Params:
    """A constant int32 k up to the last dimension; values of the input's type, int32 indices."""
    x = input_tensor(graph, op, 0, "input")
    require_type(op, x, "input", TOPK_TYPES)
    k_t = input_tensor(graph, op, 1, "k")
    require_type(op, k_t, "k", ("int32",))
    k = _constant_scalar(op, k_t, "k")
    if len(op.outputs) != 2:
        raise fail(op, "must have two outputs: values and indices")
    values, indices = (graph.tensors[o] for o in op.outputs)
    if not x.shape or not 0 <= k <= x.shape[-1]:
        raise fail(op, f"k {k} does not fit the last dimension of {x.describe()}")
    same_type(op, x, values)
    require_type(op, indices, "indices", ("int32",))
    for t in (values, indices):
        require_output(op, t, x.shape[:-1] + (int(k),))
    return {}


# -- REVERSE_SEQUENCE and DYNAMIC_UPDATE_SLICE ----------------------------------------------------------

def _reverse_sequence(graph: Graph, op: Op) -> Params:
    """Distinct non-negative seq_dim and batch_dim inside the input; one int32/int64 length per batch."""
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input", REVERSE_SEQUENCE_TYPES)
    same_type(op, x, y)
    require_output(op, y, x.shape)
    lengths = input_tensor(graph, op, 1, "seq_lengths")
    require_type(op, lengths, "seq_lengths", SHAPE_TYPES)
    seq_dim, batch_dim = int(op.options.get("seq_dim", 0)), int(op.options.get("batch_dim", 0))
    rank = len(x.shape)
    if seq_dim == batch_dim or not (0 <= seq_dim < rank and 0 <= batch_dim < rank):
        raise fail(op, f"seq_dim {seq_dim} and batch_dim {batch_dim} must be distinct axes of {x.describe()}")
    if lengths.shape != (x.shape[batch_dim],):
        raise fail(op, f"seq_lengths {lengths.describe()} must hold one length per batch of {x.describe()}")
    why = sequence.refused_sequence_length(np.asarray(lengths.data), x.shape[seq_dim]) if lengths.is_constant else None
    if why is not None:
        raise fail(op, f"constant {why}, which TFLite refuses")
    return {"seq_dim": seq_dim, "batch_dim": batch_dim}


def _dynamic_update_slice(graph: Graph, op: Op) -> Params:
    """An update of the operand's type and rank, no larger along any axis; one int32/int64 start per axis."""
    x, y = input_tensor(graph, op, 0, "operand"), output_tensor(graph, op)
    require_type(op, x, "operand", ALL_TYPES)
    update = input_tensor(graph, op, 1, "update")
    same_type(op, update, x)
    same_type(op, x, y)
    require_output(op, y, x.shape)
    if len(update.shape) != len(x.shape) or any(u > d for u, d in zip(update.shape, x.shape)):
        raise fail(op, f"update {update.describe()} does not fit in operand {x.describe()}")
    starts = input_tensor(graph, op, 2, "start indices")
    require_type(op, starts, "start indices", SHAPE_TYPES)
    if starts.shape != (len(x.shape),):
        raise fail(op, f"start indices {starts.describe()} must hold one index per axis of {x.describe()}")
    return {}


# -- segment reductions ------------------------------------------------------------------------------

def _segment_data(graph: Graph, op: Op) -> tuple[Tensor, Tensor, Tensor]:
    """Data (int32 or float32), int32 segment ids and the output of the data's type."""
    data, y = input_tensor(graph, op, 0, "data"), output_tensor(graph, op)
    require_type(op, data, "data", SEGMENT_TYPES)
    same_type(op, data, y)
    ids = input_tensor(graph, op, 1, "segment ids")
    require_type(op, ids, "segment ids", ("int32",))
    return data, ids, y


def _num_segments(graph: Graph, op: Op) -> int:
    """The constant int32 number of segments, of shape [] or [1] (TFLite reads its first value)."""
    t = input_tensor(graph, op, 2, "num_segments")
    require_type(op, t, "num_segments", ("int32",))
    if t.shape not in ((), (1,)):
        raise fail(op, f"num_segments {t.describe()} must be a scalar")
    return int(_constant_scalar(op, t, "num_segments"))


def _unsorted_segment(reduction: str) -> FoldFn:
    def fold(graph: Graph, op: Op) -> Params:
        """Segment ids shaped like the data's leading axes (below num_segments when constant); the output
        holds num_segments rows of the data's remaining axes."""
        data, ids, y = _segment_data(graph, op)
        lead = len(ids.shape)
        if not ids.shape or lead > len(data.shape) or data.shape[:lead] != ids.shape:
            raise fail(op, f"segment ids {ids.describe()} must have the leading dimensions of data {data.describe()}")
        count = _num_segments(graph, op)
        if ids.is_constant and np.asarray(ids.data).max(initial=-1) >= count:
            raise fail(op, f"segment ids {ids.describe()} reach past num_segments {count}, which TFLite refuses")
        require_output(op, y, (count,) + data.shape[lead:])
        return {"reduction": REDUCTIONS[reduction]}
    return fold


def _segment_sum(graph: Graph, op: Op) -> Params:
    """Constant 1-D segment ids, one per row of data, from 0 and rising by 0 or 1: the output's rows."""
    data, ids, y = _segment_data(graph, op)
    if not data.shape or ids.shape != data.shape[:1]:
        raise fail(op, f"segment ids {ids.describe()} must hold one id per row of data {data.describe()}")
    if not ids.is_constant:
        raise fail(op, f"segment ids {ids.describe()} must be a constant: they decide the output shape")
    values = constant_ints(op, ids, "segment ids")
    if values and (values[0] != 0 or not np.isin(np.diff(values), (0, 1)).all()):
        raise fail(op, f"segment ids {ids.describe()} must start at 0 and rise by 0 or 1, as TFLite requires")
    require_output(op, y, (values[-1] + 1 if values else 0,) + data.shape[1:])
    return {"reduction": REDUCTIONS["SUM"]}


# -- bitwise operators -------------------------------------------------------------------------------

def _bitwise(graph: Graph, op: Op) -> Params:
    """Two inputs of one integer type broadcasting to the output, which has their type."""
    (x, _), y = operands(graph, op, BITWISE_TYPES)
    same_type(op, x, y)
    return {}


_SEGMENT = (Int("reduction", 0, len(REDUCTIONS) - 1, doc="SUM, MAX, MIN or PROD"),)
_SEGMENT_TYPES = Types(SEGMENT_TYPES, "input")

OPS = (
    HostOp("RANGE", (), _range, sequence.range_values, types=Types(SCALAR_TYPES)),
    HostOp("BROADCAST_ARGS", (), _broadcast_args, sequence.broadcast_args, types=Types(SHAPE_TYPES)),
    HostOp("CUMSUM", (Int("axis", 0, 5), Flag("exclusive"), Flag("reverse")), _cumsum, sequence.cumsum,
           types=Types(SCALAR_TYPES, "input")),
    HostOp("ONE_HOT", (Int("axis", 0, 5, doc="the output axis of the depth"),), _one_hot, sequence.one_hot,
           types=Types(ONE_HOT_TYPES)),
    HostOp("TOPK_V2", (), _topk_v2, sequence.topk_v2, types=Types(TOPK_TYPES, "input")),
    HostOp("REVERSE_SEQUENCE", (Int("seq_dim", 0, 5), Int("batch_dim", 0, 5)), _reverse_sequence,
           sequence.reverse_sequence, types=Types(REVERSE_SEQUENCE_TYPES, "input")),
    HostOp("DYNAMIC_UPDATE_SLICE", (), _dynamic_update_slice, sequence.dynamic_update_slice),
    *(HostOp(f"UNSORTED_SEGMENT_{name}", _SEGMENT, _unsorted_segment(name), sequence.unsorted_segment,
             types=_SEGMENT_TYPES, stem="unsorted_segment") for name in sequence.SEGMENT_REDUCTIONS),
    HostOp("SEGMENT_SUM", _SEGMENT, _segment_sum, sequence.unsorted_segment, types=_SEGMENT_TYPES,
           stem="unsorted_segment"),
    HostOp("RIGHT_SHIFT", (), _bitwise, sequence.right_shift, types=Types(BITWISE_TYPES, "input")),
    HostOp("BITWISE_XOR", (), _bitwise, sequence.bitwise_xor, types=Types(BITWISE_TYPES, "input")),
)
