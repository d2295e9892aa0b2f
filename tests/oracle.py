"""TFLite's reference kernels as the oracle every numeric test compares against.

Runs ai-edge-litert with ``OpResolverType.BUILTIN_REF`` (TFLite's reference
kernels, not the optimized ones) and, where a test needs per-layer values,
``experimental_preserve_all_tensors=True`` so every intermediate tensor can be
read after one invoke.  Variable tensors (LSTM states) are reset before every
invoke: TFLite keeps them from one invoke to the next, npuc runs are independent.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = SHARED / "models"
IMAGES = SHARED / "images"
LABELS = SHARED / "labels" / "imagenet_labels.txt"

MOBILENETS = [
    "mobilenet_quant_v1_224",
    "mobilenet_v1_0.25_128_quant",
    "mobilenet_v1_0.75_192_quant",
    "mobilenet_v2_1.0_224_quant",
    "tf2_mobilenet_v2_1.0_224_ptq",
]


def model_path(name: str) -> Path:
    return MODELS / f"{name}.tflite"


def all_images() -> list[Path]:
    return sorted(IMAGES.glob("*.bmp"))


@lru_cache(maxsize=8)
def _interpreter(path: str, preserve: bool):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=preserve)
    it.allocate_tensors()
    return it


def run_reference(path: str | Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Graph outputs of TFLite's reference kernels for ``inputs`` (in graph input order)."""
    it = _interpreter(str(path), False)
    it.reset_all_variables()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def run_reference_all(path: str | Path, inputs: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Every tensor's value (by TFLite tensor index) after one reference invoke."""
    it = _interpreter(str(path), True)
    it.reset_all_variables()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    out = {}
    for d in it.get_tensor_details():
        try:
            out[d["index"]] = it.get_tensor(d["index"]).copy()
        except ValueError:  # tensors without data (e.g. optional, unallocated)
            pass
    return out
