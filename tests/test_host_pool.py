"""Pooling on the host (AVERAGE_POOL_2D, MAX_POOL_2D, L2_POOL_2D) against TFLite's reference kernels.

Seeded random instances (shapes, windows, strides, SAME/VALID, fused activations,
uint8/int8/int16/float32, input and output quantized alike or not) run on the
Python runtime and must equal TFLite bit for bit; the C runtime must then equal
the Python runtime byte for byte.
"""

from __future__ import annotations

import numpy as np
from host_cases import CASES, activation, kernel_tests, quant
from model_builder import SubgraphBuilder, options


def _out_size(size: int, k: int, stride: int, padding: str) -> int:
    return (size + stride - 1) // stride if padding == "SAME" else (size - k + stride) // stride


def _pool(opcode: str, types: tuple[str, ...]):
    def generate(rng: np.random.Generator, g: SubgraphBuilder) -> list[int]:
        dtype = str(rng.choice(types))
        padding = str(rng.choice(["SAME", "VALID"]))
        fh, fw = (int(v) for v in rng.integers(1, 6, 2))
        sh, sw = (int(v) for v in rng.integers(1, 4, 2))
        h, w = int(rng.integers(fh, fh + 9)), int(rng.integers(fw, fw + 9))
        c = int(rng.integers(1, 6))
        oh, ow = _out_size(h, fh, sh, padding), _out_size(w, fw, sw, padding)
        qx = quant(rng, dtype) if dtype != "float32" else {}
        # Quantized alike most of the time (as converters emit); otherwise TFLite computes on raw values.
        qy = qx if dtype == "float32" or rng.random() < 0.7 else quant(rng, dtype)
        n = int(rng.integers(1, 3))
        x = g.input((n, h, w, c), dtype, **qx)
        y = g.tensor((n, oh, ow, c), dtype, **qy)
        g.op(opcode, [x], [y], options("Pool2DOptions", padding=padding, strideH=sh, strideW=sw, filterHeight=fh,
                                       filterWidth=fw, fusedActivationFunction=activation(rng)))
        return [y]
    return generate


GENERATORS = {
    "MAX_POOL_2D": _pool("MAX_POOL_2D", ("uint8", "int8", "int16", "float32")),
    "AVERAGE_POOL_2D": _pool("AVERAGE_POOL_2D", ("uint8", "int8", "int16", "float32")),
    "L2_POOL_2D": _pool("L2_POOL_2D", ("float32",)),
}


test_python_kernels_match_tflite, test_c_kernels_match_python = kernel_tests(GENERATORS)


def test_every_case_count_is_dozens():
    assert CASES >= 24
