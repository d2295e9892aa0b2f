"""The compiler pipeline in one place: TFLite file in, .vipbin bytes out."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import vipbin
from .backend_vip.blob_builder import build_blob
from .backend_vip.target import get_target
from .errors import InputError, ModelError
from .frontend_tflite import load_tflite
from .ir import Graph
from .passes.memory import MemoryPlan, plan_memory
from .passes.placement import Decision, place_ops


@dataclass
class CompileResult:
    """The blob's bytes plus what the stages decided, for the compile summary."""

    blob: bytes
    graph: Graph
    decisions: list[Decision]
    plan: MemoryPlan


def compile_model(model_path: str | Path, target_name: str = "vipnano-qi",
                  labels_path: str | Path | None = None) -> CompileResult:
    """Run every stage: frontend, placement, memory planning, blob assembly."""
    target = get_target(target_name)
    graph = load_tflite(model_path)                      # frontend_tflite: flatbuffer -> validated IR
    order = graph.topological_order()
    decisions = place_ops(graph, order, target)          # passes: NN / TP / HOST, with folded parameters
    plan = plan_memory(graph, order)                     # passes: arena offsets with lifetime reuse
    metadata = {"source": Path(model_path).name}
    if labels_path is not None:
        metadata["labels"] = read_labels_text(labels_path)
    blob = build_blob(graph, decisions, plan, target, _read_bytes(model_path), metadata)
    return CompileResult(vipbin.write_blob(blob), graph, decisions, plan)


def _read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror})") from None


def read_labels_text(path: str | Path) -> str:
    """A labels file (one label per line, UTF-8) as text."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such labels file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: labels file is not UTF-8 text") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read labels ({e.strerror})") from None


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so no partial file is ever left."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise InputError(f"{path}: cannot write output ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise InputError(f"{path}: cannot write output ({e.strerror})") from None
        raise
