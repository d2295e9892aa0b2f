"""Host operators: TFLite operators run on the CPU, bit-exact with TFLite's reference kernels.

Every operator the NPU cannot run is run here, by the Python runtime (numpy
kernels in :mod:`npuc.host.kernels`) or by the board's C runtime (kernels in
``npuc/cruntime_templates/host/``).  Each kernel is declared once, as a
:class:`~npuc.host.decl.HostOp` in :mod:`npuc.host.ops`: its name in the blob,
the TFLite operator it runs, its parameters (names, types, ranges), the fold
that computes them from the IR at compile time, and its numpy kernel.  The C
side's parameter structs and loaders are generated from the same declaration.

An operator may have several kernels, one per family of element types whose
parameters differ (8-bit ADD rescales, float32 ADD only clamps): the first
whose ``types`` accept the operator runs it.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..errors import UnsupportedError
from ..ir import Graph, Op
from . import ops
from .decl import HostOp, Params

#: Operators that run other subgraphs a data-dependent number of times.
CONTROL_FLOW = ("WHILE", "IF", "CALL")

#: Every host kernel, by the name a blob's HOST step carries.
HOST_OPS: dict[str, HostOp] = {}
#: The kernels of each TFLite opcode (custom operators: their custom code), in the order they are tried.
BY_OPCODE: dict[str, list[HostOp]] = {}

# Every module of npuc.host.ops declares its kernels in OPS; they are gathered in module-name order.
for _info in sorted(pkgutil.iter_modules(ops.__path__), key=lambda m: m.name):
    for _k in getattr(importlib.import_module(f"{ops.__name__}.{_info.name}"), "OPS", ()):
        if _k.name in HOST_OPS:
            raise ValueError(f"host kernel {_k.name} is declared twice")
        HOST_OPS[_k.name] = _k
        BY_OPCODE.setdefault(_k.opcode, []).append(_k)
_first_of_stem: dict[str, HostOp] = {}  # the first kernel of each C stem, which the others must match
for _k in HOST_OPS.values():
    _first = _first_of_stem.setdefault(_k.stem, _k)
    if _first.params != _k.params:
        raise ValueError(f"host kernels {_first.name} and {_k.name} share C code but not parameters")


def opcode_of(op: Op) -> str:
    """The key of an operator in BY_OPCODE: its builtin opcode, or a custom operator's custom code."""
    return op.custom_code or op.opcode if op.opcode == "CUSTOM" else op.opcode


def host_op_for(graph: Graph, op: Op) -> HostOp:
    """The host kernel that runs ``op``, or an UnsupportedError naming the operator and what the kernels take."""
    kernels = BY_OPCODE.get(opcode_of(op))
    if op.opcode in CONTROL_FLOW:
        raise UnsupportedError(f"operator {op.name}: control flow ({op.opcode} of other subgraphs) is not supported; "
                               f"npuc compiles graphs that run straight through")
    if not kernels and op.opcode == "CUSTOM":
        raise UnsupportedError(f"operator {op.name}: custom operator {op.custom_code!r} has no kernel in npuc; it is "
                               f"not part of TFLite either, which runs it only with a kernel the application "
                               f"registers")
    if not kernels:
        raise UnsupportedError(f"operator {op.name}: no host kernel")
    for k in kernels:
        if k.types is None or k.types.accepts(graph, op):
            return k
    takes = "; ".join(k.types.describe() for k in kernels if k.types is not None)
    raise UnsupportedError(f"operator {op.name}: no host kernel for these types (the kernels take {takes})")


def fold(graph: Graph, op: Op) -> tuple[HostOp, Params]:
    """The host kernel of ``op`` and its parameters, folded from the IR and checked against its declaration."""
    kernel = host_op_for(graph, op)
    return kernel, kernel.folded(graph, op)


__all__ = ["BY_OPCODE", "HOST_OPS", "HostOp", "fold", "host_op_for", "opcode_of"]
