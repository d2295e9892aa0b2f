"""Seeded fuzzing of npuc's entry points: mutated inputs may only ever fail with a one-line NpucError.

Run one entry point in its own process (so that a hang is bounded and peak
memory is that process's own)::

    python tests/fuzzing.py ENTRY COUNT SEED

ENTRY is ``frontend`` (mutated TFLite models, then compiled when they still
load), ``vipbin`` (mutated blobs, loaded and run on the simulator when they
still validate), ``simulator`` (single NN and TP jobs of Mesa's golden submits
with mutated descriptors, coefficients, stream words and buffer sizes) or
``image`` (mutated BMP files).  Input k uses ``numpy.random.default_rng((SEED,
k))``, so any failure reproduces from its index.  Prints one JSON object: the
count, how each input ended, the slowest input and every unexpected
exception (type, message, index).
"""

from __future__ import annotations

import json
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oracle  # noqa: E402
from blob_tools import fix_crcs  # noqa: E402
from npuc.errors import NpucError  # noqa: E402

#: 32-bit values that stress offsets, counts, indices, dimensions and float fields (NaN, infinities, -1.0, -0.0).
EXTREMES = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 0x10000, 0x7FC00000, 0xFF800000, 0x7F800000,
            0xBF800000, 0x80000000, 0x40000000, 0xFFFFFFFE)


def mutate(rng: np.random.Generator, data: bytes) -> bytes:
    """Flip bytes, truncate, or overwrite an aligned word with an extreme value (or several of these)."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.integers(0, 4)
        if kind == 0 and len(b):
            for pos in rng.integers(0, len(b), int(rng.integers(1, 9))):
                b[pos] = int(rng.integers(0, 256))
        elif kind == 1 and len(b) > 1:
            del b[int(rng.integers(0, len(b))):]
        elif len(b) >= 4:
            pos = int(rng.integers(0, len(b) // 4)) * 4
            value = EXTREMES[int(rng.integers(0, len(EXTREMES)))] if kind == 2 else int(rng.integers(0, 1 << 32))
            b[pos:pos + 4] = struct.pack("<I", value)
    return bytes(b)


# -- entry points ------------------------------------------------------------------------

FRONTEND_MODELS = ("split_concat", "keras_lstm_mnist_ptq", "mobilenet_v1_0.25_128_quant")


def fuzz_frontend(rng: np.random.Generator, k: int, state: dict) -> str:
    from npuc.backend_vip.emit import emit_blob
    from npuc.driver import compile_graph
    from npuc.frontend_tflite import parse_tflite
    from npuc.hw.target import VIPNANO_QI

    if "models" not in state:
        state["models"] = [oracle.model_path(m).read_bytes() for m in FRONTEND_MODELS]
    data = mutate(rng, state["models"][k % len(FRONTEND_MODELS)])
    graph = parse_tflite(data, f"fuzz{k}.tflite")
    if len(data) > 100_000 and k % 10:
        return "loaded"  # compile one in ten of the big model's survivors (time)
    c = compile_graph(graph, VIPNANO_QI)
    emit_blob(c.schedule, c.jobs, VIPNANO_QI, graph.inputs, c.outputs, data, {})
    return "compiled"


def fuzz_vipbin(rng: np.random.Generator, k: int, state: dict) -> str:
    from npuc import vipbin
    from npuc.driver import compile_model
    from npuc.runtime.runtime import Runtime
    from npuc.sim.device import SimDevice

    if "blob" not in state:
        state["blob"] = compile_model(oracle.model_path("mobilenet_v1_0.25_128_quant")).blob
    raw = bytearray(mutate(rng, state["blob"]))
    if rng.random() < 0.7:
        fix_crcs(raw)  # mostly reach the semantic checks behind the CRCs
    blob = vipbin.read_blob(bytes(raw), f"fuzz{k}.vipbin")
    rt = Runtime(blob, SimDevice())
    for i, info in enumerate(rt.input_infos):
        rt.set_input(i, np.zeros(info.shape, info.dtype))
    rt.run()
    return "ran"


def _golden_jobs(state: dict) -> list[tuple]:
    """(submit, job) pairs of the golden v1 and v2 submits: each job is run alone."""
    if "golden" not in state:
        from npuc.golden import load_golden

        jobs = []
        for model in ("mobilenet_quant_v1_224", "mobilenet_v2_1.0_224_quant"):
            g = load_golden(oracle.SHARED / "golden" / "mesa-25.0.7-vipnano-qi" / model)
            kept = {s.name: [(bo, bo.contents()) for bo in s.bos] for s in g.submits}
            for op in g.ops:
                for job in op.jobs:
                    jobs.append((kept[op.submit], job, op.kind))
        state["golden"] = jobs
    return state["golden"]


def fuzz_simulator(rng: np.random.Generator, k: int, state: dict) -> str:
    from npuc.hw import registers as R
    from npuc.hw.descriptors import NN_DESCRIPTOR, TP_DESCRIPTOR
    from npuc.hw.kernel_abi import SubmitBo
    from npuc.sim.device import SimDevice

    jobs = _golden_jobs(state)
    bos, job, kind = jobs[int(rng.integers(0, len(jobs)))]
    device = SimDevice()
    buffers = {}
    for bo, data in bos:
        size = bo.size
        if rng.random() < 0.05:
            size = max(4096, int(size * rng.random()) // 4096 * 4096)  # too small for what points into it
        buf = device.new_buffer(size)
        n = min(len(data), size)
        buf.data[:n] = np.frombuffer(data, np.uint8)[:n]
        buffers[bo.address] = (buf, bo, bool(data))
    layout = NN_DESCRIPTOR if kind == "NN" else TP_DESCRIPTOR
    desc_addr, (desc_buf, _, _) = next((a, v) for a, v in buffers.items() if a <= job.descriptor < a + v[0].size)
    desc_off = job.descriptor - desc_addr
    what = rng.integers(0, 3)
    if what == 0:  # descriptor fields: random or extreme values
        fields = layout.unpack(desc_buf.data.tobytes(), desc_off)
        for _ in range(int(rng.integers(1, 4))):
            f = layout.fields[int(rng.integers(0, len(layout.fields)))]
            lo, hi = f.value_range()
            fields[f.name] = int(rng.choice([lo, hi, int(rng.integers(lo, hi + 1)), 0, 1]))
        desc_buf.data[desc_off:desc_off + layout.size] = np.frombuffer(
            layout.pack({f.name: fields[f.name] for f in layout.fields}), np.uint8)
    elif what == 1:  # bytes of some kept buffer (descriptors, coefficients)
        kept = [b for b, _, has in buffers.values() if has]
        target = kept[int(rng.integers(0, len(kept)))]
        mutated = mutate(rng, target.data.tobytes())
        n = min(len(mutated), target.size)
        target.data[:n] = np.frombuffer(mutated[:n], np.uint8)
    register = R.PS_NN_INST_ADDR if kind == "NN" else R.PS_TP_INST_ADDR
    words = R.load_state(register, job.descriptor) + R.load_state(R.GL_FLUSH_CACHE, R.GL_FLUSH_CACHE_NPU)
    if what == 2:  # stream words
        stream = bytearray(struct.pack(f"<{len(words)}I", *words))
        stream = bytearray(mutate(rng, bytes(stream)))
        stream += bytes(-len(stream) % 8)
    else:
        stream = bytearray(struct.pack(f"<{len(words)}I", *words))
    device.submit(bytes(stream), [SubmitBo(buf, addr, bo.flags) for addr, (buf, bo, _) in buffers.items()],
                  name=f"fuzz {k}")
    return "ran"


def fuzz_image(rng: np.random.Generator, k: int, state: dict) -> str:
    from npuc.runtime.image import load_image_input

    if "bmp" not in state:
        state["bmp"] = (oracle.IMAGES / "checker224X224.bmp").read_bytes()
        state["dir"] = tempfile.mkdtemp(prefix="npuc-fuzz-img-")
    data = bytearray(state["bmp"])
    # Most mutations in the 54-byte header, where the sizes and offsets are.
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.8:
            pos = int(rng.integers(0, 54 // 4)) * 4
            data[pos:pos + 4] = struct.pack("<I", EXTREMES[int(rng.integers(0, len(EXTREMES)))])
        else:
            data = bytearray(mutate(rng, bytes(data)))
    path = Path(state["dir"]) / f"fuzz{k}.bmp"
    path.write_bytes(bytes(data))
    try:
        load_image_input(path, 224, 224)
    finally:
        path.unlink()
    return "decoded"


ENTRIES = {"frontend": fuzz_frontend, "vipbin": fuzz_vipbin, "simulator": fuzz_simulator, "image": fuzz_image}


def run(entry: str, count: int, seed: int) -> dict:
    fn = ENTRIES[entry]
    state: dict = {}
    outcomes: Counter = Counter()
    unexpected: list[dict] = []
    slowest = (0.0, -1)
    multiline = []
    for k in range(count):
        rng = np.random.default_rng((seed, k))
        start = time.perf_counter()
        try:
            outcomes[fn(rng, k, state)] += 1
        except NpucError as e:
            outcomes[type(e).__name__] += 1
            if "\n" in str(e):
                multiline.append({"index": k, "message": str(e)})
        except Exception as e:  # noqa: BLE001 - the point is to catch everything else
            unexpected.append({"index": k, "type": type(e).__name__, "message": str(e)[:300],
                               "where": traceback.format_exc().strip().splitlines()[-3][:300]})
        elapsed = time.perf_counter() - start
        if elapsed > slowest[0] and k > 0:  # input 0 also pays for loading the corpus
            slowest = (elapsed, k)
    return {"entry": entry, "count": count, "seed": seed, "outcomes": dict(outcomes),
            "slowest_s": round(slowest[0], 3), "slowest_index": slowest[1], "unexpected": unexpected[:50],
            "unexpected_count": len(unexpected), "multiline": multiline[:10]}


if __name__ == "__main__":
    entry, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(run(entry, count, seed)))
