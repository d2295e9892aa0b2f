"""Average over the whole plane (AVERAGE_POOL_2D with a full window, MEAN over H and W) on one NN job.

Not as a depthwise convolution (1024 channels x 49 taps would cost ~90 KB of
coefficients): a TP detranspose (Program.operand) puts the planar input in
NHWC order, which read as planar is n = H*W planes of C pixels.  A 1x1 job
over those planes with one kernel of equal weights w (coefficient zero point
0) sums every channel's n pixels; its single output plane of C values is the
[1, 1, 1, C] (or [1, C]) result in both layouts.  The two operators round
differently in TFLite, and each job reproduces its operator's rounding:

* AVERAGE_POOL_2D (input and output quantized alike) is ``(sum + n/2) / n``
  in integers, one rounding of the raw sum.  The job uses a large weight
  (w = 254) so that the scale 1/(n w) leaves many bits below the hardware's
  first rounding step (docs/simulator.md, "Rounding"; with w = 1 and n = 49,
  2 % of the averages were one step off), the output zero point 0, and for
  even n a bias of w/2: the job then rounds ``(sum + 1/2) / n``, which is
  never a tie (where the 15-bit multiplier would pick the direction) and
  rounds as TFLite does.  A fused RELU clamps at the zero point, so then the
  bias also folds in ``-n w in_zp`` and the zero point is added back
  (negative sums are clamped away, whatever their rounding).
* MEAN is TFLite's quantized mean: ``sum(q - in_zp)`` requantized with the
  double rounding of its fixed-point multiplier by ``in_scale / (n out_scale)``,
  plus the output zero point.  The job accumulates exactly that sum (w = 1,
  ``-n in_zp`` folded into the bias) so that the hardware's two roundings fall
  where TFLite's do.
"""

from __future__ import annotations

import numpy as np

from .npu_program import NHWC, PLANAR, ConvOp, Program, Ref
from ..hw.target import Target
from ..ir import Graph, Op
from . import requant
from .conv_params import uses_relu
from .layouts import operand, produce

#: AVERAGE_POOL_2D's plane weight (coefficient zero point 0): large for precision, even so that
#: half of it, the tie-break for even n, is a whole bias unit.
POOL_WEIGHT = 254
#: MEAN's plane weight: TFLite's accumulator itself.
MEAN_WEIGHT = 1
#: The dimensions MEAN must reduce for this lowering (H and W of NHWC), in any order and sign.
MEAN_AXES = (1, 2)


def same_quantization(graph: Graph, op: Op) -> bool:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    return (np.float32(x.quant.single_scale) == np.float32(y.quant.single_scale)
            and requant.stored_zero_point(x) == requant.stored_zero_point(y))


def lower_average_pool(program: Program, op: Op, target: Target) -> None:
    """Append the jobs of a whole-plane AVERAGE_POOL_2D (constraints in npu_ops already checked)."""
    x = program.graph.tensors[op.inputs[0]]
    n = x.shape[1] * x.shape[2]
    relu = uses_relu(op)
    zp = requant.stored_zero_point(x)
    tie_break = POOL_WEIGHT // 2 if n % 2 == 0 else 0
    _add_sum_job(program, op, target, POOL_WEIGHT, tie_break, zp if relu else 0, zp if relu else 0,
                 1.0 / (n * POOL_WEIGHT), relu, f"sum / {n}, rounded as TFLite's integer average")


def lower_mean(program: Program, op: Op, target: Target) -> None:
    """Append the jobs of a MEAN over H and W (constraints in npu_ops already checked)."""
    x, y = program.graph.tensors[op.inputs[0]], program.graph.tensors[op.outputs[0]]
    n = x.shape[1] * x.shape[2]
    scale = x.quant.single_scale / (n * y.quant.single_scale)
    _add_sum_job(program, op, target, MEAN_WEIGHT, 0, requant.stored_zero_point(x), requant.stored_zero_point(y),
                 scale, False, "TFLite's requantized mean")


def _add_sum_job(program: Program, op: Op, target: Target, weight: int, extra_bias: int, in_zp: int, out_zp: int,
                 scale: float, relu: bool, note: str) -> None:
    """One job summing the n NHWC pixel planes of the input, times ``weight``, plus ``extra_bias``."""
    x = program.graph.tensors[op.inputs[0]]
    _, h, w, c = x.shape
    n = h * w
    src = operand(program, op.inputs[0], NHWC, op.index)
    dst = produce(program, op.outputs[0], PLANAR)
    weights = np.full((1, n, 1, 1), weight, dtype=np.uint8)
    words = requant.bias_words(np.full(1, extra_bias, np.int64), weights, 0, in_zp, target)
    spec = ConvOp(name=f"{op.name} mean of {h}x{w}", op=op.index, input=Ref(src), output=Ref(dst),
                   in_x=c, in_y=1, weights=weights, bias=np.zeros(1, np.int64), trailers=np.zeros(1, np.int64),
                   coef_zero_point=0, input_zero_point=requant.stored_zero_point(x), output_zero_point=out_zp,
                   scale=requant.encode_scale(scale, target, what=op.name), out_x=c, out_y=1, relu=relu,
                   words=words, note=f"NHWC input as {n} planes of {c} pixels: {note}")
    program.steps.append(spec)
