"""Host parameters of the fully integer UNIDIRECTIONAL_SEQUENCE_LSTM, as TFLite's Prepare computes them.

TFLite's integer LSTM ("8x8_16": int8 input, weights and hidden state, int16
gates and cell, five ``intermediates``) rescales each gate's two matrix
products to Q3.12 with multipliers from float32 effective scales
(``weight_scale * input_scale / 2^-12``), adds the input zero point's
contribution (``-zero_point * row_sum(W)``) to each product's bias once, and
rescales ``output_gate * tanh(cell)`` to the hidden state with ``2^-15 /
hidden_scale * 2^-15``, where the hidden scale and zero point are those of
intermediate 4.  The hidden state starts at the output state's zero point, the
value TFLite resets that variable tensor to.  Only the plain LSTM is supported: no CIFG, peephole,
projection or layer normalization.  Like TFLite's integer kernel, the cell
gate and the output always use tanh, whatever the fused activation says.
"""

from __future__ import annotations

import math

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import HostOp, Int, Ints, Param
from ..fixedpoint import quantize_multiplier
from ..kernels import lstm
from ..kernels.lstm import GATE_INTEGER_BITS, GATES, STATE_INPUTS
from .common import (Params, fail, input_tensor, optional_input, output_tensor, per_tensor, require_shape,
                     require_type)

#: Inputs that only the LSTM variants npuc does not support use (peephole, projection, layer norm).
UNSUPPORTED_INPUTS = {9: "peephole", 10: "peephole", 11: "peephole", 16: "projection", 17: "projection",
                      20: "layer normalization", 21: "layer normalization", 22: "layer normalization",
                      23: "layer normalization"}
#: Intermediates of the 8x8_16 integer LSTM; the last one carries the hidden state's quantization.
INTERMEDIATES = 5
#: Cell-state scale exponents for which tanh(cell) has 0 to 4 integer bits (gemmlowp's exp takes at most 5).
MIN_CELL_SHIFT = -15
MAX_CELL_SHIFT = 4 - 15
#: Gate bias inputs, in GATES order.
FIRST_BIAS_INPUT = 12
#: Inputs naming the hidden (output) state and the cell state (TFLite's variable tensors).
OUTPUT_STATE_INPUT, CELL_STATE_INPUT = STATE_INPUTS


def _weights(graph: Graph, op: Op, i: int, what: str, shape: tuple[int, int]) -> Tensor:
    w = input_tensor(graph, op, i, what)
    if w.dtype != "int8" or not w.is_constant:
        raise fail(op, f"{what} {w.describe()} must be a constant int8 tensor")
    require_shape(op, w, shape, what)
    if per_tensor(op, w, what)[1] != 0:
        raise fail(op, f"{what} {w.describe()} has a non-zero zero point")
    return w


def _cell_shift(op: Op, cell: Tensor) -> int:
    """TFLite's CheckedLog2 of the cell state's scale, which must be a power of two small enough for tanh."""
    scale, _ = per_tensor(op, cell, "cell state")
    log2 = math.log2(scale)
    if abs(log2 - round(log2)) >= 1e-3 or not MIN_CELL_SHIFT <= round(log2) <= MAX_CELL_SHIFT:
        raise fail(op, f"cell state {cell.describe()} needs a power-of-two scale from 2^{MIN_CELL_SHIFT} "
                       f"to 2^{MAX_CELL_SHIFT}")
    return round(log2)


def _multiplier(op: Op, params: Params, name: str, real: np.float32) -> None:
    """The multiplier and shift of an effective scale, which float32 must represent (positive, finite)."""
    if not 0 < real < np.inf:
        raise fail(op, f"the {name} effective scale {real} is not a positive finite float32")
    params[f"{name}_multiplier"], params[f"{name}_shift"] = quantize_multiplier(float(real))


def _effective_bias(op: Op, weights: Tensor, zero_point: int, bias: np.ndarray | None) -> np.ndarray:
    """bias + (-zero_point) * row sums of the weights: the zero point's contribution, folded once."""
    total = -zero_point * weights.data.astype(np.int64).sum(axis=1)
    if bias is not None:
        total = total + bias.astype(np.int64)
    if np.any(np.abs(total) >= 1 << 31):
        raise fail(op, f"the effective bias of {weights.describe()} does not fit 32 bits")
    return total.astype(np.int32)


def _check_supported(graph: Graph, op: Op) -> None:
    for i, what in UNSUPPORTED_INPUTS.items():
        if optional_input(graph, op, i) is not None:
            raise fail(op, f"{what} (input {i}) is not supported by the host LSTM")
    if len(op.intermediates) != INTERMEDIATES:
        raise fail(op, f"has {len(op.intermediates)} intermediates; the integer host LSTM needs {INTERMEDIATES}")


def _unidirectional_sequence_lstm(graph: Graph, op: Op) -> Params:
    x, y = input_tensor(graph, op, 0, "input"), output_tensor(graph, op)
    require_type(op, x, "input", ("int8",))
    require_type(op, y, "output", ("int8",))
    _check_supported(graph, op)
    if len(x.shape) != 3 or len(y.shape) != 3:
        raise fail(op, f"input {x.describe()} and output {y.describe()} must be 3-D")
    time_major = bool(op.options.get("time_major", False))
    n_batch, n_input = x.shape[1 if time_major else 0], x.shape[2]
    n_cell = y.shape[-1]
    require_shape(op, y, x.shape[:2] + (n_cell,), "output")
    out_state = input_tensor(graph, op, OUTPUT_STATE_INPUT, "output state")
    cell_state = input_tensor(graph, op, CELL_STATE_INPUT, "cell state")
    require_type(op, out_state, "output state", ("int8",))
    require_type(op, cell_state, "cell state", ("int16",))
    for state in (out_state, cell_state):
        if state.num_elements != n_batch * n_cell:
            raise fail(op, f"state {state.describe()} does not hold {n_batch}x{n_cell} values")
    hidden = graph.tensors[op.intermediates[-1]]
    in_scale, in_zp = per_tensor(op, x, "input")
    state_scale, state_zp = per_tensor(op, out_state, "output state")
    hidden_scale, hidden_zp = per_tensor(op, hidden, "hidden intermediate")
    cell_shift = _cell_shift(op, cell_state)
    gate_scale = np.float32(2.0 ** -(15 - GATE_INTEGER_BITS))
    params: Params = {"time_major": int(time_major), "cell_shift": cell_shift, "hidden_zero_point": hidden_zp}
    for k, g in enumerate(GATES):
        w_in = _weights(graph, op, 1 + k, f"input-to-{g} weights", (n_cell, n_input))
        w_rec = _weights(graph, op, 5 + k, f"recurrent-to-{g} weights", (n_cell, n_cell))
        bias = input_tensor(graph, op, FIRST_BIAS_INPUT + k, f"{g} gate bias")
        if bias.dtype != "int32" or not bias.is_constant:
            raise fail(op, f"{g} gate bias {bias.describe()} must be a constant int32 tensor")
        require_shape(op, bias, (n_cell,), f"{g} gate bias")
        _multiplier(op, params, f"{g}_input", np.float32(per_tensor(op, w_in, "weights")[0]) * np.float32(in_scale)
                    / gate_scale)
        _multiplier(op, params, f"{g}_recurrent", np.float32(per_tensor(op, w_rec, "weights")[0])
                    * np.float32(state_scale) / gate_scale)
        params[f"{g}_input_bias"] = _effective_bias(op, w_in, in_zp, bias.data)
        params[f"{g}_recurrent_bias"] = _effective_bias(op, w_rec, state_zp, None)
    _multiplier(op, params, "hidden", np.float32(2.0 ** -15 / hidden_scale * 2.0 ** -15))
    cell_clip = np.float32(op.options.get("cell_clip", 0.0))
    cell_scale = np.float32(per_tensor(op, cell_state, "cell state")[0])
    params["cell_clip"] = 0 if cell_clip <= 0 else int(np.clip(cell_clip / cell_scale, -32768, 32767))
    return params


def _declared_params() -> tuple[Param, ...]:
    """Per gate: the two products' multipliers, shifts and effective biases; then the cell and hidden state."""
    params: list[Param] = [Int("time_major", 0, 1), Int("cell_shift", MIN_CELL_SHIFT, MAX_CELL_SHIFT),
                           Int("hidden_zero_point", -128, 127)]
    for g in GATES:
        for product in ("input", "recurrent"):
            params += [Int(f"{g}_{product}_multiplier", 0), Int(f"{g}_{product}_shift", -31, 31),
                       Ints(f"{g}_{product}_bias")]
    params += [Int("hidden_multiplier", 0), Int("hidden_shift", -31, 31), Int("cell_clip", 0, 32767)]
    return tuple(params)


OPS = (HostOp("UNIDIRECTIONAL_SEQUENCE_LSTM", _declared_params(), _unidirectional_sequence_lstm,
              lstm.unidirectional_sequence_lstm),)
