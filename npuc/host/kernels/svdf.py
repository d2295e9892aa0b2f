"""SVDF (singular value decomposition filter), fully integer and float32, as TFLite's reference kernel computes it.

An SVDF layer is a fully connected layer over a window of the last
``memory`` inputs, factored into ``filters = units * rank`` rank-1 filters:
each filter projects the input onto one feature (weights_feature, [filters,
input]) and weighs that feature's last ``memory`` values in time
(weights_time, [filters, memory]); each unit sums its ``rank`` filters, adds
its bias and goes through the activation.  The window is TFLite's variable
tensor, the state ([batch, filters * memory], one row of ``memory`` values
per filter, oldest first).  Every invoke shifts each row left by one and
writes the new feature in its last column before the time weights read it;
the kernel updates the state input in place, as TFLite does, so a runtime
session keeps it from one run to the next (``npuc.passes.variables``).

The integer kernel (int8 input and weights_feature, int16 weights_time and
state, int32 bias, int8 output) rescales each feature with
``input_scale * feature_scale / state_scale`` and saturates it to int16, and
rescales each unit's sum with ``state_scale * time_scale / output_scale``
(both computed in float32 at compile time, ``npuc.host.ops.svdf``).
Its sums are TFLite's int32 sums, which wrap (an int16 x int16 product is up
to 2^30, so two of them can leave int32): they are computed exactly and
wrapped once, the same value modulo 2^32.  TFLite takes only RELU for it and
then applies none: the output is only clamped to int8.

The float kernel's three sums (a feature over the input, a filter's time
products, a unit's filters) are TFLite's tensor_utils sums, which even its
reference SVDF calls; x86 builds of TFLite compile them from their NEON code
(through NEON_2_SSE): four lanes start at +0, lane j adds terms j, j + 4, ...
of the largest multiple of four terms, the lanes are added lane 0 to lane 3,
and the remaining terms are added to that in order, each product rounded
before its addition.  Then come the bias and the activation, with TFLite's
comparisons.  SIGN_BIT gives 1 for a negative value, and for a NaN its sign
bit, which is the CPU's: a NaN that a sum creates is negative on x86 and
positive on Arm, and which of two NaNs a sum keeps depends on how the
compiler ordered its operands; only that sign is not TFLite's bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..fixedpoint import multiply_by_quantized_multiplier, wrap_int32
from .conv import ieee

#: The input holding the state (TFLite's variable tensor, updated in place).
STATE_INPUT = 4
#: Lanes of TFLite's float sums.
LANES = 4
#: The float kernel's activations, by the code its ``activation`` parameter carries.
ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "SIGN_BIT")


def _window(state: np.ndarray, filters: int) -> np.ndarray:
    """The state as [batch, filters, memory] (a view: writes reach the state tensor)."""
    return state.reshape(state.shape[0], filters, -1)


def _push(state: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Shift every filter's row of the state left by one and append this run's feature; the window, updated."""
    window = _window(state, feature.shape[1])
    window[..., :-1] = window[..., 1:].copy()
    window[..., -1] = feature
    return window


def svdf(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Integer SVDF: int8 input and features, int16 time weights and state, int8 output clamped to its type."""
    x, weights_feature, weights_time, bias, state = inputs
    out = outputs[0]
    dot = (x.astype(np.int64) - p["input_zero_point"]) @ weights_feature.astype(np.int64).T     # [batch, filters]
    feature = multiply_by_quantized_multiplier(wrap_int32(dot), p["feature_multiplier"], p["feature_shift"])
    window = _push(state, np.clip(feature, -32768, 32767))
    per_filter = np.einsum("bfm,fm->bf", window.astype(np.int64), weights_time.astype(np.int64))
    total = per_filter.reshape(out.shape[0], out.shape[1], p["rank"]).sum(axis=2)
    if bias is not None:
        total = total + bias.astype(np.int64)
    scaled = multiply_by_quantized_multiplier(wrap_int32(total), p["time_multiplier"], p["time_shift"])
    out[...] = np.clip(scaled + p["output_zero_point"], -128, 127).astype(np.int8)


def _lane_sum(terms: np.ndarray) -> np.ndarray:
    """TFLite's float32 sum over the last axis: four lanes, then the lanes in order, then the remaining terms."""
    n = terms.shape[-1]
    head = n - n % LANES
    lanes = np.zeros(terms.shape[:-1] + (LANES,), dtype=np.float32)
    for k in range(0, head, LANES):
        lanes += terms[..., k:k + LANES]
    total = lanes[..., 0]
    for j in range(1, LANES):
        total = total + lanes[..., j]
    for k in range(head, n):
        total = total + terms[..., k]
    return total


def _activate(x: np.ndarray, activation: str) -> np.ndarray:
    """TFLite's ApplyActivationToVector for float32: std::max/std::min comparisons, so NaN goes to the bound."""
    zero, one, six = np.float32(0), np.float32(1), np.float32(6)
    if activation == "RELU":
        return np.where(zero < x, x, zero)
    if activation == "RELU_N1_TO_1":
        capped = np.where(one < x, one, x)
        return np.where(-one < capped, capped, -one)
    if activation == "RELU6":
        capped = np.where(six < x, six, x)
        return np.where(zero < capped, capped, zero)
    if activation == "SIGN_BIT":
        return np.signbit(x).astype(np.float32)
    return x


@ieee
def svdf_float(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float32 SVDF: TFLite's four-lane sums, then the bias, then the fused activation."""
    x, weights_feature, weights_time, bias, state = inputs
    out = outputs[0]
    feature = _lane_sum(x[:, None, :] * weights_feature[None, :, :])        # [batch, filters]
    window = _push(state, feature)
    per_filter = _lane_sum(window * weights_time[None, :, :])
    total = _lane_sum(per_filter.reshape(out.shape[0], out.shape[1], p["rank"]))
    if bias is not None:
        total = total + bias
    out[...] = _activate(total, ACTIVATIONS[p["activation"]])
