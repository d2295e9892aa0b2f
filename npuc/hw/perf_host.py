"""Estimated time of a HOST step on the CPU beside the NPU (``Target.perf_host``).

A host step runs one TFLite operator's kernel on the CPU.  Its time is a call
overhead plus a cost that depends on what the operator does (its TFLite opcode;
a kernel's variants for other element types cost the same), from the shapes
alone: multiply-accumulates for convolutions and matrix products,
element moves for data movement, one pass over the input for pooling and
reductions, a per-element cost for arithmetic and (more) for transcendental
functions.  The rates are those of ``HostCpu`` (an A311D Cortex-A73 core by
default); like the NPU model this is an estimate (docs/performance-model.md).
"""

from __future__ import annotations

import math
from typing import Sequence

from .target import HostCpu

Shape = Sequence[int]

#: Kernels that only move bytes.
MOVEMENT = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION", "SPLIT", "SPLIT_V", "PACK", "UNPACK",
                      "PAD", "PADV2", "MIRROR_PAD", "TRANSPOSE", "GATHER", "GATHER_ND", "SLICE", "STRIDED_SLICE",
                      "CAST", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TILE",
                      "BROADCAST_TO", "REVERSE_V2", "RESIZE_NEAREST_NEIGHBOR", "ASSIGN_VARIABLE",
                      "READ_VARIABLE", "DYNAMIC_UPDATE_SLICE", "REVERSE_SEQUENCE", "ONE_HOT", "SCATTER_ND",
                      "SPARSE_TO_DENSE", "MATRIX_DIAG", "MATRIX_SET_DIAG", "EMBEDDING_LOOKUP"})
#: Kernels that read every input element once to produce fewer outputs.
REDUCTIONS = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D", "MEAN", "SUM", "REDUCE_MAX",
                        "REDUCE_MIN", "REDUCE_PROD", "ARG_MAX", "ARG_MIN", "CUMSUM", "SEGMENT_SUM",
                        "UNSORTED_SEGMENT_SUM", "UNSORTED_SEGMENT_MAX", "UNSORTED_SEGMENT_MIN",
                        "UNSORTED_SEGMENT_PROD"})
#: Kernels with an exponential, logarithm, square root or division per element.
TRANSCENDENTAL = frozenset({"SOFTMAX", "LOG_SOFTMAX", "LOGISTIC", "TANH", "EXP", "LOG", "SQRT", "RSQRT",
                            "ELU", "GELU", "HARD_SWISH", "DIV", "FLOOR_DIV", "FLOOR_MOD", "SIN", "COS", "POW",
                            "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION", "ATAN2"})


def _elements(shape: Shape | None) -> int:
    return math.prod(shape) if shape is not None else 0


def host_macs(opcode: str, inputs: Sequence[Shape | None], outputs: Sequence[Shape]) -> int:
    """Multiply-accumulates of a convolution or matrix product (0 for other operators).

    TFLite's filters: CONV_2D [OC][KH][KW][IC/groups], DEPTHWISE_CONV_2D
    [1][KH][KW][C], FULLY_CONNECTED [OC][IC]: every output element takes one
    filter row; TRANSPOSE_CONV (inputs: output shape, filter [OC][KH][KW][IC],
    input) spreads every input element over a whole filter; BATCH_MATMUL takes
    one row of its left operand per output element (its last dimension).
    The recurrent kernels multiply every weight once per step of their input's
    rows: UNIDIRECTIONAL_SEQUENCE_LSTM's eight gate matrices (inputs 1-8),
    SVDF's feature and time weights (inputs 1 and 2).
    """
    weights = {"UNIDIRECTIONAL_SEQUENCE_LSTM": inputs[1:9], "SVDF": inputs[1:3]}.get(opcode)
    if weights and inputs[0]:
        return math.prod(inputs[0][:-1]) * sum(_elements(w) for w in weights)
    if len(inputs) < 2 or inputs[1] is None or not outputs:
        return 0
    out, filt = _elements(outputs[0]), inputs[1]
    if opcode in ("CONV_2D", "FULLY_CONNECTED"):
        return out * math.prod(filt[1:])
    if opcode == "DEPTHWISE_CONV_2D" and len(filt) == 4:
        return out * filt[1] * filt[2]
    if opcode == "TRANSPOSE_CONV" and len(inputs) > 2 and inputs[2] is not None:
        return _elements(inputs[2]) * math.prod(filt[:3])
    if opcode == "BATCH_MATMUL" and inputs[0]:
        return out * inputs[0][-1]
    return 0


def host_cycles(opcode: str, inputs: Sequence[Shape | None], outputs: Sequence[Shape],
                input_bytes: int, output_bytes: int, cpu: HostCpu) -> float:
    """CPU cycles of one host step (shapes as TFLite's; bytes of all its inputs and outputs)."""
    macs = host_macs(opcode, inputs, outputs)
    out_elements = sum(_elements(s) for s in outputs)
    if macs:
        work = macs / cpu.macs_per_cycle
    elif opcode in MOVEMENT:
        work = (input_bytes + output_bytes) / cpu.copy_bytes_per_cycle
    elif opcode in REDUCTIONS:
        work = sum(_elements(s) for s in inputs[:1]) * cpu.reduce_cycles
    elif opcode in TRANSCENDENTAL:
        work = out_elements * cpu.transcendental_cycles
    else:
        work = out_elements * cpu.elementwise_cycles
    return cpu.call_cycles + work


def host_seconds(opcode: str, inputs: Sequence[Shape | None], outputs: Sequence[Shape], input_bytes: int,
                 output_bytes: int, cpu: HostCpu) -> float:
    """Seconds of one host step at the CPU's clock."""
    return host_cycles(opcode, inputs, outputs, input_bytes, output_bytes, cpu) / cpu.clock_hz
