"""Scatters, diagonals, lookups and buckets on the host: SCATTER_ND, SPARSE_TO_DENSE, MATRIX_DIAG, MATRIX_SET_DIAG,
EMBEDDING_LOOKUP, BUCKETIZE and ATAN2.

Each fold makes the checks TFLite's Prepare makes (element types, ranks,
how the operands' shapes relate) and requires the output shape TFLite
computes.  Where that shape comes from an operand's values, the operand must
be a constant: SCATTER_ND's shape and SPARSE_TO_DENSE's output shape.
Indices may arrive at run time (an index outside the output then fails the
run, as it fails TFLite's kernel); constant indices are checked here, and
refused when TFLite would fail on them.

Where TFLite's kernel reads past an operand that is too small (a
MATRIX_SET_DIAG diagonal with too few values, ATAN2 operands of different
sizes), or reinterprets one (a bool MATRIX_DIAG run through its float code),
the fold refuses what TFLite would mishandle.  DENSIFY has no kernel: its
input is a sparse constant, and npuc's TFLite reader refuses sparse tensors
(the IR has no layout for them), so no DENSIFY ever reaches a fold.
"""

from __future__ import annotations

import math

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import Floats, HostOp, Types
from ..kernels import scatter
from .common import NUMERIC_TYPES, Params, constant_ints, fail, input_tensor, output_tensor, require_type, same_type
from .movement import require_output

#: SCATTER_ND's updates (TFLite also takes uint16, as asymmetric quantized values npuc does not hold).
SCATTER_TYPES = ("bool", "uint8", "int8", "int32", "int64", "float32")
#: SPARSE_TO_DENSE's values.
SPARSE_TYPES = ("uint8", "int8", "int32", "int64", "float32")
#: MATRIX_DIAG's and MATRIX_SET_DIAG's elements: TFLite runs any other type (bool) through its float32 code.
DIAG_TYPES = ("uint8", "int8", "int16", "int32", "int64", "float32")
#: The hybrid EMBEDDING_LOOKUP's weights (both read as int8, as TFLite reads them).
HYBRID_TYPES = ("uint8", "int8")
BUCKETIZE_TYPES = ("int32", "int64", "float32")
INDEX_TYPES = ("int32", "int64")
#: The most dimensions SPARSE_TO_DENSE's indices address (TFLite pads every index to four).
SPARSE_MAX_RANK = 4


def _constant_shape(op: Op, t: Tensor, what: str, types: tuple[str, ...]) -> list[int]:
    """A constant 1-D shape operand's values, none negative: it decides the output shape."""
    require_type(op, t, what, types)
    if len(t.shape) != 1:
        raise fail(op, f"{what} {t.describe()} must be 1-D")
    if not t.is_constant:
        raise fail(op, f"{what} {t.describe()} must be a constant: it decides the output shape")
    values = constant_ints(op, t, what)
    if any(v < 0 for v in values):
        raise fail(op, f"{what} {t.describe()} holds a negative dimension {min(values)}")
    return values


def _constant_indices(op: Op, t: Tensor, width: int, dims: tuple[int, ...]) -> None:
    """Refuse constant indices TFLite's kernel would fail on (each of ``width`` components inside ``dims``)."""
    if not t.is_constant:
        return
    why = scatter.index_problem(scatter.index_rows(np.asarray(t.data), width), dims)
    if why is not None:
        raise fail(op, f"constant indices {t.describe()}: {why}, which TFLite refuses")


# -- SCATTER_ND and SPARSE_TO_DENSE ----------------------------------------------------------------

def _scatter_nd(graph: Graph, op: Op) -> Params:
    """int32 indices [..., k], updates [...] + the shape's last dimensions after k, a constant int32 shape."""
    indices = input_tensor(graph, op, 0, "indices")
    updates = input_tensor(graph, op, 1, "updates")
    shape_t = input_tensor(graph, op, 2, "shape")
    y = output_tensor(graph, op)
    require_type(op, indices, "indices", ("int32",))
    require_type(op, updates, "updates", SCATTER_TYPES)
    same_type(op, updates, y)
    shape = _constant_shape(op, shape_t, "shape", ("int32",))
    if not indices.shape or not updates.shape:
        raise fail(op, f"indices {indices.describe()} and updates {updates.describe()} must have a dimension")
    outer, k = len(indices.shape) - 1, indices.shape[-1]
    if (k > len(shape) or updates.shape[:outer] != indices.shape[:outer]
            or tuple(updates.shape[outer:]) != tuple(shape[k:])):
        raise fail(op, f"updates {updates.describe()} do not fit indices {indices.describe()} and shape {shape}")
    require_output(op, y, shape)
    _constant_indices(op, indices, k, tuple(shape[:k]))
    return {}


def _sparse_to_dense(graph: Graph, op: Op) -> Params:
    """int32/int64 indices (one index, a vector of them, or [n, rank] for up to 4 dimensions), a constant shape of
    their type, one value or one per index, a default value; validate_indices is ignored, as TFLite ignores it."""
    indices = input_tensor(graph, op, 0, "indices")
    shape_t = input_tensor(graph, op, 1, "output shape")
    values = input_tensor(graph, op, 2, "values")
    default = input_tensor(graph, op, 3, "default value")
    y = output_tensor(graph, op)
    require_type(op, indices, "indices", INDEX_TYPES)
    require_type(op, values, "values", SPARSE_TYPES)
    for t in (default, y):
        same_type(op, values, t)
    shape = _constant_shape(op, shape_t, "output shape", INDEX_TYPES)
    if len(indices.shape) > 2 or len(values.shape) > 1:
        raise fail(op, f"indices {indices.describe()} must have at most 2 dimensions, values {values.describe()} "
                       f"at most 1")
    count, width = (indices.shape[0], indices.shape[1]) if len(indices.shape) == 2 else (indices.num_elements, 1)
    if width != len(shape) or width > SPARSE_MAX_RANK:
        raise fail(op, f"indices {indices.describe()} must hold one component per output dimension, for at most "
                       f"{SPARSE_MAX_RANK} dimensions (output shape {shape})")
    if values.shape and values.num_elements != count:
        raise fail(op, f"values {values.describe()} must hold one value per index of {indices.describe()}")
    if default.num_elements != 1:
        raise fail(op, f"default value {default.describe()} must hold one value")
    require_output(op, y, shape)
    _constant_indices(op, indices, width, tuple(shape))
    return {}


# -- MATRIX_DIAG and MATRIX_SET_DIAG ---------------------------------------------------------------

def _matrix_diag(graph: Graph, op: Op) -> Params:
    """An input of at least one dimension; the output repeats its last dimension."""
    x, y = input_tensor(graph, op, 0, "diagonal"), output_tensor(graph, op)
    require_type(op, x, "diagonal", DIAG_TYPES)
    same_type(op, x, y)
    if not x.shape:
        raise fail(op, f"diagonal {x.describe()} must have a dimension")
    require_output(op, y, x.shape + x.shape[-1:])
    return {}


def _matrix_set_diag(graph: Graph, op: Op) -> Params:
    """An input of at least two dimensions, a diagonal of its type holding every matrix's diagonal."""
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    diagonal = input_tensor(graph, op, 1, "diagonal")
    require_type(op, x, "input", DIAG_TYPES)
    for t in (diagonal, y):
        same_type(op, x, t)
    if len(x.shape) < 2:
        raise fail(op, f"input {x.describe()} must have at least two dimensions")
    need = math.prod(x.shape[:-2]) * min(x.shape[-2:])
    if diagonal.num_elements < need:
        raise fail(op, f"diagonal {diagonal.describe()} holds fewer than the {need} values TFLite reads")
    require_output(op, y, x.shape)
    return {}


# -- EMBEDDING_LOOKUP -------------------------------------------------------------------------------

def _hybrid_scales(op: Op, value: Tensor) -> np.ndarray:
    """The scales TFLite's hybrid lookup multiplies the int8 weights by: one, or one per row (axis 0)."""
    q = value.quant
    if q is None or q.scale.size == 0:
        raise fail(op, f"value {value.describe()} is not quantized: the float lookup needs its scale")
    if np.any(np.asarray(q.zero_point) != 0):
        raise fail(op, f"value {value.describe()} has a non-zero zero point; TFLite's float lookup takes symmetric "
                       f"weights")
    scales = np.asarray(q.scale, dtype=np.float32).reshape(-1)
    if scales.size > 1 and (q.axis != 0 or scales.size != value.shape[0]):
        raise fail(op, f"value {value.describe()} must be quantized per row (axis 0), as TFLite requires")
    if not np.all(np.isfinite(scales)):
        raise fail(op, f"value {value.describe()} has a scale that is not finite")
    return scales


def _embedding_lookup(graph: Graph, op: Op) -> Params:
    """1-D int32 ids, a value of at least two dimensions with rows, the output one row per id.

    The output has the value's type (rows are copied), or is float32 for
    int8/uint8 weights (the hybrid lookup: weights times their scale).
    """
    ids, y = input_tensor(graph, op, 0, "ids"), output_tensor(graph, op)
    value = input_tensor(graph, op, 1, "value")
    require_type(op, ids, "ids", ("int32",))
    if len(ids.shape) != 1 or len(value.shape) < 2 or value.shape[0] == 0:
        raise fail(op, f"ids {ids.describe()} must be 1-D and value {value.describe()} have rows and a second "
                       f"dimension")
    require_output(op, y, ids.shape + value.shape[1:])
    if value.dtype == y.dtype:
        q = value.quant
        if q is not None and q.scale.size > 1:
            raise fail(op, f"value {value.describe()} is quantized per channel, which TFLite takes only for a "
                           f"float output")
        scales = np.zeros(0, np.float32)
    elif y.dtype == "float32" and value.dtype in HYBRID_TYPES:
        scales = _hybrid_scales(op, value)
    else:
        raise fail(op, f"value {value.describe()} and output {y.describe()}: the lookup copies rows of one type, "
                       f"or turns {'/'.join(HYBRID_TYPES)} weights into float32")
    _constant_indices(op, ids, 1, value.shape[:1])
    return {"scales": scales}


# -- BUCKETIZE and ATAN2 -----------------------------------------------------------------------------

def _bucketize(graph: Graph, op: Op) -> Params:
    """Sorted finite boundaries (from the options); an int32 output shaped like the input."""
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input", BUCKETIZE_TYPES)
    require_type(op, y, "output", ("int32",))
    require_output(op, y, x.shape)
    boundaries = np.asarray(op.options.get("boundaries", []), dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(boundaries)):
        raise fail(op, f"boundaries {boundaries.tolist()} are not all finite, which npuc's parameters cannot hold")
    if np.any(boundaries[1:] < boundaries[:-1]):
        raise fail(op, f"boundaries {boundaries.tolist()} are not sorted, which TFLite refuses")
    return {"boundaries": boundaries}


def _atan2(graph: Graph, op: Op) -> Params:
    """float32 y and x of one rank and element count (TFLite walks both flat); the output shaped like y."""
    y_in, x_in, out = input_tensor(graph, op, 0, "y"), input_tensor(graph, op, 1, "x"), output_tensor(graph, op)
    require_type(op, y_in, "y", ("float32",))
    for t in (x_in, out):
        same_type(op, y_in, t)
    if len(x_in.shape) != len(y_in.shape) or x_in.num_elements != y_in.num_elements:
        raise fail(op, f"y {y_in.describe()} and x {x_in.describe()} must have one rank and one element count")
    require_output(op, out, y_in.shape)
    return {}


OPS = (
    HostOp("SCATTER_ND", (), _scatter_nd, scatter.scatter_nd, types=Types(SCATTER_TYPES)),
    HostOp("SPARSE_TO_DENSE", (), _sparse_to_dense, scatter.sparse_to_dense, types=Types(SPARSE_TYPES)),
    HostOp("MATRIX_DIAG", (), _matrix_diag, scatter.matrix_diag, types=Types(DIAG_TYPES)),
    HostOp("MATRIX_SET_DIAG", (), _matrix_set_diag, scatter.matrix_set_diag, types=Types(DIAG_TYPES)),
    HostOp("EMBEDDING_LOOKUP", (Floats("scales", doc="the float lookup's weight scales: one, or one per row; none "
                                                     "when rows are copied"),),
           _embedding_lookup, scatter.embedding_lookup, types=Types(NUMERIC_TYPES)),
    HostOp("BUCKETIZE", (Floats("boundaries", doc="sorted bucket boundaries"),), _bucketize, scatter.bucketize,
           types=Types(BUCKETIZE_TYPES, "input")),
    HostOp("ATAN2", (), _atan2, scatter.atan2_f32, types=Types(("float32",))),
)
