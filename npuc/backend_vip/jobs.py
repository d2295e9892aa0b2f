"""The lowered program: NPU jobs and host calls over tensors, before memory is placed.

Lowering turns each IR operator into steps: NN jobs (one descriptor and one
coefficient buffer each), TP jobs (one descriptor per TP core used) and host
calls.  Steps name their data by :class:`Ref` (an IR tensor plus a byte offset
inside that tensor's storage), never by address: memory planning decides where
each tensor lives and the emitter turns every Ref into a relocation.  Lowering
may add tensors the model does not have (a planar copy of the input, a
space-to-depth image); they are appended to the graph like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ir import Graph, Op, Quant, Tensor

#: Tensor layouts in NPU memory.  NHWC is TFLite's (channels fastest); planar
#: stores each channel as a contiguous H x W plane, which NN jobs read and write.
NHWC = "nhwc"
PLANAR = "planar"


@dataclass(frozen=True)
class Ref:
    """A byte position inside a tensor's storage."""

    tensor: int
    offset: int = 0


@dataclass
class NNJob:
    """One NN-core job.

    ``desc`` holds every descriptor field except the three addresses
    (``kernel_address``, ``in_image_address``, ``out_image_address``), which
    the emitter fills from ``input``/``output`` and the coefficient buffer.
    ``weights`` is [slots][kernel_z][kernel_y][kernel_x] uint8 in the order the
    coefficient encoder takes, ``biases`` the 32-bit bias words already
    corrected for the input zero point, ``trailers`` each kernel's output-plane
    byte offset relative to ``output`` (or the ADD weight word).
    """

    name: str
    op: int
    desc: dict[str, int]
    weights: np.ndarray
    biases: np.ndarray
    trailers: np.ndarray
    input: Ref
    output: Ref
    coefficients: Any = None      # the planned coefficient buffer (.total_bytes, .pack()): its size sets the SRAM fields
    note: str = ""                # why this lowering (shown by npuc inspect)


@dataclass
class TPCore:
    """The part of a TP job one TP core runs."""

    desc: dict[str, int]          # every field except the input/output/LUT addresses
    input: Ref
    output: Ref


@dataclass
class TPJob:
    """One TP job, split over one or more TP cores (kicked in order, chained)."""

    name: str
    op: int
    kind: str                     # "transpose", "detranspose", "reshuffle", "pad", "relu", "abs", "logistic"
    cores: list[TPCore]
    lut: bytes | None = None      # PWL table (1024 little-endian uint32) for LUT operations
    note: str = ""


@dataclass
class HostCall:
    """An operator run by a host kernel, with its compile-time parameters."""

    name: str
    op: int
    kernel: str
    inputs: list[int | None]
    outputs: list[int]
    params: dict[str, Any] = field(default_factory=dict)


Step = NNJob | TPJob | HostCall


def same_bytes_in_both_layouts(shape: tuple[int, ...]) -> bool:
    """NHWC and planar storage coincide when there is one pixel or one channel (or the tensor is not 4-D)."""
    if len(shape) != 4:
        return True
    _, h, w, c = shape
    return h * w == 1 or c == 1


def step_reads(step: Step) -> list[int]:
    """Tensors a step reads."""
    if isinstance(step, NNJob):
        return [step.input.tensor]
    if isinstance(step, TPJob):
        return sorted({c.input.tensor for c in step.cores})
    return [t for t in step.inputs if t is not None]


def step_writes(step: Step) -> list[int]:
    """Tensors a step writes."""
    if isinstance(step, NNJob):
        return [step.output.tensor]
    if isinstance(step, TPJob):
        return sorted({c.output.tensor for c in step.cores})
    return list(step.outputs)


@dataclass
class Program:
    """The lowered model: steps in execution order plus how tensors are stored.

    * ``layouts``: storage layout of every non-constant tensor that steps touch.
    * ``adjacent``: groups of tensors that must be stored back to back, in
      order (the two inputs of an NN ADD job are read as one two-plane image).
    * ``aliases``: tensors that are a view of another tensor's bytes (RESHAPE,
      SQUEEZE, channel slices of a concatenation).
    * ``units``: NN / TP / HOST per IR op, with the reason, for reports.
    * ``versions``: for an IR tensor needed in both layouts, the tensor that
      holds each layout (the other one is made by a TP transpose or
      detranspose, or is an alias when both layouts have the same bytes).
    """

    graph: Graph
    target: Any = None
    steps: list[Step] = field(default_factory=list)
    layouts: dict[int, str] = field(default_factory=dict)
    adjacent: list[list[int]] = field(default_factory=list)
    aliases: dict[int, Ref] = field(default_factory=dict)
    units: dict[int, tuple[str, str]] = field(default_factory=dict)
    versions: dict[int, dict[str, int]] = field(default_factory=dict)

    def new_tensor(self, name: str, shape: tuple[int, ...], dtype: str, quant: Quant | None,
                   layout: str) -> int:
        """Append a tensor that lowering needs but the model does not have."""
        index = len(self.graph.tensors)
        self.graph.tensors.append(Tensor(index=index, name=name, shape=tuple(shape), dtype=dtype, quant=quant))
        self.layouts[index] = layout
        return index

    def set_layout(self, tensor: int, layout: str) -> None:
        """Record a tensor's storage layout; a tensor has one layout for its whole life."""
        old = self.layouts.setdefault(tensor, layout)
        if old != layout:
            raise ValueError(f"tensor {self.graph.tensors[tensor].describe()} needed as {layout} but stored {old}")

    def produce(self, tensor: int, layout: str) -> int:
        """Declare that the step being lowered writes ``tensor`` in ``layout``; returns the tensor to write."""
        self.set_layout(tensor, layout)
        self.versions.setdefault(tensor, {})[layout] = tensor
        return tensor

    def operand(self, tensor: int, layout: str, op: int) -> int:
        """The tensor that holds ``tensor``'s value in ``layout``, converting on first need.

        Graph inputs and host outputs exist in NHWC, NPU outputs in planar.  A
        conversion is inserted once per tensor and layout: an alias when both
        layouts are the same bytes (one pixel, or one channel), otherwise a TP
        transpose (NHWC to planar) or detranspose (planar to NHWC).  Constants
        are returned as they are.
        """
        t = self.graph.tensors[tensor]
        if t.is_constant:
            return tensor
        have = self.versions.setdefault(tensor, {})
        if not have:
            have[self.layouts.setdefault(tensor, NHWC)] = tensor  # a graph input
        if layout in have:
            return have[layout]
        src_layout, src = next(iter(have.items()))
        dst = self.new_tensor(f"{t.name} ({layout})", t.shape, t.dtype, t.quant, layout)
        have[layout] = dst
        if same_bytes_in_both_layouts(t.shape):
            self.aliases[dst] = Ref(src)
        else:
            from . import tp_jobs

            build = tp_jobs.transpose if layout == PLANAR else tp_jobs.detranspose
            self.steps.append(build(self, op, src, dst, self.target))
        return dst

    def root(self, ref: Ref) -> Ref:
        """Follow aliases to the tensor that owns the bytes."""
        while ref.tensor in self.aliases:
            base = self.aliases[ref.tensor]
            ref = Ref(base.tensor, base.offset + ref.offset)
        return ref

    def op(self, index: int) -> Op:
        return next(o for o in self.graph.ops if o.index == index)
