"""Mesa's golden submits as test fixtures: jobs, buffers at their addresses, TFLite's tensors.

``/work/shared/golden/<set>/<model>/`` holds what Mesa handed the kernel for one
inference (README there); a set is one NPU (``GOLDEN_SETS``, by npuc target
name; functions default to the A311D's).  This module turns it into what the simulator
tests need: the list of jobs with their addresses, a :class:`Memory` per
submit with every buffer at its ``presumed`` GPU address (kept bytes for
descriptors and coefficients, zeros elsewhere), and for an NN job the planar
input TFLite's reference kernels feed that layer and the planar output they
produce, so that a job can be run in isolation and compared layer by layer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

import oracle
from npuc.hw.descriptors import NN_DESCRIPTOR
from npuc.runtime.image import load_image_input
from npuc.sim.memory import Memory

GOLDEN_SETS = {"vipnano-qi": oracle.SHARED / "golden" / "mesa-25.0.7-vipnano-qi",
               "vipnano-si-plus": oracle.SHARED / "golden" / "mesa-25.0.7-vipnano-si-plus"}
V7, V8 = "vipnano-qi", "vipnano-si-plus"
GOLDEN_MODELS = ["mobilenet_quant_v1_224", "mobilenet_v2_1.0_224_quant"]
GOLDEN_IMAGE = oracle.IMAGES / "grace_hopper.bmp"


@dataclass(frozen=True)
class GoldenJob:
    """One NN or TP job of a golden submit."""

    model: str
    submit: str
    kind: str               # "NN" or "TP"
    op_index: int           # the TFLite operator it implements
    op_name: str
    role: str               # TP role (transpose, reshuffle, ...) or the Teflon type for NN jobs
    desc_address: int
    desc_bo: int
    coef_bo: int | None
    coef_used_bytes: int | None
    input_address: int
    output_address: int
    golden: str = V7

    @property
    def name(self) -> str:
        return f"{self.model}/{self.submit}/op{self.op_index}-{self.kind}-{self.role}"


def model_dir(model: str, golden: str = V7) -> Path:
    return GOLDEN_SETS[golden] / model


@lru_cache(maxsize=None)
def golden_jobs(model: str, golden: str = V7) -> tuple[GoldenJob, ...]:
    """Every job of the model's golden submits, in submission order."""
    jobs = []
    for entry in json.loads((model_dir(model, golden) / "jobs.json").read_text()):
        if entry.get("init"):
            continue
        low = entry["lowered"]
        for j in entry["jobs"]:
            coef = j.get("coefficients")
            jobs.append(GoldenJob(
                model=model, submit=entry["submit"], kind=j["kind"], op_index=low["tflite_op_index"],
                op_name=low["tflite_op_name"], role=low.get("tp_role") or low["teflon_type"],
                desc_address=int(j["inst_addr"], 16), desc_bo=j["config_bo"],
                coef_bo=coef["bo"] if coef else None, coef_used_bytes=coef["used_bytes"] if coef else None,
                input_address=int(j["input"]["addr"], 16), output_address=int(j["output"]["addr"], 16),
                golden=golden))
    return tuple(jobs)


def nn_jobs(model: str, golden: str = V7) -> list[GoldenJob]:
    return [j for j in golden_jobs(model, golden) if j.kind == "NN"]


@lru_cache(maxsize=None)
def tflite_ops(model: str) -> tuple[dict, ...]:
    return tuple(json.loads((model_dir(model) / "tflite_ops.json").read_text()))


def bo_bytes(model: str, submit: str, bo: int, golden: str = V7) -> bytes:
    return (model_dir(model, golden) / submit / f"bo_{bo:03d}.bin").read_bytes()


def submit_memory(model: str, submit: str, golden: str = V7) -> Memory:
    """A fresh Memory with every buffer of the submit at its presumed address."""
    info = json.loads((model_dir(model, golden) / submit / "submit.json").read_text())
    mem = Memory()
    for bo in info["bos"]:
        data = np.zeros(bo["size"], dtype=np.uint8)
        if bo["file"]:
            kept = np.frombuffer((model_dir(model, golden) / submit / bo["file"]).read_bytes(), dtype=np.uint8)
            data[:kept.size] = kept
        mem.map(bo["presumed"], data, f"bo{bo['index']}")
    return mem


@lru_cache(maxsize=None)
def reference_tensors(model: str) -> dict[int, np.ndarray]:
    """Every tensor of TFLite's reference inference on grace_hopper.bmp, by tensor index."""
    path = oracle.model_path(model)
    shape = tflite_ops(model)[0]["input_shapes"][0]
    image = load_image_input(GOLDEN_IMAGE, shape[1], shape[2])
    return oracle.run_reference_all(path, [image])


def planar(nhwc: np.ndarray) -> np.ndarray:
    """NHWC (batch 1) to the NPU's planar [C][H][W] layout."""
    return np.ascontiguousarray(nhwc[0].transpose(2, 0, 1))


def space_to_depth(planes: np.ndarray, size: int, pad: int, fill: int) -> np.ndarray:
    """Mesa's stride-2 reshuffle: channel 4c + 2*py + px holds in[c][2i + py - pad][2j + px - pad]."""
    c, h, w = planes.shape
    padded = np.full((c, 2 * size + pad, 2 * size + pad), fill, dtype=np.uint8)
    padded[:, pad:pad + h, pad:pad + w] = planes
    padded = padded[:, :2 * size, :2 * size]
    out = padded.reshape(c, size, 2, size, 2).transpose(0, 2, 4, 1, 3)  # [c][py][px][i][j]
    return np.ascontiguousarray(out.reshape(4 * c, size, size))


def same_pad_before(in_size: int, out_size: int, kernel: int, stride: int) -> int:
    return max((out_size - 1) * stride + kernel - in_size, 0) // 2


def nn_input(job: GoldenJob, in_x_size: int) -> np.ndarray:
    """The planar bytes the NN job reads, built from TFLite's tensors of the job's operator.

    ADD reads its two inputs back to back.  An input produced by a TP reshuffle
    of the same operator (a stride-2 convolution Mesa rewrote) is reshuffled
    here with numpy (space-to-depth with the input zero point as padding).
    """
    op = tflite_ops(job.model)[job.op_index]
    tensors = reference_tensors(job.model)
    if job.op_name == "ADD":
        return np.concatenate([planar(tensors[t]).ravel() for t in op["inputs"][:2]])
    x = planar(tensors[op["inputs"][0]])
    if is_reshuffled(job):
        kernel = op["input_shapes"][1][1]
        pad = same_pad_before(x.shape[1], op["output_shapes"][0][1], kernel, 2)
        x = space_to_depth(x, in_x_size, pad, input_zero_point(job))
    return x.ravel()


def input_zero_point(job: GoldenJob) -> int:
    return quant(job.model, tflite_ops(job.model)[job.op_index]["inputs"][0])[1]


@lru_cache(maxsize=None)
def _quant_table(model: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(oracle.model_path(model)),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    return {d["index"]: (d["quantization_parameters"]["scales"], d["quantization_parameters"]["zero_points"])
            for d in it.get_tensor_details()}


def quant(model: str, tensor: int) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized TFLite tensor."""
    scales, zps = _quant_table(model)[tensor]
    assert scales.size == 1, f"{model}: tensor {tensor} is not per-tensor quantized"
    return float(scales[0]), int(zps[0])


def expected_output(job: GoldenJob) -> np.ndarray:
    """TFLite's output of the job's operator, planar [C][H][W]."""
    op = tflite_ops(job.model)[job.op_index]
    return planar(reference_tensors(job.model)[op["outputs"][0]])


def is_reshuffled(job: GoldenJob) -> bool:
    """True when a TP reshuffle of the same operator feeds the NN job (Mesa's stride-2 rewrite)."""
    return any(j.kind == "TP" and j.role == "reshuffle" and j.op_index == job.op_index and j.submit == job.submit
               for j in golden_jobs(job.model, job.golden))


def compare(got: np.ndarray, want: np.ndarray) -> tuple[float, int]:
    """(percentage of exactly equal values, largest absolute difference)."""
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    return 100.0 * float((diff == 0).mean()), int(diff.max())


#: docs/mesa-differences.md: what npuc deliberately writes differently from Mesa, with tables the tests parse.
DIFFERENCES = Path(__file__).resolve().parents[1] / "docs" / "mesa-differences.md"
#: Descriptor fields that hold addresses (never compared: every submit places buffers elsewhere).
ADDRESSES = {"kernel_address", "in_image_address", "out_image_address"}


def documented_differences(heading: str) -> dict[str, set[str]]:
    """The table under the heading that starts with ``heading`` in docs/mesa-differences.md: field -> operator
    kinds ("all" for any)."""
    text = DIFFERENCES.read_text()
    start = text.index("\n" + heading)
    table = text[start + 1:].split("\n", 1)[1].split("\n#", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        kinds = {k.strip().strip("`") for k in cells[1].split(",")}
        for name in re.findall(r"`([a-z0-9_]+)`", cells[0]):
            rows[name] = kinds
    return rows


def undocumented_differences(ours: dict[str, int], mesa: dict[str, int], documented: dict[str, set[str]],
                             op_name: str) -> tuple[list[str], list[str]]:
    """(differing descriptor fields, those the documented table does not allow for ``op_name``)."""
    differing = [f.name for f in NN_DESCRIPTOR.fields if f.name not in ADDRESSES and ours[f.name] != mesa[f.name]]
    allowed = lambda name: bool({"all", op_name} & documented.get(name, set()))  # noqa: E731
    return differing, [f"{n}: npuc {ours[n]}, Mesa {mesa[n]}" for n in differing if not allowed(n)]


#: What makes two NN jobs the same computation: kernel shape, input and output channels, pooling, depthwise mode.
STRUCTURE_FIELDS = ("kernel_xy_size", "kernel_y_size", "kernel_z_size", "out_image_z_size", "pooling", "depthwise")


def compiled_alike(ours: dict[str, int], mesa: dict[str, int]) -> bool:
    """npuc's job and Mesa's have the same structure (so every other field can be compared)."""
    return all(ours.get(k, 0) == mesa[k] for k in STRUCTURE_FIELDS)
