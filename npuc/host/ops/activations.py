"""Activation operators on the host: what TFLite's Prepare computes for them, folded at compile time.

* RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1: the input-to-output rescale and the
  range's quantized bounds (``zp + roundf(bound / scale)``, within the type);
* LEAKY_RELU: an identity multiplier and an alpha multiplier (negative for a
  negative alpha); PRELU: s_in / s_out and s_in * s_alpha / s_out;
* HARD_SWISH: TFLite's int16 fixed-point multipliers (QuantizeMultiplier
  rounded to 16 bits) for the output and the "reluish" factor;
* LOGISTIC, TANH (8-bit), ELU (int8) and GELU (8-bit): the 256-entry tables
  TFLite fills from the float function; int16 LOGISTIC and TANH: the input
  rescale TFLite derives from the scale (a power of two, or a multiplier) and
  its sigmoid table; float32 GELU: its ``approximate`` option.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import Flag, Float, HostOp, Int, Ints, Params, Types
from ..fixedpoint import INT32_MAX, quantize_multiplier, round_half_away
from ..kernels import activations, unary
from ..kernels.activations import elu_value, gelu_value
from ..kernels.unary import FloatFn, expf, logf, tanhf
from .common import fail, input_tensor, per_tensor, quantize_value, require_type
from .unary import FLOAT32, LUT8_PARAMS, plain, quantized_unary, table_fold, unary_operands, zero_points_zero

#: TFLite's sigmoid(i / 24) in Q0.16 for i = 0..255, which its int16 LOGISTIC and TANH interpolate.
SIGMOID_TABLE = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535,
], dtype=np.int32)

#: Output scale TFLite's 8-bit LOGISTIC requires.
LOGISTIC_OUTPUT_SCALE = 1.0 / 256
#: Clamp bounds (real units) of the RELU family; None: the type's limit.
RELU_RANGES: dict[str, tuple[float, float | None]] = {
    "RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0), "RELU_0_TO_1": (0.0, 1.0)}
#: Shifts the int16 arithmetic of the quantized HARD_SWISH handles (gemmlowp's int16 RoundingDivideByPOT).
HARD_SWISH_MAX_RIGHT_SHIFT = 15

_8BIT = ("uint8", "int8")
_WITH_INT16 = ("uint8", "int8", "int16")


def _real_ratio(numerator: float, denominator: float) -> float:
    """A ratio of two scales as TFLite computes it: float32 division, then widened to double."""
    return float(np.float32(numerator) / np.float32(denominator))


# -- RELU family --------------------------------------------------------------------------------

def _relu(types: tuple[str, ...]) -> Callable[[Graph, Op], Params]:
    def fold(graph: Graph, op: Op) -> Params:
        """TFLite's ReluPrepare and QuantizedReluX bounds."""
        x, y, in_scale, in_zp, out_scale, out_zp = quantized_unary(graph, op, types)
        multiplier, shift = quantize_multiplier(_real_ratio(in_scale, out_scale))
        lo_real, hi_real = RELU_RANGES[op.opcode]
        info = np.iinfo(y.dtype)
        act_min = max(int(info.min), quantize_value(lo_real, out_scale, out_zp))
        act_max = int(info.max) if hi_real is None else min(int(info.max), quantize_value(hi_real, out_scale, out_zp))
        return {"input_zero_point": in_zp, "output_zero_point": out_zp, "output_multiplier": multiplier,
                "output_shift": shift, "act_min": act_min, "act_max": act_max}
    return fold


_ZERO_POINT = (-128, 255)
_RELU_PARAMS = (Int("input_zero_point", *_ZERO_POINT), Int("output_zero_point", *_ZERO_POINT),
                Int("output_multiplier", 0), Int("output_shift", -31, 31), Int("act_min"), Int("act_max"))


def _relu_variants(opcode: str, types: tuple[str, ...]) -> tuple[HostOp, HostOp]:
    name = opcode.lower()
    return (HostOp(opcode, _RELU_PARAMS, _relu(types), activations.requantize_clamp, types=Types(types),
                   stem="requantize_clamp"),
            HostOp(f"{opcode}_F32", (), plain(FLOAT32), getattr(activations, f"{name}_f32"), opcode=opcode,
                   types=Types(FLOAT32)))


# -- LEAKY_RELU and PRELU --------------------------------------------------------------------------

def _alpha(op: Op) -> float:
    return float(np.float32(op.options.get("alpha", 0.0)))


def _leaky_relu(graph: Graph, op: Op) -> Params:
    """TFLite's LeakyReluPrepare: s_in * alpha / s_out and s_in / s_out."""
    x, y, in_scale, in_zp, out_scale, out_zp = quantized_unary(graph, op, _WITH_INT16)
    alpha_multiplier, alpha_shift = quantize_multiplier(
        float(np.float32(in_scale) * np.float32(_alpha(op)) / np.float32(out_scale)))
    identity_multiplier, identity_shift = quantize_multiplier(_real_ratio(in_scale, out_scale))
    return {"input_zero_point": in_zp, "output_zero_point": out_zp, "identity_multiplier": identity_multiplier,
            "identity_shift": identity_shift, "alpha_multiplier": alpha_multiplier, "alpha_shift": alpha_shift}


def _leaky_relu_f32(graph: Graph, op: Op) -> Params:
    unary_operands(graph, op, FLOAT32)
    return {"alpha": _alpha(op)}


#: TFLite broadcasts PRELU's alpha with its 4-D broadcasting functions.
PRELU_MAX_BROADCAST_RANK = 4


def _prelu_operands(graph: Graph, op: Op, types: tuple[str, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """Input, alpha (of the input's type, broadcasting to it) and output (the input's shape)."""
    x, y = unary_operands(graph, op, types)
    alpha = input_tensor(graph, op, 1, "alpha")
    require_type(op, alpha, "alpha", (x.dtype,))
    try:
        shape = np.broadcast_shapes(tuple(x.shape), tuple(alpha.shape))
    except ValueError:
        shape = None
    if shape != tuple(x.shape):
        raise fail(op, f"alpha {alpha.describe()} does not broadcast to the input {x.describe()}")
    if tuple(alpha.shape) != tuple(x.shape) and len(x.shape) > PRELU_MAX_BROADCAST_RANK:
        raise fail(op, f"alpha broadcast over {len(x.shape)} dimensions (TFLite broadcasts at most 4)")
    return x, alpha, y


def _prelu(graph: Graph, op: Op) -> Params:
    """TFLite's PreluPrepare: s_in / s_out for x >= 0, s_in * s_alpha / s_out below."""
    x, alpha, y = _prelu_operands(graph, op, _8BIT)
    in_scale, in_zp = per_tensor(op, x, "input")
    alpha_scale, alpha_zp = per_tensor(op, alpha, "alpha")
    out_scale, out_zp = per_tensor(op, y, "output")
    multiplier_1, shift_1 = quantize_multiplier(_real_ratio(in_scale, out_scale))
    multiplier_2, shift_2 = quantize_multiplier(
        float(np.float32(in_scale) * np.float32(alpha_scale) / np.float32(out_scale)))
    return {"input_zero_point": in_zp, "alpha_zero_point": alpha_zp, "output_zero_point": out_zp,
            "multiplier_1": multiplier_1, "shift_1": shift_1, "multiplier_2": multiplier_2, "shift_2": shift_2}


def _prelu_f32(graph: Graph, op: Op) -> Params:
    _prelu_operands(graph, op, FLOAT32)
    return {}


# -- HARD_SWISH -------------------------------------------------------------------------------------

def _int16_multiplier(real: np.float32) -> tuple[int, int]:
    """QuantizeMultiplier of ``real``, the int32 multiplier rounded to int16 (TFLite's
    DownScaleInt32ToInt16Multiplier, saturating at 32767)."""
    multiplier, exponent = quantize_multiplier(float(real))
    if multiplier >= INT32_MAX - (1 << 15):
        return (1 << 15) - 1, exponent
    return (multiplier + (1 << 15)) >> 16, exponent


def _hard_swish(graph: Graph, op: Op) -> Params:
    """TFLite's HardSwishPrepare: the input on a scale 128 times finer, rescaled to the output and to the
    "reluish" scale where 3.0 is 32768."""
    x, y = unary_operands(graph, op, _8BIT)
    in_scale, in_zp = per_tensor(op, x, "input")
    out_scale, out_zp = per_tensor(op, y, "output")
    hires_scale = np.float32(1 / 128) * np.float32(in_scale)
    output_multiplier, output_exponent = _int16_multiplier(hires_scale / np.float32(out_scale))
    reluish_multiplier, reluish_exponent = _int16_multiplier(hires_scale / (np.float32(3) / np.float32(32768)))
    if output_exponent > 0:
        raise fail(op, f"output {y.describe()}: TFLite's HARD_SWISH needs an output scale above s_in / 256")
    if -min(output_exponent, reluish_exponent) > HARD_SWISH_MAX_RIGHT_SHIFT:
        raise fail(op, "input and output scales too far apart for the int16 arithmetic of HARD_SWISH")
    return {"input_zero_point": in_zp, "output_zero_point": out_zp, "output_multiplier": output_multiplier,
            "output_exponent": output_exponent, "reluish_multiplier": reluish_multiplier,
            "reluish_exponent": reluish_exponent}


# -- LOGISTIC and TANH --------------------------------------------------------------------------------

def _logistic_transform(x: Tensor, y: Tensor, op: Op) -> FloatFn:
    """TFLite's table function 1 / (1 + exp(-x)) (no cutoffs, unlike its float kernel)."""
    one = np.float32(1)
    return lambda v: (one / (one + expf(-v))).astype(np.float32)


def _logistic_output_scale(op: Op, x: Tensor, y: Tensor) -> None:
    if per_tensor(op, y, "output")[0] != LOGISTIC_OUTPUT_SCALE:
        raise fail(op, f"output {y.describe()} must have scale 1/256")


def _tanh_transform(x: Tensor, y: Tensor, op: Op) -> FloatFn:
    return tanhf


def _checked_log2(scale: float) -> int | None:
    """TFLite's CheckedLog2: the rounded log2 of a float scale, None unless within 1e-3 of an integer."""
    with np.errstate(all="ignore"):
        log2 = logf(np.float32(scale)) * (np.float32(1) / logf(np.float32(2)))
    rounded = np.float32(round_half_away(log2))
    return int(rounded) if abs(log2 - rounded) < np.float32(1e-3) else None


def _int16_sigmoid(left_shifts: tuple[int, ...]) -> Callable[[Graph, Op], Params]:
    """The fold of int16 LOGISTIC (power-of-two input shift 0) or TANH (0 or 1): TFLite's input rescale.

    With a power-of-two input scale 2^-12 (2^-11 for TANH) the input is
    multiplied by 3 << shift; otherwise by scale * 3 * 4096 doubled until above
    16383.5, with as many bits shifted back out.
    """
    def fold(graph: Graph, op: Op) -> Params:
        x, y = unary_operands(graph, op, ("int16",))
        zero_points_zero(op, x, y)
        in_scale = per_tensor(op, x, "input")[0]
        out_scale = per_tensor(op, y, "output")[0]
        if _checked_log2(out_scale) != -15 or (op.opcode == "LOGISTIC" and out_scale != 1 / 32768):
            raise fail(op, f"output {y.describe()} must have scale 1/32768")
        log2 = _checked_log2(in_scale)
        if log2 is not None and 12 + log2 in left_shifts:
            multiplier, shift = 3 << (12 + log2), 0
        else:
            real, shift = in_scale * 4096.0 * 3.0, 0
            while real <= 32767.0 / 2.0 and shift <= 30:
                shift, real = shift + 1, real * 2.0
            multiplier = int(real)
        if not 0 < multiplier <= (1 << 15) - 1:
            raise fail(op, f"input {x.describe()} has a scale too large for TFLite's int16 {op.opcode}")
        return {"input_multiplier": multiplier, "input_left_shift": shift, "sigmoid_table": SIGMOID_TABLE}
    return fold


# -- ELU and GELU ---------------------------------------------------------------------------------------

def _elu_transform(x: Tensor, y: Tensor, op: Op) -> FloatFn:
    return elu_value


def _gelu_transform(x: Tensor, y: Tensor, op: Op) -> FloatFn:
    approximate = bool(op.options.get("approximate", False))
    return lambda v: gelu_value(v, approximate)


def _gelu_f32(graph: Graph, op: Op) -> Params:
    unary_operands(graph, op, FLOAT32)
    return {"approximate": int(bool(op.options.get("approximate", False)))}


_INT16_SIGMOID_PARAMS = (Int("input_multiplier", 1, (1 << 15) - 1), Int("input_left_shift", 0, 31),
                         Ints("sigmoid_table", 0, (1 << 16) - 1))
_TABLE = {"params": LUT8_PARAMS, "run": unary.lookup_table, "stem": "lookup_table"}
_I16, _F32 = Types(("int16",), "input"), Types(FLOAT32, "input")

OPS = (
    *_relu_variants("RELU", _WITH_INT16),
    *_relu_variants("RELU6", _WITH_INT16),
    *_relu_variants("RELU_N1_TO_1", _8BIT),
    *_relu_variants("RELU_0_TO_1", _8BIT),
    HostOp("LEAKY_RELU", (Int("input_zero_point", *_ZERO_POINT), Int("output_zero_point", *_ZERO_POINT),
                          Int("identity_multiplier", 0), Int("identity_shift", -31, 31),
                          Int("alpha_multiplier", -INT32_MAX), Int("alpha_shift", -31, 31)),
           _leaky_relu, activations.leaky_relu, types=Types(_WITH_INT16)),
    HostOp("LEAKY_RELU_F32", (Float("alpha"),), _leaky_relu_f32, activations.leaky_relu_f32, opcode="LEAKY_RELU",
           types=_F32),
    HostOp("PRELU", (Int("input_zero_point", *_ZERO_POINT), Int("alpha_zero_point", *_ZERO_POINT),
                     Int("output_zero_point", *_ZERO_POINT), Int("multiplier_1", 0), Int("shift_1", -31, 31),
                     Int("multiplier_2", 0), Int("shift_2", -31, 31)), _prelu, activations.prelu,
           types=Types(_8BIT)),
    HostOp("PRELU_F32", (), _prelu_f32, activations.prelu_f32, opcode="PRELU", types=_F32),
    HostOp("HARD_SWISH", (Int("input_zero_point", *_ZERO_POINT), Int("output_zero_point", *_ZERO_POINT),
                          Int("output_multiplier", 0, (1 << 15) - 1),
                          Int("output_exponent", -HARD_SWISH_MAX_RIGHT_SHIFT, 0),
                          Int("reluish_multiplier", 0, (1 << 15) - 1),
                          Int("reluish_exponent", -HARD_SWISH_MAX_RIGHT_SHIFT, 31)),
           _hard_swish, activations.hard_swish, types=Types(_8BIT)),
    HostOp("HARD_SWISH_F32", (), plain(FLOAT32), activations.hard_swish_f32, opcode="HARD_SWISH", types=_F32),
    HostOp("LOGISTIC", fold=table_fold(_logistic_transform, _8BIT, check=_logistic_output_scale),
           types=Types(_8BIT), **_TABLE),
    HostOp("LOGISTIC_I16", _INT16_SIGMOID_PARAMS, _int16_sigmoid((0,)), activations.logistic_int16,
           opcode="LOGISTIC", types=_I16),
    HostOp("LOGISTIC_F32", (), plain(FLOAT32), activations.logistic_f32, opcode="LOGISTIC", types=_F32),
    HostOp("TANH", fold=table_fold(_tanh_transform, _8BIT), types=Types(_8BIT), **_TABLE),
    HostOp("TANH_I16", _INT16_SIGMOID_PARAMS, _int16_sigmoid((0, 1)), activations.tanh_int16, opcode="TANH",
           types=_I16),
    HostOp("TANH_F32", (), plain(FLOAT32), activations.tanh_f32, opcode="TANH", types=_F32),
    HostOp("ELU", fold=table_fold(_elu_transform, ("int8",)), types=Types(("int8",)), **_TABLE),
    HostOp("ELU_F32", (), plain(FLOAT32), activations.elu_f32, opcode="ELU", types=_F32),
    HostOp("GELU", fold=table_fold(_gelu_transform, _8BIT), types=Types(_8BIT), **_TABLE),
    HostOp("GELU_F32", (Flag("approximate"),), _gelu_f32, activations.gelu_f32, opcode="GELU", types=_F32),
)
