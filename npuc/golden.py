"""Reader for directories of Mesa's golden submits (../shared/golden/README.md).

A golden directory records what Mesa's Teflon delegate handed to the etnaviv
kernel for one model: every submit (its command stream and buffer list with
their pinned addresses, and the bytes of descriptor and coefficient buffers),
the NPU operations Mesa emitted (jobs.json) and the model's TFLite operators
(tflite_ops.json).  This module only reads and checks that record; replaying it
is :mod:`npuc.mesa_replay`'s job.  Anything missing or inconsistent is an
:class:`InputError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import InputError


@dataclass(frozen=True)
class GoldenBo:
    """One buffer of a submit: its kernel handle, size, pinned address and kept bytes."""

    handle: int
    size: int
    flags: int
    address: int
    file: Path | None  # kept contents (descriptors, coefficients); None for tensors
    kept_bytes: int

    def contents(self) -> bytes:
        """The kept leading bytes of the buffer (empty for tensor buffers)."""
        if self.file is None:
            return b""
        try:
            data = self.file.read_bytes()
        except OSError as e:
            raise InputError(f"{self.file}: cannot read ({e.strerror})") from None
        if len(data) != self.kept_bytes or len(data) > self.size:
            raise InputError(f"{self.file}: holds {len(data)} bytes, but submit.json keeps {self.kept_bytes} "
                             f"of a {self.size}-byte buffer")
        return data


@dataclass(frozen=True)
class GoldenSubmit:
    """One DRM_ETNAVIV_GEM_SUBMIT: its stream and buffers."""

    name: str    # directory name, e.g. "submit_001"
    index: int
    stream: bytes
    bos: tuple[GoldenBo, ...]


@dataclass(frozen=True)
class GoldenJob:
    """One descriptor Mesa kicked: its kind, descriptor address and tensor addresses."""

    kind: str
    descriptor: int
    input: int
    output: int


@dataclass(frozen=True)
class GoldenOp:
    """One operation Mesa lowered a TFLite op into (an NN job, or a TP job over 1-4 cores)."""

    submit: str
    kind: str              # "NN" or "TP"
    tp_role: str | None    # "transpose", "detranspose", "reshuffle", ... for TP operations
    tflite_op: int         # index of the TFLite operator it came from
    tensor_in: int         # Mesa's tensor ids (TFLite's for tensors that cross a partition)
    tensor_out: int
    partition: int
    jobs: tuple[GoldenJob, ...]


@dataclass(frozen=True)
class GoldenDir:
    """A whole golden directory."""

    path: Path
    submits: tuple[GoldenSubmit, ...]
    ops: tuple[GoldenOp, ...]
    tflite_ops: tuple[dict[str, Any], ...]  # index, op_name, inputs, outputs, shapes (as recorded)

    @cached_property
    def npu_ops(self) -> set[int]:
        """Indices of the TFLite operators Mesa ran on the NPU."""
        return {op.tflite_op for op in self.ops}


def load_golden(path: str | Path) -> GoldenDir:
    """Read and check a golden directory."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a golden directory")
    tflite_ops = _json(path / "tflite_ops.json")
    entries = _json(path / "jobs.json")
    if not isinstance(tflite_ops, list) or not isinstance(entries, list):
        raise InputError(f"{path}: tflite_ops.json and jobs.json must hold lists")
    submit_dirs = sorted(p for p in path.glob("submit_*") if p.is_dir())
    if not submit_dirs:
        raise InputError(f"{path}: no submit_NNN directories")
    submits = tuple(_submit(p) for p in submit_dirs)
    names = {s.name for s in submits}
    ops = []
    for n, e in enumerate(entries):
        if not isinstance(e, dict) or e.get("init"):
            continue
        try:
            ops.append(_op(e))
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"{path / 'jobs.json'}: entry {n} is malformed ({type(err).__name__}: {err})") from None
        if ops[-1].submit not in names:
            raise InputError(f"{path / 'jobs.json'}: entry {n} names {ops[-1].submit}, which has no directory")
    for n, op in enumerate(tflite_ops):
        if not isinstance(op, dict) or op.get("index") != n or not isinstance(op.get("op_name"), str) \
                or not isinstance(op.get("inputs"), list) or not isinstance(op.get("outputs"), list):
            raise InputError(f"{path / 'tflite_ops.json'}: entry {n} is malformed")
    return GoldenDir(path, submits, tuple(ops), tuple(tflite_ops))


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None


def _address(text: Any) -> int:
    return int(text, 16) if isinstance(text, str) else int(text)


def _op(e: dict[str, Any]) -> GoldenOp:
    low = e["lowered"]
    jobs = tuple(GoldenJob(j["kind"], _address(j["inst_addr"]), _address(j["input"]["addr"]),
                           _address(j["output"]["addr"])) for j in e["jobs"])
    if not jobs or e["type"] not in ("NN", "TP"):
        raise ValueError(f"type {e['type']!r} with {len(jobs)} jobs")
    return GoldenOp(str(e["submit"]), e["type"], low.get("tp_role"), int(low["tflite_op_index"]),
                    int(low["in"]), int(low["out"]), int(low.get("partition", 0)), jobs)


def _submit(path: Path) -> GoldenSubmit:
    meta = _json(path / "submit.json")
    try:
        index = int(meta["submit_index"])
        stream_file = path / str(meta.get("stream_file", "stream.bin"))
        bos = tuple(GoldenBo(int(b["handle"]), int(b["size"]), int(b["submit_flags"]), int(b["presumed"]),
                             path / b["file"] if b.get("file") else None, int(b.get("kept_bytes", 0)))
                    for b in meta["bos"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{path / 'submit.json'}: malformed ({type(err).__name__}: {err})") from None
    try:
        stream = stream_file.read_bytes()
    except OSError as e:
        raise InputError(f"{stream_file}: cannot read ({e.strerror})") from None
    return GoldenSubmit(path.name, index, stream, bos)
