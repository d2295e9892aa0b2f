"""The simulator's own coefficient decoders (npuc/sim/coef_v7.py, coef_v8.py) against the compiler's codec.

The simulator must share no code with the compiler's encoders, so it reads
coefficient buffers with a second, independent implementation of both formats.
Here the two implementations must agree (weights, bias words, v7 trailer
words; or both refuse the buffer with SimError) on:

* every coefficient buffer of every golden capture in ../shared/golden (Mesa's
  submits for both NPUs: the MobileNets, the networks, the single-operator
  models and Mesa's CI matrix), and
* every NN job of npuc's blobs of a few shared models for both targets.

The simulator's modules import nothing of the compiler (only ``npuc.hw``,
``npuc.errors``, ``npuc.sim``, numpy and the standard library).

Hand-made malformed buffers (truncated streams, a bad header version, streams
longer than the buffer, size tables that do not add up) must raise SimError
naming the job, and the decoders must stay fast.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import oracle
from npuc import vipbin
from npuc.coefs import KernelGeometry, codec_for
from npuc.coefs import v7 as compiler_v7
from npuc.coefs import v8 as compiler_v8
from npuc.blob_program import decode_blob
from npuc.driver import compile_model
from npuc.errors import CoefficientError, SimError
from npuc.hw import coef_v7 as hw_v7
from npuc.hw import coef_v8 as hw_v8
from npuc.hw.descriptors import NN_DESCRIPTOR
from npuc.hw.target import VIPNANO_QI, VIPNANO_SI_PLUS, Target, get_target
from npuc.sim import coef
from npuc.sim.coef_common import MAX_DECODED_WEIGHTS

GOLDEN = oracle.SHARED / "golden"
#: Where golden captures live under ../shared/golden (each a folder per NPU set, captures below it).
GOLDEN_COLLECTIONS = [f"{kind}{target}" for kind in ("", "networks/", "ops/", "mesa-ci/")
                      for target in ("mesa-25.0.7-vipnano-qi", "mesa-25.0.7-vipnano-si-plus")]
#: Captures whose jobs.json lists no job at all (operators Mesa leaves to the CPU) are fine; a
#: collection without any coefficient buffer is not.
BLOB_MODELS = ["mobilenet_quant_v1_224", "mobilenet_v2_1.0_224_quant", "tf2_mobilenet_v2_1.0_224_ptq", "yolov5n_int8"]
TARGETS = [VIPNANO_QI, VIPNANO_SI_PLUS]


def target_of_set(folder: Path) -> Target:
    """The target of a golden set folder named ``mesa-<version>-<target name>``."""
    return get_target(folder.name.split("-", 2)[2])


def both(buf: bytes, desc: dict[str, int], target: Target, job: str):
    """(simulator's decode or its SimError, compiler's decode or its CoefficientError)."""
    out = []
    for decode in (lambda: coef.decode_coefficients(buf, desc, target, job),
                   lambda: codec_for(target).decode(buf, desc, job)):
        try:
            out.append(decode())
        except (SimError, CoefficientError) as e:
            out.append(e)
    return tuple(out)


def assert_agree(buf: bytes, desc: dict[str, int], target: Target, job: str) -> bool:
    """Both decoders read the same kernels (or both refuse); True if they decoded."""
    sim, ref = both(buf, desc, target, job)
    if isinstance(sim, SimError) or isinstance(ref, CoefficientError):
        assert isinstance(sim, SimError) and isinstance(ref, CoefficientError), \
            f"{job}: simulator {sim!r}, compiler {ref!r}"
        assert str(sim).startswith(f"{job}: "), str(sim)
        return False
    assert sim.weights.shape == ref.weights.shape, job
    assert np.array_equal(sim.weights, ref.weights), f"{job}: weights differ"
    assert np.array_equal(sim.biases, ref.biases), f"{job}: bias words differ"
    if ref.trailers is None:
        assert sim.trailers is None, job
    else:
        assert np.array_equal(sim.trailers, ref.trailers), f"{job}: trailer words differ"
    size = coef.buffer_size(buf[:coef.header_bytes(target)], desc, target, job)
    assert size == codec_for(target).size(buf[:codec_for(target).header_bytes], desc, job) == sim.total_bytes, job
    return True


# -- independence -------------------------------------------------------------------------------------------

SIM = Path(__file__).resolve().parents[1] / "npuc" / "sim"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules a source file imports (relative imports resolved inside npuc.sim)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = "npuc.sim".split(".")[:3 - node.level]
                module = ".".join(base + ([node.module] if node.module else []))
                names.update([module] if node.module else [f"{module}.{a.name}" for a in node.names])
            else:
                names.add(node.module)
    return names


def test_simulator_imports_nothing_of_the_compiler():
    files = sorted(SIM.glob("*.py"))
    assert len(files) >= 9
    for path in files:
        for name in imported_modules(path):
            top = name.split(".")[0]
            allowed = (name == "npuc.errors" or name.startswith(("npuc.hw.", "npuc.sim.")) or name == "npuc.hw"
                       or top == "numpy" or top in sys.stdlib_module_names)
            assert allowed, f"{path.name} imports {name}"
    # ... nor through the modules it imports: a fresh interpreter loads no npuc module beyond these.
    probe = ("import sys, npuc.sim.device, npuc.sim.coef; "
             "print(' '.join(m for m in sys.modules if m.startswith('npuc')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            cwd=SIM.parents[1]).stdout.split()
    assert "npuc.sim.nn" in loaded
    assert all(m in ("npuc", "npuc.errors", "npuc.hw", "npuc.sim") or m.startswith(("npuc.hw.", "npuc.sim."))
               for m in loaded), loaded


# -- every golden coefficient buffer ----------------------------------------------------------------------


def golden_buffers(collection: str) -> list[tuple[str, Target, dict[str, int], bytes]]:
    """(job name, target, descriptor, coefficient bytes) of every NN job of every capture of a collection."""
    root = GOLDEN / collection
    assert root.is_dir(), f"golden collection {root} is missing"
    target = target_of_set(root)
    out = []
    for jobs_file in sorted(root.glob("**/jobs.json")):
        capture = jobs_file.parent
        for entry in json.loads(jobs_file.read_text()):
            for k, job in enumerate(entry.get("jobs", [])):
                c = job.get("coefficients")
                if job["kind"] != "NN" or not c:
                    continue
                submit = capture / entry["submit"]
                config = (submit / f"bo_{job['config_bo']:03d}.bin").read_bytes()
                desc = NN_DESCRIPTOR.unpack(config, job["config_bo_offset"])
                data = (submit / f"bo_{c['bo']:03d}.bin").read_bytes()[c["offset"]:c["offset"] + c["used_bytes"]]
                name = f"{capture.relative_to(GOLDEN)}/{entry['submit']}/op{entry['lowered']['tflite_op_index']}-{k}"
                out.append((name, target, desc, data))
    return out


@pytest.mark.parametrize("collection", GOLDEN_COLLECTIONS)
def test_decoders_agree_on_every_golden_buffer(collection):
    buffers = golden_buffers(collection)
    assert buffers, f"no coefficient buffer in {GOLDEN / collection}"
    decoded = refused = 0
    for name, target, desc, data in buffers:
        if assert_agree(data, desc, target, name):
            decoded += 1
        else:
            refused += 1
        coef.clear_caches()
    print(f"\n{collection}: {len(buffers)} buffers, {decoded} decoded alike, {refused} refused by both")
    # Mesa's writers outside what the hardware can read back (docs/simulator.md: its fully-connected
    # lowering on v7) are refused; everything else decodes.
    assert decoded >= 0.9 * len(buffers)


# -- npuc's own blobs ----------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def blob_jobs(model: str, target: str) -> tuple[tuple[str, dict[str, int], bytes], ...]:
    blob = vipbin.read_blob(compile_model(oracle.model_path(model), target).blob)
    program = decode_blob(blob, model)
    out = []
    for e in program.entries:
        if e.kind != "NN":
            continue
        at = e.coefficients
        data = blob.buffers[at.buffer].init[at.offset:at.offset + e.coefficient_bytes]
        out.append((f"{model}/{target}/{e.name}#{e.index}", e.descs[0], bytes(data)))
    return tuple(out)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
@pytest.mark.parametrize("model", BLOB_MODELS)
def test_decoders_agree_on_every_nn_job_of_npucs_blobs(model, target):
    jobs = blob_jobs(model, target.name)
    assert jobs, f"{model} for {target.name}: no NN job"
    for name, desc, data in jobs:
        assert assert_agree(data, desc, target, name), f"{name}: npuc's own buffer refused"
    coef.clear_caches()
    print(f"\n{model} for {target.name}: {len(jobs)} NN jobs, {sum(len(d) for _, _, d in jobs)} coefficient bytes")


# -- malformed buffers -------------------------------------------------------------------------------------


def v7_case(out_channels: int = 11) -> tuple[dict[str, int], bytes]:
    """A zero-run coded v7 buffer: 3x3 kernels over 16 channels, one kernel per core and superblock."""
    rng = np.random.default_rng(7)
    geo = KernelGeometry(kernel_x=3, kernel_y=3, kernel_z=16, out_channels=out_channels, kernels_per_superblock=1,
                         in_image_x_size=8, zero_point=120)
    slots = geo.slots(VIPNANO_QI)
    weights = rng.integers(0, 256, (slots, 16, 3, 3)).astype(np.uint8)
    weights[rng.random(weights.shape) < 0.7] = 120
    data = compiler_v7.encode_coefficients(weights, rng.integers(0, 1 << 32, slots, dtype=np.uint64),
                                           np.arange(slots, dtype=np.uint64) * 64, geo, VIPNANO_QI, zrl_bits=3)
    desc = {"kernel_xy_size": 3, "kernel_y_size": 3, "kernel_z_size": 16, "kernel_z_size2": 0,
            "out_image_z_size": out_channels, "kernels_per_core": 1, "in_image_x_size": 8, "coef_zero_point": 120,
            "depthwise": 0}
    return desc, data


def v8_case() -> tuple[dict[str, int], bytes]:
    """A small v8 buffer (3x3 kernels over 4 channels, 9 outputs on 6 cores)."""
    rng = np.random.default_rng(8)
    geo = KernelGeometry(3, 3, 4, 9, 1, zero_point=131)
    weights = rng.integers(0, 256, (9, 4, 3, 3)).astype(np.uint8)
    data = compiler_v8.encode_coefficients(weights, rng.integers(0, 1 << 32, 9, dtype=np.uint64).astype(np.uint32),
                                           geo, VIPNANO_SI_PLUS)
    desc = {"kernel_xy_size": 3, "kernel_y_size": 3, "kernel_z_size": 4, "kernel_z_size2": 0, "out_image_z_size": 9,
            "kernels_per_core": 1, "in_image_x_size": 8, "coef_zero_point": 131, "depthwise": 0}
    return desc, data


def _set(data: bytes, offset: int, value: int, width: int = 4) -> bytes:
    b = bytearray(data)
    b[offset:offset + width] = value.to_bytes(width, "little")
    return bytes(b)


def _v7_cases() -> dict[str, tuple[dict[str, int], bytes, str]]:
    desc, data = v7_case()
    table = hw_v7.core_size_table(VIPNANO_QI).size
    size0 = int.from_bytes(data[:4], "little")
    assert size0 >= 192
    # Core 0's stream cut to its first 64 bytes, the size table saying so.
    short = _set(data[:table + 64] + data[table + size0:], 0, 64)
    # Core 0's stream cut before its last words (the pairs all there).
    cut = _set(data[:table + size0 - 64] + data[table + size0:], 0, size0 - 64)
    # Every core's zero-run width beyond the target's.
    wide = bytearray(data)
    at = table
    for c in range(VIPNANO_QI.nn_cores):
        wide[at] = VIPNANO_QI.zrl_bits_max + 1
        at += int.from_bytes(data[4 * c:4 * c + 4], "little")
    five, data5 = v7_case(5)
    extra = _set(data5, 4 * 6, 64) + bytes(64)          # a stream for core 6, which serves no channel
    return {
        "buffer cut inside its size table": (desc, data[:table - 4], "shorter than its size table"),
        "buffer shorter than its size table says": (desc, data[:-64], "announces"),
        "stream truncated to 64 bytes": (desc, short, "cannot fit a 64-byte stream"),
        "stream truncated before its last words": (desc, cut, "core 0 stream ends before"),
        "different zero-run widths": (desc, _set(data, table, 2, 1), "core 1 uses 3 zero-run bits, core 0 uses 2"),
        "core stream of 0 bytes": (desc, _set(data, 0, 0), "not a positive multiple"),
        "stream on an unused core": (five, extra, "only 5 cores"),
        "zero-run width beyond the target's": (desc, bytes(wide), "zero-run width 6 exceeds"),
        "kernel count": (desc, _set(data, table + 1, 7, 2), "carries 7 kernels"),
    }


def _v8_cases() -> dict[str, tuple[bytes, str]]:
    desc, data = v8_case()
    bits0 = hw_v8.HEADER["stream_bits_0"].byte_offset
    version = hw_v8.HEADER["version"]
    streams_end = len(data) - 4 * desc["out_image_z_size"]
    return {
        "cut inside the header": (data[:40], "shorter than its 64-byte header"),
        "bad header version": (_set(data, 0, data[0] & ~(version.mask << version.bit) | 2 << version.bit, 1),
                               "version 2 is not modelled"),
        "stream longer than the buffer": (_set(data, bits0, 8 * len(data)), "announces"),
        "stream truncated (fewer bits than its codes take)":
            (_set(data, bits0, int.from_bytes(data[bits0:bits0 + 4], "little") - 7), "header says|announces"),
        "biases cut off": (data[:streams_end + 8], "announces"),
        "symbol map not a permutation": (_set(data, hw_v8.HEADER["symbol_map"].byte_offset, 0x01234566), "symbol map"),
    }


@pytest.mark.parametrize("case", list(_v7_cases()))
def test_malformed_v7_buffers_are_sim_errors_naming_the_job(case):
    desc, buf, message = _v7_cases()[case]
    coef.clear_caches()
    with pytest.raises(SimError, match=message) as info:
        coef.decode_coefficients(buf, desc, VIPNANO_QI, "the job")
    assert str(info.value).startswith("the job: "), str(info.value)


@pytest.mark.parametrize("case", list(_v8_cases()))
def test_malformed_v8_buffers_are_sim_errors_naming_the_job(case):
    desc, _ = v8_case()
    buf, message = _v8_cases()[case]
    coef.clear_caches()
    with pytest.raises(SimError, match=message) as info:
        coef.decode_coefficients(buf, desc, VIPNANO_SI_PLUS, "the job")
    assert str(info.value).startswith("the job: "), str(info.value)


def test_well_formed_cases_decode():
    for target, (desc, data) in ((VIPNANO_QI, v7_case()), (VIPNANO_SI_PLUS, v8_case())):
        assert assert_agree(data, desc, target, "case")


def test_descriptors_asking_for_huge_kernels_are_refused_before_decoding():
    desc, data = v7_case()
    big = dict(desc, kernel_z_size=(1 << 14) - 1, kernel_z_size2=3, out_image_z_size=4096, kernels_per_core=64)
    with pytest.raises(SimError, match=f"the job: .*limit of {MAX_DECODED_WEIGHTS}"):
        coef.decode_coefficients(data, big, VIPNANO_QI, "the job")
    desc, data = v8_case()
    big = dict(desc, kernel_xy_size=15, kernel_y_size=15, kernel_z_size=(1 << 14) - 1, out_image_z_size=4096)
    with pytest.raises(SimError, match=f"the job: .*limit of {MAX_DECODED_WEIGHTS}"):
        coef.decode_coefficients(data, big, VIPNANO_SI_PLUS, "the job")


# -- speed ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_first_decode_of_mobilenet_v1_is_fast(target):
    """All of npuc's MobileNet v1 coefficients, decoded cold and then from the cache."""
    jobs = blob_jobs("mobilenet_quant_v1_224", target.name)
    coef.clear_caches()
    start = time.perf_counter()
    for name, desc, data in jobs:
        coef.decode_coefficients(data, desc, target, name)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for name, desc, data in jobs:
        coef.decode_coefficients(data, desc, target, name)
    cached = time.perf_counter() - start
    print(f"\n{target.name}: {sum(len(d) for _, _, d in jobs)} coefficient bytes of {len(jobs)} jobs decoded in "
          f"{cold:.3f} s, cached {cached * 1e3:.1f} ms")
    # Well under a second on an idle machine; the bound leaves room for other load on the 2 cores.
    assert cold < 2.0 and cached < 0.2
