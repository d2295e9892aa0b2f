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
from typing import TYPE_CHECKING, Any

import numpy as np

from ..ir import Graph, Op, Quant, Tensor

if TYPE_CHECKING:  # the types of the lowering's own modules, which build these records
    from ..hw.target import Target
    from .conv_params import ConvGeometry
    from .pwl_fit import PwlTable
    from .requant import PostScale
    from .scale_groups import WeightedLayer

#: Tensor layouts in NPU memory.  NHWC is TFLite's (channels fastest); planar
#: stores each channel as a contiguous H x W plane, which NN jobs read and write.
#: Both hold the bytes the NPU computes on (see INT8_OFFSET).
NHWC = "nhwc"
PLANAR = "planar"
#: The version of a tensor that holds TFLite's own bytes (NHWC order, the model's element type):
#: what host kernels read and write and what the user exchanges.  For every type but int8 it is
#: the NHWC version itself.
TFLITE = "tflite"

#: The NN and TP cores compute on unsigned bytes (vipnano-nn.md 3.1): an int8 tensor that NPU
#: jobs touch is stored as the uint8 tensor with the same scale and zero point + INT8_OFFSET,
#: i.e. every byte XOR 0x80.  The conversion to and from TFLite's int8 happens once, where a
#: host kernel or the graph's edge meets the NPU (Program.operand).
INT8_OFFSET = -int(np.iinfo(np.int8).min)
#: The element type of every tensor an NPU job reads or writes.
NPU_DTYPE = "uint8"
#: Model element types the NPU stores (int8 shifted by INT8_OFFSET).
NPU_ELEMENT_TYPES = ("uint8", "int8")


def shifted_on_npu(tensor: Tensor) -> bool:
    """Whether the NPU's bytes of ``tensor`` differ from TFLite's (int8: stored + INT8_OFFSET)."""
    return tensor.dtype == "int8"


def npu_quant(tensor: Tensor) -> Quant | None:
    """``tensor``'s quantization as the NPU stores it (zero points + INT8_OFFSET for int8)."""
    q = tensor.quant
    if q is None or not shifted_on_npu(tensor):
        return q
    return Quant(q.scale, np.asarray(q.zero_point, dtype=np.int64) + INT8_OFFSET, q.axis)


def npu_bytes(values: np.ndarray) -> np.ndarray:
    """TFLite's int8 or uint8 values as the bytes the NPU stores."""
    if values.dtype == np.int8:
        return (values.view(np.uint8) ^ np.uint8(INT8_OFFSET)).astype(np.uint8)
    return np.asarray(values, dtype=np.uint8)


@dataclass(frozen=True)
class Ref:
    """A byte position inside a tensor's storage."""

    tensor: int
    offset: int = 0


@dataclass
class ConvOp:
    """One stride-1 convolution over planar 8-bit images: what one NN job computes.

    ``weights`` are stored bytes [kernels][z][y][x]; ``bias`` TFLite's int32
    biases per kernel (the input zero point is folded in when the job is
    scheduled) unless ``words`` gives the final bias words.  ``trailers`` are
    the byte offsets of each kernel's output plane from ``output``.  Images are
    whole planes (rows of in_x / out_x bytes, in_y / out_y rows); output sizes
    are the kept pixels (after first-pixel pooling).  ``depthwise`` (targets
    with native depthwise): kernel o ([kernels][1][y][x]) reads input plane o
    only.  How the job is tiled, cached and its coefficients coded is the
    scheduler's choice (:mod:`npuc.scheduler`).
    """

    name: str
    op: int
    input: Ref
    output: Ref
    in_x: int
    in_y: int
    weights: np.ndarray
    bias: np.ndarray
    trailers: np.ndarray
    coef_zero_point: int
    input_zero_point: int
    output_zero_point: int
    scale: PostScale              # the post multiplier and shift
    out_x: int
    out_y: int
    offset_x: int = 0
    offset_y: int = 0
    first_pixel: bool = False
    strided: bool = False
    relu: bool = False
    words: np.ndarray | None = None
    depthwise: bool = False
    note: str = ""


#: Weighted layers whose split into NN jobs the scheduler chooses (:class:`LayerOp`).
CONV, DEPTHWISE, FULLY_CONNECTED = "conv", "depthwise", "fully connected"


@dataclass
class LayerOp:
    """A whole weighted layer (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED) over planar operands.

    Lowering says what the layer computes: its geometry, weights with their
    per-channel requantization (``layer``: passes.scale_groups.WeightedLayer),
    zero points and activation.  The scheduler decides how: the NN jobs it
    becomes (weight-scale groups, depthwise channel groups, stride-2 method).
    """

    kind: str                     # CONV, DEPTHWISE or FULLY_CONNECTED
    name: str
    op: int
    src: int
    dst: int
    geo: ConvGeometry | None      # None for FULLY_CONNECTED
    layer: WeightedLayer
    in_zp: int
    out_zp: int
    relu: bool


@dataclass
class TPOp:
    """One TP operation: ``kind`` of tensor ``src`` into tensor ``dst`` with its parameters.

    Kinds: "transpose" (NHWC to planar), "detranspose", "reshuffle"
    (space-to-depth for stride 2: kernel_h, kernel_w, pad_top, pad_left),
    "pad" (pads), the PWL lookups "relu", "abs", "logistic" and fitted tables
    (table: a pwl_fit.PwlTable, kind: the operator's name).  The encoder
    (backend_vip/tp_jobs.py) splits it over the TP cores and fills the descriptors.
    """

    kind: str
    op: int
    src: int
    dst: int
    params: dict[str, Any] = field(default_factory=dict)
    table: PwlTable | None = None  # the fitted table of a lookup


@dataclass
class HostCall:
    """An operator run by a host kernel, with its compile-time parameters."""

    name: str
    op: int
    kernel: str
    inputs: list[int | None]
    outputs: list[int]
    params: dict[str, Any] = field(default_factory=dict)


Step = ConvOp | LayerOp | TPOp | HostCall


def same_bytes_in_both_layouts(shape: tuple[int, ...]) -> bool:
    """NHWC and planar storage coincide when there is one pixel or one channel (or the tensor is not 4-D)."""
    if len(shape) != 4:
        return True
    _, h, w, c = shape
    return h * w == 1 or c == 1


def step_reads(step: Step) -> list[int]:
    """Tensors a step reads."""
    if isinstance(step, ConvOp):
        return [step.input.tensor]
    if isinstance(step, (TPOp, LayerOp)):
        return [step.src]
    return [t for t in step.inputs if t is not None]


def step_writes(step: Step) -> list[int]:
    """Tensors a step writes."""
    if isinstance(step, ConvOp):
        return [step.output.tensor]
    if isinstance(step, (TPOp, LayerOp)):
        return [step.dst]
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
    * ``versions``: for every IR tensor, the tensor that holds its value in
      each layout it is needed in (NHWC, PLANAR, TFLITE; see passes/layouts.py).
    """

    graph: Graph
    target: Target | None = None
    steps: list[Step] = field(default_factory=list)
    layouts: dict[int, str] = field(default_factory=dict)
    adjacent: list[list[int]] = field(default_factory=list)
    aliases: dict[int, Ref] = field(default_factory=dict)
    units: dict[int, tuple[str, str]] = field(default_factory=dict)
    versions: dict[int, dict[str, int]] = field(default_factory=dict)

    def checkpoint(self) -> tuple:
        """The program's state, for :meth:`rollback` when a lowering gives up halfway."""
        return (len(self.steps), len(self.graph.tensors), dict(self.layouts), len(self.adjacent), dict(self.aliases),
                {t: dict(v) for t, v in self.versions.items()})

    def rollback(self, state: tuple) -> None:
        """Forget everything lowered since :meth:`checkpoint` returned ``state``."""
        steps, tensors, layouts, adjacent, aliases, versions = state
        del self.steps[steps:], self.graph.tensors[tensors:], self.adjacent[adjacent:]
        self.layouts, self.aliases, self.versions = dict(layouts), dict(aliases), versions

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

    def root(self, ref: Ref) -> Ref:
        """Follow aliases to the tensor that owns the bytes."""
        while ref.tensor in self.aliases:
            base = self.aliases[ref.tensor]
            ref = Ref(base.tensor, base.offset + ref.offset)
        return ref

    def op(self, index: int) -> Op:
        return self.ops_by_index()[index]

    def ops_by_index(self) -> dict[int, Op]:
        """The model's operators by index."""
        return {o.index: o for o in self.graph.ops}
