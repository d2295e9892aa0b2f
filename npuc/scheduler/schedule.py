"""The scheduler: how the lowered program runs, decided for the whole program at once.

Lowering said what to compute (ConvOp, LayerOp, TPOp, HostCall in execution
order).  The scheduler

1. turns every weighted layer (LayerOp) into NN jobs, choosing by the cost
   model the depthwise channel-group size and the stride-2 method
   (conv_jobs.py, depthwise_jobs.py; a chosen TP reshuffle adds its tensor);
2. schedules every NN job: kernel slots, bias words, tiling, coefficient plan
   and SRAM caches (nn_schedule.py, tiling.py);
3. plans memory: arena offsets with lifetime reuse (memory.py);
4. groups consecutive NPU jobs into submits: a host call ends the submit
   before it, since the CPU must see the NPU's results (``split`` gives every
   job a submit of its own, for per-job checks).  The encoder splits a submit
   further only where its command stream would pass the kernel's size limit.

Jobs keep the lowering's order (the IR's topological order).  A hardware
limit met here (a value no descriptor field holds, a rescale no post shift
reaches) is an NpuRefusal naming the operator: the driver then runs that
operator on the host CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hw.target import Target
from ..passes.npu_program import CONV, DEPTHWISE, ConvOp, HostCall, LayerOp, Program, TPOp
from ..passes.placement import NpuRefusal
from .conv_jobs import conv_jobs, fc_jobs
from .depthwise_jobs import depthwise_jobs
from .memory import MemoryPlan, plan_memory
from .nn_schedule import ScheduledConv, schedule_conv

Job = ScheduledConv | TPOp | HostCall


@dataclass
class Schedule:
    """The program's jobs in execution order, the submits grouping them, and where every tensor lives."""

    program: Program              # its steps are the jobs' operations (LayerOps expanded)
    jobs: list[Job]
    submits: list[list[int]]      # indices into ``jobs``: consecutive NPU jobs kicked in one submit
    memory: MemoryPlan


_EXPANSIONS = {CONV: conv_jobs, DEPTHWISE: depthwise_jobs}


def _expand(program: Program, layer: LayerOp, target: Target) -> list:
    return _EXPANSIONS.get(layer.kind, fc_jobs)(program, layer, target)


def schedule_program(program: Program, target: Target, inputs: list[int], outputs: list[int],
                     split: bool = False) -> Schedule:
    """Schedule every step of ``program`` (which it updates: LayerOps become their jobs)."""
    jobs: list[Job] = []
    for step in program.steps:
        with NpuRefusal.on_limits(program, step.op):
            expanded = _expand(program, step, target) if isinstance(step, LayerOp) else [step]
            jobs += [schedule_conv(s, target) if isinstance(s, ConvOp) else s for s in expanded]
    program.steps = [j.op if isinstance(j, ScheduledConv) else j for j in jobs]
    return Schedule(program, jobs, plan_submits(jobs, split), plan_memory(program, inputs, outputs))


def plan_submits(jobs: list[Job], split: bool) -> list[list[int]]:
    """Runs of consecutive NPU jobs (host calls end them); with ``split`` one job per submit."""
    submits: list[list[int]] = []
    run: list[int] = []
    for i, job in enumerate(jobs):
        if isinstance(job, HostCall):
            if run:
                submits.append(run)
            run = []
            continue
        run.append(i)
        if split:
            submits.append(run)
            run = []
    if run:
        submits.append(run)
    return submits

