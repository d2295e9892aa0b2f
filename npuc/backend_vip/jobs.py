"""Encoded NPU jobs: the descriptor fields (addresses aside) and coefficients of each scheduled job.

The encoders (nn_encode.py, tp_jobs.py) turn the scheduler's jobs into these;
the emitter (emit.py) places them in the blob's buffers and command streams,
turning every tensor reference into a relocation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..coefs import CoefficientPlan
from ..passes.npu_program import HostCall, Ref


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
    packed: bytes                 # ``desc`` packed (the addresses 0: the emitter relocates them)
    weights: np.ndarray
    biases: np.ndarray
    trailers: np.ndarray
    input: Ref
    output: Ref
    coefficients: CoefficientPlan  # the planned coefficient buffer (.total_bytes, .pack())
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


EncodedJob = NNJob | TPJob | HostCall


def job_reads(job: EncodedJob) -> list[int]:
    """Tensors an encoded job reads."""
    if isinstance(job, NNJob):
        return [job.input.tensor]
    if isinstance(job, TPJob):
        return sorted({c.input.tensor for c in job.cores})
    return [t for t in job.inputs if t is not None]


def job_writes(job: EncodedJob) -> list[int]:
    """Tensors an encoded job writes."""
    if isinstance(job, NNJob):
        return [job.output.tensor]
    if isinstance(job, TPJob):
        return sorted({c.output.tensor for c in job.cores})
    return list(job.outputs)
