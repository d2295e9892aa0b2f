"""The command line as a user meets it: the main job, one-line errors, exit codes, no partial files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import oracle

MNV1 = oracle.model_path("mobilenet_quant_v1_224")
SMALL = oracle.model_path("mobilenet_v1_0.25_128_quant")
GRACE = oracle.IMAGES / "grace_hopper.bmp"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a console entry point through the interpreter, as an installed script would (``npuc`` through
    ``python -m npuc``, the script's own entry: a compile ends without the interpreter's teardown, so its
    output must still arrive whole)."""
    prog, *rest = args
    if prog == "npuc":
        argv = [sys.executable, "-m", "npuc", *rest]
    else:
        argv = [sys.executable, "-c", "import sys; from npuc.cli import npu_run_main; sys.exit(npu_run_main(sys.argv[1:]))",
                *rest]
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_one_line_error(p: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    err = p.stderr.strip()
    assert err.count("\n") == 0 and err.startswith("npuc: "), err
    assert "Traceback" not in p.stderr
    for f in fragments:
        assert f in err, err


@pytest.fixture(scope="module")
def mnv1_blob(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("blob") / "m.vipbin"
    p = run("npuc", "compile", str(MNV1), "-o", str(out), "--labels", str(oracle.LABELS))
    assert p.returncode == 0, p.stderr
    assert "HOST" in p.stdout and str(out) in p.stdout
    return out


def test_main_job_prints_military_uniform(mnv1_blob):
    p = run("npu-run", str(mnv1_blob), str(GRACE))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 5
    score, rest = lines[0].split(": ", 1)
    assert rest == "653 military uniform"
    assert abs(float(score) * 255 - round(float(score) * 255)) < 1e-3  # a uint8 value / 255, as label_image prints


def test_labels_given_at_run_time_and_top_n(tmp_path):
    out = tmp_path / "s.vipbin"
    assert run("npuc", "compile", str(SMALL), "-o", str(out)).returncode == 0
    p = run("npu-run", str(out), str(GRACE), "--labels", str(oracle.LABELS), "-n", "2")
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 2
    assert "academic gown" in p.stdout.splitlines()[0]
    bare = run("npu-run", str(out), str(GRACE), "-n", "1")
    assert bare.stdout.strip().endswith(": 401")  # no labels: the index alone


def test_python_dash_m_works(mnv1_blob):
    p = subprocess.run([sys.executable, "-m", "npuc", "inspect", str(mnv1_blob)], capture_output=True, text=True)
    assert p.returncode == 0 and "vipnano-qi" in p.stdout


def _modules_after(*argv: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``npuc ARGV`` (whose output goes to stderr)."""
    code = ("import sys\nfrom npuc.cli import main\nsys.stdout = sys.stderr\n"
            "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
            "print(*sorted(sys.modules), file=sys.__stdout__)\nsys.exit(code)")
    p = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return set(p.stdout.split())


def test_commands_import_only_what_they_use(tmp_path, mnv1_blob):
    """Start-up is part of every compile: compile loads neither the simulator, the runtimes, the C runtime's
    templates, the image decoder nor the whole tflite package (only the schema modules it reads); the other
    commands do not load the compiler, and --help not even numpy."""
    def under(modules: set[str], *roots: str) -> list[str]:
        return sorted(m for m in modules if any(m == r or m.startswith(r + ".") for r in roots))

    compiled = _modules_after("compile", str(SMALL), "-o", str(tmp_path / "s.vipbin"))
    assert "tflite.Model" in compiled
    assert not under(compiled, "npuc.sim", "npuc.runtime", "npuc.verify", "npuc.cruntime", "npuc.inspect_blob",
                     "jinja2", "PIL", "ai_edge_litert")
    assert "tflite" not in compiled
    assert not under(_modules_after("report", str(mnv1_blob), "-o", str(tmp_path / "r.html")),
                     "npuc.driver", "npuc.frontend_tflite", "npuc.passes", "tflite")
    assert not under(_modules_after("--help"), "numpy", "npuc.driver")


def test_inspect_json(mnv1_blob):
    p = run("npuc", "inspect", str(mnv1_blob), "--json")
    info = json.loads(p.stdout)
    assert info["header"]["target"] == "vipnano-qi"
    assert info["inputs"][0]["shape"] == [1, 224, 224, 3]
    assert info["summary"]["labels"] == 1001
    assert info["summary"]["steps"]["npu"] >= 1 and info["summary"]["steps"]["host"] == 1  # only SOFTMAX stays on the CPU
    assert info["summary"]["coefficient_bytes"] > 0


def test_cpu_only_blob_has_no_npu_steps(tmp_path):
    out = tmp_path / "c.vipbin"
    assert run("npuc", "compile", str(SMALL), "-o", str(out), "--cpu-only").returncode == 0
    info = json.loads(run("npuc", "inspect", str(out), "--json").stdout)
    assert info["summary"]["steps"]["npu"] == 0 and info["summary"]["coefficient_bytes"] == 0


def test_missing_and_bad_models(tmp_path):
    out = tmp_path / "o.vipbin"
    assert_one_line_error(run("npuc", "compile", str(tmp_path / "nope.tflite"), "-o", str(out)), 1, "nope.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer at all" * 10)
    assert_one_line_error(run("npuc", "compile", str(junk), "-o", str(out)), 1, "junk.tflite")
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(SMALL.read_bytes()[:5000])
    assert_one_line_error(run("npuc", "compile", str(cut), "-o", str(out)), 1, "cut.tflite")
    assert not out.exists() and list(tmp_path.glob(".o.vipbin*")) == []


def test_unsupported_model_leaves_no_output(tmp_path):
    """A float32 HARD_SWISH on int16 tensors has neither an NPU lowering nor a host kernel (TFLite has none
    either): one line naming it, no output file."""
    from tflite_builder import T, OpSpec, build_model

    q = dict(scale=[0.02], zero_point=[0])
    model = tmp_path / "hard_swish.tflite"
    model.write_bytes(build_model([T((1, 4, 4, 3), "int16", **q), T((1, 4, 4, 3), "int16", **q)],
                                  OpSpec("HARD_SWISH"), [0], [1]))
    out = tmp_path / "hard_swish.vipbin"
    assert_one_line_error(run("npuc", "compile", str(model), "-o", str(out)), 1, "operator #0 HARD_SWISH")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["hard_swish.tflite"]


def test_output_into_missing_directory(tmp_path):
    p = run("npuc", "compile", str(SMALL), "-o", str(tmp_path / "no" / "such" / "dir" / "x.vipbin"))
    assert_one_line_error(p, 1, "x.vipbin")


def test_bad_blobs_and_images(tmp_path, mnv1_blob):
    bad = tmp_path / "bad.vipbin"
    bad.write_bytes(mnv1_blob.read_bytes()[:1000])
    assert_one_line_error(run("npu-run", str(bad), str(GRACE)), 1, "bad.vipbin")
    assert_one_line_error(run("npuc", "inspect", str(bad)), 1, "bad.vipbin")
    assert_one_line_error(run("npuc", "inspect", str(tmp_path)), 1, "directory")
    img = tmp_path / "broken.bmp"
    img.write_bytes(b"BM" + b"\0" * 40)
    assert_one_line_error(run("npu-run", str(mnv1_blob), str(img)), 1, "broken.bmp")
    assert_one_line_error(run("npu-run", str(mnv1_blob), str(tmp_path / "none.bmp")), 1, "none.bmp")


def test_bad_usage_exits_2(mnv1_blob):
    assert_one_line_error(run("npuc", "compile", str(MNV1)), 2, "-o")
    assert_one_line_error(run("npuc", "frobnicate"), 2)
    assert_one_line_error(run("npuc", "compile", str(MNV1), "-o", "x.vipbin", "--target", "gc9000"), 2, "gc9000")
    assert_one_line_error(run("npu-run", str(mnv1_blob), str(GRACE), "-n", "0"), 2)


def test_npy_inputs_and_outputs(tmp_path):
    """A model with several inputs runs from .npy files and writes every output as .npy."""
    import numpy as np

    model = oracle.model_path("split_concat")
    blob = tmp_path / "sc.vipbin"
    assert run("npuc", "compile", str(model), "-o", str(blob)).returncode == 0
    rng = np.random.default_rng(1)
    xs = [rng.integers(0, 256, (1, 8, 8, c)).astype(np.uint8) for c in (3, 1, 2)]
    args = []
    for name, x in zip(("input1", "inputs/rnn1", "2"), xs):  # by tensor name, or by position
        path = tmp_path / f"x{len(args)}.npy"
        np.save(path, x)
        args += ["--input", f"{name}={path}"]
    out = tmp_path / "out"
    p = run("npu-run", str(blob), *args, "--output-dir", str(out))
    assert p.returncode == 0, p.stderr
    ref = oracle.run_reference(model, [xs[0], xs[1], xs[2]])
    files = sorted(out.glob("*.npy"))
    assert len(files) == 5 and p.stdout.count("wrote") == 5
    ours = {f.name: np.load(f) for f in files}
    assert sorted(v.tobytes() for v in ours.values()) == sorted(r.tobytes() for r in ref)


def test_npy_input_errors(tmp_path, mnv1_blob):
    import numpy as np

    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((1, 10, 10, 3), np.uint8))
    assert_one_line_error(run("npu-run", str(mnv1_blob), "--input", f"input={bad}"), 1, "bad.npy", "expects uint8")
    assert_one_line_error(run("npu-run", str(mnv1_blob), "--input", f"nosuch={bad}"), 1, "nosuch")
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy")
    assert_one_line_error(run("npu-run", str(mnv1_blob), "--input", f"input={junk}"), 1, "junk.npy")
    assert_one_line_error(run("npu-run", str(mnv1_blob)), 2, "no value for input")
