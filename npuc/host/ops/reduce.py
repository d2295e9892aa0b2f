"""Reductions and ARG_MAX/ARG_MIN on the host: their axes and scalings, as TFLite's Prepare folds them.

The axis input must be constant: it becomes the resolved, deduplicated
``axes`` (TFLite counts a negative axis from the end and ignores repeats),
and the output must have the shape TFLite gives it with or without
``keep_dims``.  Which kernel runs follows TFLite's reference registration:

* MEAN: uint8/int8/int16 requantize (QuantizedMeanOrSum, 1/count folded
  into the multiplier; int16 needs zero points 0); float32, int32 and
  int64 divide the sum by the count.
* SUM: uint8 requantizes like MEAN without the division; float32, int32
  and int64 add.  int8 and int16 SUM are refused: TFLite's reference kernel
  reads their data as uint8 (its QuantizedMeanOrSum call is instantiated
  for uint8 whatever the type), so no kernel can be both right and equal
  to it.
* REDUCE_MAX, REDUCE_MIN: any numeric type or bool, no requantization
  (TFLite requires input and output quantized alike).
* REDUCE_PROD: quantized int8/int16 rescale every partial product by
  ``scale_in / scale_out^(1/n)``; float32, int32 and int64 multiply.
* REDUCE_ANY, REDUCE_ALL: bool.
* ARG_MAX, ARG_MIN: float32, uint8, int8, int32 and bool inputs (TFLite
  refuses int16 and int64), int32 or int64 indices.

Inputs with an empty dimension are refused (TFLite fills such outputs with
NaN cast to the type, or neutral elements).
"""

from __future__ import annotations

import math

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import HostOp, Int, Ints, Types
from ..fixedpoint import quantize_multiplier
from ..kernels import reduce
from .common import (Params, constant_int, constant_ints, fail, input_tensor, normalized_axis, output_tensor,
                     per_tensor, require_shape, require_type, same_type)

#: Quantized types of MEAN and of TFLite's integer reductions.
QUANTIZED = ("uint8", "int8", "int16")
#: Types reduced without quantization parameters.
PLAIN = ("float32", "int32", "int64")
#: Types REDUCE_MAX and REDUCE_MIN take.
ALL_TYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float32")
#: Input types of ARG_MAX and ARG_MIN.
ARG_TYPES = ("float32", "uint8", "int8", "int32", "bool")


def _resolved_axes(op: Op, axis: Tensor, rank: int) -> list[int]:
    """The constant axes counted from the front, first occurrences only, in their given order."""
    axes: list[int] = []
    for a in constant_ints(op, axis, "axis"):
        resolved = normalized_axis(op, a, rank)
        if resolved not in axes:
            axes.append(resolved)
    return axes


def _reduction(graph: Graph, op: Op, types: tuple[str, ...]) -> tuple[Tensor, Tensor, list[int]]:
    """Input, output and resolved axes of a reduction whose output has the shape TFLite gives it."""
    x, axis, y = input_tensor(graph, op, 0, "input"), input_tensor(graph, op, 1, "axis"), output_tensor(graph, op)
    require_type(op, x, "input", types)
    same_type(op, x, y)
    axes = _resolved_axes(op, axis, len(x.shape))
    if 0 in x.shape:
        raise fail(op, f"input {x.describe()} is empty")
    if op.options.get("keep_dims", False):
        shape = [1 if k in axes else d for k, d in enumerate(x.shape)]
    else:
        shape = [d for k, d in enumerate(x.shape) if k not in axes]
    require_shape(op, y, shape, "output")
    return x, y, axes


def _axes_param(axes: list[int]) -> Params:
    return {"axes": np.array(axes, dtype=np.int32)}


def _plain(types: tuple[str, ...]):
    def fold(graph: Graph, op: Op) -> Params:
        return _axes_param(_reduction(graph, op, types)[2])
    return fold


def _quantization(t: Tensor) -> tuple[float, int]:
    """(scale, zero point) as TFLite's params see them: (0, 0) when unquantized."""
    q = t.quant
    if q is None or q.scale.size == 0:
        return 0.0, 0
    return float(np.float32(q.single_scale)), int(q.single_zero_point)


def _alike(types: tuple[str, ...]):
    """A reduction that does not requantize: input and output must be quantized alike, as TFLite checks."""
    def fold(graph: Graph, op: Op) -> Params:
        x, y, axes = _reduction(graph, op, types)
        if x.dtype in QUANTIZED and _quantization(x) != _quantization(y):
            raise fail(op, f"input {x.describe()} and output {y.describe()} must be quantized alike")
        return _axes_param(axes)
    return fold


def _count(x: Tensor, axes: list[int]) -> int:
    return int(np.prod([x.shape[a] for a in axes], dtype=np.int64))


def _requantized(op: Op, x: Tensor, y: Tensor, axes: list[int], multiplier: int, shift: int) -> Params:
    in_zp, out_zp = per_tensor(op, x, "input")[1], per_tensor(op, y, "output")[1]
    if x.dtype == "int16" and (in_zp or out_zp):
        raise fail(op, f"int16 input {x.describe()} and output {y.describe()} need zero point 0")
    return {**_axes_param(axes), "input_zero_point": in_zp, "output_zero_point": out_zp,
            "output_multiplier": multiplier, "output_shift": shift}


def _scale_ratio(op: Op, x: Tensor, y: Tensor) -> tuple[int, int]:
    return quantize_multiplier(per_tensor(op, x, "input")[0] / per_tensor(op, y, "output")[0])


def _quantized_mean(graph: Graph, op: Op) -> Params:
    """TFLite's QuantizedMeanOrSum: input/output scale ratio with 1/count folded into the multiplier."""
    x, y, axes = _reduction(graph, op, QUANTIZED)
    multiplier, shift = _scale_ratio(op, x, y)
    count = _count(x, axes)
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    return _requantized(op, x, y, axes, (multiplier << extra) // count, shift - extra)


def _quantized_sum(graph: Graph, op: Op) -> Params:
    x, y, axes = _reduction(graph, op, QUANTIZED)
    if x.dtype != "uint8":
        raise fail(op, f"TFLite's reference SUM reads {x.dtype} input {x.describe()} as uint8; only uint8 is supported")
    return _requantized(op, x, y, axes, *_scale_ratio(op, x, y))


def _quantized_prod(graph: Graph, op: Op) -> Params:
    """TFLite's GetQuantProdScaling: every product is scaled by scale_in / scale_out^(1/n)."""
    x, y, axes = _reduction(graph, op, ("int8", "int16"))
    in_scale, out_scale = per_tensor(op, x, "input")[0], per_tensor(op, y, "output")[0]
    multiplier, shift = quantize_multiplier(in_scale / math.pow(out_scale, 1.0 / _count(x, axes)))
    if not -31 <= shift <= 7:
        raise fail(op, f"the product's rescaling 2^{shift} is out of TFLite's range")
    return _requantized(op, x, y, axes, multiplier, shift)


def _arg(graph: Graph, op: Op) -> Params:
    x, axis_t, y = input_tensor(graph, op, 0, "input"), input_tensor(graph, op, 1, "axis"), output_tensor(graph, op)
    require_type(op, x, "input", ARG_TYPES)
    require_type(op, y, "output", ("int32", "int64"))
    if str(op.options.get("output_type", y.dtype.upper())).lower() != y.dtype:
        raise fail(op, f"output_type {op.options.get('output_type')} differs from output {y.describe()}")
    axis = normalized_axis(op, constant_int(op, axis_t, "axis"), len(x.shape))
    if 0 in x.shape:
        raise fail(op, f"input {x.describe()} is empty")
    require_shape(op, y, x.shape[:axis] + x.shape[axis + 1:], "output")
    return {"axis": axis}


_AXES = (Ints("axes", 0, 5),)
_REQUANTIZED = (*_AXES, Int("input_zero_point", -32768, 255), Int("output_zero_point", -32768, 255),
                Int("output_multiplier", 0), Int("output_shift", -31, 31))
_ARG = (Int("axis", 0, 5),)

OPS = (
    HostOp("MEAN", _REQUANTIZED, _quantized_mean, reduce.quantized_mean_or_sum, types=Types(QUANTIZED),
           stem="quantized_mean_or_sum"),
    HostOp("MEAN_PLAIN", _AXES, _plain(PLAIN), reduce.mean_plain, opcode="MEAN", types=Types(PLAIN)),
    HostOp("SUM", _REQUANTIZED, _quantized_sum, reduce.quantized_mean_or_sum, types=Types(QUANTIZED),
           stem="quantized_mean_or_sum"),
    HostOp("SUM_PLAIN", _AXES, _plain(PLAIN), reduce.sum_plain, opcode="SUM", types=Types(PLAIN)),
    HostOp("REDUCE_PROD", _REQUANTIZED, _quantized_prod, reduce.quantized_prod, types=Types(("int8", "int16"))),
    HostOp("REDUCE_PROD_PLAIN", _AXES, _plain(PLAIN), reduce.reduce_prod, opcode="REDUCE_PROD", types=Types(PLAIN)),
    HostOp("REDUCE_MAX", _AXES, _alike(ALL_TYPES), reduce.reduce_max),
    HostOp("REDUCE_MIN", _AXES, _alike(ALL_TYPES), reduce.reduce_min),
    HostOp("REDUCE_ANY", _AXES, _plain(("bool",)), reduce.reduce_any),
    HostOp("REDUCE_ALL", _AXES, _plain(("bool",)), reduce.reduce_all),
    HostOp("ARG_MAX", _ARG, _arg, reduce.arg_max),
    HostOp("ARG_MIN", _ARG, _arg, reduce.arg_min),
)
