"""ADD of two equal-shape 8-bit tensors as one NN job over the two inputs stored back to back.

Like Mesa's v7 lowering (the golden ADD jobs of MobileNet v2): the two inputs
(N bytes each, in the same layout) are one image of two planes, viewed as
``N / w`` x ``w`` pixels; a single 2x2 kernel with coefficient zero point 0
has weight W0 at the top-left tap of plane 0 and W1 at that of plane 1 (the
other taps are 0), so every output pixel is ``W0 x0 + W1 x1 + bias``.  The
real sum is ``s0 (x0 - z0) + s1 (x1 - z1)``: W1 / W0 must approximate
``s1 / s0``.  Mesa forces one weight to 255 and rounds the other (its golden
ADDs are 97.3-99.8 % exact against TFLite); npuc takes the best rational
approximation with both weights in 1..255 (MobileNet v2: 99.5-100 %).  The
zero points are exact integers in the bias word, the rest is one
requantization; a fused RELU (or RELU6 that the 8-bit range already clamps)
is the relu bit.  What remains is the hardware's first rounding step, which
rounds ``acc * mantissa`` to an integer before the final shift: an error of
up to ``s0 / (W0 s_out)`` steps that TFLite's ADD (20 extra bits) does not
make (docs/mesa-differences.md).
"""

from __future__ import annotations

import numpy as np

from ..backend_vip.descriptors import NN_DESCRIPTOR
from ..backend_vip.jobs import PLANAR, Program, Ref
from ..backend_vip.target import Target
from ..errors import UnsupportedError
from ..ir import Graph, Op
from . import requant
from .conv_params import uses_relu
from .nn_job import ConvJob, build_nn_job

#: Weights are 8-bit values with coefficient zero point 0.
WEIGHT_MAX = 255
#: Mesa's kernel for ADD: 2x2 over two planes, only the top-left tap of each used.
ADD_KERNEL = 2
#: Mesa's preferred image heights (the descriptor's y) for the reshaped tensors, then any divisor below 64.
_PREFERRED_ROWS = (128, 64, 32)
_ROW_SEARCH_LIMIT = 64


def add_weights(ratio: float) -> tuple[int, int]:
    """(W0, W1) in 1..255 with W1 / W0 closest to ``ratio``; ties prefer larger weights.

    None of the pairs is further from the ratio than the best one, so this is
    the best rational approximation with 8-bit numerator and denominator.
    """
    best = None
    for w0 in range(1, WEIGHT_MAX + 1):
        w1 = int(np.floor(ratio * w0 + 0.5))
        if not 1 <= w1 <= WEIGHT_MAX:
            continue
        key = (abs(w1 / w0 - ratio), -max(w0, w1))
        if best is None or key < best[0]:
            best = (key, (w0, w1))
    if best is None:
        raise UnsupportedError(f"ADD input scale ratio {ratio:.6g} cannot be two 8-bit weights")
    return best[1]


def ratio_refusal(graph: Graph, op: Op) -> str | None:
    """Why the input scales cannot be two 8-bit weights (None if they can)."""
    s0, s1 = (graph.tensors[t].quant.single_scale for t in op.inputs[:2])
    ratio = s1 / s0
    if not 1.0 / WEIGHT_MAX <= ratio <= WEIGHT_MAX:
        return f"input scales {s0:.6g} and {s1:.6g} differ by more than a factor {WEIGHT_MAX}"
    return None


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


def lower_add(program: Program, op: Op, target: Target) -> None:
    """Append the NN job of an ADD (constraints in npu_ops already checked)."""
    g = program.graph
    a_t, b_t, y_t = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    a = _own_storage(program, op, program.operand(op.inputs[0], PLANAR, op.index), set(), target)
    b = _own_storage(program, op, program.operand(op.inputs[1], PLANAR, op.index), {a}, target)
    program.adjacent.append([a, b])
    dst = program.produce(op.outputs[0], PLANAR)

    n = y_t.num_elements
    pixels = n // y_t.shape[-1] if len(y_t.shape) == 4 else n
    rows = image_rows(pixels, n)
    cols = n // rows
    z0, z1, zo = (requant.stored_zero_point(t) for t in (a_t, b_t, y_t))
    s0, s1, so = a_t.quant.single_scale, b_t.quant.single_scale, y_t.quant.single_scale
    w0, w1 = add_weights(s1 / s0)
    # One factor for both terms, least-squares between s0/W0 and s1/W1 (equal when the ratio is exact).
    factor = (s0 * w0 + s1 * w1) / (so * (w0 * w0 + w1 * w1))
    weights = np.zeros((1, 2, ADD_KERNEL, ADD_KERNEL), dtype=np.uint8)
    weights[0, 0, 0, 0], weights[0, 1, 0, 0] = w0, w1
    word = (w0 + w1) * target.mac_input_offset - w0 * z0 - w1 * z1
    spec = ConvJob(name=f"{op.name} add", op=op.index, input=Ref(a), output=Ref(dst), in_x=cols, in_y=rows,
                   weights=weights, bias=np.zeros(1, np.int64), trailers=np.zeros(1, np.int64),
                   coef_zero_point=0, input_zero_point=z0, output_zero_point=zo,
                   scale=requant.encode_scale(factor, target, what=op.name), out_x=cols, out_y=rows,
                   relu=uses_relu(op), words=np.array([word % (1 << 32)], dtype=np.uint32),
                   note=f"two-plane 2x2 job, weights {w0}:{w1} for scale ratio {s1 / s0:.6g}")
    program.steps.append(build_nn_job(spec, target).job)


def _own_storage(program: Program, op: Op, t: int, partner: set[int], target: Target) -> int:
    """``t``, or a copy of it when it cannot be placed next to the other input.

    A tensor can sit in only one back-to-back pair (and not next to itself)
    and must own its bytes (not be a view of another tensor); otherwise an
    exact NN copy (a one-plane convolution with weight 1 and scale 1) gives the
    ADD its own tensor.
    """
    taken = t in partner or any(t in group for group in program.adjacent)
    if not taken and t not in program.aliases:
        return t
    src = program.graph.tensors[t]
    dst = program.new_tensor(f"{src.name} (copy)", src.shape, src.dtype, src.quant, PLANAR)
    n = src.num_elements
    rows = image_rows(n, n)
    spec = ConvJob(name=f"{op.name} copy of {src.name}", op=op.index, input=Ref(t), output=Ref(dst),
                   in_x=n // rows, in_y=rows,
                   weights=np.ones((1, 1, 1, 1), np.uint8), bias=np.zeros(1, np.int64),
                   trailers=np.zeros(1, np.int64), coef_zero_point=0, input_zero_point=0, output_zero_point=0,
                   scale=requant.encode_scale(1.0, target, what=f"{op.name} copy"),
                   out_x=n // rows, out_y=rows,
                   words=np.array([target.mac_input_offset], dtype=np.uint32),
                   note="exact copy, so that the ADD's inputs can be stored back to back")
    program.steps.append(build_nn_job(spec, target).job)
    return dst
