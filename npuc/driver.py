"""The compiler pipeline in one place: TFLite file in, .vipbin bytes out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import vipbin
from .backend_vip.emit import EmitStats, emit_blob
from .backend_vip.encode import encode_jobs
from .backend_vip.jobs import NNJob, TPJob
from .files import read_labels_text
from .frontend_tflite import parse_tflite, read_model
from .hw.target import Target, get_target
from .ir import Graph, Op
from .passes.fold_constants import fold_constants
from .passes.inputs import image_normalization
from .passes.npu_program import HostCall, Program
from .passes.placement import NpuRefusal, graph_outputs, lower_graph
from .passes.variables import resolve_variables
from .backend_vip.account import encode as encode_program
from .program_meta import PROGRAM_KEY
from .scheduler.memory import MemoryPlan
from .scheduler.schedule import Schedule, schedule_program


@dataclass
class CompileResult:
    """The blob's bytes plus what the stages decided, for the compile summary."""

    blob: bytes
    program: Program
    schedule: Schedule
    jobs: list[NNJob | TPJob | HostCall]   # the encoded jobs, in execution order
    stats: EmitStats
    folded: list[Op]             # operators computed at compile time

    @property
    def plan(self) -> MemoryPlan:
        return self.schedule.memory


def compile_model(model_path: str | Path, target_name: str = "vipnano-qi", labels_path: str | Path | None = None,
                  npu: bool = True, split_steps: bool = False, exact: bool = False) -> CompileResult:
    """Run every stage: frontend, graph passes, placement and lowering, scheduling, encoding, the .vipbin writer.

    ``npu=False`` keeps every operator on the host CPU (a reference blob);
    ``exact`` keeps on the NPU only operators it computes bit-identically to
    TFLite; ``split_steps`` gives every NPU job its own submit (for per-layer checks).
    """
    target = get_target(target_name)
    labels = read_labels_text(labels_path) if labels_path is not None else None
    model = read_model(model_path)                           # read once: parsed here, hashed into the blob
    graph = parse_tflite(model, str(Path(model_path)))       # frontend: flatbuffer -> validated IR
    resolve_variables(graph)                                 # graph passes: variables as state tensors,
    folded = fold_constants(graph)                           # constants and static shapes computed once
    c = compile_graph(graph, target, npu, exact, split_steps)  # placement ... encoders
    metadata = {"source": Path(model_path).name, PROGRAM_KEY: encode_program(c.program, c.jobs),
                **image_normalization(graph)}
    if labels is not None:
        metadata["labels"] = labels
    blob, stats = emit_blob(c.schedule, c.jobs, target, graph.inputs, c.outputs, model, metadata)
    return CompileResult(vipbin.write_blob(blob), c.program, c.schedule, c.jobs, stats, folded)  # the .vipbin writer


@dataclass
class Compiled:
    """A graph lowered, scheduled and encoded."""

    program: Program             # the lowered program (its graph is a copy, with the tensors lowering added)
    outputs: list[int]           # the graph outputs as TFLite stores them
    schedule: Schedule
    jobs: list[NNJob | TPJob | HostCall]   # one encoded job per scheduled job


def compile_graph(graph: Graph, target: Target, npu: bool = True, exact: bool = False,
                  split_steps: bool = False) -> Compiled:
    """Placement and lowering to NPU operations, the scheduler, the encoders.

    An operator that the scheduler or an encoder finds the NPU cannot run after
    all (a hardware limit: NpuRefusal) goes to the host CPU, and the graph is
    lowered again.
    """
    refused: dict[int, str] = {}
    while True:
        try:
            program = lower_graph(graph, graph.topological_order(), target, npu, exact, refused)
            outputs = graph_outputs(program)                 # graph outputs back in TFLite's layout
            schedule = schedule_program(program, target, graph.inputs, outputs, split_steps)
            return Compiled(program, outputs, schedule, encode_jobs(schedule, target))
        except NpuRefusal as e:
            if e.op in refused:
                raise
            refused[e.op] = e.reason
