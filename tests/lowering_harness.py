"""Per-layer verification: run the jobs one operator was lowered to on the simulator, from TFLite's tensors.

For an operator of a lowered :class:`Program`, :func:`run_op` lays out every
tensor its steps touch in a fresh simulator :class:`Memory` (each stored
tensor in a buffer of its own, back-to-back groups in one buffer, aliases at
their offsets), packs the descriptors with those addresses, encodes the
coefficients, writes the values the steps read but do not produce (TFLite's
tensors, converted to the layout each is stored in), runs the NN and TP jobs
in order with ``npuc.sim`` and returns the operator's outputs in NHWC.
:func:`verify_op` compares them with TFLite's.  A job that writes outside the
tensors it was given fails in the simulator, which names it.

Nothing here knows how an operator is lowered: this is the check ``npuc
verify`` is meant to run on any program.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from npuc.hw.descriptors import NN_DESCRIPTOR, TP_DESCRIPTOR
from npuc.passes.npu_program import INT8_OFFSET, PLANAR, Program, Ref, npu_bytes
from npuc.backend_vip.jobs import NNJob, TPJob, EncodedJob, job_reads, job_writes
from npuc.driver import compile_graph
from npuc.hw.target import Target
from npuc.ir import Graph
from npuc.sim import nn, tp
from npuc.sim.memory import Memory

#: Where the harness places buffers: tensors from TENSORS on, descriptors/coefficients from CODE on,
#: each buffer on its own page with a free page after it (so an overrun hits no other buffer).
TENSORS = 0x1000_0000
CODE = 0x4000_0000
PAGE = 4096



def encoded_program(graph: Graph, target: Target, exact: bool = False) -> Program:
    """The program the driver compiles ``graph`` to, its steps the encoded jobs (NNJob, TPJob, HostCall) in order.

    The tests read descriptors and coefficients of each operator's jobs there;
    its graph is the lowered copy (with the tensors lowering and scheduling added).
    """
    c = compile_graph(graph, target, exact=exact)
    c.program.steps = c.jobs
    return c.program


def _pages(n: int) -> int:
    return -(-max(n, 1) // PAGE) * PAGE


def to_layout(value: np.ndarray, layout: str) -> np.ndarray:
    """TFLite's NHWC value as the bytes of a tensor stored in ``layout`` (planar = [C][H][W] per image)."""
    if layout == PLANAR and value.ndim == 4:
        return np.ascontiguousarray(value.transpose(0, 3, 1, 2)).reshape(-1)
    return np.ascontiguousarray(value).reshape(-1)


def from_layout(data: np.ndarray, shape: tuple[int, ...], layout: str) -> np.ndarray:
    """The inverse of :func:`to_layout`."""
    if layout == PLANAR and len(shape) == 4:
        b, h, w, c = shape
        return data.reshape(b, c, h, w).transpose(0, 2, 3, 1)
    return data.reshape(shape)


def op_steps(program: Program, op: int) -> list[EncodedJob]:
    """The NPU steps lowering added for operator ``op`` (its layout conversions included)."""
    return [s for s in program.steps if isinstance(s, (NNJob, TPJob)) and s.op == op]


def nn_jobs_by_op(program: Program) -> defaultdict[int, list[NNJob]]:
    """The NN jobs of every operator, in program order (an empty list for the others)."""
    out: defaultdict[int, list[NNJob]] = defaultdict(list)
    for s in program.steps:
        if isinstance(s, NNJob):
            out[s.op].append(s)
    return out


def model_tensor(program: Program) -> dict[int, int]:
    """For every tensor that holds a model tensor's value in some layout, that model tensor."""
    out = {}
    for original, versions in program.versions.items():
        for t in versions.values():
            out.setdefault(t, original)
    return out


def _refs(step: EncodedJob) -> list[Ref]:
    if isinstance(step, NNJob):
        return [step.input, step.output]
    return [r for core in step.cores for r in (core.input, core.output)]


@dataclass
class Layout:
    """Addresses of the tensors (roots) a set of steps touches."""

    program: Program
    memory: Memory = field(default_factory=Memory)
    base: dict[int, int] = field(default_factory=dict)  # root tensor -> address
    next_tensor: int = TENSORS
    next_code: int = CODE

    def place(self, steps: list[EncodedJob]) -> None:
        roots = {self.program.root(r).tensor for s in steps for r in _refs(s)}
        for root in sorted(roots):
            if root in self.base:
                continue
            group = next((g for g in self.program.adjacent if root in g), [root])
            sizes = [self.program.graph.tensors[t].nbytes for t in group]
            data = np.zeros(sum(sizes), dtype=np.uint8)
            self.memory.map(self.next_tensor, data, "+".join(self.program.graph.tensors[t].name for t in group))
            offset = self.next_tensor
            for t, size in zip(group, sizes):
                self.base[t] = offset
                offset += size
            self.next_tensor += _pages(data.size) + PAGE

    def address(self, ref: Ref) -> int:
        root = self.program.root(ref)
        return self.base[root.tensor] + root.offset

    def code(self, data: bytes, name: str) -> int:
        address = self.next_code
        self.memory.map(address, np.frombuffer(data, dtype=np.uint8).copy(), name)
        self.next_code += _pages(len(data)) + PAGE
        return address


def encode(job: NNJob, target: Target) -> bytes:
    return job.coefficients.pack()


def write_tensor(lay: Layout, t: int, value: np.ndarray) -> None:
    """Store TFLite's ``value`` as tensor ``t`` holds it (layout, and int8 as the NPU's uint8 if ``t`` is uint8)."""
    layout = lay.program.layouts.get(t, PLANAR)
    if lay.program.graph.tensors[t].dtype == "uint8":
        value = npu_bytes(value)
    data = to_layout(value, layout)
    lay.memory.write(lay.address(Ref(t)), data.view(np.uint8), "harness", f"input {lay.program.graph.tensors[t].name}")


def read_tensor(lay: Layout, t: int, dtype: str | None = None) -> np.ndarray:
    """Tensor ``t``'s value in NHWC, as ``dtype`` (TFLite's int8 from the NPU's uint8 bytes) if given."""
    tensor = lay.program.graph.tensors[t]
    layout = lay.program.layouts.get(t, PLANAR)
    data = lay.memory.view(lay.address(Ref(t)), tensor.nbytes, "harness", f"output {tensor.name}").copy()
    if dtype == "int8" and tensor.dtype == "uint8":
        data = (data ^ np.uint8(INT8_OFFSET)).view(np.int8)
    return from_layout(data, tensor.shape, layout)


def written_version(program: Program, steps: list[EncodedJob], t: int) -> int:
    """The version of model tensor ``t`` that ``steps`` write (or view)."""
    roots = {program.root(Ref(w)).tensor for s in steps for w in job_writes(s)}
    versions = program.versions.get(t, {t: t}).values()
    return next(v for v in versions if program.root(Ref(v)).tensor in roots)


def run_steps(lay: Layout, steps: list[EncodedJob], target: Target, nn_overrides: dict[str, int] | None = None,
              coefficients: dict[int, bytes] | None = None) -> None:
    """Pack and run ``steps`` in order; ``nn_overrides`` replaces NN descriptor fields (for experiments).

    ``coefficients`` caches encoded buffers by id(job) across calls.
    """
    cache = coefficients if coefficients is not None else {}
    for step in steps:
        if isinstance(step, NNJob):
            coef = cache.get(id(step))
            if coef is None:
                coef = cache[id(step)] = encode(step, target)
            coef_at = lay.code(coef, f"{step.name} coefficients")
            desc = {**step.desc, **(nn_overrides or {}), "kernel_address": coef_at // target.coef_align,
                    "in_image_address": lay.address(step.input), "out_image_address": lay.address(step.output)}
            nn.run_nn_job(lay.memory, lay.code(NN_DESCRIPTOR.pack(desc), step.name), target, step.name)
        else:
            lut = lay.code(step.lut, f"{step.name} LUT") if step.lut is not None else 0
            for i, core in enumerate(step.cores):
                desc = {**core.desc, "in_image_base_address": lay.address(core.input),
                        "out_image_base_address": lay.address(core.output)}
                if step.lut is not None:
                    desc["alu_load_pwl_lut_address"] = lut
                tp.run_tp_job(lay.memory, lay.code(TP_DESCRIPTOR.pack(desc), f"{step.name} core {i}"), target,
                              f"{step.name} core {i}")


def _read_roots(program: Program, step: EncodedJob) -> list[int]:
    """The stored tensors a step reads; an NN job whose planes run past its input tensor reads on into
    the tensors stored after it in the input's back-to-back group (an ADD's second input)."""
    roots = [program.root(Ref(t)).tensor for t in job_reads(step)]
    if not isinstance(step, NNJob):
        return roots
    d = step.desc
    ref = program.root(step.input)
    span = ref.offset + d["kernel_z_size"] * d["in_image_x_stride"] * d["in_image_y_stride"]
    group = next((g for g in program.adjacent if ref.tensor in g), [ref.tensor])
    for t in group[group.index(ref.tensor):]:
        if span <= 0:
            break
        if t not in roots:
            roots.append(t)
        span -= program.graph.tensors[t].nbytes
    return roots


def _write_viewed_inputs(program: Program, op: int, lay: Layout, values: dict[int, np.ndarray],
                         written: set[int]) -> None:
    """Inputs that are views inside the placed tensors (a concatenation's inputs) hold their values already."""
    g = program.graph
    for t in program.op(op).inputs:
        if t is None or g.tensors[t].is_constant:
            continue
        for v in program.versions.get(t, {}).values():
            if v not in written and v in program.aliases and program.root(Ref(v)).tensor in lay.base:
                write_tensor(lay, v, values[t])


def run_op(program: Program, op: int, values: dict[int, np.ndarray], target: Target,
           nn_overrides: dict[str, int] | None = None,
           coefficients: dict[int, bytes] | None = None) -> dict[int, np.ndarray]:
    """Run operator ``op``'s steps from ``values`` (model tensor -> TFLite NHWC array); its outputs in NHWC.

    Every tensor a step reads before any step of the operator writes it gets
    the value of the model tensor it holds.
    """
    steps = op_steps(program, op)
    lay = Layout(program)
    lay.place(steps)
    holds = model_tensor(program)
    written: set[int] = set()
    for s in steps:
        for t in _read_roots(program, s):
            if t not in written:
                write_tensor(lay, t, values[holds.get(t, t)])
                written.add(t)
        written.update(job_writes(s))
    _write_viewed_inputs(program, op, lay, values, written)
    run_steps(lay, steps, target, nn_overrides, coefficients)
    g = program.graph
    return {t: read_tensor(lay, written_version(program, steps, t), g.tensors[t].dtype) for t in program.op(op).outputs}


@dataclass(frozen=True)
class LayerResult:
    """How one lowered operator compares with TFLite."""

    op: int
    opcode: str
    lowering: str
    exact: float            # percent of output values equal to TFLite's
    max_diff: int           # largest difference in quantization steps
    coefficient_bytes: int  # encoded buffers of the operator's NN jobs
    jobs: int
    seconds: float

    def row(self) -> str:
        return (f"{self.op:4d} {self.opcode:18s} {self.exact:8.3f}% {self.max_diff:4d} {self.coefficient_bytes:9d} "
                f"{self.jobs:4d} {self.seconds * 1e3:8.1f} ms  {self.lowering}")


def verify_op(program: Program, op: int, values: dict[int, np.ndarray], target: Target,
              nn_overrides: dict[str, int] | None = None,
              coefficients: dict[int, bytes] | None = None) -> LayerResult:
    """Run operator ``op`` in isolation and compare every output with TFLite's ``values``."""
    cache = coefficients if coefficients is not None else {}
    start = time.perf_counter()
    got = run_op(program, op, values, target, nn_overrides, cache)
    seconds = time.perf_counter() - start
    diffs = [np.abs(got[t].astype(np.int64) - values[t].astype(np.int64)).reshape(-1) for t in got]
    diff = np.concatenate(diffs)
    steps = op_steps(program, op)
    nn_jobs = [s for s in steps if isinstance(s, NNJob)]
    notes = sorted({s.note or s.name for s in steps})
    return LayerResult(op=op, opcode=program.op(op).opcode, lowering="; ".join(notes),
                       exact=100.0 * float((diff == 0).mean()), max_diff=int(diff.max()),
                       coefficient_bytes=sum(len(cache.get(id(j)) or encode(j, target)) for j in nn_jobs),
                       jobs=len(steps), seconds=seconds)
