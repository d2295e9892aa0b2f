"""The coefficient codecs' package (npuc/coefs): one interface for both formats, round trips, compact plans.

The formats themselves are checked against Mesa's golden buffers in
tests/test_sim_nn.py (v7) and tests/test_coeffs_v8.py (v8); here: the codec
is picked by ``Target.coef_format``, random kernels of many shapes survive
encoding and decoding in both formats (with every zero-run width and Mesa's
flushes on v7), sizes and the chosen width agree with the packed bytes, plans
keep no large arrays of their own, and the package depends only on the
hardware declarations, the errors and numpy.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import npuc.coefs
from npuc.coefs import CODECS, DecodedKernels, KernelGeometry, codec_for, header_bytes, plane_offsets_in_stream, v7, v8
from npuc.errors import CoefficientError
from npuc.hw.target import VIPNANO_QI, VIPNANO_SI_PLUS, VIPPICO_V3

V7_SHAPES = [
    # (kernel_x, kernel_y, channels, out channels, kernels per superblock, input width)
    (3, 3, 24, 24, 3, 10),     # an expanded depthwise channel group
    (1, 1, 14, 21, 1, 9),      # pointwise, a partial block of 6 channels, padding slots
    (2, 2, 512, 16, 2, 10),    # stride-2 reshuffle shape
    (5, 5, 1, 9, 1, 70),       # sequential order, rows split at column 3
    (5, 5, 1, 3, 2, 20),       # sequential order, full rows
    (7, 3, 4, 20, 2, 16),      # non-square, interleaved, several superblocks
    (11, 2, 3, 1, 1, 11),      # one output channel
]


def _sparse(rng: np.random.Generator, shape: tuple[int, ...], zp: int, density: float) -> np.ndarray:
    w = rng.integers(0, 256, shape).astype(np.uint8)
    w[rng.random(shape) >= density] = zp
    return w


def test_codec_is_picked_by_coefficient_format():
    assert isinstance(codec_for(VIPNANO_QI), v7.ZeroRunCodec)
    assert isinstance(codec_for(VIPNANO_SI_PLUS), v8.HuffmanCodec)
    assert isinstance(codec_for(VIPPICO_V3), v8.HuffmanCodec)
    assert set(CODECS) == {VIPNANO_QI.coef_format, VIPNANO_SI_PLUS.coef_format}
    assert header_bytes(VIPNANO_QI) == 64 and header_bytes(VIPNANO_SI_PLUS) == 64
    assert plane_offsets_in_stream(VIPNANO_QI) and not plane_offsets_in_stream(VIPNANO_SI_PLUS)
    with pytest.raises(ValueError, match="unknown coefficient format"):
        codec_for(dataclasses.replace(VIPNANO_QI, coef_format="nonsense"))


@pytest.mark.parametrize("shape", V7_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_v7_round_trips_at_every_width(shape):
    kx, ky, z, oc, kpc, in_x = shape
    rng = np.random.default_rng(sum(shape))
    codec = codec_for(VIPNANO_QI)
    zp = int(rng.integers(0, 256))
    geo = KernelGeometry(kernel_x=kx, kernel_y=ky, kernel_z=z, out_channels=oc, kernels_per_superblock=kpc,
                         in_image_x_size=in_x, zero_point=zp)
    desc = {"kernel_xy_size": kx, "kernel_y_size": ky, "kernel_z_size": z, "out_image_z_size": oc,
            "kernels_per_core": kpc, "in_image_x_size": in_x, "coef_zero_point": zp}
    slots = geo.slots(VIPNANO_QI)
    biases = rng.integers(0, 1 << 32, slots, dtype=np.uint64).astype(np.uint32)
    trailers = rng.integers(0, 1 << 32, slots, dtype=np.uint64).astype(np.uint32)
    for density in (0.0, 0.03, 0.3, 0.95):
        weights = _sparse(rng, (slots, z, ky, kx), zp, density)
        sizes = {}
        for zrl in [None] + list(range(VIPNANO_QI.zrl_bits_max + 1)):
            for flushes in (False, True):
                plan = codec.encode(weights, biases, trailers, geo, zrl_bits=zrl, mesa_flushes=flushes)
                data = plan.pack()
                assert len(data) == plan.total_bytes and codec.size(data, desc) == len(data)
                if zrl is not None and not flushes:
                    sizes[zrl] = len(data)
                d = codec.decode(data, desc, "x")
                assert isinstance(d, DecodedKernels) and d.zrl_bits == plan.zrl_bits
                assert np.array_equal(d.weights, weights) and np.array_equal(d.biases, biases)
                assert np.array_equal(d.trailers, trailers)
        best = codec.encode(weights, biases, trailers, geo)
        assert best.total_bytes == min(sizes.values()) and best.zrl_bits == min(sizes, key=lambda k: (sizes[k], k))


@pytest.mark.parametrize("target", [VIPNANO_SI_PLUS, VIPPICO_V3], ids=lambda t: t.name)
def test_v8_round_trips(target):
    rng = np.random.default_rng(7)
    codec = codec_for(target)
    for kx, ky, z, oc, kpc, dw in [(1, 1, 37, 41, 3, False), (3, 3, 32, 32, 4, True), (2, 2, 9, 13, 2, False),
                                   (5, 5, 14, 14, 3, True), (3, 3, 5, 1, 1, False)]:
        zp = int(rng.integers(0, 256))
        geo = KernelGeometry(kernel_x=kx, kernel_y=ky, kernel_z=z, out_channels=oc, kernels_per_superblock=kpc,
                             zero_point=zp, depthwise=dw)
        desc = {"kernel_xy_size": kx, "kernel_y_size": ky, "kernel_z_size": z, "out_image_z_size": oc,
                "kernels_per_core": kpc, "depthwise": int(dw), "coef_zero_point": zp}
        weights = _sparse(rng, (oc, geo.kernel_channels, ky, kx), zp, 0.5)
        biases = rng.integers(0, 1 << 32, oc, dtype=np.uint64).astype(np.uint32)
        plan = codec.encode(weights, biases, None, geo)
        data = plan.pack()
        assert len(data) == plan.total_bytes == plan.cache_bytes == codec.size(data[:codec.header_bytes], desc)
        d = codec.decode(data, desc, "x")
        assert d.trailers is None and np.array_equal(d.weights, weights) and np.array_equal(d.biases, biases)


def test_plans_keep_no_large_arrays_and_no_bytes():
    """A plan refers to the caller's weights; what it holds of its own is small (v7 sparse runs at most a byte
    per weight), and packing twice gives the same bytes (nothing cached)."""
    rng = np.random.default_rng(3)
    for target, geo, dense in [
            (VIPNANO_QI, KernelGeometry(kernel_x=3, kernel_y=3, kernel_z=64, out_channels=64,
                                        kernels_per_superblock=8, zero_point=5), False),
            (VIPNANO_QI, KernelGeometry(kernel_x=1, kernel_y=1, kernel_z=256, out_channels=256,
                                        kernels_per_superblock=16, zero_point=5), True),
            (VIPNANO_SI_PLUS, KernelGeometry(kernel_x=1, kernel_y=1, kernel_z=256, out_channels=256,
                                             kernels_per_superblock=16, zero_point=5), True)]:
        slots = geo.slots(target) if target is VIPNANO_QI else geo.out_channels
        weights = _sparse(rng, (slots, geo.kernel_channels, geo.kernel_y, geo.kernel_x), 5, 0.9 if dense else 0.02)
        plan = codec_for(target).encode(weights, np.zeros(slots, np.uint32), np.zeros(slots, np.uint32), geo)
        assert plan.weights is weights
        own = 0
        for f in dataclasses.fields(plan):
            value = getattr(plan, f.name)
            if isinstance(value, np.ndarray) and value is not weights:
                own += value.nbytes
            elif f.name == "runs" and value is not None:
                own += value.nbytes
        assert own <= weights.nbytes // 4 + 4096, (target.name, own)
        assert plan.pack() == plan.pack()


def test_malformed_buffers_raise_coefficient_error_naming_the_job():
    desc = {"kernel_xy_size": 3, "kernel_y_size": 3, "kernel_z_size": 8, "out_image_z_size": 8,
            "kernels_per_core": 1, "in_image_x_size": 8, "coef_zero_point": 0, "depthwise": 0}
    for target in (VIPNANO_QI, VIPNANO_SI_PLUS):
        codec = codec_for(target)
        with pytest.raises(CoefficientError, match=r"^the-job: .*shorter"):
            codec.size(b"\0" * 8, desc, "the-job")
        with pytest.raises(CoefficientError, match=r"^the-job: "):
            codec.decode(b"\xff" * 4096, desc, "the-job")


def test_package_depends_only_on_the_hardware_declarations_errors_and_numpy():
    allowed = {"npuc.hw", "npuc.errors", "npuc.coefs", "numpy"}
    package = Path(npuc.coefs.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:   # relative: resolve against npuc.coefs
                    base = ["npuc", "coefs"][:3 - node.level] if node.level <= 2 else []
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
            elif isinstance(node, ast.Import):
                name = node.names[0].name
            else:
                continue
            top = name.split(".")[0]
            if top == "npuc":
                assert any(name == a or name.startswith(a + ".") for a in allowed), (path.name, name)
            else:
                assert top in {"numpy", "__future__", "dataclasses", "functools", "typing", "hashlib",
                               "collections"}, (path.name, name)
