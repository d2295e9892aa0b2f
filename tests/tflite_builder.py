"""Write tiny single-operator .tflite models for tests.

The shared models only exercise what MobileNets contain; the host kernels also
cover FULLY_CONNECTED, DEQUANTIZE, float QUANTIZE, depth multipliers, dilation,
other fused activations and paddings.  This builds one-operator models with
the flatbuffers runtime (the ``tflite`` package only reads), so such cases can
go through npuc's real frontend and be compared with TFLite itself.

Field slots are those of TFLite's schema.fbs; a wrong slot would make TFLite
or the frontend reject the model, so the tests would notice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
import tflite

_TYPES = {"float32": tflite.TensorType.FLOAT32, "int32": tflite.TensorType.INT32,
          "uint8": tflite.TensorType.UINT8, "int8": tflite.TensorType.INT8, "int16": tflite.TensorType.INT16}


@dataclass
class T:
    """A tensor of the model: constant when ``data`` is given; quantized when ``scale`` is given."""

    shape: tuple[int, ...]
    dtype: str
    scale: list[float] | None = None
    zero_point: list[int] | None = None
    axis: int = 0
    data: np.ndarray | None = None


@dataclass
class Option:
    """One scalar field of a builtin options table: slot number, flatbuffers kind ('b','i','f','B') and value."""

    slot: int
    kind: str
    value: Any


@dataclass
class OpSpec:
    opcode: str
    options_type: str | None = None
    options: list[Option] = field(default_factory=list)


def _vector(b: flatbuffers.Builder, kind: str, values: list) -> int:
    start, prepend = {"i": (b.StartVector, b.PrependInt32), "f": (b.StartVector, b.PrependFloat32),
                      "q": (b.StartVector, b.PrependInt64), "B": (b.StartVector, b.PrependUint8),
                      "o": (b.StartVector, b.PrependUOffsetTRelative)}[kind]
    size = {"i": 4, "f": 4, "q": 8, "B": 1, "o": 4}[kind]
    start(size, len(values), size)
    for v in reversed(values):
        prepend(v)
    return b.EndVector()


def build_model(tensors: list[T], op: OpSpec, op_inputs: list[int], op_outputs: list[int]) -> bytes:
    """A TFLite flatbuffer whose one subgraph runs ``op`` over ``op_inputs`` (tensor indices) to ``op_outputs``.

    The graph inputs are the operator's non-constant inputs.
    """
    b = flatbuffers.Builder(1024)
    b.ForceDefaults(True)
    # Buffers: 0 is the conventional empty buffer, then one per constant tensor.
    buffer_data = [None] + [t.data for t in tensors if t.data is not None]
    buffers = []
    for data in buffer_data:
        vec = _vector(b, "B", list(np.ascontiguousarray(data).tobytes())) if data is not None else None
        b.StartObject(3)
        if vec is not None:
            b.PrependUOffsetTRelativeSlot(0, vec, 0)
        buffers.append(b.EndObject())
    tensor_offsets = []
    next_buffer = 1
    for i, t in enumerate(tensors):
        name = b.CreateString(f"t{i}")
        shape = _vector(b, "i", list(t.shape))
        quant = None
        if t.scale is not None:
            scale = _vector(b, "f", list(t.scale))
            zp = _vector(b, "q", list(t.zero_point))
            b.StartObject(7)
            b.PrependUOffsetTRelativeSlot(2, scale, 0)
            b.PrependUOffsetTRelativeSlot(3, zp, 0)
            b.PrependInt32Slot(6, t.axis, 0)
            quant = b.EndObject()
        b.StartObject(8)
        b.PrependUOffsetTRelativeSlot(0, shape, 0)
        b.PrependInt8Slot(1, _TYPES[t.dtype], 0)
        if t.data is not None:
            b.PrependUint32Slot(2, next_buffer, 0)
            next_buffer += 1
        b.PrependUOffsetTRelativeSlot(3, name, 0)
        if quant is not None:
            b.PrependUOffsetTRelativeSlot(4, quant, 0)
        tensor_offsets.append(b.EndObject())
    options = None
    if op.options_type is not None:
        b.StartObject(max([o.slot for o in op.options], default=0) + 1)
        for o in op.options:
            {"b": b.PrependInt8Slot, "i": b.PrependInt32Slot, "f": b.PrependFloat32Slot,
             "B": b.PrependBoolSlot}[o.kind](o.slot, o.value, 0)
        options = b.EndObject()
    inputs = [i for i in op_inputs if i >= 0 and tensors[i].data is None]
    op_in_vec = _vector(b, "i", op_inputs)
    op_out_vec = _vector(b, "i", op_outputs)
    b.StartObject(5)
    b.PrependUint32Slot(0, 0, 0)
    b.PrependUOffsetTRelativeSlot(1, op_in_vec, 0)
    b.PrependUOffsetTRelativeSlot(2, op_out_vec, 0)
    if options is not None:
        b.PrependUint8Slot(3, getattr(tflite.BuiltinOptions, op.options_type), 0)
        b.PrependUOffsetTRelativeSlot(4, options, 0)
    operator = b.EndObject()
    sub_tensors = _vector(b, "o", tensor_offsets)
    sub_inputs = _vector(b, "i", inputs)
    sub_outputs = _vector(b, "i", op_outputs)
    sub_ops = _vector(b, "o", [operator])
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, sub_tensors, 0)
    b.PrependUOffsetTRelativeSlot(1, sub_inputs, 0)
    b.PrependUOffsetTRelativeSlot(2, sub_outputs, 0)
    b.PrependUOffsetTRelativeSlot(3, sub_ops, 0)
    subgraph = b.EndObject()
    code = getattr(tflite.BuiltinOperator, op.opcode)
    b.StartObject(4)
    b.PrependInt8Slot(0, min(code, 127), 0)
    b.PrependInt32Slot(2, 1, 0)
    b.PrependInt32Slot(3, code, 0)
    opcode = b.EndObject()
    codes = _vector(b, "o", [opcode])
    subgraphs = _vector(b, "o", [subgraph])
    buffer_vec = _vector(b, "o", buffers)
    b.StartObject(5)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, codes, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(4, buffer_vec, 0)
    model = b.EndObject()
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())
