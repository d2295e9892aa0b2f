"""Element-wise CAST, SQRT and LOGISTIC, as TFLite's reference kernels compute them.

CAST is C's ``static_cast`` element by element (float to integer truncates
towards zero).  SQRT is the correctly rounded float32 square root (NaN for
negative inputs).  The 8-bit LOGISTIC is a 256-entry lookup table: TFLite's
reference kernel fills it in Prepare by evaluating the float sigmoid at every
input value, and the compiler folds the very same table into ``table``
(indexed by the input's raw byte), so the kernel only looks values up.
"""

from __future__ import annotations

from typing import Any

import numpy as np



def cast(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Convert every element to the output's type as C's static_cast does."""
    with np.errstate(invalid="ignore"):
        outputs[0][...] = inputs[0].astype(outputs[0].dtype)


def sqrt(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """float32 square root, NaN for negative inputs."""
    with np.errstate(invalid="ignore"):
        outputs[0][...] = np.sqrt(inputs[0])


def logistic(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """8-bit sigmoid by lookup in the folded 256-entry ``table``, indexed by the input's raw byte."""
    x, out = inputs[0], outputs[0]
    table = np.asarray(p["table"]).astype(out.dtype)
    out[...] = table[x.view(np.uint8)]
