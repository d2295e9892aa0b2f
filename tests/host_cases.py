"""Seeded random cases of one operator, checked against TFLite's reference kernels in Python and in C.

A *generator* adds one instance of an operator to a subgraph, with shapes,
options and quantization drawn from a seeded ``numpy.random.Generator``, and
returns the instance's output tensors.  :func:`batch_model` puts many seeded
instances side by side in one TFLite model, so that one TFLite invoke, one
``npuc compile --cpu-only`` and one run of each runtime check them all:

* :func:`check_python` compiles the model for the CPU and runs it on the
  Python runtime; every output must equal TFLite's reference kernels' bit for
  bit (NaN equal to NaN);
* :func:`check_c` runs the same blob with the C runtime's ``npu-run`` on the
  fake etnaviv device; every output must equal the Python runtime's byte for
  byte.

CI runs :data:`CASES` instances per operator; ``NPUC_LONG_TESTS=1`` runs ten
times as many.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from model_builder import ModelBuilder, SubgraphBuilder
from npuc import vipbin
from npuc.driver import compile_model
from npuc.runtime.runtime import Runtime
from npuc.sim.device import SimDevice

#: Seeded instances per operator (per test), and the opt-in long run's.
LONG = os.environ.get("NPUC_LONG_TESTS") == "1"
CASES = 240 if LONG else 24

#: ``generator(rng, g)`` adds one instance of an operator to ``g`` and returns its outputs.
Generator = Callable[[np.random.Generator, SubgraphBuilder], list[int]]

_INT_TYPES = ("uint8", "int8", "int16", "int32", "int64")


def quant(rng: np.random.Generator, dtype: str, scale: tuple[float, float] = (1e-3, 0.5)) -> dict:
    """A random per-tensor quantization for ``dtype``: log-uniform scale, zero point inside the type."""
    s = float(np.exp(rng.uniform(np.log(scale[0]), np.log(scale[1]))))
    if dtype == "int16":
        return {"scale": s, "zero_point": 0}
    info = np.iinfo(dtype)
    return {"scale": s, "zero_point": int(rng.integers(int(info.min), int(info.max), endpoint=True))}


def values(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Random values of a type: the whole range of an integer type, normal floats, fair booleans."""
    if dtype in _INT_TYPES:
        info = np.iinfo(dtype)
        lo, hi = (int(info.min), int(info.max)) if dtype in ("uint8", "int8", "int16") else (-1000, 1000)
        return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    return (rng.standard_normal(shape) * 3).astype(dtype)


@dataclass
class Batch:
    """A model holding seeded instances of one operator, and the names of its outputs' instances."""

    model: bytes
    labels: list[str]     # per graph output: "seed S output K"


def batch_model(generator: Generator, seeds: range | list[int]) -> Batch:
    """One model with an instance of the operator for each seed, side by side."""
    m = ModelBuilder()
    labels = []
    for seed in seeds:
        outs = generator(np.random.default_rng(seed), m.main)
        for k, t in enumerate(outs):
            m.main.output(t)
            labels.append(f"seed {seed} output {k}")
    return Batch(m.build(), labels)


def _interpreter(model: bytes, builtin: bool):
    """TFLite's reference kernels, or (``builtin``, for the operators its reference resolver lacks) its builtin
    kernels without delegates."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin else OpResolverType.BUILTIN_REF
    it = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return it


def random_inputs(model: bytes, seed: int, builtin: bool = False) -> list[np.ndarray]:
    """Random values for every graph input of ``model``, in graph-input order."""
    rng = np.random.default_rng(10_000 + seed)
    return [values(rng, tuple(d["shape"]), np.dtype(d["dtype"]).name)
            for d in _interpreter(model, builtin).get_input_details()]


def tflite_outputs(model: bytes, inputs: list[np.ndarray], builtin: bool = False) -> list[np.ndarray]:
    """The graph outputs TFLite's reference (or ``builtin``) kernels compute for ``inputs``."""
    it = _interpreter(model, builtin)
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def differences(got: list[np.ndarray], want: list[np.ndarray], labels: list[str]) -> list[str]:
    """One line per output that differs in type, shape or any value (NaN equals NaN)."""
    out = []
    for label, g, w in zip(labels, got, want):
        if g.dtype != w.dtype or g.shape != w.shape:
            out.append(f"{label}: {g.dtype}{list(g.shape)}, expected {w.dtype}{list(w.shape)}")
            continue
        same = g == w
        if g.dtype.kind == "f":
            same |= np.isnan(g) & np.isnan(w)
        if not same.all():
            bad = np.argwhere(~same)
            first = tuple(bad[0])
            out.append(f"{label}: {bad.shape[0]}/{g.size} values differ, first at {[int(i) for i in first]}: "
                       f"{g[first]!r}, expected {w[first]!r}")
    return out


def compile_cpu(model: bytes, directory: Path) -> Path:
    """``npuc compile --cpu-only`` of ``model``; returns the blob's path."""
    src, out = directory / "model.tflite", directory / "model.vipbin"
    src.write_bytes(model)
    out.write_bytes(compile_model(src, npu=False).blob)
    return out


def python_outputs(blob_path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    runtime = Runtime(vipbin.load_blob(blob_path), SimDevice())
    for k, x in enumerate(inputs):
        runtime.set_input(k, x)
    return runtime.run()


def check_python(batch: Batch, directory: Path, runs: int = 2,
                 builtin: bool = False) -> tuple[Path, list[list[np.ndarray]]]:
    """The batch's CPU blob on the Python runtime against TFLite, over ``runs`` random input sets.

    Returns the blob and the inputs used, for :func:`check_c`.
    """
    blob = compile_cpu(batch.model, directory)
    used, failures = [], []
    for run in range(runs):
        inputs = random_inputs(batch.model, run, builtin)
        used.append(inputs)
        failures += differences(python_outputs(blob, inputs), tflite_outputs(batch.model, inputs, builtin),
                                batch.labels)
    assert not failures, "\n".join(failures[:20])
    return blob, used


def _c_run(npu_run: Path, env: dict[str, str], blob_path: Path, inputs: list[np.ndarray],
           directory: Path) -> subprocess.CompletedProcess:
    """The C runtime's npu-run on ``inputs`` (raw input files), outputs into directory/c_out."""
    blob = vipbin.load_blob(blob_path)
    args = [str(npu_run), str(blob_path)]
    for k, (t, x) in enumerate(zip(blob.inputs, inputs)):
        path = directory / f"input_{k}.bin"
        path.write_bytes(np.ascontiguousarray(x).tobytes())
        args += ["--input", f"{blob.tensors[t].name}={path}"]
    out_dir = directory / "c_out"
    out_dir.mkdir(exist_ok=True)
    return subprocess.run([*args, "-n", "0", "--output-dir", str(out_dir)], capture_output=True, text=True, env=env,
                          timeout=600)


def c_failure(npu_run: Path, env: dict[str, str], blob_path: Path, inputs: list[np.ndarray], directory: Path) -> str:
    """The one-line error (exit status 1) of a C npu-run that must fail on ``inputs``."""
    p = _c_run(npu_run, env, blob_path, inputs, directory)
    lines = [line for line in p.stderr.splitlines() if not line.startswith("fake-etnaviv: ")]
    assert p.returncode == 1 and len(lines) == 1 and lines[0].startswith("npu-run: "), (p.returncode, p.stderr)
    return lines[0]


def host_step(blob: vipbin.Blob, kernel_prefix: str) -> vipbin.HostStep:
    """The blob's first host step whose kernel name starts with ``kernel_prefix``."""
    return next(s for s in blob.steps if isinstance(s, vipbin.HostStep) and s.kernel.startswith(kernel_prefix))


def edited_blob_error(npu_run: Path, blob_path: Path, edit: Callable[[vipbin.Blob], None], directory: Path) -> str:
    """The one-line error of ``npu-run --check`` on the blob after ``edit`` (what a hostile blob meets when the C
    runtime loads it, before any kernel runs)."""
    blob = vipbin.load_blob(blob_path)
    edit(blob)
    path = directory / "edited.vipbin"
    path.write_bytes(vipbin.write_blob(blob))
    p = subprocess.run([str(npu_run), "--check", str(path)], capture_output=True, text=True, timeout=60)
    err = p.stderr.strip()
    assert p.returncode == 1 and "\n" not in err and err.startswith("npu-run: "), (p.returncode, err)
    return err


def c_outputs(npu_run: Path, env: dict[str, str], blob_path: Path, inputs: list[np.ndarray],
              directory: Path) -> list[np.ndarray]:
    """The outputs of the C runtime's npu-run for ``inputs`` (raw input files, --output-dir)."""
    blob = vipbin.load_blob(blob_path)
    p = _c_run(npu_run, env, blob_path, inputs, directory)
    assert p.returncode == 0 and not p.stderr, p.stderr
    out_dir = directory / "c_out"
    outs = []
    for k, t in enumerate(blob.outputs):
        info = blob.tensors[t]
        raw = (out_dir / f"output_{k}.bin").read_bytes()
        outs.append(np.frombuffer(raw, dtype=info.dtype).reshape(info.shape))
    return outs


def check_c(batch: Batch, blob: Path, used: list[list[np.ndarray]], npu_run: Path, env: dict[str, str],
            directory: Path) -> None:
    """The C runtime's outputs equal the Python runtime's, byte for byte, on the inputs check_python used."""
    failures = []
    for inputs in used:
        failures += differences(c_outputs(npu_run, env, blob, inputs, directory), python_outputs(blob, inputs),
                                batch.labels)
    assert not failures, "\n".join(failures[:20])


def check_both(generator: Generator, directory: Path, npu_run: Path | None = None, env: dict[str, str] | None = None,
               seeds: range | None = None, builtin: bool = False) -> None:
    """Seeded instances of an operator: the Python runtime against TFLite, then (given npu-run) C against Python."""
    batch = batch_model(generator, seeds if seeds is not None else range(CASES))
    blob, used = check_python(batch, directory, builtin=builtin)
    if npu_run is not None:
        check_c(batch, blob, used, npu_run, env or {}, directory)


def check_chosen(model: bytes, inputs: list[np.ndarray], directory: Path, npu_run: Path, env: dict[str, str],
                 labels: list[str] | None = None, builtin: bool = False) -> None:
    """Chosen inputs: the Python runtime exactly as TFLite, the C runtime exactly as Python."""
    blob = compile_cpu(model, directory)
    got = python_outputs(blob, inputs)
    labels = labels or [f"output {k}" for k in range(len(got))]
    failures = differences(got, tflite_outputs(model, inputs, builtin), labels)
    failures += differences(c_outputs(npu_run, env, blob, inputs, directory), got, labels)
    assert not failures, "\n".join(failures)


def pick(rng: np.random.Generator, choices: tuple | list) -> Any:
    """One of ``choices``, any type (numpy's choice would turn tuples into arrays)."""
    return choices[int(rng.integers(len(choices)))]


def small_dims(rng: np.random.Generator, rank: int, hi: int = 4) -> tuple[int, ...]:
    """``rank`` dimensions in [1, hi], a third of them 1 (so that broadcasting and squeezing show up)."""
    return tuple(1 if rng.random() < 0.3 else int(rng.integers(1, hi + 1)) for _ in range(rank))


def activation(rng: np.random.Generator, allowed: tuple[str, ...] = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")) -> str:
    return str(rng.choice(allowed))


def model_of(build: Callable[[SubgraphBuilder], list[int]]) -> bytes:
    """A one-subgraph model of what ``build`` adds to it, its returned tensors the graph's outputs."""
    m = ModelBuilder()
    for t in build(m.main):
        m.main.output(t)
    return m.build()


#: Run-time refusals: name -> (model builder, inputs TFLite fails on, a regular expression of the error).
Refusals = dict[str, tuple[Callable[[SubgraphBuilder], list[int]], list[np.ndarray], str]]


def refusal_tests(refused: Refusals, tflite_raises: bool = False) -> tuple[Callable, Callable]:
    """The two tests of values TFLite refuses when it runs, for a test module to bind: the Python runtime raises
    an InputError (after TFLite's own exception, with ``tflite_raises``: some of its kernels abort the process
    instead); the C runtime fails the run with one line naming the step (#0 NAME)."""
    import re

    import pytest

    from c_build import fake_env
    from npuc.errors import InputError

    @pytest.mark.parametrize("name", sorted(refused))
    def test_values_tflite_refuses_are_an_input_error_in_python(name: str, tmp_path: Path) -> None:
        build, inputs, fragment = refused[name]
        model = model_of(build)
        if tflite_raises:
            with pytest.raises(RuntimeError):
                tflite_outputs(model, inputs)
        with pytest.raises(InputError, match=fragment):
            python_outputs(compile_cpu(model, tmp_path), inputs)

    @pytest.mark.parametrize("name", sorted(refused))
    def test_values_tflite_refuses_fail_the_c_run_with_one_line(name: str, tmp_path: Path, c_npu_run: Path,
                                                                 c_fake: Path) -> None:
        build, inputs, fragment = refused[name]
        line = c_failure(c_npu_run, fake_env(c_fake), compile_cpu(model_of(build), tmp_path), inputs, tmp_path)
        assert re.search(f"step 0 \\(#0 {name}\\): .*{fragment}", line), line

    return test_values_tflite_refuses_are_an_input_error_in_python, test_values_tflite_refuses_fail_the_c_run_with_one_line


def kernel_tests(generators: dict[str, Generator], builtin: bool = False) -> tuple[Callable, Callable]:
    """The two tests every host-kernel family runs over its generators, for a test module to bind:

        test_python_kernels_match_tflite, test_c_kernels_match_python = kernel_tests(GENERATORS)

    ``builtin`` checks operators TFLite's reference resolver lacks against its builtin kernels.
    """
    import pytest

    from c_build import fake_env

    @pytest.mark.parametrize("name", sorted(generators))
    def test_python_kernels_match_tflite(name: str, tmp_path: Path) -> None:
        check_both(generators[name], tmp_path, builtin=builtin)

    @pytest.mark.parametrize("name", sorted(generators))
    def test_c_kernels_match_python(name: str, tmp_path: Path, c_npu_run: Path, c_fake: Path) -> None:
        check_both(generators[name], tmp_path, c_npu_run, fake_env(c_fake), builtin=builtin)

    return test_python_kernels_match_tflite, test_c_kernels_match_python
