"""Comparisons, selection and logic with numpy broadcasting, as TFLite's reference kernels compute them.

Quantized comparisons rescale both inputs the way TFLite's ComparisonWithScaling
does (offset, shift left, multiply by the input's own scale in fixed point) and
compare the int32 results; raw comparisons compare the values themselves (a NaN
is unequal to everything and unordered).  SELECT copies the chosen values bit
for bit; its version 1 applies a vector condition to the first dimension of the
values, SELECT_V2 broadcasts all three inputs.  The logical operators treat any
nonzero byte as true and write 0 or 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .arith import rescaled

Inputs = list[np.ndarray | None]
Params = dict[str, Any]

#: The comparisons, in the order of the kernels' ``relation`` parameter.
RELATIONS = ("EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL")
_FUNCTIONS = (np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal)


def compare_scaled(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """Comparison of quantized inputs, each rescaled by its own scale first (with broadcasting)."""
    a, b = rescaled(inputs[0], "input1", p), rescaled(inputs[1], "input2", p)
    outputs[0][...] = _FUNCTIONS[p["relation"]](a, b)


def compare_raw(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """Comparison of raw values (bool, integers, float32), with broadcasting."""
    outputs[0][...] = _FUNCTIONS[p["relation"]](inputs[0], inputs[1])


def _choose(condition: np.ndarray, x: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """x where the condition holds, else y; one-element tensors select whatever their shapes."""
    out[...] = np.where(condition, x, y).reshape(out.shape)


def select(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """SELECT: x or y by a condition of their shape, a scalar, or a vector over their first dimension."""
    condition, x, y = inputs[0], inputs[1], inputs[2]
    if condition.ndim == 1 and x.ndim > 1:
        condition = condition.reshape(condition.shape + (1,) * (x.ndim - 1))
    _choose(condition, x, y, outputs[0])


def select_v2(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """SELECT_V2: x or y by the condition, all three broadcast against each other."""
    _choose(inputs[0], inputs[1], inputs[2], outputs[0])


def logical_and(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """Logical and of two bool tensors, with broadcasting."""
    outputs[0][...] = np.logical_and(inputs[0], inputs[1])


def logical_or(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """Logical or of two bool tensors, with broadcasting."""
    outputs[0][...] = np.logical_or(inputs[0], inputs[1])


def logical_not(inputs: Inputs, outputs: list[np.ndarray], p: Params) -> None:
    """Logical negation of a bool tensor."""
    outputs[0][...] = np.logical_not(inputs[0])
