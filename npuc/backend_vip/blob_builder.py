"""Assemble the .vipbin content from the placed, planned graph.

This is the last stage of the compiler: it turns placement decisions and the
memory plan into buffers, tensors, program steps and I/O records.  It reads
the IR only for names, shapes and quantization; everything the runtime needs is
copied into the blob, nothing refers back to the TFLite file.
"""

from __future__ import annotations

import hashlib

from .. import __version__, vipbin
from ..errors import UnsupportedError
from ..ir import Graph, Tensor
from ..passes.memory import TENSOR_ALIGN, MemoryPlan, constant_pool
from ..passes.placement import HOST, Decision
from .target import Target

ARENA, CONSTANTS = 0, 1  # buffer ids


def _tensor_info(t: Tensor, buffer: int, offset: int) -> vipbin.TensorInfo:
    if t.dtype not in vipbin.DTYPES.values():
        raise UnsupportedError(f"tensor {t.describe()}: element type {t.dtype} cannot be stored in a .vipbin")
    scale, zp, per_channel = 0.0, 0, False
    if t.quant is not None and t.quant.scale.size:
        per_channel = t.quant.per_channel
        scale, zp = t.quant.single_scale, t.quant.single_zero_point
    return vipbin.TensorInfo(name=t.name, buffer=buffer, offset=offset, dtype=t.dtype, shape=tuple(t.shape),
                             scale=scale, zero_point=zp, per_channel=per_channel)


def build_blob(graph: Graph, decisions: list[Decision], plan: MemoryPlan, target: Target,
               model_bytes: bytes, metadata: dict[str, str]) -> vipbin.Blob:
    """The blob for a graph whose ops have all been placed and whose tensors are planned."""
    buffers = [vipbin.Buffer(size=max(plan.arena_size, TENSOR_ALIGN), kind="tensor", name="arena",
                             align=TENSOR_ALIGN)]
    if plan.constant_size:
        buffers.append(vipbin.Buffer(size=plan.constant_size, kind="constant", name="constants",
                                     align=TENSOR_ALIGN, init=constant_pool(graph, plan)))

    tensors: list[vipbin.TensorInfo] = []
    ids: dict[int, int] = {}

    def tensor_id(t: int) -> int:
        if t not in ids:
            tensor = graph.tensors[t]
            if tensor.is_constant:
                info = _tensor_info(tensor, CONSTANTS, plan.constant_offsets[t])
            else:
                info = _tensor_info(tensor, ARENA, plan.arena_offsets[t])
            ids[t] = len(tensors)
            tensors.append(info)
        return ids[t]

    inputs = [tensor_id(t) for t in graph.inputs]
    steps: list[vipbin.NpuStep | vipbin.HostStep] = []
    for d in decisions:
        if d.unit != HOST:
            raise UnsupportedError(f"operator {d.op.name}: {d.unit} steps are not implemented")
        steps.append(vipbin.HostStep(
            name=d.op.name, kernel=d.op.opcode,
            inputs=[None if t is None else tensor_id(t) for t in d.op.inputs],
            outputs=[tensor_id(t) for t in d.op.outputs], params=d.params))
    outputs = [tensor_id(t) for t in graph.outputs]
    return vipbin.Blob(target=target.name, identity=target.identity, compiler_version=f"npuc {__version__}",
                       model_sha256=hashlib.sha256(model_bytes).digest(), buffers=buffers, relocations=[],
                       tensors=tensors, steps=steps, inputs=inputs, outputs=outputs, metadata=metadata)
