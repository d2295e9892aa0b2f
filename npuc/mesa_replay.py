"""Replay Mesa's golden submits on the simulator and classify an image, as Mesa on the NPU would.

``python -m npuc.mesa_replay GOLDEN_DIR MODEL.tflite IMAGE [--labels FILE] [-n 5]``

The golden directory (``npuc.golden``) holds exactly what Mesa handed the
kernel; this tool creates the same buffers at the same addresses on a
:class:`SimDevice`, fills descriptor and coefficient buffers with the kept
bytes, writes the input where Mesa's first job reads it and replays every submit
in order.  The TFLite operators Mesa left to the CPU (those jobs.json does not
list, e.g. AVERAGE_POOL_2D, RESHAPE, SOFTMAX) run between submits with npuc's
host kernels on the frontend's IR.  Tensors cross between the two worlds in
Mesa's buffers: jobs.json says which buffer a tensor lives in, and its layout
follows from the job that wrote or reads it (a detranspose writes NHWC, a
transpose reads NHWC, NN jobs and reshuffles use planar [C][H][W]; 1x1 or
single-channel tensors are the same bytes either way).  Signed tensors are
stored +128, as Mesa stores them.

The top N results print exactly like TFLite's label_image.
"""

from __future__ import annotations

import argparse
import bisect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TextIO

import numpy as np

from .hw.target import TARGETS, VIPNANO_QI, Target, get_target
from .errors import InputError, NpucError
from .frontend_tflite import load_tflite
from .ir import Graph, Op, Tensor
from .host import fold
from .hw.kernel_abi import DeviceBuffer, SubmitBo
from .host.graph_exec import bind_inputs, run_op_on_host
from .runtime.image import load_image_input
from .sim.device import SimDevice
from .golden import GoldenDir, GoldenOp, GoldenSubmit, load_golden

NHWC = "NHWC"
PLANAR = "planar"

#: Layout a TP role reads its input in and writes its output in; roles not listed
#: (element-wise PAD and activations) keep the layout they are given.
_ROLE_IN = {"transpose": NHWC, "reshuffle": PLANAR, "detranspose": PLANAR}
_ROLE_OUT = {"transpose": PLANAR, "reshuffle": PLANAR, "detranspose": NHWC}

#: label_image's defaults: results below this confidence are not printed.
LABEL_IMAGE_THRESHOLD = 0.001

_SIGN_FLIP = np.uint8(0x80)  # int8 <-> Mesa's uint8 storage (+128)


@dataclass(frozen=True)
class Placement:
    """Where a tensor lives in Mesa's buffers."""

    address: int
    layout: str


class MesaReplay:
    """Golden submits bound to a SimDevice, ready to run inferences; buffers persist between runs."""

    def __init__(self, golden: GoldenDir, graph: Graph, target: Target = VIPNANO_QI,
                 trace: TextIO | None = None) -> None:
        self.golden, self.graph = golden, graph
        self._trace = trace
        self.device = SimDevice(target)
        _check_model(golden, graph)
        self._op_submit = self._submit_of_ops()
        self._submits = {s.name: s for s in golden.submits}
        self._buffers: dict[int, tuple[DeviceBuffer, int]] = {}  # handle -> (buffer, address)
        self._submit_bos: dict[str, list[SubmitBo]] = {}
        self._kept: dict[str, list[tuple[DeviceBuffer, np.ndarray]]] = {}
        for s in golden.submits:
            self._bind(s)
        pinned = sorted(((addr, buf) for buf, addr in self._buffers.values()), key=lambda p: p[0])
        self._starts = [a for a, _ in pinned]
        self._pinned = [b for _, b in pinned]
        self._inputs, self._outputs = self._plan_boundaries()
        self._host = {op.index: fold(graph, op) for op in graph.ops if op.index not in self._op_submit}

    # -- setup ---------------------------------------------------------------------------

    def _submit_of_ops(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for op in self.golden.ops:
            if out.setdefault(op.tflite_op, op.submit) != op.submit:
                raise InputError(f"{self.golden.path}: TFLite operator {op.tflite_op} spans {out[op.tflite_op]} "
                                 f"and {op.submit}")
        return out

    def _bind(self, s: GoldenSubmit) -> None:
        """Create (or reuse, by kernel handle) the submit's buffers at their recorded addresses."""
        bos, kept = [], []
        for b in s.bos:
            known = self._buffers.get(b.handle)
            if known is None:
                known = (self.device.new_buffer(b.size), b.address)
                self._buffers[b.handle] = known
            buf, addr = known
            if addr != b.address or buf.size != b.size:
                raise InputError(f"{self.golden.path / s.name}: buffer handle {b.handle} changes from "
                                 f"{buf.size} bytes at 0x{addr:x} to {b.size} bytes at 0x{b.address:x}")
            bos.append(SubmitBo(buf, b.address, b.flags))
            data = b.contents()
            if data:
                kept.append((buf, np.frombuffer(data, dtype=np.uint8)))
        self._submit_bos[s.name] = bos
        self._kept[s.name] = kept

    def _plan_boundaries(self) -> tuple[dict[str, dict[int, Placement]], dict[str, dict[int, Placement]]]:
        """For every submit: the tensors it reads from outside and those it hands out, with their placements."""
        g = self.graph
        producers, consumers = g.producers(), g.consumers()
        layouts = _output_layouts(self.golden.ops)
        inputs: dict[str, dict[int, Placement]] = {s.name: {} for s in self.golden.submits}
        outputs: dict[str, dict[int, Placement]] = {s.name: {} for s in self.golden.submits}
        for op in g.ops:
            s = self._op_submit.get(op.index)
            if s is None:
                continue
            for t in op.inputs:
                if t is None or g.tensors[t].is_constant or t in inputs[s]:
                    continue
                producer = producers.get(t)
                if producer is None or self._op_submit.get(producer.index) != s:
                    inputs[s][t] = self._consumer_placement(op.index, t)
            for t in op.outputs:
                readers = {self._op_submit.get(c.index) for c in consumers.get(t, [])}
                if t in g.outputs or readers - {s}:
                    outputs[s][t] = self._producer_placement(op.index, t, layouts)
        return inputs, outputs

    def _consumer_placement(self, op_index: int, t: int) -> Placement:
        for op in self.golden.ops:
            if op.tflite_op == op_index and op.tensor_in == t:
                return Placement(op.jobs[0].input, _ROLE_IN.get(op.tp_role, PLANAR if op.kind == "NN" else NHWC))
        raise InputError(f"{self.golden.path}: no job of TFLite operator {op_index} reads tensor {t} "
                         f"({self.graph.tensors[t].name!r}), so its place in Mesa's buffers is unknown")

    def _producer_placement(self, op_index: int, t: int, layouts: dict[int, str]) -> Placement:
        found = [(n, op) for n, op in enumerate(self.golden.ops) if op.tflite_op == op_index and op.tensor_out == t]
        if not found:
            raise InputError(f"{self.golden.path}: no job of TFLite operator {op_index} writes tensor {t} "
                             f"({self.graph.tensors[t].name!r}), so its place in Mesa's buffers is unknown")
        n, op = found[-1]
        return Placement(op.jobs[0].output, layouts[n])

    # -- running -------------------------------------------------------------------------

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Graph outputs for ``inputs`` (graph-input order, the IR's shapes and dtypes)."""
        g = self.graph
        values = bind_inputs(g, inputs)
        pending = [s.name for s in self.golden.submits]
        for op in g.ops:
            s = self._op_submit.get(op.index)
            if s is None:
                self._run_host(op, values)
            elif s in pending:
                while pending and pending[0] != s:
                    self._run_submit(pending.pop(0), values)
                self._run_submit(pending.pop(0), values)
        for s in pending:
            self._run_submit(s, values)
        return [self._value(t, values) for t in g.outputs]

    def _value(self, t: int, values: dict[int, np.ndarray]) -> np.ndarray:
        tensor = self.graph.tensors[t]
        if tensor.is_constant:
            return tensor.data
        if t not in values:
            raise InputError(f"{self.golden.path}: tensor {t} ({tensor.name!r}) is needed before anything "
                             f"produced it")
        return values[t]

    def _run_host(self, op: Op, values: dict[int, np.ndarray]) -> None:
        for t in op.inputs:
            if t is not None:
                self._value(t, values)  # a clear error if Mesa's jobs never produced an input
        run_op_on_host(self.graph, op, *self._host[op.index], values)

    def _run_submit(self, name: str, values: dict[int, np.ndarray]) -> None:
        for buf, data in self._kept[name]:
            buf.data[:data.size] = data
        for t, place in self._inputs[name].items():
            self._store(self.graph.tensors[t], place, self._value(t, values))
        s = self._submits[name]
        self.device.submit(s.stream, self._submit_bos[name], f"submit {s.index}")
        if self._trace is not None and self.device.trace.jobs:
            print(self.device.trace.describe(), file=self._trace)
        for t, place in self._outputs[name].items():
            values[t] = self._load(self.graph.tensors[t], place)

    # -- tensors in Mesa's buffers -----------------------------------------------------

    def _bytes_at(self, place: Placement, tensor: Tensor) -> np.ndarray:
        i = bisect.bisect_right(self._starts, place.address) - 1
        size = tensor.num_elements
        if i >= 0:
            buf = self._pinned[i]
            offset = place.address - self._starts[i]
            if offset + size <= buf.size:
                return buf.data[offset:offset + size]
        raise InputError(f"{self.golden.path}: tensor {tensor.name!r} ({size} bytes at 0x{place.address:x}) "
                         f"does not lie in one of the recorded buffers")

    def _store(self, tensor: Tensor, place: Placement, value: np.ndarray) -> None:
        self._bytes_at(place, tensor)[:] = _to_layout(_to_storage(tensor, value), place.layout).ravel()

    def _load(self, tensor: Tensor, place: Placement) -> np.ndarray:
        raw = self._bytes_at(place, tensor).copy()
        return _from_storage(tensor, _from_layout(raw, tensor.shape, place.layout))


def _check_model(golden: GoldenDir, graph: Graph) -> None:
    names = [op["op_name"] for op in golden.tflite_ops]
    model = [op.opcode for op in graph.ops]
    if names != model:
        k = next((i for i, (a, b) in enumerate(zip(names, model)) if a != b), min(len(names), len(model)))
        raise InputError(f"{golden.path}: its {len(names)} TFLite operators do not match the model's "
                         f"{len(model)} (operator {k}: {names[k] if k < len(names) else 'none'} vs "
                         f"{model[k] if k < len(model) else 'none'})")
    for op in golden.ops:
        if not 0 <= op.tflite_op < len(graph.ops):
            raise InputError(f"{golden.path}: jobs.json refers to TFLite operator {op.tflite_op}, "
                             f"but the model has {len(graph.ops)}")


def _output_layouts(ops: Sequence[GoldenOp]) -> dict[int, str]:
    """Layout each golden operation writes, propagated through layout-keeping roles within a partition."""
    seen: dict[tuple[int, int], str] = {}
    out: dict[int, str] = {}
    for n, op in enumerate(ops):
        if op.kind == "NN":
            layout = PLANAR
        else:
            layout = _ROLE_OUT.get(op.tp_role) or seen.get((op.partition, op.tensor_in), NHWC)
        seen[(op.partition, op.tensor_out)] = out[n] = layout
    return out


def _to_storage(tensor: Tensor, value: np.ndarray) -> np.ndarray:
    if tensor.dtype == "uint8":
        return np.asarray(value, dtype=np.uint8)
    if tensor.dtype == "int8":
        return np.asarray(value, dtype=np.int8).view(np.uint8) ^ _SIGN_FLIP
    raise InputError(f"tensor {tensor.name!r} of type {tensor.dtype} cannot live in an NPU buffer (8-bit only)")


def _from_storage(tensor: Tensor, raw: np.ndarray) -> np.ndarray:
    if tensor.dtype == "int8":
        return (raw ^ _SIGN_FLIP).view(np.int8)
    return _to_storage(tensor, raw)


def _to_layout(nhwc: np.ndarray, layout: str) -> np.ndarray:
    return nhwc.transpose(0, 3, 1, 2) if layout == PLANAR and nhwc.ndim == 4 else nhwc


def _from_layout(raw: np.ndarray, shape: tuple[int, ...], layout: str) -> np.ndarray:
    if layout == PLANAR and len(shape) == 4:
        n, h, w, c = shape
        return raw.reshape(n, c, h, w).transpose(0, 2, 3, 1).copy()
    return raw.reshape(shape)


# -- label_image output ------------------------------------------------------------------

def label_image_scores(output: np.ndarray) -> np.ndarray:
    """Confidences as label_image derives them: uint8 / 255, (int8 + 128) / 256, floats as they are."""
    flat = output.reshape(-1)
    if flat.dtype == np.uint8:
        return flat.astype(np.float32) / np.float32(255.0)
    if flat.dtype == np.int8:
        return (flat.astype(np.float32) + 128) / np.float32(256.0)
    return flat.astype(np.float32)


def top_results(output: np.ndarray, n: int) -> list[tuple[float, int]]:
    """label_image's top N: (confidence, index) above its threshold, best first, ties by higher index."""
    scores = label_image_scores(output)
    keep = [(float(s), i) for i, s in enumerate(scores) if s >= LABEL_IMAGE_THRESHOLD]
    return sorted(keep, reverse=True)[:max(n, 0)]


def format_results(results: list[tuple[float, int]], labels: list[str] | None) -> list[str]:
    """``0.815686: 653 military uniform`` lines (six significant digits, like C++ streams)."""
    out = []
    for score, index in results:
        label = f" {labels[index]}" if labels is not None and index < len(labels) else ""
        out.append(f"{score:.6g}: {index}{label}")
    return out


def _read_labels(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError as e:
        raise InputError(f"{path}: cannot read labels ({e.strerror})") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m npuc.mesa_replay", description=__doc__.splitlines()[0])
    parser.add_argument("golden", help="golden directory (submit_NNN/, jobs.json, tflite_ops.json)")
    parser.add_argument("model", help="the .tflite model the golden directory was recorded for")
    parser.add_argument("image", help="input image (BMP, PNG, JPEG ...)")
    parser.add_argument("--labels", help="label file, one label per line")
    parser.add_argument("-n", type=int, default=5, help="number of results to print (default 5)")
    parser.add_argument("--target", default=VIPNANO_QI.name, choices=sorted(TARGETS), help="simulated NPU")
    parser.add_argument("--trace", action="store_true", help="list every job run on stderr")
    args = parser.parse_args(argv)
    try:
        graph = load_tflite(args.model)
        if len(graph.inputs) != 1 or len(graph.tensors[graph.inputs[0]].shape) != 4:
            raise InputError(f"{args.model}: expects one NHWC image input")
        inp = graph.tensors[graph.inputs[0]]
        image = load_image_input(args.image, inp.shape[1], inp.shape[2], inp.dtype)
        labels = _read_labels(args.labels) if args.labels else None
        replay = MesaReplay(load_golden(args.golden), graph, get_target(args.target),
                            sys.stderr if args.trace else None)
        output = replay.run([image])[0]
    except NpucError as e:
        print(f"replay_mesa: {e}", file=sys.stderr)
        return 1
    for line in format_results(top_results(output, args.n), labels):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
