"""Unary 8-bit operators (LOGISTIC, TANH, the RELU family, ABS) as TP LUT jobs exact for every input byte.

An 8-bit element-wise operator is a function of 256 input bytes.  Its table
(the output byte for each input byte, as TFLite computes it) comes from its
host kernel (bit-exact with TFLite's reference kernel); :mod:`pwl_fit`
then finds a PWL table with which the TP's lookup unit reproduces it, and
checks every byte.  Mesa samples the activation at the table's points and
rescales with the post multiplier instead, which rounds differently from
TFLite and interpolates between samples up to 8 input steps apart.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .npu_program import INT8_OFFSET, Program, TPOp, shifted_on_npu
from .pwl_fit import BYTE_VALUES, PwlTable, fit
from ..hw.target import Target
from ..errors import UnsupportedError
from ..ir import Graph, Op, Tensor
from ..host import fold
from . import requant
from .elementwise import npu_layout
from .layouts import operand, produce

#: Input zero points the fit tries besides the input's own (the middle and both ends of the byte range).
_OTHER_INPUT_ZERO_POINTS = (BYTE_VALUES // 2, 0, BYTE_VALUES - 1)


def _tflite_values(t: Tensor) -> np.ndarray:
    """Every value a tensor of ``t``'s type takes, in the order of the bytes the NPU stores them as."""
    stored = np.arange(BYTE_VALUES, dtype=np.int64)
    return (stored - INT8_OFFSET).astype(np.int8) if shifted_on_npu(t) else stored.astype(np.uint8)


def _stored(t: Tensor, values: np.ndarray) -> np.ndarray:
    return (np.asarray(values, dtype=np.int64) + (INT8_OFFSET if shifted_on_npu(t) else 0)).astype(np.uint8)


#: The unary 8-bit operators the TP runs as lookup tables.
LUT_OPCODES = ("LOGISTIC", "TANH", "ABS", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1")


def reference_table(graph: Graph, op: Op) -> np.ndarray | None:
    """The stored output byte for every stored input byte, from the host kernel (None when TFLite has none).

    The host kernel is bit-exact with TFLite's reference kernel, so the table
    is TFLite's result for every possible input value.
    """
    if op.opcode not in LUT_OPCODES:
        return None
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    try:
        kernel, params = fold(graph, op)
    except UnsupportedError:
        return None
    out = np.zeros(BYTE_VALUES, dtype=y.dtype)
    kernel.run([_tflite_values(x)], [out], params)
    return _stored(y, out)


@lru_cache(maxsize=256)
def _fit_cached(table: bytes, in_zp: int) -> PwlTable | None:
    return fit(np.frombuffer(table, dtype=np.uint8), in_zp)


def fitted_table(graph: Graph, op: Op) -> PwlTable | None:
    """A PWL table reproducing the operator on every input byte, trying the input's zero point first."""
    table = reference_table(graph, op)
    if table is None:
        return None
    first = requant.stored_zero_point(graph.tensors[op.inputs[0]])
    for in_zp in (first,) + tuple(z for z in _OTHER_INPUT_ZERO_POINTS if z != first):
        found = _fit_cached(table.tobytes(), in_zp)
        if found is not None:
            return found
    return None


def lower_lut(program: Program, op: Op, target: Target) -> None:
    """One TP LUT job over the tensor as stored (constraints in npu_ops already checked)."""
    layout = npu_layout(program, op.inputs[0])
    src = operand(program, op.inputs[0], layout, op.index)
    dst = produce(program, op.outputs[0], layout)
    program.steps.append(TPOp(op.opcode.lower(), op.index, src, dst, table=fitted_table(program.graph, op)))
