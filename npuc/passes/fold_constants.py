"""Constant folding: whatever the compiler can compute from constants and static shapes becomes a constant.

Exporters wrap shapes in little programs: SHAPE of an activation, then
STRIDED_SLICE, PACK, CONCATENATION or arithmetic on the result, feeding a
RESHAPE's shape input or a RESIZE's size.  npuc compiles for static shapes, so
every such value is known at compile time; and any operator whose inputs are
all constants computes the same result on every run.  This pass evaluates them
once, with the host kernels (bit-exact with TFLite's reference kernels), turns
their outputs into constants and removes them, so nothing of it reaches the
blob.

Kept: operators that write a graph output (the blob must still produce it),
stateful and control-flow operators, and operators without a host kernel
(placement reports those).
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..host import BY_OPCODE, fold, opcode_of
from ..ir import NUMPY_DTYPES, Graph, Op

#: Operators that only look at their input's shape.
SHAPE_OPS = ("SHAPE", "RANK")
#: Operators whose outputs depend on more than their inputs' values.
NOT_FOLDABLE = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE", "WHILE", "IF", "CALL",
                "RANDOM_STANDARD_NORMAL", "RANDOM_UNIFORM", "MULTINOMIAL"}


def _shape_value(graph: Graph, op: Op) -> np.ndarray | None:
    """SHAPE and RANK of a tensor with a static shape; None for other operators."""
    if op.opcode not in SHAPE_OPS or not op.inputs or op.inputs[0] is None:
        return None
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if y.dtype not in ("int32", "int64"):
        return None
    value = x.shape if op.opcode == "SHAPE" else len(x.shape)
    return np.asarray(value, dtype=NUMPY_DTYPES[y.dtype]).reshape(y.shape)


def _evaluated(graph: Graph, op: Op) -> list[np.ndarray] | None:
    """The op's outputs computed now, or None when they depend on run-time values or cannot be computed."""
    shape = _shape_value(graph, op)
    if shape is not None:
        return [shape]
    if op.opcode in NOT_FOLDABLE or opcode_of(op) not in BY_OPCODE:
        return None
    inputs = [None if t is None else graph.tensors[t] for t in op.inputs]
    if not inputs or any(t is not None and not t.is_constant for t in inputs):
        return None
    try:
        kernel, params = fold(graph, op)
    except UnsupportedError:
        return None  # placement gives the reason
    outs = [np.zeros(graph.tensors[o].shape, dtype=NUMPY_DTYPES[graph.tensors[o].dtype]) for o in op.outputs]
    kernel.run([None if t is None else t.data for t in inputs], outs, params)
    return outs


def fold_constants(graph: Graph) -> list[Op]:
    """Evaluate every foldable operator (in execution order, so folds cascade); returns the folded operators.

    The folded operators are removed from ``graph`` and their outputs become constants.
    """
    outputs = set(graph.outputs)
    folded: list[Op] = []
    for op in graph.topological_order():
        if any(o in outputs for o in op.outputs):
            continue
        values = _evaluated(graph, op)
        if values is None:
            continue
        for o, value in zip(op.outputs, values):
            graph.tensors[o].data = value
        folded.append(op)
    if folded:
        gone = {op.index for op in folded}
        graph.ops = [op for op in graph.ops if op.index not in gone]
    return folded
