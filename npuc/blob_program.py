"""A blob's program as the hardware sees it: every job's descriptors, coefficients and tensors, without running it.

``npuc inspect``, ``npuc report`` and ``npuc verify`` read a ``.vipbin`` through
this module.  It walks each NPU step's command stream for the writes that start
jobs (``PS_NN_INST_ADDR``, ``PS_TP_INST_ADDR``), follows the relocation of each
written address to the descriptor it names, unpacks that descriptor with the
declared layout, and follows the descriptor's own relocations to the coefficient
buffer (whose size table gives the bytes the job reads) and to the arena bytes it
reads and writes.  The compiler's account in META (:mod:`npuc.program_meta`),
when present, adds operator names, placement reasons and tensor names; it is
checked against what the streams start.  Anything inconsistent is a one-line
:class:`BlobError` naming the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import vipbin
from .hw import registers as R
from .coefs import codec_for
from .hw.descriptors import NN_DESCRIPTOR, TP_DESCRIPTOR
from .hw.fields import Layout
from .hw.target import Target, get_target
from .errors import BlobError, CoefficientError, SimError, UsageError
from .program_meta import HOST, NN, PROGRAM_KEY, TP, ProgramInfo, StepInfo, decode


@dataclass(frozen=True)
class Place:
    """A byte position in one of the blob's buffers (what a relocated address points at)."""

    buffer: int
    offset: int


@dataclass
class Entry:
    """One job or host step, in execution order."""

    index: int                     # position in execution order (over jobs and host steps)
    step: int                      # the blob step (submit or host call) it belongs to
    kind: str                      # NN, TP or HOST
    descs: list[dict[str, int]] = field(default_factory=list)   # NN: one; TP: one per core
    coefficients: Place | None = None
    coefficient_bytes: int = 0
    inputs: list[Place] = field(default_factory=list)           # NN/TP: image addresses (per core for TP)
    outputs: list[Place] = field(default_factory=list)
    kernel: str = ""               # HOST: the host kernel
    info: StepInfo | None = None   # the compiler's account, when the blob has one

    @property
    def op(self) -> int | None:
        return self.info.op if self.info else None

    @property
    def name(self) -> str:
        if self.info:
            return self.info.name
        return f"step {self.step} {self.kind}" + (f" {self.kernel}" if self.kernel else "")


@dataclass
class DecodedBlob:
    """A blob with its program decoded."""

    blob: vipbin.Blob
    source: str
    target: Target
    entries: list[Entry]
    program: ProgramInfo | None
    tensor_ids: dict[str, int]     # blob tensor id by name (the first of equal names)

    @property
    def submits(self) -> int:
        return sum(isinstance(s, vipbin.NpuStep) for s in self.blob.steps)

    def tensor(self, name: str) -> int | None:
        return self.tensor_ids.get(name)


def _stream_writes(words: list[int], what: str) -> list[tuple[int, int, int]]:
    """(byte offset of the value word, register, value) of every LOAD_STATE in a stream."""
    out = []
    i = 0
    while i < len(words):
        if words[i] == 0:
            i += 1
            continue
        h = R.LOAD_STATE.unpack_words([words[i]])
        if h["opcode"] != R.OP_LOAD_STATE:
            raise BlobError(f"{what}: command word 0x{words[i]:08x} at byte {4 * i} is not a LOAD_STATE")
        count = h["count"] or 1 << R.LOAD_STATE["count"].width
        if i + 1 + count > len(words):
            raise BlobError(f"{what}: LOAD_STATE at byte {4 * i} runs past the end of the stream")
        out.extend((4 * (i + 1 + j), (h["address"] + j) << 2, words[i + 1 + j]) for j in range(count))
        i += 1 + count
        i += i % 2
    return out


class _Decoder:
    def __init__(self, blob: vipbin.Blob, source: str) -> None:
        self.blob, self.source = blob, source
        self.relocs = {(r.site_kind, r.site_index, r.site_offset): r for r in blob.relocations}

    def fail(self, message: str) -> BlobError:
        return BlobError(f"{self.source}: {message}")

    def place(self, site_kind: str, index: int, offset: int, what: str) -> tuple[Place, int]:
        """Where the relocated word at the site points, and the flag bits added to the address."""
        r = self.relocs.get((site_kind, index, offset))
        if r is None:
            raise self.fail(f"{what}: the address at byte {offset} has no relocation")
        return Place(r.target_buffer, r.target_offset), r.target_offset

    def descriptor(self, layout: Layout, at: Place, what: str) -> dict[str, int]:
        buf = self.blob.buffers[at.buffer]
        if buf.kind != "descriptor" or at.offset + layout.size > len(buf.init):
            raise self.fail(f"{what}: descriptor at {buf.name}+{at.offset} lies outside the descriptor data")
        return layout.unpack(buf.init, at.offset)

    def field_place(self, layout: Layout, desc_at: Place, name: str, what: str) -> Place:
        return self.place("buffer", desc_at.buffer, desc_at.offset + layout[name].byte_offset, what)[0]

    def coefficient_size(self, coef: Place, desc: dict[str, int], target: Target, what: str) -> int:
        """Bytes of the coefficient buffer at ``coef``, from its own header (the target's format)."""
        try:
            return codec_for(target).size(self.blob.buffers[coef.buffer].init[coef.offset:], desc, what)
        except (CoefficientError, SimError) as e:
            raise self.fail(str(e)) from None

    def nn(self, entry: Entry, at: Place, target: Target, what: str) -> None:
        desc = self.descriptor(NN_DESCRIPTOR, at, what)
        coef = self.field_place(NN_DESCRIPTOR, at, "kernel_address", what)
        buf = self.blob.buffers[coef.buffer]
        size = self.coefficient_size(coef, desc, target, what)
        if buf.kind != "coefficients" or coef.offset + size > len(buf.init):
            raise self.fail(f"{what}: coefficient buffer of {size} bytes at {buf.name}+{coef.offset} runs past "
                            f"its data")
        entry.descs.append(desc)
        entry.coefficients, entry.coefficient_bytes = coef, size
        entry.inputs.append(self.field_place(NN_DESCRIPTOR, at, "in_image_address", what))
        entry.outputs.append(self.field_place(NN_DESCRIPTOR, at, "out_image_address", what))

    def tp(self, entry: Entry, at: Place, what: str) -> None:
        entry.descs.append(self.descriptor(TP_DESCRIPTOR, at, what))
        entry.inputs.append(self.field_place(TP_DESCRIPTOR, at, "in_image_base_address", what))
        entry.outputs.append(self.field_place(TP_DESCRIPTOR, at, "out_image_base_address", what))

    def npu_step(self, index: int, step: vipbin.NpuStep, target: Target, entries: list[Entry]) -> None:
        what = f"step {index} ({step.name})"
        open_tp: Entry | None = None
        for offset, register, _ in _stream_writes(step.stream, what):
            if register not in (R.PS_NN_INST_ADDR, R.PS_TP_INST_ADDR):
                continue
            at, value = self.place("stream", index, offset, what)
            flags = value & R.INST_ADDR_FLAG_MASK
            at = Place(at.buffer, at.offset & ~R.INST_ADDR_FLAG_MASK)
            job_what = f"{what} job {len(entries)}"
            if register == R.PS_NN_INST_ADDR:
                if open_tp is not None:
                    raise self.fail(f"{job_what}: NN job inside an open TP chain")
                entry = Entry(len(entries), index, NN)
                self.nn(entry, at, target, job_what)
                entries.append(entry)
                continue
            if open_tp is None:
                open_tp = Entry(len(entries), index, TP)
                entries.append(open_tp)
            self.tp(open_tp, at, job_what)
            if not flags & R.TP_INST_ADDR_CHAINED:
                open_tp = None
        if open_tp is not None:
            raise self.fail(f"{what}: the stream ends inside a TP chain")


def decode_blob(blob: vipbin.Blob, source: str = "<blob>") -> DecodedBlob:
    """Decode every job of a validated blob (see the module docstring)."""
    try:
        target = get_target(blob.target)
    except UsageError:  # an unknown target name is the blob's fault here, not bad usage
        raise BlobError(f"{source}: compiled for unknown target {blob.target!r}") from None
    d = _Decoder(blob, source)
    entries: list[Entry] = []
    for i, step in enumerate(blob.steps):
        if isinstance(step, vipbin.NpuStep):
            d.npu_step(i, step, target, entries)
        else:
            entries.append(Entry(len(entries), i, HOST, kernel=step.kernel))
    program = decode(blob.metadata, source)
    if program is not None:
        if len(program.steps) != len(entries):
            raise BlobError(f"{source}: metadata {PROGRAM_KEY} lists {len(program.steps)} steps but the blob runs "
                            f"{len(entries)} jobs and host steps")
        for e, info in zip(entries, program.steps):
            if e.kind != info.kind:
                raise BlobError(f"{source}: metadata step {e.index} is {info.kind} but the blob runs {e.kind} there")
            e.info = info
    names: dict[str, int] = {}
    for i, t in enumerate(blob.tensors):
        names.setdefault(t.name, i)
    decoded = DecodedBlob(blob, source, target, entries, program, names)
    for e in entries:
        _check_places(decoded, e)
    return decoded


def _check_places(decoded: DecodedBlob, e: Entry) -> None:
    """The compiler's account must agree with the descriptors: every address a job reads or writes lies in a
    tensor the account says it reads or writes."""
    if e.info is None:
        return
    for places, names, verb in ((e.inputs, e.info.reads, "reads"), (e.outputs, e.info.writes, "writes")):
        tensors = [decoded.blob.tensors[t] for t in map(decoded.tensor, names) if t is not None]
        for p in places:
            if not any(t.buffer == p.buffer and t.offset <= p.offset < t.offset + max(t.nbytes, 1) for t in tensors):
                raise BlobError(f"{decoded.source}: metadata {PROGRAM_KEY} says job {e.index} ({e.name}) {verb} "
                                f"{', '.join(map(repr, names)) or 'nothing'}, but its descriptor addresses "
                                f"buffer {p.buffer} at byte {p.offset}")
