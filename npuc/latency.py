"""Whole-inference latency estimates: a compiled blob's, and Mesa's from its golden submits.

One inference is the sum of its steps, in order: every NN and TP job
(:mod:`npuc.hw.perf`), every host step on the CPU
(:mod:`npuc.hw.perf_host`) and, for every submit, the host's round
trip through the kernel (``Target.perf_submit_seconds``).  Nothing overlaps:
the runtime waits for each submit before the next step, as Mesa's Teflon does.
Mesa's golden directories are read with the same functions, descriptor by
descriptor, which is how the model's fitted constants were chosen
(docs/performance-model.md).  These are estimates, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import vipbin
from .coefs import codec_for
from .hw.descriptors import NN_DESCRIPTOR, TP_DESCRIPTOR
from .hw.perf import Cost, estimate_nn_descriptor, estimate_tp_descriptors, seconds
from .hw.perf_host import host_seconds
from .host import HOST_OPS
from .hw.target import Target
from .blob_program import DecodedBlob, Entry
from .errors import CoefficientError, InputError, SimError
from .program_meta import HOST, NN, TP
from .golden import GoldenDir, load_golden


@dataclass(frozen=True)
class StepEstimate:
    """One job or host step of an inference."""

    kind: str                  # NN, TP or HOST
    seconds: float
    cost: Cost | None = None   # NPU jobs: cycles and bytes


@dataclass(frozen=True)
class LatencyEstimate:
    """One inference: its steps plus the submits' host round trips."""

    steps: tuple[StepEstimate, ...]
    submits: int
    submit_seconds: float
    clock_hz: int               # the NPU clock the jobs' cycles run at

    def seconds_of(self, kind: str) -> float:
        return sum(s.seconds for s in self.steps if s.kind == kind)

    @property
    def npu_cost(self) -> Cost:
        return sum((s.cost for s in self.steps if s.cost is not None), Cost())

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.steps) + self.submits * self.submit_seconds

    def breakdown(self) -> dict[str, float]:
        """Seconds by where they go: NN jobs limited by their MACs or by DRAM, NN job overheads, TP jobs,
        host steps, submits."""
        nn = [s.cost for s in self.steps if s.kind == NN and s.cost is not None]
        busy = {"compute": 0, "DRAM": 0}
        for c in nn:
            busy[c.bound] += c.cycles - c.overhead_cycles
        return {
            "nn_compute_bound": busy["compute"] / self.clock_hz,
            "nn_dram_bound": busy["DRAM"] / self.clock_hz,
            "nn_job_overhead": sum(c.overhead_cycles for c in nn) / self.clock_hz,
            "tp": self.seconds_of(TP),
            "host": self.seconds_of(HOST),
            "submits": self.submits * self.submit_seconds,
        }


def _npu(kind: str, cost: Cost, target: Target) -> StepEstimate:
    return StepEstimate(kind, seconds(cost.cycles, target), cost)


def estimate_entry(decoded: DecodedBlob, entry: Entry) -> StepEstimate:
    """The estimate of one decoded job or host step."""
    target = decoded.target
    if entry.kind == NN:
        return _npu(NN, estimate_nn_descriptor(entry.descs[0], entry.coefficient_bytes, target), target)
    if entry.kind == TP:
        return _npu(TP, estimate_tp_descriptors(entry.descs, target), target)
    step = decoded.blob.steps[entry.step]
    assert isinstance(step, vipbin.HostStep)
    tensors = decoded.blob.tensors
    ins = [None if t is None else tensors[t] for t in step.inputs]
    outs = [tensors[t] for t in step.outputs]
    opcode = HOST_OPS[step.kernel].opcode if step.kernel in HOST_OPS else step.kernel
    return StepEstimate(HOST, host_seconds(opcode, [None if t is None else t.shape for t in ins],
                                           [t.shape for t in outs], sum(t.nbytes for t in ins if t is not None),
                                           sum(t.nbytes for t in outs), target.perf_host))


def estimate_blob(decoded: DecodedBlob) -> LatencyEstimate:
    """The estimated latency of one inference of a decoded blob."""
    steps = tuple(estimate_entry(decoded, e) for e in decoded.entries)
    return LatencyEstimate(steps, decoded.submits, decoded.target.perf_submit_seconds, decoded.target.clock_hz)


# -- Mesa's golden submits -------------------------------------------------------------------------


def _bo_bytes(golden: GoldenDir, submit: str, address: int, what: str) -> bytes:
    """The kept bytes of the buffer of ``submit`` that holds ``address``, from that address on."""
    s = next(s for s in golden.submits if s.name == submit)
    for bo in s.bos:
        if bo.address <= address < bo.address + bo.size:
            return bo.contents()[address - bo.address:]
    raise InputError(f"{golden.path / submit}: {what} at 0x{address:08x} lies in none of the submit's buffers")


def golden_costs(golden: GoldenDir, target: Target) -> list[StepEstimate]:
    """Estimates of every NN and TP job Mesa submitted, in order, from its descriptors and coefficient buffers."""
    out = []
    for op in golden.ops:
        what = f"{golden.path.name} {op.submit} operator {op.tflite_op}"
        if op.kind == NN:
            for job in op.jobs:
                desc = NN_DESCRIPTOR.unpack(_bo_bytes(golden, op.submit, job.descriptor, what))
                coef_at = desc["kernel_address"] * target.coef_align
                try:
                    size = codec_for(target).size(_bo_bytes(golden, op.submit, coef_at, what), desc, what)
                except (CoefficientError, SimError) as e:
                    raise InputError(str(e)) from None
                out.append(_npu(NN, estimate_nn_descriptor(desc, size, target), target))
        else:
            descs = [TP_DESCRIPTOR.unpack(_bo_bytes(golden, op.submit, j.descriptor, what)) for j in op.jobs]
            out.append(_npu(TP, estimate_tp_descriptors(descs, target), target))
    return out


def _golden_host(op: dict, target: Target) -> StepEstimate:
    """A TFLite operator Mesa left to the CPU (8-bit tensors: one byte per element)."""
    ins: Sequence[Sequence[int]] = op.get("input_shapes", [])
    outs: Sequence[Sequence[int]] = op.get("output_shapes", [])
    nbytes = lambda shapes: sum(int(np.prod(s)) for s in shapes)  # noqa: E731
    return StepEstimate(HOST, host_seconds(op["op_name"], ins, outs, nbytes(ins[:1]), nbytes(outs),
                                           target.perf_host))


def estimate_golden(path: str | Path, target: Target) -> LatencyEstimate:
    """The estimated latency of the inference Mesa's golden directory records (NPU jobs, CPU operators, submits).

    The one-time initialisation submit (no jobs) is not part of an inference.
    """
    golden = load_golden(path)
    steps = golden_costs(golden, target)
    cpu = [_golden_host(op, target) for op in golden.tflite_ops if op["index"] not in golden.npu_ops]
    submits = len({op.submit for op in golden.ops})
    return LatencyEstimate(tuple(steps + cpu), submits, target.perf_submit_seconds, target.clock_hz)
