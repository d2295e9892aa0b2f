"""READ_VARIABLE and ASSIGN_VARIABLE on the host, after ``passes.variables`` has rewritten them.

By then a variable is a state tensor: ASSIGN_VARIABLE copies a run's last value
into it (its input is the value, its output the state tensor), and a
READ_VARIABLE that survives (its result is a graph output) copies the state
tensor out.  Both are byte copies between tensors of one type and shape.
"""

from __future__ import annotations

from ...ir import Graph, Op
from ..decl import HostOp
from ..kernels import state
from .common import NUMERIC_TYPES, Params, fail, input_tensor, output_tensor, require_shape, require_type, same_type


def _copy(graph: Graph, op: Op) -> Params:
    x, y = input_tensor(graph, op, 0, "value"), output_tensor(graph, op)
    if len(op.inputs) != 1:
        raise fail(op, "is not a rewritten variable operator (npuc.passes.variables handles resource variables)")
    require_type(op, y, "output", NUMERIC_TYPES)
    same_type(op, x, y)
    require_shape(op, y, x.shape, "output")
    return {}


OPS = (
    HostOp("ASSIGN_VARIABLE", (), _copy, state.copy, stem="state_copy"),
    HostOp("READ_VARIABLE", (), _copy, state.copy, stem="state_copy"),
)
