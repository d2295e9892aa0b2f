"""Comparisons (EQUAL, NOT_EQUAL, LESS, LESS_EQUAL, GREATER, GREATER_EQUAL), selection (SELECT, SELECT_V2) and
logic (LOGICAL_AND, LOGICAL_OR, LOGICAL_NOT) on the host, with what TFLite's Prepare and Eval decide for them.

TFLite compares quantized uint8 and int8 inputs (and, for EQUAL and
NOT_EQUAL, quantized int16) after rescaling both: each offset input is
shifted left by 8 and multiplied by its own scale (QuantizeMultiplier of the
scale itself), so the comparison sees real values up to a common factor, and
two raw values that rescale alike compare equal.  Every other type (bool,
int32, int64, float32, and int16 for the ordering comparisons) compares raw
values.  The six comparisons share their C code; a ``relation`` parameter says
which one a step computes.  NOT_EQUAL of unquantized int16 is refused: TFLite
writes nothing to its output then.
"""

from __future__ import annotations

from ...ir import Graph, Op, Tensor
from ..decl import HostOp, Int, Types
from ..fixedpoint import quantize_multiplier
from ..kernels import compare
from .arith import Fold, operands, require_broadcast
from .common import Params, fail, input_tensor, output_tensor, per_tensor, require_type

#: The relation parameter of each comparison (the kernels' order, npuc.host.kernels.compare.RELATIONS).
RELATIONS = {name: code for code, name in enumerate(compare.RELATIONS)}
#: Left shift TFLite gives quantized comparison inputs before rescaling.
COMPARE_LEFT_SHIFT = 8
#: Types SELECT and SELECT_V2 copy (bit for bit, whatever their quantization).
VALUE_TYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float32")


def _boolean_output(op: Op, y: Tensor) -> None:
    require_type(op, y, "output", ("bool",))


def _scaled(graph: Graph, op: Op) -> Params:
    """TFLite's quantized comparison: each input offset, shifted left by 8 and multiplied by its scale."""
    (a, b), y = operands(graph, op, ("uint8", "int8", "int16"))
    _boolean_output(op, y)
    params: Params = {"relation": RELATIONS[op.opcode], "left_shift": COMPARE_LEFT_SHIFT}
    for name, what, t in (("input1", "input 1", a), ("input2", "input 2", b)):
        scale, zero_point = per_tensor(op, t, what)
        multiplier, shift = quantize_multiplier(scale)
        if shift > 0:
            raise fail(op, f"{what} {t.describe()} has scale {scale:.6g}; TFLite compares correctly only below 1")
        params[f"{name}_offset"], params[f"{name}_multiplier"], params[f"{name}_shift"] = -zero_point, multiplier, shift
    return params


def _raw(types: tuple[str, ...]) -> Fold:
    """The fold of a comparison of raw values of ``types``."""
    def fold(graph: Graph, op: Op) -> Params:
        _, y = operands(graph, op, types)
        _boolean_output(op, y)
        return {"relation": RELATIONS[op.opcode]}

    return fold


def _select(version: int) -> Fold:
    """SELECT (``version`` 1: a condition of the values' shape, a scalar, or a vector over the first dimension)
    and SELECT_V2 (all three inputs broadcast): bool condition, values of one type, output like them."""
    def fold(graph: Graph, op: Op) -> Params:
        cond, x, yv = (input_tensor(graph, op, i, what) for i, what in enumerate(("condition", "x", "y")))
        out = output_tensor(graph, op)
        require_type(op, cond, "condition", ("bool",))
        require_type(op, x, "x", VALUE_TYPES)
        for t, what in ((yv, "y"), (out, "output")):
            if t.dtype != x.dtype:
                raise fail(op, f"{what} {t.describe()} differs in type from x {x.describe()}")
        if cond.num_elements == x.num_elements == yv.num_elements == out.num_elements == 1:
            return {}  # TFLite selects between one-element tensors whatever their shapes
        if version == 2:
            require_broadcast(op, [cond, x, yv], out)
        elif not (x.shape == yv.shape == out.shape and (cond.shape == x.shape or len(cond.shape) == 0
                                                           or cond.shape == x.shape[:1])):
            raise fail(op, f"condition {cond.describe()} must be scalar, shaped like x {x.describe()} or its "
                           "first dimension, and x, y and the output alike")
        return {}

    return fold


def _logical(count: int) -> Fold:
    """LOGICAL_AND and LOGICAL_OR (two bool inputs, broadcasting) or LOGICAL_NOT (one, same shape)."""
    def fold(graph: Graph, op: Op) -> Params:
        _, y = operands(graph, op, ("bool",), count)
        _boolean_output(op, y)
        return {}

    return fold


_SCALED = (Int("relation", 0, len(RELATIONS) - 1), Int("left_shift", 0, 8), Int("input1_offset", -32768, 32768),
           Int("input1_multiplier", 0), Int("input1_shift", -31, 0), Int("input2_offset", -32768, 32768),
           Int("input2_multiplier", 0), Int("input2_shift", -31, 0))
_RAW = (Int("relation", 0, len(RELATIONS) - 1),)
#: The raw types of each comparison (int16 only unquantized for the equalities, which rescale quantized int16).
_RAW_TYPES = {"EQUAL": ("bool", "int16", "int32", "int64", "float32"),
              "NOT_EQUAL": ("bool", "int32", "int64", "float32")}
_ORDERING_RAW_TYPES = ("int16", "int32", "int64", "float32")


def _comparison(opcode: str) -> tuple[HostOp, HostOp]:
    """A comparison's two kernels: rescaled quantized inputs, and raw values."""
    rescaled = ("uint8", "int8", "int16") if opcode in _RAW_TYPES else ("uint8", "int8")
    raw = _RAW_TYPES.get(opcode, _ORDERING_RAW_TYPES)
    return (HostOp(opcode, _SCALED, _scaled, compare.compare_scaled, stem="compare_scaled",
                   types=Types(rescaled, "input", quantized=True)),
            HostOp(f"{opcode}_RAW", _RAW, _raw(raw), compare.compare_raw, opcode=opcode, stem="compare_raw",
                   types=Types(raw, "input")))


OPS = (
    *(k for name in RELATIONS for k in _comparison(name)),
    HostOp("SELECT", (), _select(1), compare.select),
    HostOp("SELECT_V2", (), _select(2), compare.select_v2),
    HostOp("LOGICAL_AND", (), _logical(2), compare.logical_and),
    HostOp("LOGICAL_OR", (), _logical(2), compare.logical_or),
    HostOp("LOGICAL_NOT", (), _logical(1), compare.logical_not),
)
