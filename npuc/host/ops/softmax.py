"""SOFTMAX on the host: TFLite's PreprocessSoftmaxScaling and CalculateInputRadius, folded at compile time."""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Op
from ..decl import HostOp, Int
from ..fixedpoint import quantize_multiplier
from ..kernels import softmax
from ..kernels.softmax import SCALED_DIFF_INTEGER_BITS
from .common import Params, fail, input_tensor, output_tensor, per_tensor, require_type, same_type


def _softmax(graph: Graph, op: Op) -> Params:
    """TFLite's PreprocessSoftmaxScaling and CalculateInputRadius for beta * input_scale."""
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input")
    same_type(op, x, y)
    in_scale, _ = per_tensor(op, x, "input")
    out_scale, out_zp = per_tensor(op, y, "output")
    if out_scale != 1.0 / 256 or out_zp != int(np.iinfo(y.dtype).min):
        raise fail(op, f"output {y.describe()} must have scale 1/256 and zero point {np.iinfo(y.dtype).min}")
    beta = float(np.float32(op.options.get("beta", 1.0)))
    fraction_bits = 31 - SCALED_DIFF_INTEGER_BITS
    real = min(beta * in_scale * (1 << fraction_bits), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    if left_shift < 0:
        raise fail(op, f"beta * input scale = {beta * in_scale:.6g} is too small for the quantized softmax")
    radius = ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * (1 << fraction_bits) / (1 << left_shift)
    return {"input_multiplier": multiplier, "input_left_shift": left_shift, "diff_min": -int(np.floor(radius))}


OPS = (HostOp("SOFTMAX", (Int("input_multiplier", 0), Int("input_left_shift", 0, 31), Int("diff_min", hi=0)),
              _softmax, softmax.softmax),)
