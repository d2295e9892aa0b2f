"""Constant folding: shapes and constant subgraphs computed at compile time, never in the blob.

Exporters compute reshape targets from SHAPE at run time (SHAPE -> UNPACK ->
MUL -> PACK -> RESHAPE); npuc knows every shape at compile time, so all of it
folds away, and the blob runs only the RESHAPE (a view on the NPU).  Operators
on constants (a DEQUANTIZE of float16 or int8 weights) fold too; an operator
producing a graph output stays, so the blob still produces it.  Every result
equals TFLite's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import oracle
from model_builder import ModelBuilder, options
from npuc import vipbin
from npuc.driver import compile_model
from npuc.runtime.runtime import Runtime
from npuc.sim.device import SimDevice


def _shape_chain_model() -> bytes:
    m = ModelBuilder()
    g = m.main
    x = g.input((1, 4, 6, 3), "int8", scale=0.1, zero_point=2)
    shape = g.tensor((4,), "int32")
    g.op("SHAPE", [x], [shape], options("ShapeOptions", outType="INT32"))
    n, h, w, c = (g.tensor((), "int32") for _ in range(4))
    g.op("UNPACK", [shape], [n, h, w, c], options("UnpackOptions", num=4, axis=0))
    hw = g.tensor((), "int32")
    g.op("MUL", [h, w], [hw], options("MulOptions"))
    target = g.tensor((3,), "int32")
    g.op("PACK", [n, hw, c], [target], options("PackOptions", valuesCount=3, axis=0))
    y = g.output(g.tensor((1, 24, 3), "int8", scale=0.1, zero_point=2))
    g.op("RESHAPE", [x, target], [y])
    return m.build()


def _compiled(model: bytes, tmp_path: Path, **kw):
    src = tmp_path / "m.tflite"
    src.write_bytes(model)
    return src, compile_model(src, **kw)


def _run(blob: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    runtime = Runtime(vipbin.read_blob(blob), SimDevice())
    for k, x in enumerate(inputs):
        runtime.set_input(k, x)
    return runtime.run()


def test_shape_arithmetic_folds_away(tmp_path):
    src, result = _compiled(_shape_chain_model(), tmp_path)
    assert sorted(op.opcode for op in result.folded) == ["MUL", "PACK", "SHAPE", "UNPACK"]
    blob = vipbin.read_blob(result.blob)
    assert not [s for s in blob.steps if isinstance(s, vipbin.HostStep)]   # the RESHAPE is a view
    x = np.random.default_rng(0).integers(-128, 128, (1, 4, 6, 3)).astype(np.int8)
    assert np.array_equal(_run(result.blob, [x])[0], oracle.run_reference(src, [x])[0])


def test_cpu_only_blob_folds_too(tmp_path):
    _, result = _compiled(_shape_chain_model(), tmp_path, npu=False)
    kernels = [s.kernel for s in vipbin.read_blob(result.blob).steps if isinstance(s, vipbin.HostStep)]
    assert kernels == ["RESHAPE"]


def test_constant_operands_fold_and_graph_outputs_stay(tmp_path):
    m = ModelBuilder()
    g = m.main
    x = g.input((2, 3), "float32")
    weights = g.const(np.arange(6, dtype=np.int8).reshape(2, 3), "int8", scale=0.5, zero_point=1)
    real = g.tensor((2, 3), "float32")
    g.op("DEQUANTIZE", [weights], [real])
    y = g.output(g.tensor((2, 3), "float32"))
    g.op("ADD", [x, real], [y], options("AddOptions"))
    constant_out = g.output(g.tensor((2, 3), "float32"))
    g.op("DEQUANTIZE", [weights], [constant_out])
    src, result = _compiled(m.build(), tmp_path)
    assert [op.opcode for op in result.folded] == ["DEQUANTIZE"]
    x_value = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    for got, want in zip(_run(result.blob, [x_value]), oracle.run_reference(src, [x_value])):
        assert np.array_equal(got, want)
