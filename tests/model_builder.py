"""Build TFLite models of any shape for tests, with the flatbuffers object API that ai-edge-litert ships.

``tflite_builder`` writes one-operator models slot by slot; this writes whole
graphs: several operators, several subgraphs (CALL_ONCE, resource variables),
custom operators with flexbuffer options, per-channel quantization.  The
schema classes come from ``ai_edge_litert.schema_py_generated`` (TFLite's own
generated code), so field slots cannot be wrong, and TFLite's interpreter is
the judge of whether a model is well formed.

    m = ModelBuilder()
    g = m.main
    x = g.input((1, 8, 8, 3), "int8", scale=0.05, zero_point=-3)
    y = g.tensor((1, 4, 4, 3), "int8", scale=0.05, zero_point=-3)
    g.op("MAX_POOL_2D", [x], [y], options("Pool2DOptions", padding="VALID", strideH=2, strideW=2,
                                          filterHeight=2, filterWidth=2))
    g.output(y)
    data = m.build()
"""

from __future__ import annotations

from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from flatbuffers import flexbuffers

_TYPES = {
    "float32": schema.TensorType.FLOAT32, "float16": schema.TensorType.FLOAT16, "int32": schema.TensorType.INT32,
    "uint8": schema.TensorType.UINT8, "int64": schema.TensorType.INT64, "bool": schema.TensorType.BOOL,
    "int16": schema.TensorType.INT16, "int8": schema.TensorType.INT8, "resource": schema.TensorType.RESOURCE,
}
_ENUMS = {"padding": schema.Padding, "fusedActivationFunction": schema.ActivationFunctionType,
          "mode": schema.MirrorPadMode, "outType": schema.TensorType, "outputType": schema.TensorType,
          "inDataType": schema.TensorType, "outDataType": schema.TensorType, "quantizedBiasType": schema.TensorType}


def options(name: str, **fields: Any) -> Any:
    """A builtin options object (``name`` without the ``T``: "Pool2DOptions"), fields by their schema names.

    Enum fields take their names ("SAME", "RELU6", "INT32").
    """
    obj = getattr(schema, f"{name}T")()
    for key, value in fields.items():
        if not hasattr(obj, key):
            raise AttributeError(f"{name} has no field {key}")
        if isinstance(value, str) and key in _ENUMS:
            value = getattr(_ENUMS[key], value)
        setattr(obj, key, value)
    return obj


class SubgraphBuilder:
    """One subgraph: tensors, operators, inputs and outputs."""

    def __init__(self, model: ModelBuilder, name: str) -> None:
        self.model = model
        self.sg = schema.SubGraphT()
        self.sg.name = name
        self.sg.tensors, self.sg.operators, self.sg.inputs, self.sg.outputs = [], [], [], []

    def tensor(self, shape: tuple[int, ...], dtype: str, scale: float | list[float] | None = None,
               zero_point: int | list[int] | None = None, axis: int = 0, data: np.ndarray | None = None,
               name: str | None = None, variable: bool = False, signature: tuple[int, ...] | None = None) -> int:
        """A tensor (constant when ``data`` is given, quantized when ``scale`` is); returns its index."""
        t = schema.TensorT()
        t.shape = list(shape)
        t.type = _TYPES[dtype]
        t.name = name or f"t{len(self.sg.tensors)}"
        t.isVariable = variable
        if signature is not None:
            t.shapeSignature = list(signature)
        if scale is not None:
            q = schema.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            q.zeroPoint = [int(z) for z in np.atleast_1d(0 if zero_point is None else zero_point)]
            q.quantizedDimension = axis
            t.quantization = q
        if data is not None:
            t.buffer = self.model.buffer(np.asarray(data).astype(dtype, copy=False).tobytes())
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def const(self, data: np.ndarray, dtype: str | None = None, **quant: Any) -> int:
        """A constant tensor holding ``data``."""
        data = np.asarray(data)
        return self.tensor(data.shape, dtype or data.dtype.name, data=data, **quant)

    def input(self, shape: tuple[int, ...], dtype: str, **kw: Any) -> int:
        index = self.tensor(shape, dtype, **kw)
        self.sg.inputs.append(index)
        return index

    def output(self, index: int) -> int:
        self.sg.outputs.append(index)
        return index

    def op(self, opcode: str, inputs: list[int], outputs: list[int], opts: Any = None,
           custom_code: str | None = None, custom_options: dict | bytes | None = None,
           intermediates: list[int] | None = None, version: int = 1) -> None:
        """An operator; ``opcode`` is a builtin name, or "CUSTOM" with ``custom_code``.

        ``version`` is the operator code's version (TFLite registers some
        operators, BROADCAST_TO among them, from version 2 only).
        """
        o = schema.OperatorT()
        o.opcodeIndex = self.model.opcode(opcode, custom_code, version)
        o.inputs, o.outputs = list(inputs), list(outputs)
        if intermediates is not None:
            o.intermediates = list(intermediates)
        if opts is not None:
            o.builtinOptionsType = getattr(schema.BuiltinOptions, type(opts).__name__[:-1])
            o.builtinOptions = opts
        if custom_options is not None:
            raw = flexbuffers.Dumps(custom_options) if isinstance(custom_options, dict) else custom_options
            o.customOptions = list(raw)
        self.sg.operators.append(o)


class ModelBuilder:
    """A TFLite model: subgraph 0 is ``main``; ``subgraph()`` adds more (bodies of CALL_ONCE, WHILE, ...)."""

    def __init__(self) -> None:
        self.m = schema.ModelT()
        self.m.version = 3
        self.m.description = "npuc test model"
        self.m.buffers = [schema.BufferT()]
        self.m.operatorCodes = []
        self._codes: dict[tuple[str, str | None, int], int] = {}
        self.subgraphs = [SubgraphBuilder(self, "main")]

    @property
    def main(self) -> SubgraphBuilder:
        return self.subgraphs[0]

    def subgraph(self, name: str) -> tuple[int, SubgraphBuilder]:
        self.subgraphs.append(SubgraphBuilder(self, name))
        return len(self.subgraphs) - 1, self.subgraphs[-1]

    def buffer(self, data: bytes) -> int:
        b = schema.BufferT()
        b.data = list(data)
        self.m.buffers.append(b)
        return len(self.m.buffers) - 1

    def opcode(self, opcode: str, custom_code: str | None, version: int = 1) -> int:
        key = (opcode, custom_code, version)
        if key not in self._codes:
            code = getattr(schema.BuiltinOperator, opcode)
            c = schema.OperatorCodeT()
            c.builtinCode = code
            c.deprecatedBuiltinCode = min(code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            c.version = version
            c.customCode = custom_code
            self.m.operatorCodes.append(c)
            self._codes[key] = len(self.m.operatorCodes) - 1
        return self._codes[key]

    def build(self) -> bytes:
        self.m.subgraphs = [s.sg for s in self.subgraphs]
        b = flatbuffers.Builder(1024)
        b.Finish(self.m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())
