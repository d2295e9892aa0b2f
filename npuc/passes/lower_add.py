"""ADD and SUB of two equal-shape 8-bit tensors as one NN job over the two inputs stored back to back.

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

On v8 (``Target.add_lowering`` = channel pairs) the job is Mesa's v8 shape, a
1x1 convolution over the two inputs' channels concatenated: the stored bytes
(N per input) are viewed as k planes each, so the job reads 2k planes and
output plane c is ``W0 x0[c] + W1 x1[c] + bias``; its kernel c has W0 at
input plane c, W1 at plane k + c and real zero elsewhere.  Mesa takes k = C
(2C^2 weights, 2C MACs per output value); any k dividing N gives the same
sums, so npuc takes the smallest k that still gives every NN core a kernel.
"""

from __future__ import annotations

import numpy as np

from .npu_program import PLANAR, ConvOp, Program, Ref
from ..hw.target import ADD_CHANNEL_PAIRS, ADD_TWO_PLANES, Target
from ..errors import UnsupportedError
from ..ir import Graph, Op
from . import requant
from .conv_params import uses_relu
from .elementwise import image_rows, requantizing_copy
from .layouts import operand, produce

#: Weights are 8-bit values with coefficient zero point 0.
WEIGHT_MAX = 255
#: Mesa's kernel for ADD: 2x2 over two planes, only the top-left tap of each used.
ADD_KERNEL = 2


def add_weights(ratio: float, total: int = 2 * WEIGHT_MAX) -> tuple[int, int]:
    """(W0, W1) in 1..255 with W0 + W1 <= ``total`` and W1 / W0 closest to ``ratio``; ties prefer larger weights.

    None of the pairs is further from the ratio than the best one, so this is
    the best rational approximation with 8-bit numerator and denominator.
    """
    best = None
    for w0 in range(1, min(WEIGHT_MAX, total - 1) + 1):
        w1 = int(np.floor(ratio * w0 + 0.5))
        if not 1 <= w1 <= min(WEIGHT_MAX, total - w0):
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
    limit = WEIGHT_MAX - 1 if op.opcode == "SUB" else WEIGHT_MAX   # SUB's weights share one byte's range
    if not 1.0 / limit <= ratio <= limit:
        return f"input scales {s0:.6g} and {s1:.6g} differ by more than a factor {limit}"
    return None


def pair_planes(n: int, target: Target) -> int | None:
    """Planes k the channel-pair job views each input's n bytes as: the smallest divisor of n from the NN
    core count up whose n / k bytes form an image the descriptor holds (None if there is none)."""
    for k in range(min(target.nn_cores, n), n + 1):
        if n % k == 0 and image_rows(n // k, n // k) is not None:
            return k
    return None


def image_refusal(graph: Graph, op: Op, target: Target) -> str | None:
    """Why the inputs cannot be viewed as the job's image (None if they can)."""
    y = graph.tensors[op.outputs[0]]
    n = y.num_elements
    if target.add_lowering == ADD_CHANNEL_PAIRS:
        fits = pair_planes(n, target) is not None
    else:
        fits = image_rows(n // y.shape[-1] if len(y.shape) == 4 else n, n) is not None
    return None if fits else f"{n} elements cannot be viewed as an image the descriptor holds"


def lower_add(program: Program, op: Op, target: Target) -> None:
    """Append the NN job of an ADD or SUB (constraints in npu_ops already checked).

    SUB is the same job with a negative second weight: the coefficient zero
    point Z moves from 0 to W1, plane 0 stores Z + W0 and plane 1 stores
    Z - W1 = 0, so both fit a byte when W0 + W1 <= 255 (one bit less than ADD's
    weights).  The hardware multiplies ``(w - coef_zero_point)``, as for every
    uint8 convolution with a non-zero weight zero point.
    """
    g = program.graph
    a_t, b_t, y_t = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    a = _own_storage(program, op, operand(program, op.inputs[0], PLANAR, op.index), set(), target)
    b = _own_storage(program, op, operand(program, op.inputs[1], PLANAR, op.index), {a}, target)
    program.adjacent.append([a, b])
    dst = produce(program, op.outputs[0], PLANAR)

    n = y_t.num_elements
    z0, z1, zo = (requant.stored_zero_point(t) for t in (a_t, b_t, y_t))
    s0, s1, so = a_t.quant.single_scale, b_t.quant.single_scale, y_t.quant.single_scale
    subtract = op.opcode == "SUB"
    w0, w1 = add_weights(s1 / s0, WEIGHT_MAX if subtract else 2 * WEIGHT_MAX)
    # One factor for both terms, least-squares between s0/W0 and s1/W1 (equal when the ratio is exact).
    factor = (s0 * w0 + s1 * w1) / (so * (w0 * w0 + w1 * w1))
    sign, coef_zp = (-1, w1) if subtract else (1, 0)
    word = ((w0 + sign * w1) * target.mac_input_offset - w0 * z0 - sign * w1 * z1) % (1 << 32)
    if target.add_lowering == ADD_CHANNEL_PAIRS:
        planes = pair_planes(n, target)
        rows = image_rows(n // planes, n // planes)
        weights = np.full((planes, 2 * planes, 1, 1), coef_zp, dtype=np.uint8)
        weights[np.arange(planes), np.arange(planes)] = coef_zp + w0
        weights[np.arange(planes), planes + np.arange(planes)] = coef_zp + sign * w1
        shape = f"1x1 job over {planes} + {planes} planes"
    elif target.add_lowering == ADD_TWO_PLANES:
        planes = 1
        pixels = n // y_t.shape[-1] if len(y_t.shape) == 4 else n
        rows = image_rows(pixels, n)
        weights = np.full((1, 2, ADD_KERNEL, ADD_KERNEL), coef_zp, dtype=np.uint8)
        weights[0, 0, 0, 0], weights[0, 1, 0, 0] = coef_zp + w0, coef_zp + sign * w1
        shape = "two-plane 2x2 job"
    else:
        raise ValueError(f"target {target.name}: unknown ADD lowering {target.add_lowering!r}")
    cols = n // planes // rows
    spec = ConvOp(name=f"{op.name} {op.opcode.lower()}", op=op.index, input=Ref(a), output=Ref(dst), in_x=cols,
                   in_y=rows, weights=weights, bias=np.zeros(planes, np.int64),
                   trailers=np.arange(planes, dtype=np.int64) * rows * cols,
                   coef_zero_point=coef_zp, input_zero_point=z0, output_zero_point=zo,
                   scale=requant.encode_scale(factor, target, what=op.name), out_x=cols, out_y=rows,
                   relu=uses_relu(op), words=np.full(planes, word, dtype=np.uint32),
                   note=f"{shape}, weights {w0}:{sign * w1} for scale ratio {s1 / s0:.6g}")
    program.steps.append(spec)


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
    program.steps.append(requantizing_copy(program, op, t, dst, target, "copy"))
    return dst
