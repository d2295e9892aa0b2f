"""The declaration of a host operator: its parameters (names, types, ranges), its fold and its kernel.

A host operator is a TFLite operator run on the CPU.  It exists three times:
the fold that turns the IR operator into integer parameters at compile time
(what TFLite's Prepare computes), the numpy kernel of the Python runtime, and
the C kernel of the board runtime.  One :class:`HostOp` ties them together, and
its parameter list is the contract between them:

* the fold's result is checked against it (:meth:`HostOp.check`) before it
  reaches a blob, so a fold cannot emit a parameter nobody declared;
* the Python runtime checks every host step of a blob against it when the
  blob is loaded, so a kernel only ever sees declared parameters of the
  declared types and ranges;
* the C runtime's parameter structs and their loaders are generated from it
  (:mod:`npuc.cruntime`), so a C kernel that reads an undeclared parameter
  does not compile, and the values are range-checked before any kernel runs.

Parameter kinds map onto the ``.vipbin`` parameter types: ``Int`` is an int32
(``i32``), ``Float`` a double (``f64``), ``Ints`` an int32 array (``i32[]``)
and ``Floats`` a float32 array (``f32[]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    from ..ir import Graph, Op

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

#: A folded parameter set, as kernels and the ``.vipbin`` see it.
Params = dict[str, Any]
#: ``run(inputs, outputs, params)``: reads ``inputs`` (None for an absent optional input), writes into the
#: preallocated ``outputs`` in place.
KernelFn = Callable[[list[np.ndarray | None], list[np.ndarray], Params], None]
#: ``fold(graph, op)``: the operator's parameters, or an UnsupportedError naming it.
FoldFn = Callable[["Graph", "Op"], Params]


@dataclass(frozen=True)
class Param:
    """One parameter: its name, its ``.vipbin`` type and, for integers, the inclusive range of its values."""

    name: str
    kind: str                     # "i32", "f64", "i32[]" or "f32[]"
    lo: int = INT32_MIN
    hi: int = INT32_MAX
    doc: str = ""

    @property
    def is_array(self) -> bool:
        return self.kind.endswith("[]")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not a valid value of this parameter (None when it is)."""
        if self.kind == "i32":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                return f"is {type(value).__name__}, not an integer"
            return None if self.lo <= int(value) <= self.hi else f"= {int(value)} is outside [{self.lo}, {self.hi}]"
        if self.kind == "f64":
            if not isinstance(value, (float, np.floating)):
                return f"is {type(value).__name__}, not a float"
            return None if np.isfinite(value) else f"= {value} is not finite"
        if not isinstance(value, np.ndarray) or value.ndim != 1:
            return "is not a 1-D array"
        if self.kind == "i32[]":
            if value.dtype.kind not in "iu":
                return f"has elements of type {value.dtype}, not integers"
            if value.size and (int(value.min()) < self.lo or int(value.max()) > self.hi):
                return f"has values outside [{self.lo}, {self.hi}]"
            return None
        if value.dtype.kind != "f":
            return f"has elements of type {value.dtype}, not floats"
        return None if np.all(np.isfinite(value)) else "has values that are not finite"


def Int(name: str, lo: int = INT32_MIN, hi: int = INT32_MAX, doc: str = "") -> Param:
    """An int32 parameter in [lo, hi]."""
    return Param(name, "i32", lo, hi, doc)


def Flag(name: str, doc: str = "") -> Param:
    """A boolean parameter, stored as an int32 0 or 1."""
    return Param(name, "i32", 0, 1, doc)


def Float(name: str, doc: str = "") -> Param:
    """A finite float parameter, stored as a double (kernels round it to float32 where TFLite does)."""
    return Param(name, "f64", doc=doc)


def Ints(name: str, lo: int = INT32_MIN, hi: int = INT32_MAX, doc: str = "") -> Param:
    """An int32 array whose elements lie in [lo, hi]; its length is the kernel's to check."""
    return Param(name, "i32[]", lo, hi, doc)


def Floats(name: str, doc: str = "") -> Param:
    """A float32 array of finite values; its length is the kernel's to check."""
    return Param(name, "f32[]", doc=doc)


#: The clamp bounds every quantized kernel with a fused activation takes (checked against the output type by
#: the kernels themselves).
ACTIVATION = (Int("act_min", doc="lowest output value (fused activation)"),
              Int("act_max", doc="highest output value (fused activation)"))

_C_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*\Z")


@dataclass(frozen=True)
class Types:
    """Which variant of an operator applies: the element type of one of its tensors is among ``types``.

    With ``quantized``, the tensor must also carry a quantization: TFLite
    runs an int16 ADD with a scale through its quantized kernel, and one
    without as plain integer arithmetic.
    """

    types: tuple[str, ...]
    tensor: str = "output"        # "input" (input 0) or "output" (output 0)
    quantized: bool = False

    def accepts(self, graph: Graph, op: Op) -> bool:
        index = (op.inputs if self.tensor == "input" else op.outputs or [None])[0]
        if index is None or graph.tensors[index].dtype not in self.types:
            return False
        q = graph.tensors[index].quant
        return not self.quantized or (q is not None and q.scale.size > 0)

    def describe(self) -> str:
        return f"{'quantized ' if self.quantized else ''}{self.tensor} {'/'.join(self.types)}"


@dataclass(frozen=True)
class HostOp:
    """A host kernel: the name a blob's HOST step carries, the operator it runs, its parameters, fold and kernel.

    An operator whose kernels need different parameters for different
    element types (8-bit arithmetic rescales, float arithmetic only clamps)
    has one HostOp per variant, each with its ``types``; the first variant
    that accepts an operator runs it.  ``stem`` names the C functions
    (``prepare_<stem>``, ``run_<stem>``) and the C parameter struct; kernels
    sharing C code (RESHAPE and SQUEEZE) share a stem and must declare the
    same parameters.
    """

    name: str
    params: tuple[Param, ...]
    fold: FoldFn
    run: KernelFn
    opcode: str = ""              # the TFLite opcode (or custom code) it runs; default: ``name``
    types: Types | None = None    # the variant's element types; None: any
    stem: str = ""
    doc: str = ""

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"host operator {self.name}: a parameter is declared twice")
        object.__setattr__(self, "opcode", self.opcode or self.name)
        stem = self.stem or self.name.lower()
        if not _C_IDENTIFIER.match(stem) or not all(_C_IDENTIFIER.match(n.lower()) for n in names):
            raise ValueError(f"host operator {self.name}: stem and parameter names must be C identifiers")
        object.__setattr__(self, "stem", stem)
        if not self.doc:
            object.__setattr__(self, "doc", (self.run.__doc__ or "").strip().splitlines()[0])

    def problem(self, params: Params) -> str | None:
        """The first way ``params`` departs from the declaration (None when it matches)."""
        return self._names_problem(params) or self._values_problem(params)

    def _names_problem(self, params: Params) -> str | None:
        declared = {p.name for p in self.params}
        for name in sorted(set(params) - declared):
            return f"has an undeclared parameter {name}"
        for name in sorted(declared - set(params)):
            return f"lacks parameter {name}"
        return None

    def _values_problem(self, params: Params) -> str | None:
        for p in self.params:
            why = p.problem(params[p.name])
            if why is not None:
                return f"parameter {p.name} {why}"
        return None

    def folded(self, graph: Graph, op: Op) -> Params:
        """``fold(graph, op)``, checked against the declaration.

        A parameter the declaration lacks (or one it has that the fold left
        out) is a bug in npuc; a value outside the declared range is the
        model's, and refused like any other unsupported operator.
        """
        from ..errors import UnsupportedError

        params = self.fold(graph, op)
        why = self._names_problem(params)
        if why is not None:
            raise AssertionError(f"host kernel {self.name}: the fold of {op.name} {why}")
        why = self._values_problem(params)
        if why is not None:
            raise UnsupportedError(f"operator {op.name}: {why} for the host kernel {self.name}")
        return params
