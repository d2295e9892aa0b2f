"""Emission: the scheduled program's encoded jobs into the .vipbin content.

Buffers: the activation arena, one buffer holding every job descriptor, one
holding every coefficient stream, one for PWL tables, one for host constants.
Every address the hardware will read (descriptor address fields, the
descriptor addresses written by the command stream) becomes a relocation, so
the runtime may place the buffers anywhere.  Each of the scheduler's submits
becomes one NPU step (one command stream), split further only where the stream
would pass the kernel's 64 KiB limit; host calls become host steps.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


from .. import __version__, vipbin
from ..errors import UnsupportedError
from ..hw.descriptors import NN_DESCRIPTOR, TP_DESCRIPTOR
from ..hw.kernel_abi import BO_READ, BO_WRITE, STREAM_MAX_BYTES
from ..hw.target import Target
from ..ir import Tensor
from ..passes.npu_program import NHWC, HostCall, Program, Ref
from ..scheduler.memory import TENSOR_ALIGN, MemoryPlan, constant_pool, tensor_offset
from ..scheduler.schedule import Schedule
from .cmdstream import FINISH_WORDS, StreamBuilder, job_words
from .jobs import NNJob, TPJob

ARENA, DESCRIPTORS, COEFFICIENTS, LUTS, CONSTANTS = range(5)
#: Descriptors are placed on 64-byte boundaries: the low 6 bits of an INST_ADDR
#: write carry flags, not address.
DESCRIPTOR_ALIGN = 64
#: TP jobs whose non-last cores get GL_UNK03950 = 8 (Mesa's rule, matched to the blob).
TP_SPLIT_FLAG_KINDS = {"pad", "relu", "abs"}


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


@dataclass
class _Pool:
    """A growing buffer of aligned records."""

    align: int
    data: bytearray = field(default_factory=bytearray)

    def add(self, blob: bytes) -> int:
        offset = _align(len(self.data), self.align)
        self.data += bytes(offset - len(self.data)) + blob
        return offset


@dataclass
class EmitStats:
    """Per-job figures the compile summary and ``npuc inspect`` report."""

    coefficient_bytes: int = 0
    nn_jobs: int = 0
    tp_jobs: int = 0
    per_job: list[dict] = field(default_factory=list)


class Emitter:
    """Collects buffers, relocations, tensors and steps for one program."""

    def __init__(self, program: Program, plan: MemoryPlan, target: Target) -> None:
        self.program, self.plan, self.target = program, plan, target
        self.descriptors = _Pool(DESCRIPTOR_ALIGN)
        self.coefficients = _Pool(target.coef_align)
        self.luts = _Pool(TENSOR_ALIGN)
        self.relocations: list[vipbin.Relocation] = []
        self.tensors: list[vipbin.TensorInfo] = []
        self.tensor_ids: dict[int, int] = {}
        self.steps: list[vipbin.NpuStep | vipbin.HostStep] = []
        self.stats = EmitStats()
        self._stream: StreamBuilder | None = None
        self._stream_names: list[str] = []

    # -- addresses ----------------------------------------------------------------------

    def _reloc_buffer(self, site_buffer: int, site_offset: int, target_buffer: int, target_offset: int,
                      shift: int = 0, width: int = 32) -> None:
        self.relocations.append(vipbin.Relocation("buffer", site_buffer, site_offset, target_buffer, target_offset,
                                                  shift, 0, width))

    def _arena(self, ref: Ref) -> int:
        return tensor_offset(self.program, self.plan, ref)

    # -- jobs ---------------------------------------------------------------------------

    def nn_job(self, job: NNJob) -> int:
        """Encode one NN job; returns its descriptor's offset in the descriptor buffer."""
        coef = job.coefficients.pack()
        coef_off = self.coefficients.add(coef)
        desc_off = self.descriptors.add(job.packed)
        word = lambda name: desc_off + NN_DESCRIPTOR[name].byte_offset  # noqa: E731
        f = NN_DESCRIPTOR["kernel_address"]
        self._reloc_buffer(DESCRIPTORS, word("kernel_address"), COEFFICIENTS, coef_off,
                           shift=(self.target.coef_align - 1).bit_length(), width=f.width)
        self._reloc_buffer(DESCRIPTORS, word("in_image_address"), ARENA, self._arena(job.input))
        self._reloc_buffer(DESCRIPTORS, word("out_image_address"), ARENA, self._arena(job.output))
        self.stats.coefficient_bytes += len(coef)
        self.stats.nn_jobs += 1
        self.stats.per_job.append({"name": job.name, "op": job.op, "kind": "NN", "coefficient_bytes": len(coef),
                                   "note": job.note, "desc": dict(job.desc)})
        return desc_off

    def tp_job(self, job: TPJob) -> list[int]:
        """Encode one TP job's per-core descriptors; returns their offsets."""
        lut_off = self.luts.add(job.lut) if job.lut is not None else None
        offsets = []
        for core in job.cores:
            desc_off = self.descriptors.add(TP_DESCRIPTOR.pack(core.desc))
            word = lambda name: desc_off + TP_DESCRIPTOR[name].byte_offset  # noqa: E731,B023
            self._reloc_buffer(DESCRIPTORS, word("in_image_base_address"), ARENA, self._arena(core.input))
            self._reloc_buffer(DESCRIPTORS, word("out_image_base_address"), ARENA, self._arena(core.output))
            if lut_off is not None:
                self._reloc_buffer(DESCRIPTORS, word("alu_load_pwl_lut_address"), LUTS, lut_off)
            offsets.append(desc_off)
        self.stats.tp_jobs += 1
        self.stats.per_job.append({"name": job.name, "op": job.op, "kind": "TP", "tp_kind": job.kind,
                                   "cores": len(job.cores), "note": job.note})
        return offsets

    # -- submits ------------------------------------------------------------------------

    def _open_stream(self) -> StreamBuilder:
        if self._stream is None:
            self._stream = StreamBuilder()
            self._stream.init()
        return self._stream

    def _close_stream(self) -> None:
        s = self._stream
        if s is None:
            return
        s.finish()
        step = len(self.steps)
        for site in s.sites:
            self.relocations.append(vipbin.Relocation("stream", step, 4 * site.word, DESCRIPTORS,
                                                      site.descriptor + site.flags))
        bos = [(ARENA, BO_READ | BO_WRITE), (DESCRIPTORS, BO_READ)]
        if self.coefficients.data:
            bos.append((COEFFICIENTS, BO_READ))
        if self.luts.data:
            bos.append((LUTS, BO_READ))
        name = self._stream_names[0] if len(self._stream_names) == 1 else \
            f"{self._stream_names[0]} .. {self._stream_names[-1]} ({len(self._stream_names)} jobs)"
        self.steps.append(vipbin.NpuStep(name, s.words, bos))
        self._stream, self._stream_names = None, []

    def npu_step(self, job: NNJob | TPJob) -> None:
        """Add a job to the current submit (a new stream where this one would pass the kernel's limit)."""
        if isinstance(job, NNJob):
            offsets, words = [self.nn_job(job)], job_words("NN")
        else:
            offsets, words = self.tp_job(job), job_words("TP", len(job.cores))
        s = self._open_stream()
        if s.nbytes + 4 * (words + FINISH_WORDS) > STREAM_MAX_BYTES:
            self._close_stream()
            s = self._open_stream()
        if isinstance(job, NNJob):
            s.nn_job(offsets[0])
        else:
            s.tp_job(offsets, job.kind in TP_SPLIT_FLAG_KINDS, self.target.tp_cores)
        self._stream_names.append(job.name)

    def host_step(self, call: HostCall) -> None:
        self._close_stream()
        self.steps.append(vipbin.HostStep(call.name, call.kernel, [None if t is None else self.tensor(t)
                                                                   for t in call.inputs],
                                          [self.tensor(t) for t in call.outputs], call.params))

    # -- tensors ------------------------------------------------------------------------

    def tensor(self, t: int) -> int:
        """The blob tensor record for IR tensor ``t`` (created on first use)."""
        if t not in self.tensor_ids:
            tensor = self.program.graph.tensors[t]
            if tensor.is_constant:
                info = _tensor_info(tensor, CONSTANTS, self.plan.constant_offsets[t], NHWC)
            else:
                info = _tensor_info(tensor, ARENA, self._arena(Ref(t)), self.program.layouts.get(t, NHWC))
            self.tensor_ids[t] = len(self.tensors)
            self.tensors.append(info)
        return self.tensor_ids[t]


def _tensor_info(t: Tensor, buffer: int, offset: int, layout: str) -> vipbin.TensorInfo:
    if t.dtype not in vipbin.DTYPES.values():
        raise UnsupportedError(f"tensor {t.describe()}: element type {t.dtype} cannot be stored in a .vipbin")
    scale, zp, per_channel = 0.0, 0, False
    if t.quant is not None and t.quant.scale.size:
        per_channel = t.quant.per_channel
        scale, zp = t.quant.single_scale, t.quant.single_zero_point
    return vipbin.TensorInfo(name=t.name, buffer=buffer, offset=offset, dtype=t.dtype, shape=tuple(t.shape),
                             layout=layout, scale=scale, zero_point=zp, per_channel=per_channel)


def emit_blob(schedule: Schedule, jobs: list[NNJob | TPJob | HostCall], target: Target, inputs: list[int],
              outputs: list[int], model_bytes: bytes, metadata: dict[str, str]) -> tuple[vipbin.Blob, EmitStats]:
    """The blob of a scheduled program, whose jobs are encoded (``jobs``, one per scheduled job)."""
    program, plan = schedule.program, schedule.memory
    e = Emitter(program, plan, target)
    in_ids = [e.tensor(t) for t in inputs]
    submit_of = {i: n for n, submit in enumerate(schedule.submits) for i in submit}
    current = None
    for i, job in enumerate(jobs):
        if submit_of.get(i) != current:
            e._close_stream()
            current = submit_of.get(i)
        if isinstance(job, HostCall):
            e.host_step(job)
        else:
            e.npu_step(job)
    e._close_stream()
    out_ids = [e.tensor(t) for t in outputs]
    for t in sorted(plan.arena_offsets):  # every stored tensor is named in the blob, for inspection and verification
        e.tensor(t)
    for t, ref in sorted(program.aliases.items()):
        if program.root(ref).tensor in plan.arena_offsets:
            e.tensor(t)

    buffers = [vipbin.Buffer(size=max(_align(plan.arena_size, TENSOR_ALIGN), TENSOR_ALIGN), kind="tensor",
                             name="arena", align=TENSOR_ALIGN, init=plan.state_init)]
    for kind, name, pool in (("descriptor", "descriptors", e.descriptors), ("coefficients", "coefficients",
                                                                          e.coefficients), ("lut", "luts", e.luts)):
        data = bytes(pool.data)
        buffers.append(vipbin.Buffer(size=max(_align(len(data), 64), 64), kind=kind, name=name, align=4096 if
                                     kind == "descriptor" else 64, init=data))
    consts = constant_pool(program, plan)
    buffers.append(vipbin.Buffer(size=max(len(consts), TENSOR_ALIGN), kind="constant", name="constants",
                                 align=TENSOR_ALIGN, init=consts))
    blob = vipbin.Blob(target=target.name, identity=target.identity, compiler_version=f"npuc {__version__}",
                       model_sha256=hashlib.sha256(model_bytes).digest(), buffers=buffers,
                       relocations=e.relocations, tensors=e.tensors, steps=e.steps, inputs=in_ids,
                       outputs=out_ids, metadata=metadata)
    return blob, e.stats
