"""npuc's tensor IR: a small typed dataflow graph.

The frontend fills it from a TFLite flatbuffer; the passes annotate and rewrite
it; the backend reads it.  It stays close to TFLite's model (tensors with
quantization, operators with typed options) because TFLite is the reference the
results are compared against, and it knows nothing about the NPU.
"""

from __future__ import annotations

from dataclasses import replace, dataclass, field
from typing import Any, Iterator

import numpy as np

from .errors import GraphError

#: Element sizes of the dtypes the IR knows, by name.
DTYPE_SIZES = {
    "bool": 1, "uint8": 1, "int8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
    "int64": 8, "uint64": 8, "float16": 2, "float32": 4, "float64": 8,
    "string": 1, "complex64": 8, "complex128": 16, "resource": 0, "variant": 0,
}

#: numpy dtypes for the dtypes that carry numbers.
NUMPY_DTYPES = {
    name: np.dtype(name) for name in
    ("bool", "uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
     "float16", "float32", "float64", "complex64", "complex128")
}


@dataclass
class Quant:
    """Affine quantization: real = scale * (q - zero_point).

    ``scale`` and ``zero_point`` have one entry per tensor, or one per slice along
    ``axis`` for per-channel quantization.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    @property
    def single_scale(self) -> float:
        """The scale of a per-tensor quantization (first scale otherwise)."""
        return float(self.scale[0])

    @property
    def single_zero_point(self) -> int:
        return int(self.zero_point[0])


@dataclass
class Tensor:
    """A value in the graph: an activation, a graph input, or a constant."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: Quant | None = None
    data: np.ndarray | None = None
    shape_signature: tuple[int, ...] | None = None
    is_variable: bool = False
    #: For the state of a stateful model (a resource variable, ``is_variable`` too): the value it holds when a
    #: runtime session starts; it then keeps what each run leaves in it.
    initial: np.ndarray | None = None

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def num_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.num_elements * DTYPE_SIZES.get(self.dtype, 0)

    def describe(self) -> str:
        shape = "x".join(str(d) for d in self.shape) or "scalar"
        q = ""
        if self.quant is not None and self.quant.scale.size:
            if self.quant.per_channel:
                q = f" q=per-axis({self.quant.scale.size} on axis {self.quant.axis})"
            else:
                q = f" q=({self.quant.single_scale:.6g}, {self.quant.single_zero_point})"
        return f"t{self.index} {self.dtype}[{shape}]{q}{' const' if self.is_constant else ''} {self.name!r}"


@dataclass
class Op:
    """An operator: a TFLite builtin (or custom) code with typed options.

    ``inputs`` may contain ``None`` where TFLite marks an optional input as absent.
    """

    index: int
    opcode: str
    inputs: list[int | None]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)
    custom_code: str | None = None
    version: int = 1
    #: Tensors TFLite lists as the op's ``intermediates``: they carry quantization
    #: the kernel needs (the integer LSTM's gate and hidden scales) but no data.
    intermediates: list[int] = field(default_factory=list)
    #: Operators (by index) that must run before this one although it reads none of their outputs: the
    #: readers of a state tensor this operator overwrites.
    after: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"#{self.index} {self.opcode if self.opcode != 'CUSTOM' else f'CUSTOM({self.custom_code})'}"


@dataclass
class Graph:
    """A dataflow graph of tensors and operators with named inputs and outputs."""

    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    name: str = ""
    description: str = ""
    #: Subgraphs in the source model; subgraph 0 is this graph, the others are
    #: bodies of control-flow ops (WHILE, IF, CALL_ONCE).
    num_subgraphs: int = 1
    #: The subgraphs this graph's CALL_ONCE operators run, by subgraph index.
    subgraphs: dict[int, Graph] = field(default_factory=dict)

    # -- structure ---------------------------------------------------------------

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def copy(self) -> "Graph":
        """A graph whose tensor list and tensor records are its own (data arrays and operators shared).

        Lowering adds tensors and renames some; working on a copy leaves the
        frontend's graph as it was, so that lowering can run again on it.
        """
        return replace(self, tensors=[replace(t) for t in self.tensors])

    def producers(self) -> dict[int, Op]:
        """Map from tensor index to the op that writes it."""
        out: dict[int, Op] = {}
        for op in self.ops:
            for t in op.outputs:
                out[t] = op
        return out

    def consumers(self) -> dict[int, list[Op]]:
        """Map from tensor index to the ops that read it, in op order."""
        out: dict[int, list[Op]] = {}
        for op in self.ops:
            for t in op.inputs:
                if t is not None:
                    out.setdefault(t, []).append(op)
        return out

    def topological_order(self) -> list[Op]:
        """The ops in an order where every op follows the producers of its inputs.

        A variable (state) tensor holds its value from the start, so reading it
        does not wait for the operator that overwrites it at the end of a run;
        ``Op.after`` orders that operator after the readers, and adds any
        other ordering no tensor expresses.  Ties keep the model's
        own order, so the result is deterministic.  A cycle is a
        :class:`GraphError` naming an op on it.
        """
        producers = self.producers()
        by_index = {op.index: op for op in self.ops}
        deps: dict[int, set[int]] = {}
        for op in self.ops:
            deps[op.index] = {producers[t].index for t in op.inputs if t is not None and t in producers
                              and producers[t] is not op and not self.tensors[t].is_variable}
            deps[op.index] |= {i for i in op.after if i in by_index}
        done: set[int] = set()
        order: list[Op] = []
        pending = [op.index for op in self.ops]
        while pending:
            progressed = False
            rest = []
            for i in pending:
                if deps[i] <= done:
                    order.append(by_index[i])
                    done.add(i)
                    progressed = True
                else:
                    rest.append(i)
            if not progressed:
                raise GraphError(f"operator {by_index[rest[0]].name} is on a cycle of the graph")
            pending = rest
        return order

    def iter_inputs(self, op: Op) -> Iterator[Tensor]:
        for t in op.inputs:
            if t is not None:
                yield self.tensors[t]

    # -- checking ----------------------------------------------------------------

    def validate(self) -> None:
        """Check that the graph is complete and its shapes and dtypes agree.

        Raises :class:`GraphError` naming the first fault: a tensor index out of
        range, a tensor that is read but never produced (and is neither a graph
        input nor a constant), a tensor written twice, a constant whose data does
        not match its shape or dtype, an output nobody produces, a cycle, or an
        operator whose operand shapes or dtypes contradict each other.
        """
        n = len(self.tensors)
        for i, t in enumerate(self.tensors):
            if t.index != i:
                raise GraphError(f"tensor {i} ({t.name!r}) carries index {t.index}")
            if any(d < 0 for d in t.shape):
                raise GraphError(f"tensor {t.describe()} has a negative dimension")
            if t.data is not None:
                if t.dtype in NUMPY_DTYPES and t.data.dtype != NUMPY_DTYPES[t.dtype]:
                    raise GraphError(f"tensor {t.describe()}: constant data is {t.data.dtype}, expected {t.dtype}")
                if tuple(t.data.shape) != tuple(t.shape):
                    raise GraphError(f"tensor {t.describe()}: constant data has shape {tuple(t.data.shape)}")
            if t.quant is not None and t.quant.scale.size:
                if t.quant.zero_point.size not in (1, t.quant.scale.size):
                    raise GraphError(f"tensor {t.describe()}: {t.quant.scale.size} scales but "
                                     f"{t.quant.zero_point.size} zero points")
                if t.quant.per_channel:
                    ax = t.quant.axis
                    if ax is None or not 0 <= ax < len(t.shape) or t.shape[ax] != t.quant.scale.size:
                        raise GraphError(f"tensor {t.describe()}: per-axis quantization with "
                                         f"{t.quant.scale.size} scales does not match axis {ax}")
        for lst, what in ((self.inputs, "graph input"), (self.outputs, "graph output")):
            for t in lst:
                if not 0 <= t < n:
                    raise GraphError(f"{what} refers to tensor {t}, but the graph has {n} tensors")
        written: dict[int, Op] = {}
        for op in self.ops:
            for t in list(op.inputs) + list(op.outputs):
                if t is not None and not 0 <= t < n:
                    raise GraphError(f"operator {op.name} refers to tensor {t}, but the graph has {n} tensors")
            for t in op.outputs:
                if t in written:
                    raise GraphError(f"tensor {self.tensors[t].describe()} is written by both "
                                     f"{written[t].name} and {op.name}")
                if self.tensors[t].is_constant:
                    raise GraphError(f"operator {op.name} writes constant tensor {self.tensors[t].describe()}")
                written[t] = op
        available = set(self.inputs) | {t.index for t in self.tensors if t.is_constant or t.is_variable}
        for op in self.ops:
            for t in op.inputs:
                if t is not None and t not in available and t not in written:
                    raise GraphError(f"operator {op.name} reads tensor {self.tensors[t].describe()}, "
                                     f"which no operator produces and which is not a graph input")
        for t in self.outputs:
            if t not in written and t not in available:
                raise GraphError(f"graph output {self.tensors[t].describe()} is never produced")
        self.topological_order()
        for op in self.ops:
            _check_op(self, op)

    # -- display -----------------------------------------------------------------

    def dump(self) -> str:
        """A readable listing: inputs, outputs, then one line per op in topological order."""
        lines = [f"graph {self.name!r}: {len(self.ops)} ops, {len(self.tensors)} tensors"]
        for t in self.inputs:
            lines.append(f"  input  {self.tensors[t].describe()}")
        for t in self.outputs:
            lines.append(f"  output {self.tensors[t].describe()}")
        for op in self.topological_order():
            ins = ", ".join("-" if t is None else f"t{t}" for t in op.inputs)
            outs = ", ".join(f"t{t}" for t in op.outputs)
            opts = ", ".join(f"{k}={_short(v)}" for k, v in op.options.items())
            lines.append(f"  {op.name:<28} ({ins}) -> ({outs}){'  ' + opts if opts else ''}")
            for t in op.outputs:
                lines.append(f"      {self.tensors[t].describe()}")
        return "\n".join(lines)


def _short(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"array{list(v.shape)}"
    if isinstance(v, (list, tuple)) and len(v) > 8:
        return f"[{len(v)} items]"
    return str(v)


# -- per-operator shape and dtype rules ---------------------------------------------

def _shape(g: Graph, t: int | None) -> tuple[int, ...] | None:
    return None if t is None else g.tensors[t].shape


def _fail(op: Op, msg: str) -> None:
    raise GraphError(f"operator {op.name}: {msg}")


def _need(op: Op, n_in: int, n_out: int = 1) -> None:
    if len(op.inputs) < n_in:
        _fail(op, f"expects at least {n_in} inputs, has {len(op.inputs)}")
    if None in op.inputs[:n_in]:
        _fail(op, f"input {op.inputs.index(None)} is absent, but the first {n_in} inputs are required")
    if len(op.outputs) < n_out:
        _fail(op, f"expects {n_out} outputs, has {len(op.outputs)}")


def _out_size(in_size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size - eff + stride) // stride


def _check_conv(g: Graph, op: Op, depthwise: bool) -> None:
    _need(op, 2)
    x, w, y = _shape(g, op.inputs[0]), _shape(g, op.inputs[1]), _shape(g, op.outputs[0])
    if len(x) != 4 or len(w) != 4 or len(y) != 4:
        _fail(op, f"input, filter and output must be 4-D, got {x}, {w}, {y}")
    o = op.options
    sh, sw = o.get("stride_h", 1), o.get("stride_w", 1)
    dh, dw = o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)
    if min(sh, sw, dh, dw) < 1:
        _fail(op, f"strides {sh}x{sw} and dilations {dh}x{dw} must be positive")
    pad = o.get("padding", "SAME")
    if depthwise:
        mult = o.get("depth_multiplier", 1) or 1
        if w[0] != 1 or w[3] != y[3]:
            _fail(op, f"depthwise filter {w} does not give {y[3]} output channels")
        if x[3] * mult != y[3] and x[3] != y[3]:
            _fail(op, f"depthwise input has {x[3]} channels, output {y[3]} with multiplier {mult}")
        kh, kw = w[1], w[2]
    else:
        if w[3] == 0 or x[3] % w[3] != 0:
            _fail(op, f"filter depth {w[3]} does not divide input channels {x[3]}")
        if w[0] != y[3]:
            _fail(op, f"filter has {w[0]} kernels but the output has {y[3]} channels")
        kh, kw = w[1], w[2]
    exp_h = _out_size(x[1], kh, sh, dh, pad)
    exp_w = _out_size(x[2], kw, sw, dw, pad)
    if (y[0], y[1], y[2]) != (x[0], exp_h, exp_w):
        _fail(op, f"output shape {y} does not follow from input {x}, filter {kh}x{kw}, "
                  f"stride {sh}x{sw}, padding {pad} (expected {x[0]}x{exp_h}x{exp_w})")
    if len(op.inputs) > 2 and op.inputs[2] is not None:
        b = _shape(g, op.inputs[2])
        if b != (y[3],):
            _fail(op, f"bias shape {b} does not match {y[3]} output channels")


def _check_pool(g: Graph, op: Op) -> None:
    _need(op, 1)
    x, y = _shape(g, op.inputs[0]), _shape(g, op.outputs[0])
    if len(x) != 4 or len(y) != 4 or x[3] != y[3] or x[0] != y[0]:
        _fail(op, f"input {x} and output {y} must be 4-D with equal batch and channels")
    o = op.options
    fh, fw = o.get("filter_height", 1), o.get("filter_width", 1)
    sh, sw = o.get("stride_h", 1), o.get("stride_w", 1)
    if min(fh, fw, sh, sw) < 1:
        _fail(op, f"filter {fh}x{fw} and strides {sh}x{sw} must be positive")
    pad = o.get("padding", "VALID")
    exp = (_out_size(x[1], fh, sh, 1, pad), _out_size(x[2], fw, sw, 1, pad))
    if (y[1], y[2]) != exp:
        _fail(op, f"output {y} does not follow from input {x} with filter {fh}x{fw} (expected {exp})")


def _check_same_shape(g: Graph, op: Op) -> None:
    _need(op, 1)
    x, y = _shape(g, op.inputs[0]), _shape(g, op.outputs[0])
    if x != y:
        _fail(op, f"input shape {x} differs from output shape {y}")


def _check_elementwise(g: Graph, op: Op) -> None:
    _need(op, 2)
    a, b, y = _shape(g, op.inputs[0]), _shape(g, op.inputs[1]), _shape(g, op.outputs[0])
    try:
        bshape = np.broadcast_shapes(a, b)
    except ValueError:
        _fail(op, f"input shapes {a} and {b} do not broadcast")
    if tuple(bshape) != tuple(y):
        _fail(op, f"output shape {y} is not the broadcast of {a} and {b}")


def _check_reshape(g: Graph, op: Op) -> None:
    _need(op, 1)
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if x.num_elements != y.num_elements:
        _fail(op, f"reshape from {x.shape} to {y.shape} changes the element count")


def _check_fc(g: Graph, op: Op) -> None:
    _need(op, 2)
    x, w, y = g.tensors[op.inputs[0]], _shape(g, op.inputs[1]), _shape(g, op.outputs[0])
    if len(w) != 2 or w[1] == 0 or x.num_elements % w[1]:
        _fail(op, f"weights {w} do not fit input {x.shape}")
    if not y or y[-1] != w[0]:
        _fail(op, f"output {y} does not have {w[0]} units")


def _check_concat(g: Graph, op: Op) -> None:
    _need(op, 1)
    shapes = [g.tensors[t].shape for t in op.inputs if t is not None]
    y = _shape(g, op.outputs[0])
    axis = op.options.get("axis", 0)
    if not shapes or any(len(s) != len(y) for s in shapes) or not -len(y) <= axis < len(y):
        _fail(op, f"inputs {shapes}, output {y} and axis {axis} do not agree")
    axis %= len(y)
    for s in shapes:
        if any(s[i] != y[i] for i in range(len(y)) if i != axis):
            _fail(op, f"input {s} does not match output {y} outside axis {axis}")
    if sum(s[axis] for s in shapes) != y[axis]:
        _fail(op, f"inputs along axis {axis} do not add up to output {y}")


def _check_same_dtype_io(g: Graph, op: Op) -> None:
    ins = [g.tensors[t] for t in op.inputs if t is not None and not g.tensors[t].is_constant]
    outs = [g.tensors[t] for t in op.outputs]
    if ins and outs and ins[0].dtype != outs[0].dtype:
        _fail(op, f"input dtype {ins[0].dtype} differs from output dtype {outs[0].dtype}")


_RULES = {
    "CONV_2D": lambda g, op: _check_conv(g, op, False),
    "DEPTHWISE_CONV_2D": lambda g, op: _check_conv(g, op, True),
    "AVERAGE_POOL_2D": _check_pool,
    "MAX_POOL_2D": _check_pool,
    "SOFTMAX": _check_same_shape,
    "LOGISTIC": _check_same_shape,
    "RELU": _check_same_shape,
    "RELU6": _check_same_shape,
    "QUANTIZE": _check_same_shape,
    "DEQUANTIZE": _check_same_shape,
    "ADD": _check_elementwise,
    "SUB": _check_elementwise,
    "MUL": _check_elementwise,
    "RESHAPE": _check_reshape,
    "SQUEEZE": _check_reshape,
    "FULLY_CONNECTED": _check_fc,
    "CONCATENATION": _check_concat,
}

#: Ops whose (non-constant) input and output share a dtype.
_SAME_DTYPE = {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD", "SUB",
               "RESHAPE", "SQUEEZE", "CONCATENATION", "RELU", "RELU6"}


def _check_op(g: Graph, op: Op) -> None:
    rule = _RULES.get(op.opcode)
    if rule is not None:
        rule(g, op)
    if op.opcode in _SAME_DTYPE:
        _check_same_dtype_io(g, op)
