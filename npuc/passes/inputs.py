"""How a float image input expects its pixels, read from the graph at compile time for ``npu-run IMAGE``.

Exporters that keep a float32 input quantize it first thing (PyTorch and TF2
int8 exports: input -> QUANTIZE -> int8 graph).  That QUANTIZE's scale and
zero point say which real values the model was calibrated on; npu-run maps
the pixels 0..255 onto the quantized range, i.e. real = (pixel + qmin -
zero_point) * scale, which is the normalization ``mean = zero_point - qmin``,
``std = 1 / scale``.  The result goes into the blob's metadata, where both
runtimes' npu-run find it; ``--mean``/``--std`` override it.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph

#: Metadata keys of the normalization (decimal floats).
MEAN_KEY, STD_KEY = "image_mean", "image_std"


def image_normalization(graph: Graph) -> dict[str, str]:
    """Metadata for a single float32 input consumed only by QUANTIZE ops of one quantization (else nothing)."""
    if len(graph.inputs) != 1 or graph.tensors[graph.inputs[0]].dtype != "float32":
        return {}
    x = graph.inputs[0]
    readers = [op for op in graph.ops if x in op.inputs]
    outs = [graph.tensors[op.outputs[0]] for op in readers if op.opcode == "QUANTIZE"]
    if not outs or len(outs) != len(readers) or any(t.quant is None or t.quant.per_channel for t in outs):
        return {}
    quants = {(t.dtype, t.quant.single_scale, t.quant.single_zero_point) for t in outs}
    if len(quants) != 1:
        return {}
    dtype, scale, zero_point = quants.pop()
    if dtype not in ("uint8", "int8") or not scale > 0:
        return {}
    qmin = int(np.iinfo(dtype).min)
    return {MEAN_KEY: repr(float(zero_point - qmin)), STD_KEY: repr(float(np.float32(1.0) / np.float32(scale)))}
