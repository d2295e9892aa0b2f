"""Command-stream encoding: the words that kick NN and TP jobs.

The stream holds only register writes (vipnano-tp-cmdstream-uapi.md 4.3): per
job, the on-chip-buffer remap registers, the NN or TP configuration and the
descriptor address, whose write starts the job; at the end of a submit, the
cache flushes.  Descriptor addresses are not known at compile time, so each
address word is recorded as a relocation site (word index, descriptor, flag
bits added to the address).

Deliberate differences from Mesa, and why (see docs/mesa-differences.md): no
runs of zero words (Mesa emits them only so its streams diff cleanly against
the vendor's), and every submit starts with the two initialisation writes
(PA_SYSTEM_MODE, GL_API_MODE) that Mesa sends once per process in a submit of
their own, so that each of npuc's submits is self-contained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from ..hw import registers as R


@dataclass
class StreamSite:
    """A stream word that must receive a descriptor's final address plus ``flags``."""

    word: int
    descriptor: int   # byte offset of the descriptor in the descriptor buffer
    flags: int = 0


@dataclass
class StreamBuilder:
    """Accumulates one submit's words and its address sites."""

    words: list[int] = field(default_factory=list)
    sites: list[StreamSite] = field(default_factory=list)

    def state(self, register: int, value: int) -> None:
        self.words += R.load_state(register, value)

    def address(self, register: int, descriptor: int, flags: int = 0) -> None:
        """Write a descriptor address (relocated later) to ``register``."""
        self.sites.append(StreamSite(len(self.words) + 1, descriptor, flags))
        self.state(register, 0)

    def init(self) -> None:
        """Put the front end into the mode NPU jobs run in."""
        self.state(R.PA_SYSTEM_MODE, R.PA_SYSTEM_MODE_INIT)
        self.state(R.GL_API_MODE, R.GL_API_MODE_OPENCL)

    def nn_job(self, descriptor: int) -> None:
        """Kick one NN job (descriptor at ``descriptor`` in the descriptor buffer)."""
        self.state(R.GL_OCB_REMAP_START, 0)
        self.state(R.GL_OCB_REMAP_END, 0)
        self.state(R.GL_NN_CONFIG, R.GL_NN_CONFIG_SMALL_BATCH)
        self.address(R.PS_NN_INST_ADDR, descriptor)
        self.state(R.PS_UNK10A4, 0)

    def tp_job(self, descriptors: list[int], split_flag: bool, tp_cores: int) -> None:
        """Kick one TP job over its per-core descriptors, chaining all but the last.

        ``split_flag``: the job is a PAD or PWL operation, for which the
        non-last cores also get GL_UNK03950 = 8 (as Mesa does, matched to the blob).
        """
        n = len(descriptors)
        for j, d in enumerate(descriptors):
            chained = n > 1 and j < tp_cores - 1 and j < n - 1
            self.state(R.GL_OCB_REMAP_START, 0)
            self.state(R.GL_OCB_REMAP_END, 0)
            self.state(R.GL_TP_CONFIG, 0)
            self.state(R.GL_UNK03950, R.GL_UNK03950_TP_SPLIT if chained and split_flag else 0)
            self.address(R.PS_TP_INST_ADDR, d, R.TP_INST_ADDR_CHAINED if chained else 0)
        self.state(R.PS_UNK10A4, 0)

    def finish(self) -> None:
        """Flush the NPU's caches so the CPU sees the results (written twice, as Mesa does)."""
        self.state(R.GL_FLUSH_CACHE, R.GL_FLUSH_CACHE_NPU)
        self.state(R.GL_FLUSH_CACHE, R.GL_FLUSH_CACHE_NPU)

    @property
    def nbytes(self) -> int:
        return 4 * len(self.words)


@lru_cache(maxsize=None)
def job_words(kind: str, cores: int = 1) -> int:
    """Words one NN job, or one TP job over ``cores`` cores, adds to a stream (to split submits below the
    kernel's limit): counted from the very writes above, so the count cannot drift from them."""
    s = StreamBuilder()
    if kind == "NN":
        s.nn_job(0)
    else:
        s.tp_job([0] * cores, True, cores)
    return len(s.words)


def _words(write: Callable[[StreamBuilder], None]) -> int:
    s = StreamBuilder()
    write(s)
    return len(s.words)


#: Words of the cache flushes that end a submit.
FINISH_WORDS = _words(StreamBuilder.finish)
