"""``npuc verify``: run a compiled model on the simulator and compare every layer with TFLite's reference kernels.

Two runs of the blob on the simulated NPU, both from the same inputs:

* **in the run**: the program as it runs on a board.  Each model tensor is
  read right before the first step that reads it, or after the step that
  wrote it when nothing later in that submit overwrites its bytes (with
  ``npuc compile --one-job-per-submit`` every job is a submit, so every
  tensor is seen); the graph outputs at the end.  Differences here
  accumulate from layer to layer, and the final output decides the verdict.
* **own** (blobs with one job per submit): each operator's steps run alone
  from TFLite's values of the tensors they read, so a layer's own error is
  not hidden or inflated by its predecessors'.  The first layer whose own
  error exceeds the tolerance is the one to blame.

The reference is ai-edge-litert's ``BUILTIN_REF`` kernels when it is
installed (a test extra, not a runtime dependency), otherwise npuc's host
kernels, which are bit-exact with them (a ``--cpu-only`` blob run step by
step).  Values are compared in TFLite's own representation (NHWC, the
model's element type); differences are in quantization steps.

Verdict (the exit status): a classifier's output (one output of shape
[1, N] or [N], N > 1) passes when its top-1 class equals TFLite's, or when
TFLite scores the two classes within :data:`NEAR_TIE` steps of each other; an
output of ARG_MAX or ARG_MIN (indices, such as a segmentation map, where a
difference of values means nothing) passes when at least :data:`INDEX_AGREEMENT`
of its values are TFLite's; any other output passes when every value is within :data:`TOLERANCE` steps
(floating-point outputs: within ``TOLERANCE`` 256ths of the largest
reference magnitude).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import vipbin
from .blob_program import DecodedBlob, Entry, decode_blob
from .errors import BlobError, InputError
from .ir import Graph
from .program_meta import HOST, display_name
from .runtime.runtime import Runtime
from .sim.device import SimDevice

#: Largest difference, in quantization steps, that counts as agreement (Mesa's test tolerance).
TOLERANCE = 2
#: A classifier's top-1 may differ from TFLite's when TFLite scores the two classes this close.
NEAR_TIE = 4
#: Floating-point values: the tolerance is TOLERANCE / FLOAT_STEPS of the largest reference magnitude.
FLOAT_STEPS = 256
#: Share of an index output (ARG_MAX, ARG_MIN) that must equal TFLite's: a segmentation map's pixels.
INDEX_AGREEMENT = 0.99
#: Operators whose outputs are indices, judged by agreement rather than by difference.
INDEX_OPS = ("ARG_MAX", "ARG_MIN")


@dataclass(frozen=True)
class Comparison:
    """One tensor against TFLite's."""

    exact: float      # share of equal values, 0..1
    max_diff: float   # in quantization steps (integers), or absolute (floats)
    within: bool      # max_diff within the tolerance


@dataclass
class LayerResult:
    """One model operator: where it ran and how its outputs compare."""

    op: int
    opcode: str
    unit: str
    output: str
    own: Comparison | None = None
    run: Comparison | None = None


@dataclass
class OutputResult:
    """The verdict on one graph output."""

    name: str
    rule: str
    passed: bool
    detail: str


@dataclass
class VerifyResult:
    """Every layer's comparisons, the verdict on every output, and what the reference was."""

    layers: list[LayerResult]
    outputs: list[OutputResult]
    reference: str
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def judged_alone(self) -> bool:
        """Whether layers were run alone (then only their own errors blame them)."""
        return any(layer.own is not None for layer in self.layers)

    def verdict(self, layer: LayerResult) -> Comparison | None:
        """The comparison that blames ``layer``: its own error, or its error in the run when no layer ran alone."""
        return layer.own if self.judged_alone else layer.run

    @property
    def first_beyond(self) -> LayerResult | None:
        """The first layer whose error (see :meth:`verdict`) exceeds the tolerance."""
        return next((layer for layer in self.layers if (c := self.verdict(layer)) is not None and not c.within),
                    None)


def compare(got: np.ndarray, want: np.ndarray) -> Comparison:
    """Share of equal values and the largest difference (steps for integers, absolute for floats)."""
    if want.size == 0:
        return Comparison(1.0, 0.0, True)
    if np.issubdtype(want.dtype, np.floating):
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        limit = TOLERANCE / FLOAT_STEPS * max(float(np.abs(want).max()), np.finfo(np.float32).tiny)
        return Comparison(float((diff == 0).mean()), float(diff.max()), bool(diff.max() <= limit))
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    return Comparison(float((diff == 0).mean()), float(diff.max()), bool(diff.max() <= TOLERANCE))


def judge_output(name: str, got: np.ndarray, want: np.ndarray, classifier: bool,
                 indices: bool = False) -> OutputResult:
    """The verdict on one graph output (see the module docstring)."""
    c = compare(got, want)
    if indices:
        return OutputResult(name, f"indices: at least {INDEX_AGREEMENT:.0%} equal", c.exact >= INDEX_AGREEMENT,
                            f"{c.exact:.2%} of values equal")
    if classifier:
        flat_got, flat_want = got.reshape(-1).astype(np.float64), want.reshape(-1).astype(np.float64)
        ours, theirs = int(np.argmax(flat_got)), int(np.argmax(flat_want))
        gap = flat_want[theirs] - flat_want[ours]
        passed = ours == theirs or gap <= NEAR_TIE
        detail = (f"top-1 class {ours}, TFLite's {theirs}" + ("" if ours == theirs else f" (TFLite scores them "
                                                                                         f"{gap:g} steps apart)")
                  + f"; {c.exact:.2%} of values equal, largest difference {c.max_diff:g}")
        return OutputResult(name, f"classifier: same top-1, or a near tie within {NEAR_TIE} steps", passed, detail)
    rule = (f"every value within {TOLERANCE}/{FLOAT_STEPS} of the largest reference magnitude"
            if np.issubdtype(want.dtype, np.floating) else f"every value within {TOLERANCE} steps")
    return OutputResult(name, rule, c.within, f"{c.exact:.2%} of values equal, largest difference {c.max_diff:g}")


def is_classifier(shape: tuple[int, ...], dtype: str) -> bool:
    """One row of class scores: [N] or [1, N] with N > 1, quantized to 8 bits."""
    return dtype in ("uint8", "int8") and (len(shape) == 1 or (len(shape) == 2 and shape[0] == 1)) and shape[-1] > 1


# -- reading and writing tensors in TFLite's representation ---------------------------------------------


def to_tflite(flat: np.ndarray, info: vipbin.TensorInfo, dtype: np.dtype) -> np.ndarray | None:
    """A copy of a blob tensor's bytes as TFLite's value (NHWC, ``dtype``); None when the types do not
    correspond."""
    shape = tuple(info.shape)
    if info.layout == "planar" and len(shape) == 4:
        b, h, w, c = shape
        value = flat.reshape(b, c, h, w).transpose(0, 2, 3, 1)
    else:
        value = flat.reshape(shape)
    if value.dtype == dtype:
        return value.copy()
    if value.dtype == np.uint8 and dtype == np.int8:   # int8 stored by the NPU as uint8 (+128)
        return (value ^ np.uint8(0x80)).view(np.int8)
    return None


def from_tflite(value: np.ndarray, info: vipbin.TensorInfo) -> np.ndarray | None:
    """TFLite's value as the flat contents of blob tensor ``info`` (the inverse of :func:`to_tflite`)."""
    if info.layout == "planar" and value.ndim == 4:
        value = value.transpose(0, 3, 1, 2)
    flat = np.ascontiguousarray(value).reshape(-1)
    if flat.dtype == np.dtype(info.dtype):
        return flat
    if flat.dtype == np.int8 and info.dtype == "uint8":
        return flat.view(np.uint8) ^ np.uint8(0x80)
    return None


class _Program:
    """What the checks need to know about a decoded blob: which model tensor each blob tensor holds,
    which steps read and write it (directly, or through the views it consists of), and where it lies."""

    def __init__(self, decoded: DecodedBlob, graph: Graph) -> None:
        self.decoded, self.graph = decoded, graph
        blob = decoded.blob
        account = decoded.program
        holds = account.holds if account else {}
        self.holds = {t: holds[info.name] for t, info in enumerate(blob.tensors) if info.name in holds}
        self.reads: list[set[int]] = []
        self.writes: list[set[int]] = []
        for e in decoded.entries:
            if e.kind == HOST:
                step = blob.steps[e.step]
                assert isinstance(step, vipbin.HostStep)
                self.reads.append({t for t in step.inputs if t is not None})
                self.writes.append(set(step.outputs))
            else:
                names = (e.info.reads, e.info.writes) if e.info else ((), ())
                self.reads.append({t for t in map(decoded.tensor, names[0]) if t is not None})
                self.writes.append({t for t in map(decoded.tensor, names[1]) if t is not None})
        # bases[t]: the tensors whose bytes t views, transitively; parts[t]: the views of t.
        base = {decoded.tensor(v): decoded.tensor(b) for v, b in (account.views.items() if account else ())}
        self.bases: dict[int, set[int]] = {}
        self.parts: dict[int, set[int]] = {}
        for view in base:
            seen, t = set(), base[view]
            while t is not None and t not in seen:
                seen.add(t)
                self.parts.setdefault(t, set()).add(view)
                t = base.get(t)
            self.bases[view] = seen
        self.last_writer = {t: max((e.index for e in decoded.entries if self.writes_into(e.index, t)), default=-1)
                            for t in self.holds}

    def writes_into(self, entry: int, t: int) -> bool:
        """Whether the entry writes bytes of ``t``: t itself, a view of it, or a tensor it views."""
        return bool(self.writes[entry] & ({t} | self.parts.get(t, set()) | self.bases.get(t, set())))

    def reads_all(self, entry: int, t: int) -> bool:
        """Whether the entry reads all of ``t``: t itself or a tensor it views."""
        return bool(self.reads[entry] & ({t} | self.bases.get(t, set())))

    def overlaps(self, a: int, b: int) -> bool:
        x, y = self.decoded.blob.tensors[a], self.decoded.blob.tensors[b]
        return x.buffer == y.buffer and x.offset < y.offset + y.nbytes and y.offset < x.offset + x.nbytes

    def capture_points(self) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
        """Blob tensors to read before each blob step and after each blob step (see the module docstring)."""
        entries = self.decoded.entries
        before: dict[int, list[int]] = {}
        after: dict[int, list[int]] = {}
        for t in self.holds:
            first_read = next((e.index for e in entries if self.reads_all(e.index, t)), None)
            last_write = max((e.index for e in entries[:first_read] if self.writes_into(e.index, t)), default=None)
            if last_write is None:
                continue
            if first_read is not None and entries[last_write].step != entries[first_read].step:
                before.setdefault(entries[first_read].step, []).append(t)
            elif self._intact(t, last_write):
                after.setdefault(entries[last_write].step, []).append(t)
        return before, after

    def _intact(self, t: int, writer: int) -> bool:
        """Nothing after ``writer`` in its submit writes over tensor ``t``."""
        entries = self.decoded.entries
        later = [e for e in entries[writer + 1:] if e.step == entries[writer].step]
        return not any(self.overlaps(t, w) for e in later for w in self.writes[e.index])


# -- the two runs ---------------------------------------------------------------------------------------


def _snapshot(runtime: Runtime, prog: _Program, tensors: list[int], into: dict[int, np.ndarray]) -> None:
    """Record the model tensors that ``tensors`` hold, unless already recorded: the first value seen is the
    producer's (a later layout conversion of the same tensor would hide the producer's error)."""
    g = prog.graph
    for t in tensors:
        m = prog.holds[t]
        if m in into:
            continue
        value = to_tflite(runtime.tensor_view(t).reshape(-1), runtime.blob.tensors[t], np.dtype(g.tensors[m].dtype))
        if value is not None:
            into[m] = value


def run_in_order(runtime: Runtime, prog: _Program) -> tuple[dict[int, np.ndarray], list[np.ndarray]]:
    """The program as it runs; every model tensor that can be seen, and the graph outputs."""
    before, after = prog.capture_points()
    seen: dict[int, np.ndarray] = {}
    for i in range(len(runtime.blob.steps)):
        _snapshot(runtime, prog, before.get(i, []), seen)
        runtime.run_step(i)
        _snapshot(runtime, prog, after.get(i, []), seen)
    outputs = [runtime.get_output(k) for k in range(len(runtime.blob.outputs))]
    _snapshot(runtime, prog, [t for t in runtime.blob.outputs if t in prog.holds], seen)
    return seen, outputs


def _groups(entries: list[Entry]) -> list[list[Entry]]:
    """Consecutive steps of the same operator."""
    groups: list[list[Entry]] = []
    for e in entries:
        if groups and groups[-1][0].op == e.op:
            groups[-1].append(e)
        else:
            groups.append([e])
    return groups


def run_each_op(runtime: Runtime, prog: _Program, reference: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Every operator's steps alone, from TFLite's values of what they read (one job per submit only).

    A tensor is read back after the operator that writes its bytes last, so a
    concatenation whose inputs are written into it in place is read complete.
    """
    blob = runtime.blob
    own: dict[int, np.ndarray] = {}
    for group in _groups(prog.decoded.entries):
        for k, e in enumerate(group):
            for t in prog.reads[e.index]:
                m = prog.holds.get(t)
                if m is None or m not in reference or any(prog.writes_into(x.index, t) for x in group[:k]):
                    continue
                flat = from_tflite(reference[m], blob.tensors[t])
                if flat is not None:
                    runtime.tensor_view(t).reshape(-1)[...] = flat
            runtime.run_step(e.step)
        indices = {e.index for e in group}
        _snapshot(runtime, prog, [t for t in prog.holds if prog.last_writer[t] in indices], own)
    return own


# -- references -----------------------------------------------------------------------------------------


def litert_reference(model: Path, inputs: list[np.ndarray]) -> dict[int, np.ndarray] | None:
    """Every tensor of ai-edge-litert's BUILTIN_REF inference, by tensor index (None if it is not installed)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        return None
    it = Interpreter(model_path=str(model), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    out = {}
    for d in it.get_tensor_details():
        try:
            out[d["index"]] = it.get_tensor(d["index"]).copy()
        except ValueError:  # tensors without data
            pass
    return out


def host_reference(model: Path, graph: Graph, inputs: list[np.ndarray], target: str) -> dict[int, np.ndarray]:
    """Every tensor of a --cpu-only blob's run (npuc's host kernels, bit-exact with TFLite's), by index."""
    from .driver import compile_model

    result = compile_model(model, target, npu=False)
    decoded = decode_blob(vipbin.read_blob(result.blob, f"{model} (reference)"), f"{model} (reference)")
    runtime = Runtime(decoded.blob, SimDevice(decoded.target))
    for k, value in enumerate(inputs):
        runtime.set_input(k, value)
    values, _ = run_in_order(runtime, _Program(decoded, graph))
    for t, m in zip(graph.inputs, inputs):
        values.setdefault(t, m)
    return values


# -- the command ----------------------------------------------------------------------------------------


def check_model_hash(blob: vipbin.Blob, model: Path, blob_path: Path) -> None:
    """Refuse a blob compiled from another model."""
    try:
        digest = hashlib.sha256(model.read_bytes()).digest()
    except OSError as e:
        raise InputError(f"{model}: cannot read ({e.strerror})") from None
    if digest != blob.model_sha256:
        raise BlobError(f"{blob_path}: compiled from a model with sha256 {blob.model_sha256.hex()[:16]}..., "
                        f"not from {model} ({digest.hex()[:16]}...)")


def verify(model: Path, blob: vipbin.Blob, blob_name: str, graph: Graph, inputs: Callable[[Runtime], list[np.ndarray]],
           target: str) -> VerifyResult:
    """Run ``blob`` (compiled from ``model``) both ways and compare with the reference.

    ``inputs`` gives the graph inputs once the runtime (and so the input tensors' types) exists.
    """
    decoded = decode_blob(blob, blob_name)
    runtime = Runtime(blob, SimDevice(decoded.target))
    values = inputs(runtime)
    for k, value in enumerate(values):
        runtime.set_input(k, value)
    prog = _Program(decoded, graph)
    notes = []
    if decoded.program is None:
        notes.append("the blob carries no compiler account (META npuc.program): only its outputs are compared")
    reference = litert_reference(model, values)
    source = "TFLite's reference kernels (ai-edge-litert, BUILTIN_REF)"
    if reference is None:
        reference = host_reference(model, graph, values, target)
        source = "npuc's host kernels (ai-edge-litert is not installed; they are bit-exact with TFLite's)"
    seen, outputs = run_in_order(runtime, prog)
    one_job_per_submit = max(Counter(e.step for e in decoded.entries).values(), default=0) <= 1
    own = run_each_op(runtime, prog, reference) if one_job_per_submit and decoded.program else {}
    if decoded.program is not None and not one_job_per_submit:
        notes.append("several jobs share a submit: layers are compared as they run only where their values "
                     "survive to a submit boundary, and no layer alone (compile with --one-job-per-submit)")
    units = {o.index: o.unit for o in decoded.program.ops} if decoded.program else {}
    return VerifyResult(_layers(graph, units, reference, seen, own),
                        _judge_outputs(blob, blob_name, graph, outputs, reference), source, notes)


def _layers(graph: Graph, units: dict[int, str], reference: dict[int, np.ndarray], seen: dict[int, np.ndarray],
            own: dict[int, np.ndarray]) -> list[LayerResult]:
    """Every operator whose first output TFLite computed, with the comparisons that could be made."""
    layers = []
    for op in graph.ops:
        outs = [t for t in op.outputs if t in reference]
        if not outs:
            continue
        t = outs[0]
        layer = LayerResult(op.index, op.opcode, units.get(op.index, "?"), graph.tensors[t].name)
        if t in seen:
            layer.run = compare(seen[t], reference[t])
        if t in own:
            layer.own = compare(own[t], reference[t])
        layers.append(layer)
    return layers


def _judge_outputs(blob: vipbin.Blob, blob_name: str, graph: Graph, outputs: list[np.ndarray],
                   reference: dict[int, np.ndarray]) -> list[OutputResult]:
    """The verdict on every graph output (the classifier rule only for a model with one output)."""
    results = []
    producer = {t: op.opcode for op in graph.ops for t in op.outputs}
    for k, value in enumerate(outputs):
        info = blob.tensors[blob.outputs[k]]
        want = reference.get(graph.outputs[k]) if k < len(graph.outputs) else None
        if want is None or want.shape != value.shape:
            raise BlobError(f"{blob_name}: output {info.name!r} does not correspond to the model's output {k}")
        classifier = len(outputs) == 1 and is_classifier(tuple(info.shape), info.dtype)
        indices = producer.get(graph.outputs[k]) in INDEX_OPS
        results.append(judge_output(info.name, value, want, classifier, indices))
    return results


def render(result: VerifyResult) -> str:
    """The text ``npuc verify`` prints."""
    fmt = lambda c: f"{c.exact * 100:8.3f}% {c.max_diff:6g}" if c else f"{'-':>9} {'-':>6}"  # noqa: E731
    out = [f"reference: {result.reference}; tolerance {TOLERANCE} steps",
           f"{'#':>4} {'operator':<20} {'unit':<5} {'own: equal':>10} {'max':>6}   {'in run: equal':>13} {'max':>6}"]
    for layer in result.layers:
        c = result.verdict(layer)
        flag = "" if c is None or c.within else "  <-- beyond"
        out.append(f"{layer.op:>4} {layer.opcode:<20} {layer.unit:<5} {fmt(layer.own):>17}   {fmt(layer.run):>20}"
                   f"{flag}")
    out += [f"note: {n}" for n in result.notes]
    bad = result.first_beyond
    out.append("first layer beyond the tolerance: " + (f"#{bad.op} {bad.opcode} ({bad.unit}), output "
                                                       f"{display_name(bad.output)!r}" if bad else "none")
               + ("" if bad is None or result.judged_alone else
                  " (in the run: its error includes what earlier layers accumulated)"))
    for o in result.outputs:
        out.append(f"output {o.name!r}: {'PASS' if o.passed else 'FAIL'} ({o.rule}): {o.detail}")
    return "\n".join(out)
