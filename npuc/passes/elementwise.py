"""Element-wise NN jobs: a tensor's bytes viewed as one image, whatever its layout.

An element-wise operation does not care where a value sits, so its job reads
and writes the stored bytes in storage order, viewed as an image of
``rows`` x ``n / rows`` pixels that the descriptor's 13-bit sides hold.
"""

from __future__ import annotations

import numpy as np

from ..hw.descriptors import NN_DESCRIPTOR
from .npu_program import NHWC, PLANAR, ConvOp, Program, Ref
from ..hw.target import Target
from ..ir import Graph, Op
from . import requant
from .layouts import existing

#: Mesa's preferred image heights (the descriptor's y) for the reshaped tensors, then any divisor below 64.
_PREFERRED_ROWS = (128, 64, 32)
_ROW_SEARCH_LIMIT = 64
#: The copy's weight when the reference rounds like TFLite's MultiplyByQuantizedMultiplier (QUANTIZE):
#: the accumulator is the input minus its zero point, so the hardware's two roundings (docs/simulator.md,
#: "Rounding") fall where TFLite's do.
FIXED_POINT_WEIGHT = 1
#: The copy's weight when the reference rounds once, in floating point (CONCATENATION's requantization):
#: the largest weight leaves 8 more bits below the hardware's first rounding, so only the final one counts.
FLOAT_WEIGHT = 255


def image_rows(pixels: int, elements: int) -> int | None:
    """The image height (descriptor y) of the reshaped ADD tensor, Mesa's choice when the fields hold it.

    Mesa takes 128, 64 or 32 when it divides H*W, else the largest divisor of
    H*W below 64; the image is ``elements / rows`` wide.  When that width does
    not fit its 13-bit field, any divisor of the element count that fits is
    taken (None if there is none).
    """
    limit = NN_DESCRIPTOR["in_image_x_size"].mask
    rows = next((r for r in _PREFERRED_ROWS if pixels % r == 0), None)
    if rows is None:
        rows = next(r for r in range(_ROW_SEARCH_LIMIT - 1, 0, -1) if pixels % r == 0)
    if elements // rows <= limit:
        return rows
    return next((r for r in range(min(elements, limit), 0, -1)
                 if elements % r == 0 and elements // r <= limit), None)


def npu_layout(program: Program, tensor: int) -> str:
    """The NPU layout an element-wise job should use for ``tensor``: planar if that exists, else NHWC (no TP job)."""
    return PLANAR if PLANAR in existing(program, tensor) else NHWC


def requantizing_copy(program: Program, op: Op, src: int, dst: int, target: Target, why: str,
                      weight: int = FIXED_POINT_WEIGHT) -> ConvOp:
    """The NN job storing ``src`` requantized to ``dst``'s scale and zero point, byte for byte in storage order.

    Both are stored 8-bit tensors of the same size and layout (``dst`` may be a
    view).  ``weight`` picks the rounding (FIXED_POINT_WEIGHT or FLOAT_WEIGHT).
    With equal quantizations it is an exact copy.
    """
    g: Graph = program.graph
    s, d = g.tensors[src], g.tensors[dst]
    n = s.num_elements
    rows = image_rows(n, n)
    in_zp, out_zp = requant.stored_zero_point(s), requant.stored_zero_point(d)
    weights = np.full((1, 1, 1, 1), weight, np.uint8)
    ratio = float(s.quant.single_scale) / float(d.quant.single_scale)
    spec = ConvOp(name=f"{op.name} {why} of {s.name}", op=op.index, input=Ref(src), output=Ref(dst),
                   in_x=n // rows, in_y=rows, weights=weights, bias=np.zeros(1, np.int64),
                   trailers=np.zeros(1, np.int64), coef_zero_point=0, input_zero_point=in_zp,
                   output_zero_point=out_zp, scale=requant.encode_scale(ratio / weight, target, what=op.name),
                   out_x=n // rows, out_y=rows, note=f"{why}: one-weight job over {n} bytes, scale {ratio:.6g}")
    return spec
