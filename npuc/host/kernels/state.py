"""The byte copy behind a stateful model's variable reads and writes (see ``npuc.passes.variables``)."""

from __future__ import annotations

from typing import Any

import numpy as np


def copy(inputs: list[np.ndarray | None], outputs: list[np.ndarray], p: dict[str, Any]) -> None:
    """Copy the value into the output (a variable's state tensor, or a graph output read from it)."""
    outputs[0][...] = inputs[0]
