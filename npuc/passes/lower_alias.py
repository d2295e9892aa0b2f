"""RESHAPE and SQUEEZE as aliases: the output is a view of the input's bytes, no job.

A reshape keeps TFLite's flat (NHWC) element order, so in NHWC storage the
output always has the input's bytes.  In planar storage it does only when
the element order happens to agree (one channel, one pixel, or planes kept
whole, e.g. [1, 7, 7, C] -> [1, 49, 1, C]).  The lowering aliases the output
to a version of the input that already exists when its bytes are the output's
in one of the two layouts, and otherwise to the input's NHWC version (a TP
detranspose, inserted by Program.operand).
"""

from __future__ import annotations

import numpy as np

from .npu_program import NHWC, PLANAR, Program, Ref
from ..hw.target import Target
from ..ir import Op
from .layouts import existing, operand, produce


def storage_order(shape: tuple[int, ...], layout: str) -> np.ndarray:
    """Byte position of every element (in TFLite's flat order) when a tensor is stored in ``layout``."""
    n = int(np.prod(shape, dtype=np.int64))
    if layout != PLANAR or len(shape) != 4:
        return np.arange(n, dtype=np.int64)
    b, h, w, c = shape
    pos = np.arange(n, dtype=np.int64).reshape(b, c, h, w).transpose(0, 2, 3, 1)
    return pos.reshape(-1)


def lower_reshape(program: Program, op: Op, target: Target) -> None:
    """Alias a RESHAPE/SQUEEZE output to its input (constraints in npu_ops already checked).

    TFLite's bytes (TFLITE) are viewed as TFLite's bytes; the NPU's bytes in
    either layout as the NPU's bytes in either layout.
    """
    g = program.graph
    src, dst = op.inputs[0], op.outputs[0]
    in_shape, out_shape = g.tensors[src].shape, g.tensors[dst].shape
    for in_layout, version in list(existing(program, src).items()):
        out_layouts = {NHWC: (NHWC, PLANAR), PLANAR: (PLANAR, NHWC)}.get(in_layout, (in_layout,))
        for out_layout in out_layouts:
            if np.array_equal(storage_order(in_shape, in_layout), storage_order(out_shape, out_layout)):
                _alias(program, dst, version, out_layout)
                return
    _alias(program, dst, operand(program, src, NHWC, op.index), NHWC)


def _alias(program: Program, dst: int, view_of: int, layout: str) -> None:
    program.aliases[produce(program, dst, layout)] = Ref(view_of)
