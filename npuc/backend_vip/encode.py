"""The encoders applied to a whole schedule: every job to its encoded form, in order.

NN jobs get their descriptor fields (nn_encode.py), TP operations their
per-core descriptors (tp_jobs.py); host calls pass through.  A value that no
descriptor field holds is an NpuRefusal naming the operator, which then runs
on the host.
"""

from __future__ import annotations

from ..hw.target import Target
from ..passes.npu_program import HostCall
from ..passes.placement import NpuRefusal
from ..scheduler.nn_schedule import ScheduledConv
from ..scheduler.schedule import Schedule
from .jobs import NNJob, TPJob
from .nn_encode import encode_nn
from .tp_jobs import encode_tp


def encode_jobs(schedule: Schedule, target: Target) -> list[NNJob | TPJob | HostCall]:
    """Every scheduled job encoded, in execution order."""
    program = schedule.program
    out: list[NNJob | TPJob | HostCall] = []
    for job in schedule.jobs:
        if isinstance(job, HostCall):
            out.append(job)
            continue
        with NpuRefusal.on_limits(program, job.op.op if isinstance(job, ScheduledConv) else job.op):
            out.append(encode_nn(job, target) if isinstance(job, ScheduledConv) else encode_tp(program, job, target))
    return out
