"""The v8 coefficient format against Mesa's golden i.MX 8M Plus buffers: the compiler's encoder
(npuc/coefs/v8.py) and the simulator's own decoder (npuc/sim/coef_v8.py).

* Every golden buffer decodes to the model's own weights (Mesa's lowering of
  them: transposed, reshuffled, depthwise one channel per kernel) and to
  TFLite's biases with the input zero point folded in as v8 needs
  (``+ sum(w - zp) * (128 - in_zp)``), and every core's stream ends exactly at
  the bit count its header gives.
* Re-encoding the decoded kernels with Mesa's symbol map gives Mesa's bytes;
  with npuc's own map the buffer is never larger, and no other map codes it
  in fewer bits.
* Round trips (the compiler encodes, the simulator decodes) over shapes the
  MobileNets lack; malformed and fuzzed buffers (only SimError from the
  simulator's decoder, naming the job), decoding speed.
"""

from __future__ import annotations

import time
from itertools import permutations

import numpy as np
import pytest

import golden_jobs as G
import oracle
from npuc.coefs import KernelGeometry, codec_for, v8 as C
from npuc.hw.descriptors import NN_DESCRIPTOR
from npuc.hw.target import VIPNANO_SI_PLUS, VIPPICO_V3
from npuc.errors import CoefficientError, SimError
from npuc.frontend_tflite import load_tflite
from npuc.passes import stride2
from npuc.sim import coef_v8 as S

TARGET = VIPNANO_SI_PLUS
CODEC = C.HuffmanCodec(TARGET)
assert codec_for(TARGET) == CODEC
#: The MAC array's input offset on v8 (vipnano-nn.md 3.2), written out to check the target's value.
V8_INPUT_OFFSET = 128


def golden(model: str) -> list[tuple[G.GoldenJob, dict[str, int], bytes]]:
    out = []
    for job in G.nn_jobs(model, G.V8):
        desc = NN_DESCRIPTOR.unpack(G.bo_bytes(model, job.submit, job.desc_bo, G.V8))
        out.append((job, desc, G.bo_bytes(model, job.submit, job.coef_bo, G.V8)))
    return out


def expected_kernels(model: str, job: G.GoldenJob, desc: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """The stored kernels [OC][channels][KY][KX] and bias words Mesa's lowering makes of the TFLite operator."""
    g = load_tflite(oracle.model_path(model))
    op = g.ops[job.op_index]
    w = np.asarray(g.tensors[op.inputs[1]].data)
    bias = np.asarray(g.tensors[op.inputs[2]].data, dtype=np.int64)
    if op.opcode == "DEPTHWISE_CONV_2D":
        kernels = w[0].transpose(2, 0, 1)[:, None]
    else:
        kernels = np.ascontiguousarray(w.transpose(0, 3, 1, 2))
        if desc["kernel_z_size"] != kernels.shape[1]:       # Mesa's stride-2 reshuffle
            kernels = stride2.reshuffle_weights(kernels, desc["coef_zero_point"])
    in_zp = G.quant(model, op.inputs[0])[1]
    taps = (kernels.astype(np.int64) - desc["coef_zero_point"]).reshape(len(kernels), -1).sum(axis=1)
    words = (bias + taps * (V8_INPUT_OFFSET - in_zp)) % (1 << 32)
    return kernels, words.astype(np.uint32)


@pytest.mark.parametrize("model", G.GOLDEN_MODELS)
def test_golden_buffers_decode_to_the_models_weights_and_v8_bias_words(model):
    assert TARGET.mac_input_offset == V8_INPUT_OFFSET
    checked = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 0, "ADD": 0}
    for job, desc, data in golden(model):
        d = S.decode_v8(data, desc, TARGET, job.name)
        assert d.total_bytes == job.coef_used_bytes == len(data), job.name
        if job.op_name == "ADD":
            # Mesa's v8 ADD: output channel o weighs input channel o and o + C, every other weight is real zero.
            oc, zp = desc["out_image_z_size"], desc["coef_zero_point"]
            w = d.weights[:, :, 0, 0].astype(np.int64)
            pairs = np.zeros_like(w, dtype=bool)
            pairs[np.arange(oc), np.arange(oc)] = pairs[np.arange(oc), oc + np.arange(oc)] = True
            assert (w[~pairs] == zp).all() and (w[pairs] != zp).all(), job.name
            assert len(set(d.biases.tolist())) == 1, job.name
        else:
            kernels, words = expected_kernels(model, job, desc)
            assert np.array_equal(d.weights, kernels), job.name
            assert np.array_equal(d.biases, words), job.name
        checked[job.op_name] += 1
    print(f"\n{model}: {checked}")
    assert checked["CONV_2D"] >= 15 and checked["DEPTHWISE_CONV_2D"] >= 13


@pytest.mark.parametrize("model", G.GOLDEN_MODELS)
def test_reencoding_with_mesas_symbol_map_gives_mesas_bytes_and_npucs_map_fewer(model):
    mesa_total = ours_total = 0
    for job, desc, data in golden(model):
        d = S.decode_v8(data, desc, TARGET, job.name)
        geo = KernelGeometry.from_descriptor(desc)
        assert C.encode_coefficients(d.weights, d.biases, geo, TARGET, d.symbol_map) == data, job.name
        ours = C.plan_coefficients(d.weights, d.biases, geo, TARGET)
        assert ours.total_bytes <= len(data), job.name
        again = S.decode_v8(ours.pack(), desc, TARGET, job.name)
        assert np.array_equal(again.weights, d.weights) and np.array_equal(again.biases, d.biases)
        mesa_total += len(data)
        ours_total += ours.total_bytes
    print(f"\n{model}: Mesa's symbol maps {mesa_total} bytes, npuc's {ours_total}")
    assert ours_total < 0.9 * mesa_total


def test_chosen_symbol_map_codes_in_the_fewest_bits():
    """Against every one of the 8! maps, on a real layer (MobileNet v1's first pointwise convolution)."""
    job, desc, data = next(g for g in golden("mobilenet_quant_v1_224") if g[0].op_index == 2)
    d = S.decode_v8(data, desc, TARGET, job.name)
    geo = KernelGeometry.from_descriptor(desc)
    best = C.plan_coefficients(d.weights, d.biases, geo, TARGET)
    rng = np.random.default_rng(5)
    maps = list(permutations(range(C.BIT_LENGTHS)))
    for lengths in [maps[i] for i in rng.choice(len(maps), 200, replace=False)] + [d.symbol_map]:
        other = CODEC.encode(d.weights, d.biases, None, geo, lengths)
        assert int(other.core_bits.sum()) >= int(best.core_bits.sum()), lengths
    # Exhaustively through the histogram (the cost of a map is a sum over bit lengths):
    n = np.bincount(C._magnitudes(np.concatenate(C.coded_bytes(d.weights, geo, TARGET)))[2],
                    minlength=C.BIT_LENGTHS)

    def cost(lengths):
        return sum(int(n[b]) * (max(b, 1) + C.CODE_BOOK[s].extra_bits) for s, b in enumerate(lengths))
    assert cost(best.symbol_map) == min(cost(m) for m in maps)


# -- round trips beyond the golden shapes ---------------------------------------------------------------


def _weights(rng, shape, zp, raw):
    """Random kernels with many real zeros and every coded magnitude (0x00, 0x7F, 0x80, 0xFF ...)."""
    w = rng.integers(0, 256, shape).astype(np.uint8)
    w[rng.random(shape) < 0.4] = zp
    flat = w.reshape(-1)
    special = np.array([0, 1, 0x7F, 0x80, 0xFE, 0xFF], np.uint8)
    flat[:special.size] = special if raw else (special.astype(np.int64) + zp) & 0xFF
    return w


ROUND_TRIPS = {
    # (kernel_x, kernel_y, channels, out channels, kernels per superblock, depthwise)
    "pointwise, uneven cores, 3 superblocks": (1, 1, 37, 41, 3, False),
    "3x3 over 5 channels, odd byte count": (3, 3, 5, 7, 2, False),
    "one output channel": (3, 3, 4, 1, 1, False),
    "depthwise 3x3, 2 superblocks, uneven": (3, 3, 32, 32, 4, True),
    "depthwise 5x5 (27 values per block)": (5, 5, 14, 14, 3, True),
    "depthwise 1 channel": (3, 3, 1, 1, 1, True),
    "7x2 kernel, many blocks": (7, 2, 9, 13, 3, False),
}


@pytest.mark.parametrize("target", [VIPNANO_SI_PLUS, VIPPICO_V3], ids=lambda t: t.name)
@pytest.mark.parametrize("case", list(ROUND_TRIPS))
def test_round_trip(case, target):
    kx, ky, kz, oc, kpc, dw = ROUND_TRIPS[case]
    rng = np.random.default_rng(sorted(ROUND_TRIPS).index(case))
    zp = int(rng.integers(0, 256))
    geo = KernelGeometry(kernel_x=kx, kernel_y=ky, kernel_z=kz, out_channels=oc, kernels_per_superblock=kpc,
                         zero_point=zp, depthwise=dw)
    codec = codec_for(target)
    weights = _weights(rng, (oc, geo.kernel_channels, ky, kx), zp, not target.coef_delta_zero_point)
    biases = rng.integers(0, 1 << 32, oc, dtype=np.uint64).astype(np.uint32)
    data = codec.encode(weights, biases, None, geo).pack()
    desc = {"kernel_xy_size": kx, "kernel_y_size": ky, "kernel_z_size": kz, "kernel_z_size2": 0,
            "out_image_z_size": oc, "kernels_per_core": kpc, "depthwise": int(dw), "coef_zero_point": zp}
    d = S.decode_v8(data, desc, target, case)
    assert np.array_equal(d.weights, weights) and np.array_equal(d.biases, biases)
    assert len(data) == S.buffer_size_v8(data, desc, target)


def test_kernel_order_covers_every_channel_once():
    """Mesa's order is a bijection for regular kernels and, with at least one channel per core, depthwise ones."""
    for dw in (False, True):
        for oc in [1] + list(range(TARGET.nn_cores, 80)):
            cores = min(oc, TARGET.nn_cores)
            for kpc in range(1, -(-oc // cores) + 1):
                geo = KernelGeometry(kernel_x=3, kernel_y=3, kernel_z=oc if dw else 2, out_channels=oc,
                                     kernels_per_superblock=kpc, depthwise=dw)
                got = np.concatenate([ch for core in C.kernel_channels(geo, TARGET) for ch in core])
                assert sorted(got.tolist()) == list(range(oc)), (dw, oc, kpc)
                # The simulator's reading of the order is the same.
                sim = [ch for core in S.kernel_channels(oc, kpc, dw, TARGET) for sb in core for ch in sb]
                assert sim == got.tolist(), (dw, oc, kpc)
    with pytest.raises(CoefficientError, match="no known distribution"):
        C.check_geometry(KernelGeometry(3, 3, 4, 4, 1, depthwise=True), TARGET, "job")
    desc = {"kernel_xy_size": 3, "kernel_y_size": 3, "kernel_z_size": 4, "kernel_z_size2": 0, "out_image_z_size": 4,
            "kernels_per_core": 1, "depthwise": 1, "coef_zero_point": 0}
    with pytest.raises(SimError, match="^job: .*no known distribution"):
        S.decode_v8(bytes(128), desc, TARGET, "job")


# -- malformed and fuzzed buffers ----------------------------------------------------------------------


def _mutated(data: bytes, offset: int, value: int, width: int = 4) -> bytes:
    b = bytearray(data)
    b[offset:offset + width] = value.to_bytes(width, "little")
    return bytes(b)


def test_malformed_buffers_are_coefficient_errors_naming_the_job():
    job, desc, data = next(g for g in golden("mobilenet_quant_v1_224") if g[0].op_index == 5)
    header = C.HEADER.unpack(data[:C.HEADER_BYTES])
    word = lambda name: C.HEADER[name].byte_offset  # noqa: E731
    bits0 = header["stream_bits_0"]
    shorter = bits0 - 1 if bits0 % 512 != 1 else bits0 + 1       # same padded length, so the same buffer size
    cases = {
        "short header": (data[:40], "shorter than its 64-byte header"),
        "cut buffer": (data[:-8], "announces"),
        "version": (_mutated(data, 0, 0x20, 1), "version 2"),
        "zero-run mode": (_mutated(data, 1, 4, 1), "run_length_size=4"),
        "average bias": (_mutated(data, word("avg_bias"), 3, 2), "avg_bias=3"),
        "symbol map": (_mutated(data, word("symbol_map"), 0x01234566), "symbol map"),
        "stream length": (_mutated(data, word("stream_bits_0"), shorter), "header says"),
        "unused core": (_mutated(data, word("stream_bits_6"), 64), "only 6 cores"),
        "kernel count": (_mutated(data, C.HEADER_BYTES, data[C.HEADER_BYTES] ^ 0x04, 1), "core 0 stream"),
    }
    for name, (buf, message) in cases.items():
        S.clear_cache()
        with pytest.raises(SimError, match=message) as info:
            S.decode_v8(buf, desc, TARGET, f"job-{name}")
        assert str(info.value).startswith(f"job-{name}: "), str(info.value)


def test_fuzzed_buffers_fail_only_with_sim_error():
    rng = np.random.default_rng(8)
    jobs = [g for g in golden("mobilenet_v2_1.0_224_quant") if g[0].coef_used_bytes < 4000]
    start, decoded, refused = time.perf_counter(), 0, 0
    for k in range(300):
        job, desc, data = jobs[k % len(jobs)]
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, len(buf)))
            buf[i] ^= 1 << int(rng.integers(0, 8))
        if rng.random() < 0.1:
            buf = buf[:int(rng.integers(0, len(buf)))]
        try:
            S.decode_v8(bytes(buf), desc, TARGET, f"fuzz{k}")
            decoded += 1
        except SimError as e:
            assert str(e).startswith(f"fuzz{k}: ") and "\n" not in str(e)
            refused += 1
    print(f"\n300 fuzzed buffers: {decoded} decoded, {refused} refused, {time.perf_counter() - start:.2f} s")
    assert refused > 100


def test_decoding_mobilenet_v1_is_fast():
    jobs = golden("mobilenet_quant_v1_224")
    S.clear_cache()
    start = time.perf_counter()
    for job, desc, data in jobs:
        S.decode_v8(data, desc, TARGET, job.name)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for job, desc, data in jobs:
        S.decode_v8(data, desc, TARGET, job.name)
    cached = time.perf_counter() - start
    print(f"\nMobileNet v1's {sum(len(d) for _, _, d in jobs)} v8 coefficient bytes: decoded in {first:.2f} s, "
          f"cached {cached * 1e3:.0f} ms")
    assert first < 4.0 and cached < 0.2
