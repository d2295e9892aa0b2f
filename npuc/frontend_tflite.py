"""TFLite flatbuffer -> npuc IR (:class:`npuc.ir.Graph`).

The file is read once into memory and walked with the ``tflite`` package's
generated flatbuffers classes.  Those classes trust the file completely: a bad
offset makes them raise ``struct.error``, ``IndexError``, ``TypeError``,
``ValueError`` or ``UnicodeDecodeError`` from deep inside the flatbuffers
runtime, or read garbage.  So every generated object is reached only through
:class:`_Fb`, one guard that turns those exceptions into a one-line
:class:`~npuc.errors.ModelError` naming the file, the table being read and the
field; and every count or index the file provides is checked against the file
size or the table it refers to before anything loops over it or allocates for
it.  Constant data is copied out of the file bytes with numpy (no per-element
Python), so the graph does not keep the file alive.

What is loaded: subgraph 0 with all its tensors (name, shape, shape signature,
dtype, affine quantization, variable flag, constant data, including buffers
stored after the flatbuffer through ``Buffer.offset``/``size``) and operators
(opcode, custom code, version, inputs with ``-1`` as ``None``, outputs,
intermediates, every field of ``builtin_options`` and ``builtin_options_2`` as
typed values, raw custom options).  Outputs of the custom operators npuc knows get
the shapes their TFLite kernels give them (``frontend_custom``), since the file
often leaves them empty.  The graph is validated before it is returned.

Conventions: ``Op.options`` is keyed by the schema's snake_case field names;
enum fields hold their enum names (``"SAME"``, ``"RELU6"``), vectors are lists,
strings ``str``; scalar fields absent from the file take their schema default,
absent vectors/strings are left out.  ``options["custom_options"]`` holds the
raw custom options bytes (always present, maybe empty, for CUSTOM ops).  A
tensor's ``quant`` is None unless it has at least one scale; ``axis`` is set
only for per-axis quantization.  String tensors' constant data is an object
array of ``bytes``.  Error messages start with the path (or the ``name`` given
to :func:`parse_tflite`); graph validation errors are prefixed the same way.

Not supported (refused or ignored, never guessed):

* of the other subgraphs, only those CALL_ONCE operators of subgraph 0 name
  (a stateful model's initialization) are loaded, into ``Graph.subgraphs``;
  ``Graph.num_subgraphs`` records how many the model has, and other
  control-flow ops (WHILE, IF, ...) load with their subgraph indices as
  options, for placement to refuse;
* INT4 and BFLOAT16 tensors and sparse tensors (schema field ``sparsity``)
  raise :class:`~npuc.errors.UnsupportedError`: the IR has no dtype or layout
  for them;
* ignored: min/max ranges and custom ``details`` of quantization, operator
  ``mutating_variable_inputs``, signature defs, metadata, debug metadata;
* strings that are not UTF-8 (tensor names included) are a ModelError, as the
  flatbuffers schema requires UTF-8; a string whose declared length runs past
  the end of the file is cut at the end of the file (the flatbuffers runtime
  does not report it).
"""

from __future__ import annotations

import inspect
import math
import re
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import flatbuffers
import numpy as np

from .errors import GraphError, LimitError, ModelError, UnsupportedError
from .frontend_custom import infer_custom_shapes
from .ir import DTYPE_SIZES, NUMPY_DTYPES, Graph, Op, Quant, Tensor
from .tflite_schema import schema_class

# The generated classes, one module each rather than the whole tflite package (npuc/tflite_schema.py).
# The tables the loader walks import one another inside their accessors, so they are all loaded here.
for _table in ("SubGraph", "Tensor", "Buffer", "Operator", "OperatorCode", "QuantizationParameters"):
    schema_class(_table)
Model = schema_class("Model")
ActivationFunctionType = schema_class("ActivationFunctionType")
BuiltinOperator = schema_class("BuiltinOperator")
BuiltinOptions = schema_class("BuiltinOptions")
BuiltinOptions2 = schema_class("BuiltinOptions2")
CombinerType = schema_class("CombinerType")
CustomOptionsFormat = schema_class("CustomOptionsFormat")
FullyConnectedOptionsWeightsFormat = schema_class("FullyConnectedOptionsWeightsFormat")
LSHProjectionType = schema_class("LSHProjectionType")
LSTMKernelType = schema_class("LSTMKernelType")
MirrorPadMode = schema_class("MirrorPadMode")
Padding = schema_class("Padding")
ReduceWindowFunction = schema_class("ReduceWindowFunction")
RngAlgorithm = schema_class("RngAlgorithm")
StablehloComparisonDirection = schema_class("StablehloComparisonDirection")
StablehloComparisonType = schema_class("StablehloComparisonType")
StablehloPrecisionConfig = schema_class("StablehloPrecisionConfig")
TensorType = schema_class("TensorType")

__all__ = ["load_tflite", "parse_tflite", "read_model", "MAX_TENSOR_ELEMENTS"]

#: Largest tensor (in elements) npuc accepts; bigger ones are a LimitError.
MAX_TENSOR_ELEMENTS = 2 ** 31

#: The file identifier at bytes 4..8 of every TFLite flatbuffer.
_IDENTIFIER = b"TFL3"
#: The only schema version TFLite's own interpreter accepts.
_SCHEMA_VERSION = 3
#: Root table offset (4 bytes) + file identifier (4 bytes).
_HEADER_BYTES = 8
#: A flatbuffers uoffset: the size of each entry of a vector of tables.
_UOFFSET_BYTES = 4
#: ``Buffer.offset`` and ``Operator.large_custom_options_offset`` values below
#: this mean "no data outside the flatbuffer" (the schema reserves 0 and 1).
_MIN_EXTERNAL_OFFSET = 2
#: A ``-1`` operator input marks an absent optional tensor.
_OPTIONAL_INPUT = -1
#: vtable slot of ``OperatorCode.builtin_code`` (4th field: 4 + 2 * 3).  Read
#: raw because the ``tflite`` package's ``BuiltinCode()`` getter substitutes the
#: deprecated code whenever builtin_code < 127, which breaks the schema's rule
#: ``code = max(deprecated_builtin_code, builtin_code)``.
_BUILTIN_CODE_SLOT = 10

#: Options fields whose integer values are enums, by snake_case field name.
#: (Scalar fields only: StableHLO's ``padding`` is an int64 vector, not an enum.)
_ENUM_FIELDS: dict[str, type] = {
    "fused_activation_function": ActivationFunctionType,
    "padding": Padding,
    "output_type": TensorType,
    "in_data_type": TensorType,
    "out_data_type": TensorType,
    "out_type": TensorType,
    "idx_out_type": TensorType,
    "key_dtype": TensorType,
    "value_dtype": TensorType,
    "quantized_bias_type": TensorType,
    "weights_format": FullyConnectedOptionsWeightsFormat,
    "kernel_type": LSTMKernelType,
    "combiner": CombinerType,
    "type": LSHProjectionType,
    "mode": MirrorPadMode,
    "composite_attributes_format": CustomOptionsFormat,
    "comparison_direction": StablehloComparisonDirection,
    "compare_type": StablehloComparisonType,
    "algorithm": RngAlgorithm,
    "reduce_function": ReduceWindowFunction,
}
#: Options vector fields whose elements are enums.
_ENUM_VECTOR_FIELDS: dict[str, type] = {
    "precision_config": StablehloPrecisionConfig,
}

#: Suffixes of generated accessor methods that are not fields themselves.
_ACCESSOR_SUFFIXES = ("AsNumpy", "Length", "IsNone")

#: Exceptions the flatbuffers runtime raises on offsets that leave the file.
_FLATBUFFER_FAULTS = (struct.error, IndexError, TypeError, ValueError, OverflowError)


def load_tflite(path: str | Path) -> Graph:
    """Load a ``.tflite`` file into a validated :class:`~npuc.ir.Graph`.

    Raises :class:`ModelError` for a missing/unreadable file or anything that is
    not a well-formed TFLite model, :class:`LimitError` for tensors over
    :data:`MAX_TENSOR_ELEMENTS` elements, :class:`UnsupportedError` for tensor
    types or layouts the IR cannot hold, and :class:`GraphError` when the model
    parses but its graph is inconsistent.  Every message is one line starting
    with the path.
    """
    return parse_tflite(read_model(path), str(Path(path)))


def read_model(path: str | Path) -> bytes:
    """A model file's bytes, or :func:`load_tflite`'s ModelError for a missing, unreadable or directory path.

    The driver reads the file once with this and hands the bytes both to
    :func:`parse_tflite` and to the blob (whose header holds the model's hash).
    """
    path = Path(path)
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, not a TFLite model")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror or e})") from None


def parse_tflite(data: bytes, name: str = "<memory>") -> Graph:
    """Like :func:`load_tflite` for a model already in memory; ``name`` heads the error messages."""
    graph = _Loader(name, bytes(data)).load()
    infer_custom_shapes(graph, name)
    try:
        graph.validate()
        for index, sub in sorted(graph.subgraphs.items()):
            try:
                sub.validate()
            except GraphError as e:
                raise GraphError(f"subgraph {index}: {e}") from None
    except GraphError as e:
        raise GraphError(f"{name}: {e}") from None
    return graph


# -- reflection over the generated classes -------------------------------------------

def _snake(camel: str) -> str:
    """``DilationHFactor`` -> ``dilation_h_factor``: the schema's field name."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", camel).lower()


@lru_cache(maxsize=None)
def _enum_names(enum_cls: type) -> dict[int, str]:
    """Value -> name of a generated enum class."""
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


@lru_cache(maxsize=None)
def _table_fields(cls: type) -> tuple[tuple[str, str, str], ...]:
    """``(getter, snake_case name, kind)`` for every field of a generated table class.

    Kind is ``scalar`` (numbers, bools, strings, nested tables), ``numbers`` (a
    vector of scalars, read as one numpy view) or ``items`` (a vector of
    strings or tables).  The order is the schema's, as the generator emits it.
    """
    members = vars(cls)
    fields = []
    for attr, member in members.items():
        if not inspect.isfunction(member) or attr == "Init" or attr.endswith(_ACCESSOR_SUFFIXES):
            continue
        if f"{attr}Length" not in members:
            kind = "scalar"
        elif f"{attr}AsNumpy" in members:
            kind = "numbers"
        else:
            kind = "items"
        fields.append((attr, _snake(attr), kind))
    return tuple(fields)


@lru_cache(maxsize=None)
def _union_class(union: type, kind: int) -> type | None:
    """The generated table class for member ``kind`` of an options union, or None if unknown."""
    name = _enum_names(union).get(kind)
    if name is None or name == "NONE":
        return None
    return schema_class(name)


def _typed_union(table: Any, cls: type) -> Any:
    """View a union member (a bare flatbuffers Table, or None) as its generated class."""
    if table is None:
        return None
    typed = cls()
    typed.Init(table.Bytes, table.Pos)
    return typed


_OPERATOR_NAMES = _enum_names(BuiltinOperator)
_TENSOR_TYPE_NAMES = _enum_names(TensorType)


# -- the guard ------------------------------------------------------------------------

class _Fb:
    """A generated flatbuffers object whose every accessor call is guarded.

    Attribute access returns a wrapper of the generated getter that converts the
    flatbuffers runtime's exceptions into a :class:`ModelError` naming
    ``where`` (e.g. ``tensor 12 ("conv1")``) and the field, decodes strings as
    UTF-8, and wraps nested tables in a new ``_Fb``.  This is the single place
    where bad offsets are caught.
    """

    __slots__ = ("obj", "loader", "where")

    def __init__(self, obj: Any, loader: _Loader, where: str) -> None:
        self.obj = obj
        self.loader = loader
        self.where = where

    def at(self, where: str) -> _Fb:
        """The same object, reported under a new name in error messages."""
        return _Fb(self.obj, self.loader, where)

    def guarded(self, field: str, read: Callable[[Any], Any]) -> Any:
        """Run ``read(obj)`` under the guard, blaming ``field`` if it fails."""
        try:
            value = read(self.obj)
            if isinstance(value, bytes):  # only string fields come back as bytes
                value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise self.loader.fail(f"{self.where}: field '{field}' is not valid UTF-8 text") from None
        except _FLATBUFFER_FAULTS:
            raise self.loader.fail(f"{self.where}: field '{field}' is corrupt or truncated "
                                   f"(an offset leaves the {len(self.loader.data)}-byte file)") from None
        if hasattr(value, "_tab"):
            return _Fb(value, self.loader, self.where)
        return value

    def __getattr__(self, attr: str) -> Callable[..., Any]:
        getter = getattr(self.obj, attr)
        field = _accessor_field(attr)
        return lambda *args: self.guarded(field, lambda _obj: getter(*args))


@lru_cache(maxsize=None)
def _accessor_field(attr: str) -> str:
    """The schema field a generated accessor reads (``ShapeAsNumpy`` -> ``shape``), worked out once per name."""
    return _snake(attr.removesuffix("AsNumpy").removesuffix("Length").removesuffix("IsNone"))


def _empty_constants(tensors: list[Tensor], ops: list[Op], inputs: list[int | None]) -> None:
    """Give every tensor with no elements that nothing writes its (empty) value.

    A file cannot store such a tensor's data (an empty buffer means "no data"),
    yet a shape input of [] or zero indices is a constant all the same.
    """
    written = {t for op in ops for t in op.outputs} | {t for t in inputs if t is not None}
    for t in tensors:
        if t.data is None and t.num_elements == 0 and t.index not in written and not t.is_variable \
                and t.dtype in NUMPY_DTYPES:
            t.data = np.zeros(t.shape, dtype=NUMPY_DTYPES[t.dtype])


# -- the loader -----------------------------------------------------------------------

class _Loader:
    """Walks one model's bytes into a Graph; ``name`` heads every error message."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data

    def fail(self, message: str) -> ModelError:
        return ModelError(f"{self.name}: {message}")

    # -- counted reads --------------------------------------------------------------

    def _check_count(self, n: int, item_bytes: int, what: str) -> None:
        """Refuse a declared length that could not fit in the file, before anything uses it."""
        if n * item_bytes > len(self.data):
            raise self.fail(f"{what} declares {n} entries, more than the {len(self.data)}-byte file can hold")

    def table_count(self, fb: _Fb, field: str, what: str) -> int:
        """Length of a vector of tables, checked so that all its entries lie inside the file."""
        n = getattr(fb, f"{field}Length")()
        self._check_count(n, _UOFFSET_BYTES, what)
        if n:
            getattr(fb, field)(n - 1)  # reads the last entry's offset: fails if the vector leaves the file
        return n

    def numbers(self, fb: _Fb, field: str, what: str) -> np.ndarray | None:
        """A vector of scalars as a read-only numpy view of the file (None if absent).

        One guarded read of the three accessors (they all blame the same field),
        as this runs for every shape, quantization and buffer of the model.
        """
        def read(obj: Any) -> np.ndarray | None:
            if getattr(obj, f"{field}IsNone")():
                return None
            self._check_count(getattr(obj, f"{field}Length")(), 1, what)
            return getattr(obj, f"{field}AsNumpy")()

        return fb.guarded(_accessor_field(field), read)

    def external(self, offset: int, size: int, what: str) -> np.ndarray:
        """Bytes stored after the flatbuffer (models over 2 GB), as a view of the file."""
        if offset + size > len(self.data):
            raise self.fail(f"{what} lies at bytes {offset}..{offset + size}, "
                            f"beyond the end of the {len(self.data)}-byte file")
        return np.frombuffer(self.data, np.uint8, count=size, offset=offset)

    # -- model ----------------------------------------------------------------------

    def load(self) -> Graph:
        self._check_header()
        model = _Fb(Model.GetRootAs(self.data, 0), self, "model")
        version = model.Version()
        if version != _SCHEMA_VERSION:
            raise self.fail(f"TFLite schema version {version}, expected {_SCHEMA_VERSION}")
        n_subgraphs = self.table_count(model, "Subgraphs", "the subgraph list")
        if n_subgraphs == 0:
            raise self.fail("the model has no subgraphs")
        n_buffers = self.table_count(model, "Buffers", "the buffer list")
        n_codes = self.table_count(model, "OperatorCodes", "the operator code list")
        codes: dict[int, tuple[str, str | None, int]] = {}
        graph = self._subgraph(model, 0, n_buffers, n_codes, codes)
        graph.description, graph.num_subgraphs = model.Description() or "", n_subgraphs
        for op in graph.ops:
            if op.opcode == "CALL_ONCE":
                index = op.options.get("init_subgraph_index", 0)
                if not 0 < index < n_subgraphs:
                    raise self.fail(f"operator {op.index} (CALL_ONCE) names subgraph {index}, but the model has "
                                    f"{n_subgraphs}")
                if index not in graph.subgraphs:
                    graph.subgraphs[index] = self._subgraph(model, index, n_buffers, n_codes, codes)
        return graph

    def _subgraph(self, model: _Fb, index: int, n_buffers: int, n_codes: int,
                  codes: dict[int, tuple[str, str | None, int]]) -> Graph:
        sg = model.Subgraphs(index).at(f"subgraph {index}")
        n_tensors = self.table_count(sg, "Tensors", f"subgraph {index}'s tensor list")
        tensors = [self._tensor(model, sg, i, n_buffers) for i in range(n_tensors)]
        n_ops = self.table_count(sg, "Operators", f"subgraph {index}'s operator list")
        ops = [self._operator(model, sg, i, n_codes, n_tensors, codes) for i in range(n_ops)]
        inputs = self._tensor_refs(sg, "Inputs", f"subgraph {index}'s inputs", n_tensors, optional=False)
        outputs = self._tensor_refs(sg, "Outputs", f"subgraph {index}'s outputs", n_tensors, optional=False)
        _empty_constants(tensors, ops, inputs)
        return Graph(tensors=tensors, ops=ops, inputs=[int(t) for t in inputs], outputs=[int(t) for t in outputs],
                     name=sg.Name() or "")

    def _check_header(self) -> None:
        size = len(self.data)
        if size < _HEADER_BYTES:
            raise self.fail(f"is too small to be a TFLite model ({size} bytes)")
        ident = self.data[4:_HEADER_BYTES]
        if ident != _IDENTIFIER:
            raise self.fail(f"is not a TFLite model (file identifier {ident!r}, expected {_IDENTIFIER!r})")
        root = int.from_bytes(self.data[:4], "little")
        if root + _UOFFSET_BYTES > size:
            raise self.fail(f"root table offset {root} points outside the {size}-byte file")

    def _tensor_refs(self, fb: _Fb, field: str, what: str, n_tensors: int,
                     optional: bool) -> list[int | None]:
        """A list of tensor indices, each checked against the tensor count (-1 -> None if optional)."""
        refs = self.numbers(fb, field, what)
        if refs is None:
            return []
        low = _OPTIONAL_INPUT if optional else 0
        bad = refs[(refs < low) | (refs >= n_tensors)]
        if bad.size:
            raise self.fail(f"{what} refer to tensor {int(bad[0])}, but the subgraph has {n_tensors} tensors")
        return [None if t == _OPTIONAL_INPUT else t for t in refs.tolist()]

    # -- tensors --------------------------------------------------------------------

    def _tensor(self, model: _Fb, sg: _Fb, index: int, n_buffers: int) -> Tensor:
        t = sg.Tensors(index).at(f"tensor {index}")
        name = t.Name() or ""
        label = f'tensor {index} ("{name}")'
        t = t.at(label)
        dtype = self._dtype(t.Type(), label)
        shape = self._shape(t, label)
        elements = math.prod(shape)
        if elements > MAX_TENSOR_ELEMENTS:
            raise LimitError(f"{self.name}: {label} has {elements} elements (shape {shape}), "
                             f"more than the limit of {MAX_TENSOR_ELEMENTS}")
        if t.Sparsity() is not None:
            raise UnsupportedError(f"{self.name}: {label} is stored sparse, which npuc does not support")
        buffer = t.Buffer()
        if buffer >= n_buffers:
            raise self.fail(f"{label} refers to buffer {buffer}, but the model has {n_buffers} buffers")
        return Tensor(index=index, name=name, shape=shape, dtype=dtype,
                      quant=self._quant(t, label),
                      data=self._constant(model, buffer, label, dtype, shape, elements),
                      shape_signature=self._signature(t, label, shape),
                      is_variable=t.IsVariable())

    def _dtype(self, code: int, label: str) -> str:
        type_name = _TENSOR_TYPE_NAMES.get(code)
        if type_name is None:
            raise self.fail(f"{label} has unknown tensor type {code}")
        dtype = type_name.lower()
        if dtype not in DTYPE_SIZES:
            raise UnsupportedError(f"{self.name}: {label} has type {type_name}, which npuc does not support")
        return dtype

    def _shape(self, t: _Fb, label: str) -> tuple[int, ...]:
        dims = self.numbers(t, "Shape", f"{label}'s shape")
        shape = () if dims is None else tuple(dims.tolist())
        if any(d < 0 for d in shape):
            raise self.fail(f"{label} has a negative dimension in shape {shape}")
        return shape

    def _signature(self, t: _Fb, label: str, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        dims = self.numbers(t, "ShapeSignature", f"{label}'s shape signature")
        if dims is None:
            return None
        signature = tuple(dims.tolist())
        if len(signature) != len(shape) or any(d < -1 for d in signature):
            raise self.fail(f"{label} has shape signature {signature}, which does not fit shape {shape}")
        return signature

    def _quant(self, t: _Fb, label: str) -> Quant | None:
        """Affine quantization; a tensor without scales is unquantized (None)."""
        q = t.Quantization()
        if q is None:
            return None
        scale = self.numbers(q, "Scale", f"{label}'s quantization scales")
        if scale is None or scale.size == 0:
            return None
        zero_point = self.numbers(q, "ZeroPoint", f"{label}'s quantization zero points")
        n_zero = 0 if zero_point is None else zero_point.size
        if n_zero != scale.size:
            raise self.fail(f"{label} has {scale.size} quantization scales but {n_zero} zero points")
        axis = q.QuantizedDimension() if scale.size > 1 else None
        return Quant(scale=scale.astype(np.float32), zero_point=zero_point.astype(np.int64), axis=axis)

    def _constant(self, model: _Fb, buffer: int, label: str, dtype: str,
                  shape: tuple[int, ...], elements: int) -> np.ndarray | None:
        """The tensor's data copied out of its buffer, or None if the buffer is empty."""
        raw = self._buffer_bytes(model, buffer)
        if raw is None or raw.size == 0:
            return None
        if dtype == "string":
            return self._strings(raw, label, shape, elements)
        need = elements * DTYPE_SIZES[dtype]
        if raw.size != need:
            raise self.fail(f"{label} has shape {shape} of {dtype} ({need} bytes), "
                            f"but its buffer {buffer} holds {raw.size} bytes")
        if dtype == "bool":
            values = raw != 0
        else:
            numpy_dtype = NUMPY_DTYPES[dtype]
            values = raw.view(numpy_dtype.newbyteorder("<")).astype(numpy_dtype)  # astype copies
        return values.reshape(shape)

    def _buffer_bytes(self, model: _Fb, index: int) -> np.ndarray | None:
        buf = model.Buffers(index).at(f"buffer {index}")
        offset = buf.Offset()
        if offset >= _MIN_EXTERNAL_OFFSET:
            return self.external(offset, buf.Size(), f"buffer {index}")
        return self.numbers(buf, "Data", f"buffer {index}")

    def _strings(self, raw: np.ndarray, label: str, shape: tuple[int, ...], elements: int) -> np.ndarray:
        """Decode TFLite's string buffer (count, count + 1 offsets, bytes) into an object array of bytes."""
        count = int(raw[:4].view("<i4")[0]) if raw.size >= 4 else -1
        header = 4 * (count + 2)
        if count != elements or raw.size < header:
            raise self.fail(f"{label}: string buffer of {raw.size} bytes does not hold {elements} strings")
        offsets = raw[4:header].view("<i4").astype(np.int64)
        if offsets[0] != header or offsets[-1] != raw.size or np.any(np.diff(offsets) < 0):
            raise self.fail(f"{label}: string buffer has inconsistent string offsets")
        values = np.empty(count, dtype=object)
        for k in range(count):
            values[k] = raw[offsets[k]:offsets[k + 1]].tobytes()
        return values.reshape(shape)

    # -- operators ------------------------------------------------------------------

    def _operator(self, model: _Fb, sg: _Fb, index: int, n_codes: int, n_tensors: int,
                  codes: dict[int, tuple[str, str | None, int]]) -> Op:
        o = sg.Operators(index).at(f"operator {index}")
        code_index = o.OpcodeIndex()
        if code_index >= n_codes:
            raise self.fail(f"operator {index} uses operator code {code_index}, "
                            f"but the model has {n_codes} operator codes")
        if code_index not in codes:
            codes[code_index] = self._opcode(model, code_index)
        opcode, custom_code, version = codes[code_index]
        label = f"operator {index} ({opcode if custom_code is None else custom_code})"
        o = o.at(label)
        inputs = self._tensor_refs(o, "Inputs", f"{label}'s inputs", n_tensors, optional=True)
        outputs = self._tensor_refs(o, "Outputs", f"{label}'s outputs", n_tensors, optional=False)
        intermediates = self._tensor_refs(o, "Intermediates", f"{label}'s intermediates", n_tensors, optional=False)
        options = self._builtin_options(o, label)
        custom = self._custom_options(o, label)
        if custom is not None or opcode == "CUSTOM":
            options["custom_options"] = b"" if custom is None else custom
        return Op(index=index, opcode=opcode, inputs=inputs, outputs=[int(t) for t in outputs],
                  options=options, custom_code=custom_code, version=version,
                  intermediates=[int(t) for t in intermediates])

    def _opcode(self, model: _Fb, index: int) -> tuple[str, str | None, int]:
        """(opcode name, custom code, version) of one OperatorCode entry."""
        label = f"operator code {index}"
        c = model.OperatorCodes(index).at(label)
        builtin = c.guarded("builtin_code", lambda obj: obj._tab.GetSlot(
            _BUILTIN_CODE_SLOT, 0, flatbuffers.number_types.Int32Flags))
        code = max(c.DeprecatedBuiltinCode(), builtin)
        opcode = _OPERATOR_NAMES.get(code)
        if opcode is None:
            raise self.fail(f"{label} has unknown builtin operator code {code}")
        custom_code = None
        if opcode == "CUSTOM":
            custom_code = c.CustomCode()
            if not custom_code:
                raise self.fail(f"{label} is a CUSTOM operator without a custom code")
        return opcode, custom_code, c.Version()

    def _builtin_options(self, o: _Fb, label: str) -> dict[str, Any]:
        """Fields of the op's builtin_options (and builtin_options_2) tables."""
        options: dict[str, Any] = {}
        for union, field in ((BuiltinOptions, "BuiltinOptions"), (BuiltinOptions2, "BuiltinOptions2")):
            kind = getattr(o, f"{field}Type")()
            if kind == 0:  # NONE
                continue
            cls = _union_class(union, kind)
            if cls is None:
                raise self.fail(f"{label} has unknown {_snake(field)} type {kind}")
            table = o.guarded(_snake(field), lambda obj: _typed_union(getattr(obj, field)(), cls))
            if table is not None:
                options.update(self.fields(table.at(f"{label} {cls.__name__}")))
        return options

    def _custom_options(self, o: _Fb, label: str) -> bytes | None:
        size = o.LargeCustomOptionsSize()
        if size:
            offset = o.LargeCustomOptionsOffset()
            if offset >= _MIN_EXTERNAL_OFFSET:
                return self.external(offset, size, f"{label}'s custom options").tobytes()
        raw = self.numbers(o, "CustomOptions", f"{label}'s custom options")
        return None if raw is None else raw.tobytes()

    def fields(self, fb: _Fb) -> dict[str, Any]:
        """Every field of a generated table as plain Python values, keyed by schema name.

        Enums become their names, vectors lists, strings str, nested tables
        dicts.  Vectors, strings and tables absent from the file are left out
        (scalars absent from the file take the schema default).
        """
        out: dict[str, Any] = {}
        for attr, key, kind in _table_fields(type(fb.obj)):
            what = f"{fb.where}: field '{key}'"
            if kind == "scalar":
                value = getattr(fb, attr)()
                if value is None:
                    continue
                if isinstance(value, _Fb):
                    value = self.fields(value)
                elif key in _ENUM_FIELDS and type(value) is int:
                    value = self._enum(_ENUM_FIELDS[key], value, what)
            elif kind == "numbers":
                values = self.numbers(fb, attr, what)
                if values is None:
                    continue
                value = values.tolist()
                if key in _ENUM_VECTOR_FIELDS:
                    value = [self._enum(_ENUM_VECTOR_FIELDS[key], v, what) for v in value]
            else:
                if getattr(fb, f"{attr}IsNone")():
                    continue
                n = getattr(fb, f"{attr}Length")()
                self._check_count(n, _UOFFSET_BYTES, what)
                items = [getattr(fb, attr)(j) for j in range(n)]
                value = [self.fields(v) if isinstance(v, _Fb) else v for v in items]
            out[key] = value
        return out

    def _enum(self, enum_cls: type, value: int, what: str) -> str:
        name = _enum_names(enum_cls).get(value)
        if name is None:
            raise self.fail(f"{what} has unknown {enum_cls.__name__} value {value}")
        return name
