"""Resource variables: the state of streaming models, kept in the blob between runs of one session.

A stateful TFLite model (a streaming keyword spotter, a model exported with
``tf.Variable`` state) declares variables with VAR_HANDLE, reads them with
READ_VARIABLE, writes them with ASSIGN_VARIABLE, and initializes them in a
subgraph its CALL_ONCE operator runs on the first invoke.  TFLite keeps the
variables from one invoke to the next.

npuc turns that into plain dataflow at compile time:

* the initialization subgraph is evaluated now (it may only compute from
  constants); each variable read before it is written in a run becomes a
  *state tensor* (``Tensor.initial`` holds its value at session start);
* the first READ_VARIABLE of such a variable becomes a host copy out of the
  state tensor; later reads read the variable's current value (that copy, or
  whatever the last ASSIGN_VARIABLE stored in this run) directly, except a
  read that is a graph output, which stays a copy;
* ASSIGN_VARIABLE disappears, and one host ASSIGN_VARIABLE at the end of the
  run copies each variable's last value into its state tensor, after the
  copy that read the old value (``Op.after``).

So only those two copies touch a state tensor, never an NPU job.  TFLite's
older kind of state, the variable tensors an LSTM reads and updates in place,
becomes state tensors the same way (``keep_variable_tensors``).  The memory
plan keeps state tensors in a region of their own at the start of the arena,
with their initial bytes; a runtime session initializes the arena once, so the
state persists across its runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UnsupportedError
from ..ir import NUMPY_DTYPES, Graph, Op, Tensor
from ..host.graph_exec import variable_reset_value
from .fold_constants import fold_constants

#: The operators this pass removes or rewrites.
STATE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")


def _variable(op: Op) -> str:
    """The identity TFLite gives a VAR_HANDLE's variable: its container and shared name."""
    return f"{op.options.get('container', '')}/{op.options.get('shared_name', '')}"


def _fail(op: Op, message: str) -> UnsupportedError:
    return UnsupportedError(f"operator {op.name}: {message}")


def _initial_values(graph: Graph, call_once: Op) -> dict[str, np.ndarray]:
    """Evaluate a CALL_ONCE subgraph now: the value it assigns to each variable."""
    index = call_once.options.get("init_subgraph_index", 0)
    sub = graph.subgraphs[index]
    fold_constants(sub)
    handles = {op.outputs[0]: _variable(op) for op in sub.ops if op.opcode == "VAR_HANDLE"}
    values: dict[str, np.ndarray] = {}
    for op in sub.ops:
        if op.opcode == "VAR_HANDLE":
            continue
        value = sub.tensors[op.inputs[1]] if op.opcode == "ASSIGN_VARIABLE" and len(op.inputs) == 2 else None
        if value is None or op.inputs[0] not in handles or not value.is_constant:
            raise _fail(call_once, f"initialization subgraph {index} computes more than constants for its "
                                   f"variables ({op.name}); npuc evaluates it at compile time")
        values[handles[op.inputs[0]]] = value.data
    return values


@dataclass
class _Variables:
    """What the rewrite knows about each variable while it walks the operators in model order."""

    graph: Graph
    initial: dict[str, np.ndarray] = field(default_factory=dict)
    handles: dict[int, str] = field(default_factory=dict)      # resource tensor -> variable
    state: dict[str, int] = field(default_factory=dict)        # variable -> state tensor
    current: dict[str, int] = field(default_factory=dict)      # variable -> tensor with its value now
    readers: dict[str, list[int]] = field(default_factory=dict)  # variable -> ops reading its state tensor

    def state_tensor(self, op: Op, name: str, like: Tensor) -> int:
        """The state tensor of ``name``, created on the first read that comes before any write."""
        if name not in self.state:
            if name not in self.initial:
                raise _fail(op, f"reads variable {name!r} before anything assigns it")
            value = np.asarray(self.initial[name])
            if tuple(value.shape) != tuple(like.shape) or value.dtype != NUMPY_DTYPES.get(like.dtype):
                raise _fail(op, f"variable {name!r} is initialized with {value.dtype}{list(value.shape)} but read as "
                                f"{like.dtype}{list(like.shape)}")
            index = len(self.graph.tensors)
            self.graph.tensors.append(Tensor(index=index, name=f"state {name}", shape=like.shape, dtype=like.dtype,
                                             quant=like.quant, is_variable=True, initial=value))
            self.state[name] = index
        return self.state[name]


def keep_variable_tensors(graph: Graph) -> None:
    """TFLite's variable tensors (an LSTM's or SVDF's state) become state tensors too.

    TFLite resets them when the interpreter allocates its tensors (an int8
    tensor to its zero point, any other to zeros) and keeps what the operator
    writes into them from one invoke to the next; so does a runtime session.
    """
    for t in graph.tensors:
        if t.is_variable and not t.is_constant and t.initial is None:
            t.initial = variable_reset_value(t)


def resolve_variables(graph: Graph) -> None:
    """Rewrite the graph's variable operators into state tensors and plain dataflow (see the module)."""
    keep_variable_tensors(graph)
    if not any(op.opcode in STATE_OPS for op in graph.ops):
        return
    v = _Variables(graph)
    for op in graph.ops:
        if op.opcode == "CALL_ONCE":
            v.initial.update(_initial_values(graph, op))
    rename: dict[int, int] = {}
    kept: list[Op] = []
    for op in graph.ops:
        op.inputs = [rename.get(t, t) if t is not None else None for t in op.inputs]
        if op.opcode == "CALL_ONCE":
            continue
        if op.opcode == "VAR_HANDLE":
            v.handles[op.outputs[0]] = _variable(op)
            continue
        if op.opcode in ("READ_VARIABLE", "ASSIGN_VARIABLE") and op.inputs and op.inputs[0] not in v.handles:
            raise _fail(op, "its resource does not come from a VAR_HANDLE")
        if op.opcode == "ASSIGN_VARIABLE":
            v.current[v.handles[op.inputs[0]]] = op.inputs[1]
            continue
        if op.opcode == "READ_VARIABLE":
            name = v.handles[op.inputs[0]]
            if name not in v.current:  # the run's first access: copy the value out of the state tensor
                op.inputs = [v.state_tensor(op, name, graph.tensors[op.outputs[0]])]
                v.current[name] = op.outputs[0]
                v.readers.setdefault(name, []).append(op.index)
            elif op.outputs[0] in graph.outputs:
                op.inputs = [v.current[name]]
            else:
                rename[op.outputs[0]] = v.current[name]
                continue
        if any(t in v.handles for t in op.inputs if t is not None):
            raise _fail(op, "takes a resource variable; npuc supports them only through READ_VARIABLE and "
                            "ASSIGN_VARIABLE")
        kept.append(op)
    graph.outputs = [rename.get(t, t) for t in graph.outputs]
    next_index = max((op.index for op in graph.ops), default=-1) + 1
    for name, s in sorted(v.state.items()):
        if v.current[name] not in (t for op in kept if op.index in v.readers[name] for t in op.outputs):
            kept.append(Op(index=next_index, opcode="ASSIGN_VARIABLE", inputs=[v.current[name]], outputs=[s],
                           after=list(v.readers[name])))
            next_index += 1
    graph.ops = kept
    graph.validate()
