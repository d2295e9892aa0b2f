"""The C runtime (``npuc emit-runtime``) against the Python runtime, on a fake etnaviv device.

The generated sources are built with ``gcc -std=c11 -Wall -Wextra -Werror`` and run under
``tests/fake_etnaviv``: an LD_PRELOAD library that answers the etnaviv ioctls as the kernel does for the
A311D's NPU (or, given FAKE_ETNAVIV_MODEL and friends, another core) and hands every submit to npuc's
simulator.  The checks:

* the etnaviv UAPI declarations give the ioctl numbers and sizes the UAPI documentation lists;
* the C ``npu-run`` prints the Python ``npu-run``'s top 5, and its output tensors are byte-identical to
  the Python :class:`~npuc.runtime.runtime.Runtime`'s for every MobileNet and every image (and for raw
  inputs, image formats, the embedded-blob build, and every host kernel the C runtime has);
* a blob for the i.MX 8M Plus runs on the fake device reporting either of that core's customer ids, byte
  for byte as in Python, and the A311D's identity refuses it;
* a blob needing a host kernel the C runtime lacks is refused by name before any device is opened;
* device faults (no node, another driver, no softpin, a refused submit, a simulator error) are one-line
  errors;
* built with AddressSanitizer and UBSan, it refuses 2,000 corrupted blobs with the same first fault as
  ``vipbin.read_blob`` and runs the valid ones without a sanitizer report;
* it cross-compiles for aarch64 where Debian's cross compiler is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import oracle
from npuc import vipbin
from npuc.hw.target import VIPNANO_QI, VIPNANO_SI_PLUS
from npuc.cli import npu_run_main
from npuc.cruntime import c_host_kernels
from npuc.driver import compile_model
from npuc.errors import BlobError, LimitError
from npuc.frontend_tflite import load_tflite
from npuc.runtime import etnaviv_uapi as uapi
from npuc.host import HOST_OPS
from npuc.runtime.image import load_image_input
from npuc.runtime.runtime import Runtime
from npuc.sim.device import SimDevice
from host_cases import random_inputs
from test_host_kernels import CASES, _inputs_for
from blob_tools import fix_crcs
from c_build import STRICT, emit, fake_env, make, npuc_cli
from tflite_builder import build_model

SANITIZE = "-fsanitize=address,undefined -fno-sanitize-recover=all"
C_KERNELS = c_host_kernels()


# -- building ------------------------------------------------------------------------------

_npuc, _make, _emit, _env = npuc_cli, make, emit, fake_env


@pytest.fixture(scope="module")
def sources(c_sources: Path) -> Path:
    return c_sources


@pytest.fixture(scope="module")
def npu_run(c_npu_run: Path) -> Path:
    return c_npu_run


@pytest.fixture(scope="module")
def fake(c_fake: Path) -> Path:
    return c_fake


def _run(binary: Path, *args: str | Path, env: dict[str, str] | None = None,
         timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def _one_line_error(p: subprocess.CompletedProcess, *fragments: str) -> str:
    """stderr holds exactly one npu-run error line (exit 1) containing every fragment."""
    err = p.stderr.strip()
    assert p.returncode == 1 and "\n" not in err and err.startswith("npu-run: "), (p.returncode, p.stderr)
    for f in fragments:
        assert f in err, err
    return err


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> dict[str, Path]:
    """Every MobileNet (with labels) and split_concat, compiled for the NPU."""
    out = tmp_path_factory.mktemp("blobs")
    paths = {}
    for name in [*oracle.MOBILENETS, "split_concat"]:
        labels = oracle.LABELS if name in oracle.MOBILENETS else None
        paths[name] = out / f"{name}.vipbin"
        paths[name].write_bytes(compile_model(oracle.model_path(name), labels_path=labels).blob)
    return paths


def _python_outputs(runtime: Runtime, inputs: list[np.ndarray]) -> list[np.ndarray]:
    for k, x in enumerate(inputs):
        runtime.set_input(k, x)
    return runtime.run()


def _assert_same_outputs(out_dir: Path, want: list[np.ndarray], what: str) -> None:
    for k, w in enumerate(want):
        got = (out_dir / f"output_{k}.bin").read_bytes()
        differ = np.count_nonzero(np.frombuffer(got, w.dtype) != w.reshape(-1)) if len(got) == w.nbytes else "size"
        assert got == w.tobytes(), f"{what}: output {k} differs ({differ})"


# -- declarations ---------------------------------------------------------------------------

def test_c_host_kernels_are_python_host_kernels():
    assert C_KERNELS <= set(HOST_OPS), C_KERNELS - set(HOST_OPS)


def test_uapi_layouts_give_the_documented_ioctl_numbers():
    """Numbers and sizes from ../shared/docs/vipnano-tp-cmdstream-uapi.md 5.3 (LP64); DRM_VERSION from drm.h."""
    documented = {"ETNAVIV_GET_PARAM": (0xC0106440, 16), "ETNAVIV_GEM_NEW": (0xC0106442, 16),
                  "ETNAVIV_GEM_INFO": (0xC0106443, 16), "ETNAVIV_GEM_CPU_PREP": (0x40186444, 24),
                  "ETNAVIV_GEM_CPU_FINI": (0x40086445, 8), "ETNAVIV_GEM_SUBMIT": (0xC0486446, 72),
                  "ETNAVIV_WAIT_FENCE": (0x40206447, 32), "VERSION": (0xC0406400, 64)}
    assert {i.name: (i.number, i.layout.size) for i in uapi.IOCTLS} == documented
    assert uapi.GEM_SUBMIT_BO.size == 16
    submit = {f.name: f.byte_offset for f in uapi.GEM_SUBMIT.fields}
    assert [submit[k] for k in ("stream_size", "bos", "stream", "flags", "pmrs")] == [20, 24, 40, 48, 56]


def test_emit_refuses_a_bad_blob_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.vipbin"
    bad.write_bytes(b"VIPB" + bytes(200))
    p = _npuc("emit-runtime", "-o", str(tmp_path / "out"), "--embed", str(bad))
    assert p.returncode == 1 and p.stderr.startswith("npuc: ") and "bad.vipbin" in p.stderr, p.stderr
    assert not (tmp_path / "out").exists()


def test_every_record_field_is_rendered(sources):
    """The generated format header declares every field of every .vipbin and UAPI layout, by name."""
    text = (sources / "npu_format.h").read_text()
    for layout in (*vipbin.all_layouts(), *uapi.LAYOUTS):
        assert f"struct {layout.name} {{" in text
        for f in layout.fields:
            assert f"r->{f.name} = npu_field_get" in text, (layout.name, f.name)


# -- the MobileNets on the fake device ----------------------------------------------------

def test_top5_matches_python_npu_run(npu_run, fake, blobs, capsys):
    blob, image = blobs["mobilenet_quant_v1_224"], oracle.IMAGES / "grace_hopper.bmp"
    c = _run(npu_run, blob, image, env=_env(fake))
    assert c.returncode == 0 and not c.stderr, c.stderr
    assert npu_run_main([str(blob), str(image)]) == 0
    python = capsys.readouterr().out
    assert c.stdout == python and c.stdout.splitlines()[0].endswith(": 653 military uniform"), c.stdout


def test_labels_file_is_split_and_stripped_like_python(npu_run, fake, blobs, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    lines = oracle.LABELS.read_text().splitlines()
    # CRLF, CR and Unicode line breaks, trailing spaces, non-ASCII text: Python's splitlines and rstrip.
    text = ("\r\n".join(lines[:400]) + "\r" + "\u2028".join(f"é{n} \t" for n in lines[400:700]) + "\n"
            + "\n".join(lines[700:]))
    labels.write_text(text, encoding="utf-8")
    blob, image = blobs["mobilenet_v1_0.25_128_quant"], oracle.IMAGES / "bird.bmp"
    for top in ("3", "1001"):
        c = _run(npu_run, blob, image, "--labels", labels, "-n", top, env=_env(fake))
        assert c.returncode == 0 and not c.stderr, c.stderr
        assert npu_run_main([str(blob), str(image), "--labels", str(labels), "-n", top]) == 0
        assert c.stdout == capsys.readouterr().out


@pytest.mark.parametrize("shape", [(1, 9), (3, 3), (9,)])
@pytest.mark.parametrize("dtype", ["bool", "int8", "int16", "int32", "int64", "float32"])
def test_outputs_of_every_type_are_printed_like_python(dtype, shape, npu_run, fake, tmp_path, capsys):
    """npu-run ranks a classifier's classes ([1, N]; ties in index order, NaN last) and prints one line about any
    other output (its range; NaN when it holds one), whatever the type, in C as in Python."""
    from model_builder import ModelBuilder

    m = ModelBuilder()
    x = m.main.input(shape, "float32")
    y = m.main.tensor(shape, dtype, **({"scale": 0.5, "zero_point": -3} if dtype == "int8" else {}))
    m.main.op("CAST" if dtype != "int8" else "QUANTIZE", [x], [y])
    m.main.output(y)
    source = tmp_path / "model.tflite"
    source.write_bytes(m.build())
    path = tmp_path / "model.vipbin"
    path.write_bytes(compile_model(source, npu=False).blob)
    values = np.array([3, -2, 7e9 if dtype == "int64" else 7, 0, 3, np.nan, -9, 1, 5], np.float32).reshape(shape)
    if dtype != "float32":
        values[np.isnan(values)] = 2
    c = _run(npu_run, path, *_input_args(vipbin.load_blob(path), [values], tmp_path), "-n", "9", env=_env(fake))
    assert c.returncode == 0 and not c.stderr, c.stderr
    np.save(tmp_path / "x.npy", values)          # the Python npu-run reads .npy inputs, the C one raw bytes
    assert npu_run_main([str(path), "--input", f"t0={tmp_path / 'x.npy'}", "-n", "9"]) == 0
    python = capsys.readouterr().out
    assert c.stdout == python and len(python.splitlines()) == (9 if shape == (1, 9) else 1), c.stdout


def _host_kernels(blob: vipbin.Blob) -> set[str]:
    return {s.kernel for s in blob.steps if isinstance(s, vipbin.HostStep)}


@pytest.mark.slow
def test_outputs_identical_for_every_mobilenet_and_image(npu_run, fake, blobs, tmp_path):
    """Each C run (a subprocess, with the simulator helper) overlaps the Python reference run."""
    env = _env(fake)
    for model in oracle.MOBILENETS:
        blob = vipbin.load_blob(blobs[model])
        assert any(isinstance(s, vipbin.NpuStep) for s in blob.steps)
        if not _host_kernels(blob) <= C_KERNELS:   # must then be refused: see the test below
            c = _run(npu_run, blobs[model], oracle.IMAGES / "cat.bmp", env=env)
            _one_line_error(c, "this runtime has no host kernel")
            continue
        runtime = Runtime(blob, SimDevice())
        info = runtime.input_infos[0]
        for image in oracle.all_images():
            out = tmp_path / f"{model}-{image.stem}"
            out.mkdir()
            c = subprocess.Popen([str(npu_run), "-n", "0", "--output-dir", str(out), str(blobs[model]), str(image)],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            want = _python_outputs(runtime, [load_image_input(image, info.shape[1], info.shape[2], info.dtype)])
            stdout, stderr = c.communicate(timeout=300)
            assert c.returncode == 0 and not stderr and not stdout, stderr
            _assert_same_outputs(out, want, f"{model} on {image.name}")


def _v8_env(fake: Path, customer_id: int) -> dict[str, str]:
    """The fake device reporting the i.MX 8M Plus's core (customer ``customer_id``), simulated as such."""
    i = VIPNANO_SI_PLUS.identity
    return _env(fake, FAKE_ETNAVIV_MODEL=hex(i.model), FAKE_ETNAVIV_REVISION=hex(i.revision),
                FAKE_ETNAVIV_PRODUCT_ID=hex(i.product_id), FAKE_ETNAVIV_CUSTOMER_ID=hex(customer_id),
                FAKE_ETNAVIV_ECO_ID=hex(i.eco_id))


def test_v8_blob_runs_on_both_imx8mp_identities_and_not_on_the_a311d(npu_run, fake, blobs, tmp_path):
    """The i.MX 8M Plus reports customer 0x9f or 0xa0 (two hwdb rows): a v8 blob runs on either, byte for byte
    as the Python runtime runs it, and the A311D refuses it (as an i.MX 8M Plus refuses a v7 blob)."""
    model, image = "mobilenet_v1_0.25_128_quant", oracle.IMAGES / "grace_hopper.bmp"
    path = tmp_path / "v8.vipbin"
    path.write_bytes(compile_model(oracle.model_path(model), VIPNANO_SI_PLUS.name).blob)
    blob = vipbin.load_blob(path)
    runtime = Runtime(blob, SimDevice(VIPNANO_SI_PLUS))
    info = runtime.input_infos[0]
    want = _python_outputs(runtime, [load_image_input(image, info.shape[1], info.shape[2], info.dtype)])
    for customer in (0x9F, 0xA0):
        out = tmp_path / f"out-{customer:x}"
        out.mkdir()
        c = _run(npu_run, "-n", "0", "--output-dir", out, path, image, env=_v8_env(fake, customer))
        assert c.returncode == 0 and not c.stderr, c.stderr
        _assert_same_outputs(out, want, f"{model} for vipnano-si-plus on customer {customer:#x}")
    _runtime_error(_run(npu_run, path, image, env=_env(fake)), "no etnaviv NPU matches vipnano-si-plus",
                   f"customer {VIPNANO_SI_PLUS.identity.customer_id:#x}")
    _runtime_error(_run(npu_run, blobs[model], image, env=_v8_env(fake, 0xA0)), "no etnaviv NPU matches vipnano-qi")


def test_every_declared_host_kernel_has_c_code():
    """One declaration per host kernel, and both runtimes have it: a kernel without C code fails here."""
    assert C_KERNELS == set(HOST_OPS)


def test_blob_needing_other_host_kernels_is_refused_before_any_ioctl(npu_run, fake, tmp_path):
    """A blob from a newer npuc, whose host step names a kernel this runtime does not know: refused by name,
    and no render node is even opened."""
    cpu = tmp_path / "cpu.vipbin"
    cpu.write_bytes(compile_model(oracle.model_path("tf2_mobilenet_v2_1.0_224_ptq"), npu=False).blob)
    first = 3

    def rename(blob: vipbin.Blob) -> None:
        blob.steps[first].kernel = "CONV_4D"

    path = _rewritten(cpu, rename, tmp_path / "newer.vipbin")
    step = vipbin.load_blob(path).steps[first]
    c = _run(npu_run, path, oracle.IMAGES / "cat.bmp", env=_env(fake, FAKE_ETNAVIV_TRACE="1"))
    _one_line_error(c, f"{path}: step {first} ({step.name}): this runtime has no host kernel {step.kernel!r}")
    assert "fake-etnaviv" not in c.stderr


def test_embedded_blob_build(sources, fake, blobs, tmp_path, capsys):
    directory = tmp_path / "embedded"
    shutil.copytree(sources, directory, ignore=shutil.ignore_patterns("*.o", "*.a", "npu-run"))
    _emit(directory, "--embed", str(blobs["mobilenet_v1_0.25_128_quant"]))
    _make(directory)
    image = oracle.IMAGES / "dragonfly.bmp"
    c = _run(directory / "npu-run", image, "--output-dir", tmp_path, env=_env(fake))
    assert c.returncode == 0 and not c.stderr, c.stderr
    assert npu_run_main([str(blobs["mobilenet_v1_0.25_128_quant"]), str(image)]) == 0
    assert c.stdout == capsys.readouterr().out
    runtime = Runtime(vipbin.load_blob(blobs["mobilenet_v1_0.25_128_quant"]), SimDevice())
    _assert_same_outputs(tmp_path, _python_outputs(runtime, [load_image_input(image, 128, 128)]), "embedded")
    assert _run(directory / "npu-run", "--check").returncode == 0


@pytest.mark.parametrize("mode, suffix", [("RGB", ".ppm"), ("L", ".pgm"), ("P", ".bmp"), ("RGBA", ".bmp"),
                                          ("1", ".bmp"), ("L", ".bmp")])
def test_image_formats_decode_and_resize_like_python(mode, suffix, npu_run, fake, blobs, tmp_path):
    """PPM, PGM and palette, 32-bit and 1-bit BMPs of an odd size (up- and down-sampled), as Pillow reads them."""
    from PIL import Image

    image = tmp_path / f"crop{suffix}"
    with Image.open(oracle.IMAGES / "grace_hopper.bmp") as img:
        crop = img.crop((100, 50, 197, 240))
        (crop.quantize(37) if mode == "P" else crop.convert(mode)).save(image)
    blob = blobs["mobilenet_v1_0.25_128_quant"]
    c = _run(npu_run, blob, image, "-n", "0", "--output-dir", tmp_path, env=_env(fake))
    assert c.returncode == 0 and not c.stderr, c.stderr
    runtime = Runtime(vipbin.load_blob(blob), SimDevice())
    _assert_same_outputs(tmp_path, _python_outputs(runtime, [load_image_input(image, 128, 128)]), f"{mode} {suffix}")


def test_usage_and_input_errors(npu_run, blobs, tmp_path):
    blob = blobs["mobilenet_v1_0.25_128_quant"]
    usage = _run(npu_run)
    assert usage.returncode == 2 and usage.stderr.startswith("npu-run: expected BLOB"), usage.stderr
    assert _run(npu_run, "--help").stdout.startswith("usage: npu-run")
    _one_line_error(_run(npu_run, blob, tmp_path / "none.bmp"), "none.bmp: no such file")
    (tmp_path / "text.bmp").write_text("not an image")
    _one_line_error(_run(npu_run, blob, tmp_path / "text.bmp"), "not an image format npu-run can read")
    _one_line_error(_run(npu_run, blob, "--input", f"nope={tmp_path / 'text.bmp'}"), "has no input called 'nope'")
    _one_line_error(_run(npu_run, blobs["split_concat"], oracle.IMAGES / "cat.bmp"),
                    "does not take a single image ([1, H, W, 3] or [1, 3, H, W])")


def test_raw_inputs_of_a_multi_input_model(npu_run, fake, blobs, tmp_path):
    """split_concat: three inputs by name, five outputs, TP jobs only."""
    blob = vipbin.load_blob(blobs["split_concat"])
    runtime = Runtime(blob, SimDevice())
    rng = np.random.default_rng(1)
    inputs = [rng.integers(0, 256, info.shape, dtype=np.uint8) for info in runtime.input_infos]
    args = _input_args(blob, inputs, tmp_path)
    c = _run(npu_run, blobs["split_concat"], *args, "-n", "0", "--output-dir", tmp_path, env=_env(fake))
    assert c.returncode == 0 and not c.stderr and not c.stdout, c.stderr
    _assert_same_outputs(tmp_path, _python_outputs(runtime, inputs), "split_concat")
    short = _run(npu_run, blobs["split_concat"], *args[:-1], f"{args[-1]}.missing", env=_env(fake))
    _one_line_error(short, ".missing: no such file")


def _case_blob(case: str, tmp_path: Path, npu: bool = False) -> tuple[Path, vipbin.Blob, list[np.ndarray]]:
    """A test_host_kernels case compiled (by default with every operator on the host), and inputs for it."""
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    tensors, op, ins, outs = CASES[case](rng)
    model = tmp_path / f"{case}.tflite"
    model.write_bytes(build_model(tensors, op, ins, outs))
    path = tmp_path / f"{case}.vipbin"
    path.write_bytes(compile_model(model, npu=npu).blob)
    blob = vipbin.load_blob(path)
    graph = load_tflite(model)
    assert [graph.tensors[i].name for i in graph.inputs] == [blob.tensors[t].name for t in blob.inputs]
    return path, blob, _inputs_for(graph, rng)


def _input_args(blob: vipbin.Blob, inputs: list[np.ndarray], directory: Path) -> list[str]:
    args = []
    for k, (t, x) in enumerate(zip(blob.inputs, inputs)):
        path = directory / f"input_{k}.bin"
        path.write_bytes(x.tobytes())
        args += ["--input", f"{blob.tensors[t].name}={path}"]
    return args


@pytest.mark.parametrize("case", sorted(CASES))
def test_host_kernels_match_python(case, npu_run, fake, tmp_path):
    """One-operator models on the host kernels (every one test_host_kernels checks against TFLite)."""
    path, blob, inputs = _case_blob(case, tmp_path)
    kernels = {s.kernel for s in blob.steps if isinstance(s, vipbin.HostStep)}
    c = _run(npu_run, path, *_input_args(blob, inputs, tmp_path), "-n", "0", "--output-dir", tmp_path, env=_env(fake))
    if not kernels <= C_KERNELS:
        _one_line_error(c, "this runtime has no host kernel")
        return
    assert c.returncode == 0 and not c.stderr, c.stderr
    _assert_same_outputs(tmp_path, _python_outputs(Runtime(blob, SimDevice()), inputs), case)


# -- device faults -------------------------------------------------------------------------

def _runtime_error(p: subprocess.CompletedProcess, *fragments: str) -> str:
    """Like _one_line_error, letting the fake device add its own "fake-etnaviv:" lines."""
    lines = [line for line in p.stderr.splitlines() if not line.startswith("fake-etnaviv: ")]
    return _one_line_error(subprocess.CompletedProcess(p.args, p.returncode, p.stdout, "\n".join(lines)), *fragments)


def _rewritten(path: Path, change, out: Path) -> Path:
    """The blob at ``path`` with ``change(blob)`` applied, written again (valid CRCs)."""
    blob = vipbin.load_blob(path)
    change(blob)
    out.write_bytes(vipbin.write_blob(blob))
    return out


def test_device_faults_are_one_line_errors(npu_run, fake, blobs, tmp_path):
    blob, image = blobs["mobilenet_v1_0.25_128_quant"], oracle.IMAGES / "cat.bmp"
    target = VIPNANO_QI.identity
    _runtime_error(_run(npu_run, blob, image, env=_env(fake, nodes="/dev/dri/renderD128=panfrost")),
                   f"no etnaviv NPU matches vipnano-qi (model {target.model:#x}", "renderD128: driver panfrost")
    _runtime_error(_run(npu_run, blob, image, env=_env(fake, nodes="")), "no render node in /dev/dri")
    _runtime_error(_run(npu_run, blob, image, env=_env(fake, FAKE_ETNAVIV_SOFTPIN_START=hex(uapi.SOFTPIN_UNSUPPORTED))),
                   "renderD129: the kernel cannot pin buffers at chosen addresses (softpin)")
    refused = _run(npu_run, blob, image, env=_env(fake, FAKE_ETNAVIV_FAIL_SUBMIT="1"))
    _runtime_error(refused, "renderD129: step 0 (", "the kernel refused the submit (Invalid argument)")
    other = _rewritten(blob, lambda b: setattr(b, "identity", type(target)(0x7000, 0x6214, 0, 0x99, 0)),
                       tmp_path / "other.vipbin")
    _runtime_error(_run(npu_run, other, image, env=_env(fake)), "model 0x7000 revision 0x6214 customer 0x99",
                   f"core 0 has model {target.model:#x}")
    chosen = _run(npu_run, blob, image, "--device", "/dev/dri/renderD129",
                  env=_env(fake, nodes="/dev/dri/renderD129=etnaviv"))
    assert chosen.returncode == 0 and not chosen.stderr, chosen.stderr


def test_buffer_listed_twice_in_a_submit_is_refused_on_load(npu_run, blobs, tmp_path):
    def twice(blob: vipbin.Blob) -> None:
        step = next(s for s in blob.steps if isinstance(s, vipbin.NpuStep))
        step.bos.append(step.bos[0])
    path = _rewritten(blobs["split_concat"], twice, tmp_path / "twice.vipbin")
    buffer = vipbin.load_blob(path).steps[0].bos[0][0]
    _one_line_error(_run(npu_run, "--check", path), f"{path}: step 0 (", f"buffer {buffer} is listed twice")


def test_simulator_error_fails_the_submit(npu_run, fake, blobs, tmp_path):
    """A stream relocation pointing the TP job at the end of its descriptor buffer: the simulator refuses the
    job, the fake device fails GEM_SUBMIT with EINVAL, and npu-run says which step."""
    def break_stream(blob: vipbin.Blob) -> None:
        r = next(r for r in blob.relocations if r.site_kind == "stream")
        r.target_offset = blob.buffers[r.target_buffer].size
    broken = _rewritten(blobs["split_concat"], break_stream, tmp_path / "broken.vipbin")
    blob = vipbin.load_blob(broken)
    zeros = [np.zeros(blob.tensors[t].shape, np.uint8) for t in blob.inputs]
    p = _run(npu_run, broken, *_input_args(blob, zeros, tmp_path), env=_env(fake))
    _runtime_error(p, "step 0 (", "the kernel refused the submit (Invalid argument)")
    assert "fake-etnaviv: submit 0 job 0 (TP): TP descriptor read at" in p.stderr, p.stderr


# -- hostile blobs, with AddressSanitizer and UBSan ------------------------------------------

#: Sanitizer reports must not hide behind npu-run's own exit code 1.
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=0:exitcode=99:abort_on_error=0",
                 "UBSAN_OPTIONS": "halt_on_error=1:exitcode=98:print_stacktrace=1"}
FUZZ_CASES = 3000
FUZZ_SEEDS = ("softmax_int8_beta", "avg_pool_uint8_same", "quantize_float_to_int8", "reshape")
FUZZ_NPU_SEED = "add_uint8"   # an NN job with descriptors, coefficients and relocations
#: Host kernels of every family, a few seeded instances each in one blob (test module, generators).
FUZZ_FAMILIES = {
    "test_host_movement": ("STRIDED_SLICE_MIXED", "GATHER", "TRANSPOSE", "MIRROR_PAD", "SPACE_TO_BATCH_ND"),
    "test_host_arith": ("ADD_quantized", "SELECT_V2", "DIV_quantized", "LESS_quantized"),
    "test_host_reduce": ("MEAN_QUANTIZED", "RESIZE_BILINEAR", "LOG_SOFTMAX_8BIT", "ARG_MAX"),
    "test_host_conv": ("CONV_2D", "BATCH_MATMUL", "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM"),
    "test_host_unary": ("HARD_SWISH", "TANH_I16", "PRELU", "CAST"),
    "test_host_sequence": ("TOPK_V2", "NON_MAX_SUPPRESSION_V5", "UNSORTED_SEGMENT_PROD", "DYNAMIC_UPDATE_SLICE"),
    "test_host_svdf": ("int8", "float32"),
    "test_host_scatter": ("SCATTER_ND", "SPARSE_TO_DENSE", "EMBEDDING_LOOKUP_float", "MATRIX_SET_DIAG"),
}


def _family_blobs(tmp_path: Path) -> list[tuple[bytes, bytes]]:
    """(model, CPU blob) per host-kernel family, each with a few instances of its trickiest kernels."""
    import importlib

    from host_cases import batch_model, compile_cpu

    blobs = []
    for module, names in FUZZ_FAMILIES.items():
        generators = importlib.import_module(module).GENERATORS

        def family(rng, g, generators=generators, names=names):
            return [t for name in names for t in generators[name](rng, g)]

        directory = tmp_path / module
        directory.mkdir()
        model = batch_model(family, range(2)).model
        blobs.append((model, compile_cpu(model, directory).read_bytes()))
    return blobs


@pytest.fixture(scope="module")
def sanitized(sources, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("asan") / "runtime"
    shutil.copytree(sources, directory, ignore=shutil.ignore_patterns("*.o", "*.a", "npu-run"))
    _make(directory, f"{STRICT} -g {SANITIZE}", SANITIZE)
    return directory / "npu-run"


def _boundaries(raw: bytes) -> list[int]:
    """Numbers a hostile field value should try in this blob: its buffer sizes, stream lengths, section sizes
    and record counts, each with its neighbours."""
    blob = vipbin.read_blob(raw)
    base = [b.size for b in blob.buffers] + [4 * len(s.stream) for s in blob.steps if isinstance(s, vipbin.NpuStep)]
    base += [size // 4 for _, _, size, _ in vipbin.section_summary(raw)]
    base += [len(blob.buffers), len(blob.tensors), len(blob.steps), len(blob.relocations)]
    return sorted({max(v + d, 0) for v in base for d in (-4, -1, 0, 1)})


def _interesting(rng: np.random.Generator, old: int, width: int, near: list[int]) -> int:
    top = (1 << width) - 1
    choices = (0, 1, 2, 3, 4, 8, 63, 64, 4096, top, top - 1, top >> 1, (top >> 1) + 1, old + 1, old - 1, old * 2,
               old + 64, old + 4096, old + (1 << 20), int(rng.integers(0, top, endpoint=True)))
    if rng.random() < 0.5:
        return near[rng.integers(len(near))] & top
    return choices[rng.integers(len(choices))] & top


def _set_field(raw: bytearray, at: int, layout, rng: np.random.Generator, near: list[int],
               names: tuple[str, ...] = ()) -> None:
    """One field (of ``names``, or any) of the record at ``at`` set to an interesting value."""
    record = layout.unpack(raw, at)
    fields = [f for f in layout.fields if not names or f.name in names]
    f = fields[rng.integers(len(fields))]
    value = _interesting(rng, record[f.name] & f.mask, f.width, near)
    record[f.name] = value - (1 << f.width) if f.signed and value > f.value_range()[1] else value
    raw[at:at + layout.size] = layout.pack(record)


#: What _corrupt does, with its weight: truncate or pad, flip bits (CRCs left wrong), then behind fixed CRCs:
#: any record field, a relocation's site or target, a buffer's size, a header field, a section table entry,
#: bytes of the strings, index, parameter and stream pools.
CORRUPTIONS = {"truncate": 0.1, "flip": 0.1, "field": 0.3, "relocation": 0.15, "buffer_size": 0.1, "header": 0.05,
               "table": 0.1, "pool": 0.1}


def _corrupt(raw: bytes, near: list[int], rng: np.random.Generator) -> bytes:
    b = bytearray(raw)
    sections = {k: (off, size) for k, off, size, _ in vipbin.section_summary(raw)}
    kind = rng.choice(list(CORRUPTIONS), p=list(CORRUPTIONS.values()))
    if kind == "relocation" and not sections["RELO"][1]:
        kind = "field"
    if kind == "truncate":
        return bytes(b[:rng.integers(0, len(b))]) if rng.random() < 0.9 else bytes(b + bytes(64))
    if kind == "flip":
        for pos in rng.integers(0, len(b), rng.integers(1, 5)):
            b[pos] ^= 1 << int(rng.integers(8))
        return bytes(b)
    if kind in ("field", "relocation", "buffer_size"):
        section, names = {"field": (None, ()), "relocation": ("RELO", ("site_index", "site_offset", "target_buffer",
                                                                         "target_offset", "shift", "bit", "width")),
                          "buffer_size": ("BUFS", ("size", "init_size"))}[kind]
        if section is None:
            section = rng.choice([k for k, layout in vipbin.SECTIONS.items() if layout and sections[k][1]])
        layout = vipbin.SECTIONS[section]
        off, size = sections[section]
        _set_field(b, off + layout.size * int(rng.integers(size // layout.size)), layout, rng, near, names)
    elif kind == "header":
        _set_field(b, 0, vipbin.HEADER, rng, near)
    elif kind == "table":
        h = vipbin.HEADER.unpack(b)
        _set_field(b, h["section_table_offset"] + vipbin.SECTION.size * int(rng.integers(h["section_count"])),
                   vipbin.SECTION, rng, near)
    else:
        pools = [k for k in ("STRS", "IDXS", "PDAT", "STRM", "IOTN") if sections[k][1]]
        off, size = sections[pools[rng.integers(len(pools))]]
        for pos in rng.integers(off, off + size, rng.integers(1, 3)):
            b[pos] = int(rng.integers(256))
    return bytes(fix_crcs(b))


def _python_verdict(raw: bytes, name: str) -> str | None:
    """vipbin.read_blob's message for a blob it refuses, None for one it accepts."""
    try:
        vipbin.read_blob(raw, name)
    except (BlobError, LimitError) as e:
        return str(e)
    return None


#: How a run of a blob Python accepts may still end: a host step refused when loading, a device that does not
#: match a changed identity, buffers that do not fit the GPU address space.
ACCEPTED_BLOB_REFUSALS = (r": step \d+ \(", r"^npu-run: no etnaviv NPU matches ",
                          r"does not fit in the device's address range")


def _check_sanitized_run(p: subprocess.CompletedProcess, name: str, expected: str | None) -> str | None:
    """None when the run behaved, else what went wrong."""
    lines = [line for line in p.stderr.splitlines() if not line.startswith("fake-etnaviv: ")]
    if p.returncode not in (0, 1) or len(lines) > 1 or (lines and not lines[0].startswith("npu-run: ")):
        return f"exit {p.returncode}: {p.stderr[-3000:]}"
    if expected is not None:   # refused by Python: refused here with the same first fault
        if p.returncode != 1:
            return f"accepted, but Python says: {expected}"
        if expected.isascii() and lines[0] != f"npu-run: {expected}":
            return f"{lines[0]!r} instead of {expected!r}"
        if not lines[0].startswith(f"npu-run: {name}: "):
            return f"does not name the blob: {lines[0]!r}"
    elif p.returncode == 1 and not any(re.search(r, lines[0]) for r in ACCEPTED_BLOB_REFUSALS):
        return f"refused a blob Python accepts: {lines[0]!r}"
    return None


def test_sanitized_runtime_refuses_corrupted_blobs(sanitized, fake, blobs, tmp_path):
    """2,000 corrupted blobs: the same first fault as Python's reader (or, for blobs Python accepts, at most a
    host-step refusal), never a sanitizer report, a crash or a hang.  Accepted host-only blobs also run."""
    seeds = [blobs["split_concat"].read_bytes(), _case_blob(FUZZ_NPU_SEED, tmp_path, npu=True)[0].read_bytes()]
    seeds += [_case_blob(case, tmp_path)[0].read_bytes() for case in FUZZ_SEEDS]
    seeds += [blob for _, blob in _family_blobs(tmp_path)]
    near = [_boundaries(raw) for raw in seeds]
    rng = np.random.default_rng(2024)
    jobs = []
    for i in range(FUZZ_CASES):
        raw = _corrupt(seeds[i % len(seeds)], near[i % len(seeds)], rng)
        path = tmp_path / f"fuzz{i}.vipbin"
        path.write_bytes(raw)
        jobs.append((path, _python_verdict(raw, str(path))))
    env = {**os.environ, **SANITIZER_ENV}
    leaks = {**env, "ASAN_OPTIONS": SANITIZER_ENV["ASAN_OPTIONS"].replace("detect_leaks=0", "detect_leaks=1")}
    preload = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    full_env = {**_env(fake, preload=f"{preload}:"), **SANITIZER_ENV}

    def one(job: tuple[int, tuple[Path, str | None]]) -> list[str]:
        i, (path, expected) = job
        p = _run(sanitized, "--check", path, env=leaks if i < 100 else env, timeout=60)
        problems = [f"{path.name}: {e}" for e in [_check_sanitized_run(p, str(path), expected)] if e]
        blob = vipbin.read_blob(path.read_bytes()) if expected is None and p.returncode == 0 else None
        names = [blob.tensors[t].name for t in blob.inputs] if blob else []
        if blob and not any(isinstance(s, vipbin.NpuStep) for s in blob.steps) \
                and sum(b.size for b in blob.buffers) <= 1 << 24 and len(set(names)) == len(names):  # by name
            args = []
            for k, t in enumerate(blob.inputs):
                data = path.with_suffix(f".in{k}")
                data.write_bytes(bytes(blob.tensors[t].nbytes))
                args += ["--input", f"{blob.tensors[t].name}={data}"]
            full = _run(sanitized, path, *args, "--output-dir", tmp_path, env=full_env, timeout=60)
            problems += [f"{path.name} run: {e}" for e in [_check_sanitized_run(full, str(path), None)] if e]
        return problems

    with ThreadPoolExecutor(2) as pool:
        problems = [p for found in pool.map(one, enumerate(jobs)) for p in found]
    refused = sum(expected is not None for _, expected in jobs)
    assert refused > FUZZ_CASES // 2
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:20])


def test_sanitized_runtime_runs_valid_blobs_cleanly(sanitized, fake, blobs, tmp_path):
    """The whole path (device, relocations, NPU and host steps), leaks included, on real blobs."""
    preload = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    env = {**_env(fake, preload=f"{preload}:"), **SANITIZER_ENV}
    env["ASAN_OPTIONS"] = env["ASAN_OPTIONS"].replace("detect_leaks=0", "detect_leaks=1")
    runs = [(blobs["mobilenet_v1_0.25_128_quant"], [oracle.IMAGES / "sunflower.bmp"])]
    for case in ("softmax_uint8", "avg_pool_int8_valid", "dequantize_int8", "requantize_int8_to_uint8_shift"):
        (tmp_path / case).mkdir()
        path, blob, inputs = _case_blob(case, tmp_path / case)
        runs.append((path, _input_args(blob, inputs, tmp_path / case)))
    for k, (model, raw) in enumerate(_family_blobs(tmp_path)):
        directory = tmp_path / f"family{k}"
        directory.mkdir()
        path = directory / "family.vipbin"
        path.write_bytes(raw)
        runs.append((path, _input_args(vipbin.read_blob(raw), random_inputs(model, 0), directory)))
    for path, args in runs:
        p = _run(sanitized, path, *args, "--output-dir", tmp_path, env=env)
        assert p.returncode == 0 and not p.stderr, p.stderr[-3000:]


# -- cross compilation ---------------------------------------------------------------------

def test_cross_compiles_for_aarch64(sources, tmp_path):
    cc = "aarch64-linux-gnu-gcc"
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed (Debian package gcc-aarch64-linux-gnu)")
    directory = tmp_path / "aarch64"
    shutil.copytree(sources, directory, ignore=shutil.ignore_patterns("*.o", "*.a", "npu-run"))
    _make(directory, STRICT, cc=cc)
    elf = (directory / "npu-run").read_bytes()[:20]
    assert elf[:4] == b"\x7fELF" and struct.unpack_from("<H", elf, 18)[0] == 183   # EM_AARCH64
