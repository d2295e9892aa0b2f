"""The simulated NPU's front end: parse a submit's command stream and run the jobs it starts.

A stream is what the etnaviv kernel receives from userspace: little-endian
32-bit words.  Mesa's NPU streams (all four golden sets) hold only two kinds of
word, so those are all the front end accepts: LOAD_STATE commands (any count,
padded to 64 bits) and bare zero words; anything else is a :class:`SimError`
naming the word and its byte offset.

Register writes update the register file, which persists across submits as the
hardware's does.  Three registers have side effects: PS_NN_INST_ADDR starts an
NN job, PS_TP_INST_ADDR a TP job (the value's low bits are flags, not address),
and GL_FLUSH_CACHE flushes (a no-op here: the simulator writes memory at once,
it is recorded in the trace).  A TP job split over several TP cores is a chain
of descriptors whose INST_ADDR carries the chaining flag and whose descriptor
sets ``no_flush``, ended by one without either; the front end checks that flag
and field agree, that a chain is no longer than the TP cores, and that no NN job
or end of stream interrupts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..hw import registers as R
from ..hw.target import Target
from ..errors import SimError
from .memory import Memory
from .nn import run_nn_job
from .tp import read_tp_descriptor, run_tp_job


@dataclass(frozen=True)
class JobRecord:
    """One job the stream started."""

    kind: str        # "NN" or "TP"
    name: str        # e.g. "submit 1 job 3 (TP)", used in every message about the job
    descriptor: int  # descriptor GPU address (flag bits masked off)
    flags: int       # the flag bits of the INST_ADDR value
    offset: int      # byte offset in the stream of the value word that started it


@dataclass
class StreamTrace:
    """What one stream did: jobs run, flushes, and every register write in order."""

    jobs: list[JobRecord] = field(default_factory=list)
    flushes: list[int] = field(default_factory=list)                  # byte offsets of GL_FLUSH_CACHE writes
    writes: list[tuple[int, int, int]] = field(default_factory=list)  # (byte offset, register, value)

    def describe(self) -> str:
        """One line per job, for debugging."""
        return "\n".join(f"{j.name}: descriptor 0x{j.descriptor:08x} flags 0x{j.flags:x} (stream byte {j.offset})"
                         for j in self.jobs)


@lru_cache(maxsize=1024)
def _header(word: int) -> dict[str, int]:
    """A command word's LOAD_STATE fields (streams repeat a few header words, so they are cached)."""
    return R.LOAD_STATE.unpack_words([word])


class CommandProcessor:
    """The front end of one simulated NPU: its register file and the jobs its streams start."""

    def __init__(self, target: Target) -> None:
        self.target = target
        #: Last value written to each register (byte address), across every stream run so far.
        self.registers: dict[int, int] = {}

    def run(self, stream: bytes, mem: Memory, name: str = "submit") -> StreamTrace:
        """Execute ``stream`` against ``mem``; ``name`` prefixes every job name and message."""
        if len(stream) % 4:
            raise SimError(f"{name}: command stream of {len(stream)} bytes is not a whole number of 32-bit words")
        run = _StreamRun(self, mem, name)
        words = np.frombuffer(stream, dtype="<u4").tolist()
        i = 0
        while i < len(words):
            i = run.command(words, i)
        run.finish()
        return run.trace


class _StreamRun:
    """State of one stream being executed."""

    def __init__(self, cp: CommandProcessor, mem: Memory, name: str) -> None:
        self.cp, self.mem, self.name = cp, mem, name
        self.trace = StreamTrace()
        self.chain = 0            # TP descriptors in the open chain (0: none open)
        self.chain_start = 0      # byte offset of the open chain's first descriptor

    def command(self, words: list[int], i: int) -> int:
        """Execute the command at word ``i``; return the index of the next one."""
        word = words[i]
        if word == 0:
            return i + 1
        header = _header(word)
        if header["opcode"] != R.OP_LOAD_STATE:
            raise SimError(f"{self.name}: unknown command word 0x{word:08x} at byte offset {4 * i} "
                           f"(opcode {header['opcode']}; the front end accepts LOAD_STATE and zero words)")
        where = f"{self.name}: LOAD_STATE 0x{word:08x} at byte offset {4 * i}"
        if i % 2:
            raise SimError(f"{where} is not 64-bit aligned")
        if header["fixp"]:
            raise SimError(f"{where} asks for fixed-point conversion, which no NPU register takes")
        count = header["count"] or 1 << R.LOAD_STATE["count"].width
        end = i + 1 + count
        if end > len(words):
            raise SimError(f"{where} announces {count} values but the stream ends after {len(words) - i - 1}")
        for j in range(count):
            self.write((header["address"] + j) << 2, words[i + 1 + j], 4 * (i + 1 + j))
        if end % 2:
            if end == len(words):
                raise SimError(f"{where} lacks the padding word that keeps the next command 64-bit aligned")
            end += 1
        return end

    def write(self, register: int, value: int, offset: int) -> None:
        self.cp.registers[register] = value
        self.trace.writes.append((offset, register, value))
        if register == R.PS_NN_INST_ADDR:
            self.start_nn(value, offset)
        elif register == R.PS_TP_INST_ADDR:
            self.start_tp(value, offset)
        elif register == R.GL_FLUSH_CACHE:
            self.trace.flushes.append(offset)

    def _record(self, kind: str, value: int, offset: int) -> JobRecord:
        job = JobRecord(kind, f"{self.name} job {len(self.trace.jobs)} ({kind})",
                        value & ~R.INST_ADDR_FLAG_MASK & 0xFFFFFFFF, value & R.INST_ADDR_FLAG_MASK, offset)
        self.trace.jobs.append(job)
        return job

    def start_nn(self, value: int, offset: int) -> None:
        job = self._record("NN", value, offset)
        if self.chain:
            raise SimError(f"{job.name}: NN job started at byte offset {offset} while the TP job chain started at "
                           f"byte offset {self.chain_start} is still open (its last descriptor set no_flush)")
        run_nn_job(self.mem, job.descriptor, self.cp.target, job.name)

    def start_tp(self, value: int, offset: int) -> None:
        job = self._record("TP", value, offset)
        chained = bool(job.flags & R.TP_INST_ADDR_CHAINED)
        no_flush = read_tp_descriptor(self.mem, job.descriptor, job.name)["no_flush"]
        if chained != bool(no_flush):
            raise SimError(f"{job.name}: PS_TP_INST_ADDR value 0x{value:08x} at byte offset {offset} has the "
                           f"chaining flag {'set' if chained else 'clear'} but the descriptor's no_flush is "
                           f"{no_flush}")
        if not self.chain:
            self.chain_start = offset
        self.chain += 1
        if self.chain > self.cp.target.tp_cores:
            raise SimError(f"{job.name}: TP job chain started at byte offset {self.chain_start} has "
                           f"{self.chain} descriptors, more than the {self.cp.target.tp_cores} TP cores")
        run_tp_job(self.mem, job.descriptor, self.cp.target, job.name)
        if not chained:
            self.chain = 0

    def finish(self) -> None:
        if self.chain:
            raise SimError(f"{self.name}: the stream ends while the TP job chain started at byte offset "
                           f"{self.chain_start} is still open (its last descriptor set no_flush)")
