"""npuc inspect and npuc report: what they decode from a blob, and the HTML page in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

import oracle
from npuc import vipbin
from npuc.backend_vip.jobs import NNJob, TPJob
from npuc.hw.target import VIPNANO_QI as TARGET
from npuc.blob_program import decode_blob
from npuc.cli import main
from npuc.driver import compile_model
from npuc.errors import NpucError
from npuc.inspect_blob import describe, describe_decoded, render_text
from npuc.program_meta import PROGRAM_KEY
from npuc.report_html import COLOURS, render_html, report
from test_cli import assert_one_line_error, run

MNV1 = oracle.model_path("mobilenet_quant_v1_224")
MNV2 = oracle.model_path("mobilenet_v2_1.0_224_quant")
#: Chromium as the brief asks for it: headless, no network, a fresh profile (added per run).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]


@pytest.fixture(scope="module")
def v2():
    result = compile_model(MNV2)
    return result, vipbin.read_blob(result.blob)


def test_decoded_jobs_are_the_compilers_jobs(v2):
    """Descriptors found through the streams' relocations equal the lowered jobs field by field, and the
    coefficient sizes read from each buffer's size table equal what the emitter wrote."""
    result, blob = v2
    decoded = decode_blob(blob)
    npu_steps = [s for s in result.jobs if isinstance(s, (NNJob, TPJob))]
    entries = [e for e in decoded.entries if e.kind != "HOST"]
    assert len(entries) == len(npu_steps)
    nn_stats = iter(j for j in result.stats.per_job if j["kind"] == "NN")
    for entry, step in zip(entries, npu_steps):
        if isinstance(step, NNJob):
            assert entry.kind == "NN"
            assert all(entry.descs[0][k] == v for k, v in step.desc.items()), step.name
            assert entry.coefficient_bytes == next(nn_stats)["coefficient_bytes"]
        else:
            assert entry.kind == "TP" and len(entry.descs) == len(step.cores)
            for desc, core in zip(entry.descs, step.cores):
                assert all(desc[k] == v for k, v in core.desc.items()), step.name
        assert entry.info is not None and entry.info.name == step.name


def test_inspect_summary_adds_up(v2):
    result, blob = v2
    info = describe(blob, result.blob)
    s = info["summary"]
    jobs = info["jobs"]
    assert s["jobs"] == {"NN": result.stats.nn_jobs, "TP": result.stats.tp_jobs, "HOST": 1}
    assert s["ops"] == {"HOST": 1, "NN": 64, "alias": 1}
    assert s["coefficient_bytes"] == result.stats.coefficient_bytes
    total = sum(j["seconds"] for j in jobs) + s["submits"] * TARGET.perf_submit_seconds
    assert s["estimate"]["latency_ms"] == pytest.approx(total * 1e3)
    assert sum(s["estimate"]["breakdown_ms"].values()) == pytest.approx(s["estimate"]["latency_ms"])
    assert s["dram_bytes"]["total"] == sum(j["bytes"]["total"] for j in jobs if "bytes" in j)
    assert 0.5 < s["compression_ratio"] < 1.0
    assert 0 < s["sram"]["peak_used"] <= s["sram"]["bytes"]
    assert s["arena_bytes"] == result.plan.arena_size
    for j in jobs:
        if j["kind"] == "NN":
            assert j["cycles"] > 0 and j["macs"] > 0 and j["cores"] >= 1 and j["tiling"]["tile"][0] >= 1
            assert j["out_shape"] is not None and j["opcode"] is not None
    # Per operator: every model operator once, with its placement; the ADDs run on the NN cores.
    assert [o["index"] for o in info["ops"] if o["index"] >= 0] == list(range(66))
    assert {o["unit"] for o in info["ops"] if o["opcode"] == "ADD"} == {"NN"}


def test_inspect_text_gives_the_summary_before_the_job_table(v2):
    result, blob = v2
    text = render_text(describe(blob, result.blob))
    lines = text.splitlines()
    latency = next(i for i, line in enumerate(lines) if line.startswith("latency"))
    table = next(i for i, line in enumerate(lines) if line.startswith("jobs (x*y*z"))
    assert latency < table
    assert sum(" NN " in line and "conv 1x1" in line for line in lines[table:]) == 35
    assert "estimate" in lines[latency]


def test_blob_without_compiler_account_still_inspects_and_costs_the_same(v2, tmp_path):
    result, blob = v2
    bare = vipbin.read_blob(vipbin.write_blob(vipbin.Blob(**{**blob.__dict__, "metadata": {
        k: v for k, v in blob.metadata.items() if k != PROGRAM_KEY}})))
    with_meta = describe(blob, result.blob)
    without = describe(bare, vipbin.write_blob(bare))
    assert without["summary"]["ops"] is None and without["ops"] == []
    assert without["summary"]["estimate"]["latency_ms"] == with_meta["summary"]["estimate"]["latency_ms"]
    assert [j["cycles"] for j in without["jobs"] if "cycles" in j] == \
        [j["cycles"] for j in with_meta["jobs"] if "cycles" in j]
    path = tmp_path / "bare.vipbin"
    path.write_bytes(vipbin.write_blob(bare))
    page = tmp_path / "bare.html"
    assert main(["report", str(path), "-o", str(page)]) == 0
    assert "no compiler account" in page.read_text()


def test_malformed_compiler_account_is_a_one_line_error(v2, tmp_path):
    _, blob = v2
    broken = vipbin.Blob(**{**blob.__dict__, "metadata": {**blob.metadata, PROGRAM_KEY: '{"strings": [1'}})
    path = tmp_path / "broken.vipbin"
    path.write_bytes(vipbin.write_blob(broken))
    assert_one_line_error(run("npuc", "inspect", str(path)), 1, "broken.vipbin", PROGRAM_KEY)
    mismatched = vipbin.Blob(**{**blob.__dict__, "metadata": {**blob.metadata, PROGRAM_KEY: json.dumps(
        {"strings": [], "ops": [], "steps": [], "holds": [], "views": []})}})
    path.write_bytes(vipbin.write_blob(mismatched))
    assert_one_line_error(run("npuc", "inspect", str(path), "--json"), 1, "lists 0 steps")
    # An account whose first NN job writes the graph input: its descriptor's output address says otherwise.
    account = json.loads(blob.metadata[PROGRAM_KEY])
    first_nn = next(s for s in account["steps"] if s[1] == "NN")
    first_nn[5] = [account["strings"].index(blob.tensors[blob.inputs[0]].name)]
    lying = vipbin.Blob(**{**blob.__dict__, "metadata": {**blob.metadata, PROGRAM_KEY: json.dumps(account)}})
    path.write_bytes(vipbin.write_blob(lying))
    assert_one_line_error(run("npuc", "report", str(path), "-o", str(tmp_path / "r.html")), 1,
                          "writes", "but its descriptor addresses")
    assert not (tmp_path / "r.html").exists()


# -- the HTML report ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(v2, tmp_path_factory) -> Path:
    result, blob = v2
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(report(blob, result.blob, "m.vipbin"))
    return path


def test_report_is_self_contained(page):
    html = page.read_text()
    for needle in ("<script", "<link", "src=", "@import", "url(", "<img", "<iframe"):
        assert needle not in html.lower(), needle
    # The only URL is the SVG namespace, an identifier no browser fetches.
    assert set(re.findall(r"https?://[^\"'\s<>]+", html)) == {"http://www.w3.org/2000/svg"}
    assert re.findall(r'href="([^"#][^"]*)"', html) == []
    # Every operator is placed, the chart has a bar per layer, the memory map a block per tensor.
    assert html.count("<tr>") == 1 + 66
    assert html.count(f'fill="{COLOURS["NN"]}"') >= 64


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _render(browser: str, page: Path, png: Path) -> str:
    """Render ``page`` headless into ``png``; returns Chromium's log (console messages included)."""
    with tempfile.TemporaryDirectory() as profile:
        p = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1250,1400",
                            f"--screenshot={png}", page.resolve().as_uri()],
                           capture_output=True, text=True, timeout=120)
    if p.returncode != 0 or not png.exists():
        pytest.skip(f"Chromium is installed but could not render a page (exit {p.returncode}): "
                    f"{p.stderr.strip().splitlines()[-1:] if p.stderr.strip() else ''}")
    return p.stderr


def _console(log: str) -> list[str]:
    return [line for line in log.splitlines() if ":CONSOLE" in line]


def test_report_opens_in_headless_chromium_without_console_errors_and_shows_the_chart(page, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium when apt-get can); "
                    "the browser check did not run")
    # The log does show console messages: a page that logs an error must be caught.
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><script>console.error("npuc-probe")</script></body></html>')
    assert any("npuc-probe" in line for line in _console(_render(browser, bad, tmp_path / "bad.png")))

    png = tmp_path / "report.png"
    log = _render(browser, page, png)
    assert _console(log) == [], _console(log)
    from PIL import Image

    image = np.asarray(Image.open(png).convert("RGB")).astype(int)

    def columns(colour: str) -> int:
        """Screen columns holding that colour: a bar chart of ~60 layers fills hundreds of them."""
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        return int(np.all(np.abs(image - rgb) <= 2, axis=2).any(axis=0).sum())

    nn, dram = columns(COLOURS["NN"]), columns(COLOURS["DRAM"])
    print(f"\nscreenshot: NN bars in {nn} pixel columns, DRAM bars in {dram}")
    assert nn > 400 and dram > 400


def test_mutated_programs_fail_inspect_and_report_only_with_one_line_errors():
    """Hostile descriptors, relocations, stream words and compiler accounts: an NpucError or a result."""
    small = oracle.model_path("mobilenet_v1_0.25_128_quant")
    blob = vipbin.read_blob(compile_model(small).blob)
    desc_id = next(i for i, b in enumerate(blob.buffers) if b.kind == "descriptor")
    rng = np.random.default_rng(7)
    outcomes: dict[str, int] = {}
    for k in range(200):
        buffers, relocations = list(blob.buffers), list(blob.relocations)
        steps, metadata = list(blob.steps), dict(blob.metadata)
        what = k % 4
        if what == 0:
            init = bytearray(buffers[desc_id].init)
            for pos in rng.integers(0, len(init), 4):
                init[pos] = int(rng.integers(0, 256))
            buffers[desc_id] = vipbin.Buffer(**{**buffers[desc_id].__dict__, "init": bytes(init)})
        elif what == 1:
            i = int(rng.integers(0, len(relocations)))
            r = relocations[i]
            relocations[i] = vipbin.Relocation(**{**r.__dict__, "target_offset": int(rng.integers(0, 1 << 20)),
                                                  "target_buffer": int(rng.integers(0, len(buffers)))})
        elif what == 2:
            i = next(j for j, s in enumerate(steps) if isinstance(s, vipbin.NpuStep))
            words = list(steps[i].stream)
            words[int(rng.integers(0, len(words)))] = int(rng.integers(0, 1 << 32))
            steps[i] = vipbin.NpuStep(steps[i].name, words, steps[i].bos)
        else:
            text = bytearray(metadata[PROGRAM_KEY].encode())
            for pos in rng.integers(0, len(text), 2):
                text[pos] = int(rng.integers(32, 127))
            metadata[PROGRAM_KEY] = text.decode()
        mutated = vipbin.Blob(**{**blob.__dict__, "buffers": buffers, "relocations": relocations, "steps": steps,
                                 "metadata": metadata})
        try:
            raw = vipbin.write_blob(mutated)
            decoded = decode_blob(vipbin.read_blob(raw, "m.vipbin"), "m.vipbin")
            render_html(describe_decoded(decoded, raw), decoded)
            outcome = "described"
        except NpucError as e:
            assert "\n" not in str(e)
            outcome = type(e).__name__
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"\n200 mutated programs: {outcomes}")
    assert outcomes.get("described", 0) > 20 and sum(v for k, v in outcomes.items() if k != "described") > 20
