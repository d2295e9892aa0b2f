"""The compiler pipeline in one place: TFLite file in, .vipbin bytes out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import vipbin
from .backend_vip.emit import EmitStats, emit_blob
from .backend_vip.jobs import Program
from .hw.target import get_target
from .files import read_labels_text, write_atomically  # noqa: F401  (write_atomically: where it used to live)
from .frontend_tflite import parse_tflite, read_model
from .ir import Op
from .passes.fold_constants import fold_constants
from .passes.inputs import image_normalization
from .passes.variables import resolve_variables
from .passes.memory import MemoryPlan, plan_memory
from .passes.placement import graph_outputs, lower_graph
from .program_meta import PROGRAM_KEY, encode as encode_program


@dataclass
class CompileResult:
    """The blob's bytes plus what the stages decided, for the compile summary."""

    blob: bytes
    program: Program
    plan: MemoryPlan
    stats: EmitStats
    folded: list[Op]             # operators computed at compile time


def compile_model(model_path: str | Path, target_name: str = "vipnano-qi", labels_path: str | Path | None = None,
                  npu: bool = True, split_steps: bool = False, exact: bool = False) -> CompileResult:
    """Run every stage: frontend, placement and lowering, memory planning, emission.

    ``npu=False`` keeps every operator on the host CPU (a reference blob);
    ``exact`` keeps on the NPU only operators it computes bit-identically to
    TFLite; ``split_steps`` gives every NPU job its own submit (for per-layer checks).
    """
    target = get_target(target_name)
    model_bytes = read_model(model_path)                     # read once: parsed here, hashed into the blob
    graph = parse_tflite(model_bytes, str(Path(model_path)))  # frontend: flatbuffer -> validated IR
    resolve_variables(graph)                                 # a stateful model's variables as state tensors
    folded = fold_constants(graph)                           # constants and static shapes computed once
    program = lower_graph(graph, graph.topological_order(), target, npu, exact)  # NN / TP / HOST, NPU layouts
    outputs = graph_outputs(program)                         # graph outputs back in NHWC
    plan = plan_memory(program, graph.inputs, outputs)       # arena offsets with lifetime reuse
    metadata = {"source": Path(model_path).name, PROGRAM_KEY: encode_program(program), **image_normalization(graph)}
    if labels_path is not None:
        metadata["labels"] = read_labels_text(labels_path)
    blob, stats = emit_blob(program, plan, target, graph.inputs, outputs, model_bytes, metadata,
                            split_steps)                     # descriptors, coefficients, streams, relocations
    return CompileResult(vipbin.write_blob(blob), program, plan, stats, folded)
