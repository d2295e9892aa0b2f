"""npuc verify: every MobileNet passes, a blob with one wrong weight is caught at its layer, bad inputs are refused."""

from __future__ import annotations

import numpy as np
import pytest

import oracle
from npuc import verify as V
from npuc import vipbin
from npuc.coefs import KernelGeometry, v7
from npuc.blob_program import decode_blob
from npuc.cli import main
from npuc.driver import compile_model
from npuc.runtime.image import load_image_input
from test_cli import assert_one_line_error, run

GRACE = oracle.IMAGES / "grace_hopper.bmp"
MNV1 = oracle.model_path("mobilenet_quant_v1_224")
SMALL = oracle.model_path("mobilenet_v1_0.25_128_quant")
#: The layer the corruption test changes a weight of: a 1x1 convolution deep in MobileNet v1.
CORRUPTED_OP = 14


def verify_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["verify", *map(str, args)])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("model", oracle.MOBILENETS)
def test_verify_passes_on_every_mobilenet(model, capsys):
    code, out = verify_cli(capsys, oracle.model_path(model), "--image", GRACE)
    print(out.splitlines()[-2:])
    assert code == 0, out
    assert "PASS" in out and "FAIL" not in out
    assert "TFLite's reference kernels" in out
    if not model.startswith("tf2_"):  # per-channel layers are approximated on v7 (docs/per-channel-int8.md)
        assert "first layer beyond the tolerance: none" in out
    # Every operator of the model has a row, in graph order.
    rows = [line.split()[0] for line in out.splitlines()[2:] if line.split()[0].isdigit()]
    assert rows == [str(i) for i in range(len(rows))] and len(rows) > 30


@pytest.mark.parametrize("model", [m for m in oracle.MOBILENETS if not m.startswith("tf2_")])
def test_verify_passes_on_every_uint8_mobilenet_for_the_imx8mp(model, capsys):
    code, out = verify_cli(capsys, oracle.model_path(model), "--image", GRACE, "--target", "vipnano-si-plus")
    assert code == 0 and "first layer beyond the tolerance: none" in out, out


def _corrupt_one_weight(raw: bytes, op: int) -> tuple[bytes, int]:
    """The blob with one weight of ``op``'s first NN job changed (stream size unchanged); the input channel."""
    blob = vipbin.read_blob(raw)
    decoded = decode_blob(blob)
    entry = next(e for e in decoded.entries if e.kind == "NN" and e.op == op)
    desc, at, size = entry.descs[0], entry.coefficients, entry.coefficient_bytes
    buf = blob.buffers[at.buffer]
    old = buf.init[at.offset:at.offset + size]
    codec = v7.ZeroRunCodec(decoded.target)
    kernels = codec.decode(old, desc)
    weights = kernels.weights.copy()
    # The input channel TFLite's input to this layer is largest in, so that the change shows.
    graph_op = compile_model(MNV1).program.op(op)
    values = oracle.run_reference_all(MNV1, [load_image_input(GRACE, 224, 224)])[graph_op.inputs[0]]
    z = int(np.argmax(values.reshape(-1, values.shape[-1]).mean(axis=0)))
    zp = desc["coef_zero_point"]
    weights[0, z, 0, 0] = zp + 100 if zp < 128 else zp - 100   # no zero run starts or ends: same size
    new = codec.encode(weights, kernels.biases, kernels.trailers, KernelGeometry.from_descriptor(desc),
                       zrl_bits=kernels.zrl_bits).pack()
    assert len(new) == size
    assert np.count_nonzero(codec.decode(new, desc).weights != kernels.weights) == 1
    init = bytearray(buf.init)
    init[at.offset:at.offset + size] = new
    buffers = list(blob.buffers)
    buffers[at.buffer] = vipbin.Buffer(buf.size, buf.kind, buf.name, buf.align, bytes(init))
    return vipbin.write_blob(vipbin.Blob(**{**blob.__dict__, "buffers": buffers})), z


def test_corrupted_weight_is_named_by_its_layer(tmp_path, capsys):
    good = tmp_path / "good.vipbin"
    assert main(["compile", str(MNV1), "-o", str(good), "--one-job-per-submit"]) == 0
    bad = tmp_path / "bad.vipbin"
    data, _ = _corrupt_one_weight(good.read_bytes(), CORRUPTED_OP)
    bad.write_bytes(data)
    capsys.readouterr()
    code, out = verify_cli(capsys, MNV1, "--image", GRACE, "--blob", bad)
    print(out)
    assert f"first layer beyond the tolerance: #{CORRUPTED_OP} CONV_2D (NN)" in out
    assert out.count("<-- beyond") >= 1
    # The same blob uncorrupted passes, and every layer is within the tolerance.
    code, out = verify_cli(capsys, MNV1, "--image", GRACE, "--blob", good)
    assert code == 0 and "first layer beyond the tolerance: none" in out


def test_blob_from_another_model_is_refused(tmp_path):
    other = tmp_path / "small.vipbin"
    assert main(["compile", str(SMALL), "-o", str(other)]) == 0
    p = run("npuc", "verify", str(MNV1), "--image", str(GRACE), "--blob", str(other))
    assert_one_line_error(p, 1, "small.vipbin", "compiled from a model with sha256")


def test_blob_with_shared_submits_still_judges_the_output(tmp_path, capsys):
    blob = tmp_path / "small.vipbin"
    assert main(["compile", str(SMALL), "-o", str(blob)]) == 0
    capsys.readouterr()
    code, out = verify_cli(capsys, SMALL, "--image", GRACE, "--blob", blob)
    assert code == 0 and "several jobs share a submit" in out and "PASS" in out


def test_without_ai_edge_litert_the_host_kernels_give_the_same_comparison(monkeypatch):
    """The fallback reference (a --cpu-only blob, npuc's host kernels) is bit-exact with TFLite's."""
    from npuc.frontend_tflite import load_tflite

    graph = load_tflite(SMALL)
    blob = vipbin.read_blob(compile_model(SMALL, split_steps=True).blob)
    image = load_image_input(GRACE, 128, 128)
    with_litert = V.verify(SMALL, blob, "small", graph, lambda rt: [image], "vipnano-qi")
    monkeypatch.setattr(V, "litert_reference", lambda model, inputs: None)
    without = V.verify(SMALL, blob, "small", graph, lambda rt: [image], "vipnano-qi")
    assert "host kernels" in without.reference and "ai-edge-litert is not installed" in without.reference
    assert [(r.op, r.own, r.run) for r in without.layers] == [(r.op, r.own, r.run) for r in with_litert.layers]
    assert without.passed and with_litert.passed


def test_output_rules():
    ref = np.zeros((1, 10), np.uint8)
    ref[0, 3], ref[0, 7] = 200, 197
    near = ref.copy()
    near[0, 7] = 202                     # npuc's top-1 is TFLite's runner-up, 3 steps behind: a near tie
    assert V.judge_output("p", near, ref, classifier=True).passed
    far = ref.copy()
    far[0, 1] = 250                      # a class TFLite scores 200 steps lower
    assert not V.judge_output("p", far, ref, classifier=True).passed
    assert V.judge_output("x", ref + 2, ref, classifier=False).passed
    assert not V.judge_output("x", ref + 3, ref, classifier=False).passed
    # Indices (a segmentation map): judged by agreement, whatever the distance between two classes.
    labels = np.zeros(1000, np.int64)
    wrong = labels.copy()
    wrong[:10] = 15
    assert V.judge_output("map", wrong, labels, classifier=False, indices=True).passed
    wrong[:11] = 15
    assert not V.judge_output("map", wrong, labels, classifier=False, indices=True).passed
    assert V.is_classifier((1, 1001), "uint8") and not V.is_classifier((1, 7, 7, 17), "uint8")
