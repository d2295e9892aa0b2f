"""Unary 8-bit operators (LOGISTIC, TANH, the RELU family, ABS) as TP LUT jobs exact for every input byte.

An 8-bit element-wise operator is a function of 256 input bytes.  Its table
(the output byte for each input byte, as TFLite computes it) is taken from the
host kernel where one exists (bit-exact with TFLite's reference kernel) or
from TFLite's integer formula (RELU family, ABS); :mod:`backend_vip.pwl_fit`
then finds a PWL table with which the TP's lookup unit reproduces it, and
checks every byte.  Mesa samples the activation at the table's points and
rescales with the post multiplier instead, which rounds differently from
TFLite and interpolates between samples up to 8 input steps apart.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np

from ..backend_vip import tp_jobs
from ..backend_vip.jobs import INT8_OFFSET, Program, shifted_on_npu
from ..backend_vip.pwl_fit import BYTE_VALUES, PwlTable, fit
from ..backend_vip.target import Target
from ..errors import UnsupportedError
from ..ir import Graph, Op, Tensor
from ..host import BY_OPCODE, fold
from ..host.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from . import requant
from .elementwise import npu_layout

#: The clamp range (real units) of TFLite's RELU family.
_RELU_RANGES = {"RELU": (0.0, math.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0), "RELU_0_TO_1": (0.0, 1.0)}
#: Input zero points the fit tries besides the input's own (the middle and both ends of the byte range).
_OTHER_INPUT_ZERO_POINTS = (BYTE_VALUES // 2, 0, BYTE_VALUES - 1)


def _tflite_values(t: Tensor) -> np.ndarray:
    """Every value a tensor of ``t``'s type takes, in the order of the bytes the NPU stores them as."""
    stored = np.arange(BYTE_VALUES, dtype=np.int64)
    return (stored - INT8_OFFSET).astype(np.int8) if shifted_on_npu(t) else stored.astype(np.uint8)


def _stored(t: Tensor, values: np.ndarray) -> np.ndarray:
    return (np.asarray(values, dtype=np.int64) + (INT8_OFFSET if shifted_on_npu(t) else 0)).astype(np.uint8)


def _host_table(graph: Graph, op: Op) -> np.ndarray:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    out = np.zeros(BYTE_VALUES, dtype=y.dtype)
    kernel, params = fold(graph, op)
    kernel.run([_tflite_values(x)], [out], params)
    return out


def _rescaled(graph: Graph, op: Op, offsets: np.ndarray) -> np.ndarray:
    """TFLite's ``zp_out + MultiplyByQuantizedMultiplier(offsets, s_in / s_out)``."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    multiplier, shift = quantize_multiplier(float(x.quant.single_scale) / float(y.quant.single_scale))
    return y.quant.single_zero_point + multiply_by_quantized_multiplier(offsets, multiplier, shift)


def _relu_table(graph: Graph, op: Op) -> np.ndarray:
    """TFLite's quantized ReluX: rescale, then clamp to the range's quantized bounds (roundf of float32)."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    info = np.iinfo(y.dtype)
    low, high = _RELU_RANGES[op.opcode]
    scale, zp = np.float32(y.quant.single_scale), y.quant.single_zero_point
    q_min = max(int(info.min), zp + _round_half_away(np.float32(low) / scale))
    q_max = int(info.max) if math.isinf(high) else min(int(info.max), zp + _round_half_away(np.float32(high) / scale))
    offsets = _tflite_values(x).astype(np.int64) - x.quant.single_zero_point
    return np.clip(_rescaled(graph, op, offsets), q_min, q_max).astype(y.dtype)


def _abs_table(graph: Graph, op: Op) -> np.ndarray:
    """TFLite's quantized ABS: |q - zp_in|, rescaled only when the scales differ, plus zp_out, saturated."""
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x.dtype != "int8":
        raise UnsupportedError(f"operator {op.name}: TFLite's ABS takes no {x.dtype}")
    info = np.iinfo(y.dtype)
    value = np.abs(_tflite_values(x).astype(np.int64) - x.quant.single_zero_point)
    if np.float32(x.quant.single_scale) == np.float32(y.quant.single_scale):
        out = value + y.quant.single_zero_point
    else:
        out = _rescaled(graph, op, value)
    return np.clip(out, info.min, info.max).astype(y.dtype)


def _round_half_away(v: np.float32) -> int:
    return int(math.copysign(math.floor(abs(float(v)) + 0.5), float(v)))


#: Where each operator's table comes from.
_TABLES: dict[str, Callable[[Graph, Op], np.ndarray]] = {
    "LOGISTIC": _host_table, "TANH": _host_table, "ABS": _abs_table,
    **{name: _relu_table for name in _RELU_RANGES},
}
LUT_OPCODES = tuple(_TABLES)


def reference_table(graph: Graph, op: Op) -> np.ndarray | None:
    """The stored output byte for every stored input byte, as TFLite computes it (None without a reference)."""
    source = _TABLES.get(op.opcode)
    if source is None or (source is _host_table and op.opcode not in BY_OPCODE):
        return None
    try:
        values = source(graph, op)
    except UnsupportedError:
        return None
    return _stored(graph.tensors[op.outputs[0]], values)


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
    src = program.operand(op.inputs[0], layout, op.index)
    dst = program.produce(op.outputs[0], layout)
    program.steps.append(tp_jobs.table_lut(program, op.index, src, dst, fitted_table(program.graph, op),
                                           op.opcode.lower(), target))
