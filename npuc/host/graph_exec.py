"""Run a whole IR graph on the host kernels: the CPU-only reference path.

Deliberately minimal (a dict of arrays, one fresh array per op output): it
exists to check the host kernels end to end against TFLite and to give other
stages a bit-exact CPU result to compare with.  The real runtime executes the
host steps recorded in a .vipbin over its own arena instead.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from ..ir import NUMPY_DTYPES, Graph, Op, Tensor
from . import fold
from .decl import HostOp, Params


def variable_reset_value(t: Tensor) -> np.ndarray:
    """The value TFLite gives a variable tensor (an LSTM state) before the first run.

    TFLite's ResetVariableTensor fills an int8 tensor with its zero point and
    any other with zero bytes; a run that starts from this value matches a
    freshly reset interpreter.
    """
    fill = t.quant.single_zero_point if t.dtype == "int8" and t.quant is not None else 0
    return np.full(t.shape, fill, dtype=NUMPY_DTYPES[t.dtype])


def bind_inputs(graph: Graph, inputs: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
    """Graph inputs (checked against the IR's shapes and dtypes, InputError otherwise) and variable tensors.

    Variable tensors start from their reset value in every run.
    """
    if len(inputs) != len(graph.inputs):
        raise InputError(f"graph {graph.name!r} takes {len(graph.inputs)} inputs, got {len(inputs)}")
    values: dict[int, np.ndarray] = {t.index: variable_reset_value(t) for t in graph.tensors
                                     if t.is_variable and not t.is_constant}
    for index, value in zip(graph.inputs, inputs):
        t = graph.tensors[index]
        value = np.asarray(value)
        if value.dtype != NUMPY_DTYPES.get(t.dtype) or tuple(value.shape) != tuple(t.shape):
            raise InputError(f"input {t.name!r} expects {t.dtype}{list(t.shape)}, got {value.dtype}{list(value.shape)}")
        values[index] = value
    return values


def run_op_on_host(graph: Graph, op: Op, kernel: HostOp, params: Params, values: dict[int, np.ndarray]) -> None:
    """Run one op's host kernel on ``values`` (constants come from the graph) and store its outputs there."""
    ins = [None if i is None else (graph.tensors[i].data if graph.tensors[i].is_constant else values[i])
           for i in op.inputs]
    outs = [np.zeros(graph.tensors[o].shape, dtype=NUMPY_DTYPES[graph.tensors[o].dtype]) for o in op.outputs]
    kernel.run(ins, outs, params)
    values.update(zip(op.outputs, outs))


def run_graph_on_host(graph: Graph, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The graph's outputs for ``inputs`` (in graph-input order), every op run by its host kernel.

    Inputs must match the graph inputs' shapes and dtypes exactly (an
    InputError otherwise); an op without a host kernel is an UnsupportedError.
    """
    values = bind_inputs(graph, inputs)
    for op in graph.topological_order():
        run_op_on_host(graph, op, *fold(graph, op), values)
    return [graph.tensors[o].data if graph.tensors[o].is_constant else values[o] for o in graph.outputs]
