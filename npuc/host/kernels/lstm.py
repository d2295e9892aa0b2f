"""UNIDIRECTIONAL_SEQUENCE_LSTM, fully integer (int8 activations and weights, int16 cell), as TFLite computes it.

TFLite's integer LSTM ("8x8_16") runs one step per time step over every
batch row.  Each gate is two int8 matrix products, input x W and previous
hidden state x R, each with its own effective bias (the gate bias plus the
zero-point correction, folded at compile time) and its own multiplier to the
gates' int16 Q3.12 format; the second result is added to the first with int16
saturation.  The input, forget and output gates go through gemmlowp's int16
logistic, the cell gate through its int16 tanh (both Q3.12 in, Q0.15 out).
The int16 cell state (scale 2^cell_shift) becomes ``f * c / 2^15 + i * g /
2^(30 + cell_shift)``, saturated and optionally clipped; the new hidden state
is ``o * tanh(c)`` rescaled to the int8 hidden quantization.  The hidden state
is the step's output.

The hidden and cell states start from the operator's state inputs (TFLite's
variable tensors) and the final states are written back into them, as TFLite
does: a runtime session keeps them from one run to the next
(``npuc.passes.variables``), and a new session starts from TFLite's reset
values (the hidden state's zero point, a zero cell).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fixedpoint import int_limits, logistic, multiply_by_quantized_multiplier, rounding_divide_by_pot, tanh, wrap_bits

#: The gates in TFLite's order; their weights are inputs 1-4 (input) and 5-8 (recurrent).
GATES = ("input", "forget", "cell", "output")
#: The inputs holding the hidden (output) state and the cell state (TFLite's variable tensors).
STATE_INPUTS = (18, 19)
#: Integer bits of the gates' int16 pre-activations (Q3.12).
GATE_INTEGER_BITS = 3

_INT16 = int_limits(16)


def _matmul_to_gate(v: np.ndarray, weights: np.ndarray, bias: np.ndarray, multiplier: int, shift: int,
                    accumulated: np.ndarray) -> np.ndarray:
    """TFLite's MatrixBatchVectorMultiplyAccumulate: rescale v x W^T + bias and add it to the int16 gate."""
    acc = v @ weights.T + np.asarray(bias, dtype=np.int64)
    return np.clip(multiply_by_quantized_multiplier(acc, multiplier, shift) + accumulated, *_INT16)


def _gate(g: str, x: np.ndarray, h: np.ndarray, w_in: np.ndarray, w_rec: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """One gate's activation (int16, Q0.15) from this step's input and the previous hidden state."""
    pre = _matmul_to_gate(x, w_in, p[f"{g}_input_bias"], p[f"{g}_input_multiplier"], p[f"{g}_input_shift"],
                          np.zeros((x.shape[0], w_in.shape[0]), dtype=np.int64))
    pre = _matmul_to_gate(h, w_rec, p[f"{g}_recurrent_bias"], p[f"{g}_recurrent_multiplier"],
                          p[f"{g}_recurrent_shift"], pre)
    if g == "cell":
        return tanh(pre, GATE_INTEGER_BITS, 16)
    return logistic(pre, GATE_INTEGER_BITS, 16)


def _step(x: np.ndarray, h: np.ndarray, c: np.ndarray, weights: dict[str, tuple[np.ndarray, np.ndarray]],
          p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """One time step for every batch row: (new hidden state, new cell state)."""
    gate = {g: _gate(g, x, h, *weights[g], p) for g in GATES}
    c = wrap_bits(rounding_divide_by_pot(gate["forget"] * c, 15), 16)
    update = wrap_bits(rounding_divide_by_pot(gate["input"] * gate["cell"], 30 + p["cell_shift"]), 16)
    c = np.clip(c + update, *_INT16)
    if p["cell_clip"] > 0:
        c = np.clip(c, -p["cell_clip"], p["cell_clip"])
    hidden = gate["output"] * tanh(c, 15 + p["cell_shift"], 16)
    hidden = multiply_by_quantized_multiplier(hidden, p["hidden_multiplier"], p["hidden_shift"])
    h = np.clip(hidden + p["hidden_zero_point"], *int_limits(8))
    return h, c


def unidirectional_sequence_lstm(inputs: list[np.ndarray | None], outputs: list[np.ndarray],
                                 p: dict[str, Any]) -> None:
    """Integer LSTM over a [batch, time, input] (or time-major) int8 sequence; writes every step's hidden state."""
    x, out = inputs[0], outputs[0]
    sequence = x if p["time_major"] else x.transpose(1, 0, 2)            # [time, batch, input]
    result = np.empty(sequence.shape[:2] + (out.shape[-1],), dtype=np.int64)
    weights = {g: (inputs[1 + k].astype(np.int64), inputs[5 + k].astype(np.int64)) for k, g in enumerate(GATES)}
    hidden_state, cell_state = inputs[STATE_INPUTS[0]], inputs[STATE_INPUTS[1]]
    h = hidden_state.reshape(sequence.shape[1], out.shape[-1]).astype(np.int64)
    c = cell_state.reshape(h.shape).astype(np.int64)
    for t in range(sequence.shape[0]):
        h, c = _step(sequence[t].astype(np.int64), h, c, weights, p)
        result[t] = h
    out[...] = (result if p["time_major"] else result.transpose(1, 0, 2)).astype(out.dtype)
    hidden_state[...] = h.reshape(hidden_state.shape)
    cell_state[...] = c.reshape(cell_state.shape)
