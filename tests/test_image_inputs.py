"""Images fed to models with float, int8 or NCHW inputs (PyTorch and TF2 exports), in Python and in C npu-run.

A float32 input that the model quantizes first gets the pixels mapped onto the
quantized range the model was calibrated on (its normalization is recorded in
the blob at compile time); ``--mean``/``--std`` override it and also apply to
quantized inputs; an input of shape [1, 3, H, W] gets the image in NCHW order.
The C runtime's npu-run must feed exactly the bytes the Python one feeds.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import oracle
from c_build import fake_env
from model_builder import ModelBuilder
from npuc import vipbin
from npuc.cli import npu_run_main
from npuc.driver import compile_model
from npuc.passes.inputs import MEAN_KEY, STD_KEY
from npuc.runtime.image import image_input, load_rgb, resize_bilinear_float

IMAGE = oracle.IMAGES / "grace_hopper.bmp"


def _float_nchw_model(scale: float, zero_point: int) -> bytes:
    """float [1,3,H,W] -> QUANTIZE int8 -> DEQUANTIZE: outputs the quantized values the model sees."""
    m = ModelBuilder()
    g = m.main
    x = g.input((1, 3, 12, 16), "float32")
    q = g.tensor((1, 3, 12, 16), "int8", scale=scale, zero_point=zero_point)
    g.op("QUANTIZE", [x], [q])
    y = g.output(g.tensor((1, 3, 12, 16), "float32"))
    g.op("DEQUANTIZE", [q], [y])
    return m.build()


def _identity_model(shape: tuple[int, ...], dtype: str, **quant) -> bytes:
    """An input passed through a RESHAPE: outputs the bytes npu-run fed."""
    m = ModelBuilder()
    g = m.main
    x = g.input(shape, dtype, **quant)
    y = g.output(g.tensor(shape, dtype, **quant))
    g.op("RESHAPE", [x, g.const(np.array(shape, np.int32))], [y])
    return m.build()


def _blob(model: bytes, tmp_path: Path) -> Path:
    src, out = tmp_path / "m.tflite", tmp_path / "m.vipbin"
    src.write_bytes(model)
    out.write_bytes(compile_model(src).blob)
    return out


def _python_run(blob: Path, out: Path, *extra: str) -> np.ndarray:
    out.mkdir(exist_ok=True)
    assert npu_run_main([str(blob), str(IMAGE), "--output-dir", str(out), *extra]) == 0
    return np.load(next(out.glob("*.npy")))


def _resized(height: int, width: int) -> np.ndarray:
    return resize_bilinear_float(load_rgb(IMAGE), height, width)


def test_float_input_gets_the_models_own_normalization_in_nchw(tmp_path):
    blob = _blob(_float_nchw_model(1.0, -128), tmp_path)
    meta = vipbin.load_blob(blob).metadata
    assert (float(meta[MEAN_KEY]), float(meta[STD_KEY])) == (0.0, 1.0)   # real = (q + 128) * 1: pixels 0..255
    got = _python_run(blob, tmp_path / "out")
    want = _resized(12, 16).transpose(2, 0, 1)[None]
    expected = oracle.run_reference(tmp_path / "m.tflite", [want.astype(np.float32)])[0]
    assert np.array_equal(got, expected)
    assert np.abs(got - want).max() <= 0.5                              # the pixels, rounded by the QUANTIZE


def test_normalization_follows_the_input_quantization(tmp_path):
    blob = _blob(_float_nchw_model(2.0 / 255, 0), tmp_path)             # real in [-1.004, 1]: pixels -> (p-128)/127.5
    meta = vipbin.load_blob(blob).metadata
    assert float(meta[MEAN_KEY]) == 128.0 and float(meta[STD_KEY]) == pytest.approx(127.5)


def test_mean_and_std_quantize_a_quantized_input(tmp_path):
    blob = _blob(_identity_model((1, 20, 24, 3), "int8", scale=0.02, zero_point=3), tmp_path)
    got = _python_run(blob, tmp_path / "out", "--mean", "123.7,116.3,103.5", "--std", "58.4,57.1,57.4")
    real = (_resized(20, 24) - np.float32([123.7, 116.3, 103.5])) / np.float32([58.4, 57.1, 57.4])
    q = np.sign(real / np.float32(0.02)) * np.floor(np.abs(real / np.float32(0.02)) + 0.5) + 3
    assert np.array_equal(got[0], np.clip(q, -128, 127).astype(np.int8))


def test_int8_nchw_input_gets_pixels_minus_128(tmp_path):
    blob = _blob(_identity_model((1, 3, 20, 24), "int8", scale=0.02, zero_point=3), tmp_path)
    got = _python_run(blob, tmp_path / "out")
    want = (_resized(20, 24).astype(np.uint8).astype(np.int16) - 128).astype(np.int8).transpose(2, 0, 1)[None]
    assert np.array_equal(got, want)


@pytest.mark.parametrize("model, extra", [
    (_float_nchw_model(1.0, -128), ()),
    (_float_nchw_model(0.05, 7), ()),
    (_identity_model((1, 3, 20, 24), "int8", scale=0.02, zero_point=3), ()),
    (_identity_model((1, 20, 24, 3), "int8", scale=0.02, zero_point=3), ("--mean", "123.7,116.3,103.5", "--std", "58")),
    (_identity_model((1, 3, 20, 24), "uint8", scale=0.02, zero_point=3), ("--mean", "127.5", "--std", "127.5")),
    (_identity_model((1, 20, 24, 3), "float32"), ()),
], ids=["float-own", "float-other", "int8-nchw", "int8-mean-std", "uint8-nchw-mean-std", "float-label-image"])
def test_c_npu_run_feeds_the_same_bytes(model, extra, tmp_path, c_npu_run, c_fake):
    blob = _blob(model, tmp_path)
    want = _python_run(blob, tmp_path / "py", *extra)
    out = tmp_path / "c"
    out.mkdir()
    p = subprocess.run([str(c_npu_run), str(blob), str(IMAGE), "-n", "0", "--output-dir", str(out), *extra],
                       capture_output=True, text=True, env=fake_env(c_fake), timeout=120)
    assert p.returncode == 0, p.stderr
    assert (out / "output_0.bin").read_bytes() == want.tobytes()


def test_bad_mean_is_a_usage_error(tmp_path, capsys):
    blob = _blob(_identity_model((1, 20, 24, 3), "uint8", scale=0.02, zero_point=3), tmp_path)
    assert npu_run_main([str(blob), str(IMAGE), "--std", "0"]) == 2
    assert "--std '0'" in capsys.readouterr().err


def test_image_input_refuses_a_non_image_shape():
    from npuc.errors import InputError

    with pytest.raises(InputError, match=r"\[1, 4, 5, 6\] is not an image"):
        image_input(IMAGE, (1, 4, 5, 6), "uint8")
