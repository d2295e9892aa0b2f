"""What ``npuc inspect`` shows: a summary of where a blob's time and bytes go, then every job, then the container.

Everything comes from the blob: jobs are decoded from the command streams and
descriptors (:mod:`npuc.blob_program`), costs are the performance model's
estimates of those descriptors (:mod:`npuc.latency`), and operator names and
placements come from the compiler's account in META when the blob has one.
The same content is produced as text for people and as a JSON-ready dict for
scripts, from one function, so the two can never disagree.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import vipbin
from .coefs import plane_offsets_in_stream
from .hw.descriptors import NN_CACHE_FULL, NN_CACHE_NONE, NN_CACHE_PARTIAL, NN_POOLING_FIRST_PIXEL, kernel_z
from .blob_program import DecodedBlob, Entry, decode_blob
from .latency import LatencyEstimate, StepEstimate, estimate_blob
from .program_meta import HOST, NN, PROGRAM_KEY, TP

#: Bytes of a kernel's bias word, and of its trailer word where the format has one (v7: the plane offset).
WORD_BYTES = 4
_CACHE_MODES = {NN_CACHE_NONE: "none", NN_CACHE_FULL: "full", NN_CACHE_PARTIAL: "partial"}
#: Width of the job-name column of the text table.
_NAME_WIDTH = 52
#: What every latency figure is: the model is documented there.
ESTIMATE_NOTE = "estimate of the performance model (docs/performance-model.md), not a measurement"


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _shape(tensors: list[vipbin.TensorInfo], decoded: DecodedBlob, names: tuple[str, ...]) -> list[int] | None:
    ids = [decoded.tensor(n) for n in names]
    return list(tensors[ids[0]].shape) if ids and ids[0] is not None else None


def _sram_bytes(desc: dict[str, int]) -> int:
    used = 0
    if desc.get("kernel_caching_mode", NN_CACHE_NONE) != NN_CACHE_NONE:
        used += max(desc["kernel_cache_end_address"] - desc["kernel_cache_start_address"], 0)
    if desc.get("image_caching_mode", NN_CACHE_NONE) != NN_CACHE_NONE:
        used += max(desc["image_cache_end_address"] - desc["image_cache_start_address"], 0)
    return used


def _nn_details(e: Entry, decoded: DecodedBlob) -> dict[str, Any]:
    d = e.descs[0]
    oc, kz = d["out_image_z_size"], kernel_z(d)
    step = 2 if d["pooling"] == NN_POOLING_FIRST_PIXEL else 1
    cores = max(min(oc, decoded.target.nn_cores), 1)
    per_core = _ceil(oc, cores)
    words = WORD_BYTES * (2 if plane_offsets_in_stream(decoded.target) else 1)
    return {
        "in_shape": [d["in_image_x_size"], d["in_image_y_size"], kz],
        "out_shape": [d["out_image_x_size"] // step, d["out_image_y_size"] // step, oc],
        "kernel": [d["kernel_xy_size"], d["kernel_y_size"], kz],
        "tiling": {"tile": [d["out_image_tile_x_size"], d["out_image_tile_y_size"]],
                   "superblocks": _ceil(per_core, max(d["kernels_per_core"], 1)),
                   "kernels_per_superblock": d["kernels_per_core"],
                   "first_pixel_pooling": step == 2},
        "cores": cores,
        "sram": {"kernel_cache": _CACHE_MODES.get(d.get("kernel_caching_mode", 0), "?"),
                 "image_cache": _CACHE_MODES.get(d.get("image_caching_mode", 0), "?"),
                 "bytes": _sram_bytes(d)},
        # A native depthwise kernel holds one plane's taps, whatever the job's kernel_z says.
        "uncompressed_coefficient_bytes": cores * per_core * ((1 if d.get("depthwise") else kz)
                                                              * d["kernel_xy_size"] * d["kernel_y_size"] + words),
    }


def _job(e: Entry, est: StepEstimate, decoded: DecodedBlob) -> dict[str, Any]:
    tensors = decoded.blob.tensors
    prog = decoded.program
    op = prog.op(e.op) if prog is not None and e.op is not None else None
    row: dict[str, Any] = {
        "index": e.index, "step": e.step, "kind": e.kind, "name": e.name,
        "op": e.op, "opcode": op.opcode if op else None, "note": e.info.note if e.info else "",
        "inputs": list(e.info.reads) if e.info else [], "outputs": list(e.info.writes) if e.info else [],
        "in_shape": _shape(tensors, decoded, e.info.reads) if e.info else None,
        "out_shape": _shape(tensors, decoded, e.info.writes) if e.info else None,
        "seconds": est.seconds,
    }
    if e.kind == NN:
        row.update(_nn_details(e, decoded))
    elif e.kind == TP:
        row["cores"] = len(e.descs)
    else:
        step = decoded.blob.steps[e.step]
        assert isinstance(step, vipbin.HostStep)
        row["kernel"] = step.kernel
        row["in_shape"] = next((list(tensors[t].shape) for t in step.inputs if t is not None), None)
        row["out_shape"] = list(tensors[step.outputs[0]].shape) if step.outputs else None
    c = est.cost
    if c is not None:
        row.update({"macs": c.macs, "cycles": c.cycles, "compute_cycles": c.compute_cycles,
                    "dram_cycles": c.dram_cycles, "bound": c.bound,
                    "bytes": {"coefficients": c.coefficient_bytes, "input": c.input_bytes,
                              "output": c.output_bytes, "total": c.dram_bytes,
                              "sram_saved": c.sram_saved_bytes},
                    "coefficient_buffer_bytes": e.coefficient_bytes})
    return row


def _op_row(index: int, opcode: str, name: str, unit: str, reason: str, jobs: list[dict[str, Any]]
            ) -> dict[str, Any]:
    return {"index": index, "opcode": opcode, "name": name, "unit": unit, "reason": reason,
            "jobs": dict(sorted(Counter(j["kind"] for j in jobs).items())), "seconds": sum(j["seconds"] for j in jobs),
            "cycles": sum(j.get("cycles", 0) for j in jobs),
            "dram_bytes": sum(j["bytes"]["total"] for j in jobs if "bytes" in j)}


def _ops(decoded: DecodedBlob, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model operator: placement, reason, and the sum of its jobs (index -1: the graph outputs' conversions)."""
    if decoded.program is None:
        return []
    by_op: dict[int, list[dict[str, Any]]] = {}
    for j in jobs:
        by_op.setdefault(j["op"], []).append(j)
    rows = [_op_row(op.index, op.opcode, op.name, op.unit, op.reason, by_op.get(op.index, []))
            for op in decoded.program.ops]
    conversions = by_op.get(-1, [])
    if conversions:
        units = "+".join(sorted({j["kind"] for j in conversions}))
        rows.append(_op_row(-1, "(graph output conversions)", "", units, "", conversions))
    return rows


def _summary(decoded: DecodedBlob, est: LatencyEstimate, jobs: list[dict[str, Any]], ops: list[dict[str, Any]]
             ) -> dict[str, Any]:
    blob = decoded.blob
    cost = est.npu_cost
    nn = [j for j in jobs if j["kind"] == NN]
    coef = sum(e.coefficient_bytes for e in decoded.entries if e.kind == NN)
    uncompressed = sum(j["uncompressed_coefficient_bytes"] for j in nn)
    host = [j for j in jobs if j["kind"] == HOST]
    host_bytes = 0
    for e in decoded.entries:
        if e.kind == HOST:
            step = blob.steps[e.step]
            assert isinstance(step, vipbin.HostStep)
            host_bytes += sum(blob.tensors[t].nbytes for t in [*step.inputs, *step.outputs] if t is not None)
    labels = blob.metadata.get("labels")
    arena = sum(b.size for b in blob.buffers if b.kind == "tensor")
    return {
        "steps": {"npu": decoded.submits, "host": len(host)},
        "ops": dict(sorted(Counter(o["unit"] for o in ops if o["index"] >= 0).items())) if ops else None,
        "jobs": {"NN": len(nn), "TP": sum(j["kind"] == TP for j in jobs), "HOST": len(host)},
        "submits": decoded.submits,
        "estimate": {
            "latency_ms": est.total_seconds * 1e3,
            "breakdown_ms": {k: v * 1e3 for k, v in est.breakdown().items()},
            "npu_clock_mhz": decoded.target.clock_hz / 1e6,
            "host_cpu": decoded.target.perf_host.name,
            "note": ESTIMATE_NOTE,
        },
        "dram_bytes": {"coefficients": cost.coefficient_bytes, "input": cost.input_bytes,
                       "output": cost.output_bytes, "total": cost.dram_bytes,
                       "sram_saved": cost.sram_saved_bytes, "host_steps": host_bytes},
        "buffer_bytes": sum(b.size for b in blob.buffers),
        # Every coefficient stream is read once per inference by its NN job.
        "coefficient_bytes": coef,
        "uncompressed_coefficient_bytes": uncompressed,
        "compression_ratio": coef / uncompressed if uncompressed else None,
        "arena_bytes": arena,
        "sram": {"bytes": decoded.target.sram_bytes,
                 "peak_used": max((j["sram"]["bytes"] for j in nn), default=0),
                 "kernel_cached_jobs": {m: sum(j["sram"]["kernel_cache"] == m for j in nn)
                                        for m in ("full", "partial", "none")},
                 "image_cached_jobs": sum(j["sram"]["image_cache"] != "none" for j in nn)},
        "labels": len(labels.splitlines()) if labels else 0,
    }


def describe(blob: vipbin.Blob, raw: bytes, source: str = "<blob>") -> dict[str, Any]:
    """Everything ``npuc inspect`` reports, as plain data."""
    return describe_decoded(decode_blob(blob, source), raw)


def describe_decoded(decoded: DecodedBlob, raw: bytes) -> dict[str, Any]:
    """:func:`describe` of a blob already decoded (``raw``: its file bytes, for the section table)."""
    blob = decoded.blob
    est = estimate_blob(decoded)
    jobs = [_job(e, s, decoded) for e, s in zip(decoded.entries, est.steps)]
    ops = _ops(decoded, jobs)
    return {
        "header": {
            "target": blob.target,
            "npu": {"model": hex(blob.identity.model), "revision": hex(blob.identity.revision),
                    "product_id": hex(blob.identity.product_id), "customer_id": hex(blob.identity.customer_id),
                    "eco_id": hex(blob.identity.eco_id)},
            "compiler": blob.compiler_version,
            "model_sha256": blob.model_sha256.hex(),
            "format": f"{vipbin.FORMAT_MAJOR}.{vipbin.FORMAT_MINOR}",
            "size_bytes": len(raw),
        },
        "summary": _summary(decoded, est, jobs, ops),
        "ops": ops,
        "jobs": jobs,
        "sections": [{"kind": k, "offset": o, "size": s, "crc32": f"{c:08x}"} for k, o, s, c in vipbin.section_summary(raw)],
        "buffers": [{"id": i, "name": b.name, "kind": b.kind, "size": b.size, "align": b.align,
                     "initial_bytes": len(b.init)} for i, b in enumerate(blob.buffers)],
        "relocations": len(blob.relocations),
        "steps": [_step(i, s, blob) for i, s in enumerate(blob.steps)],
        "inputs": [_io(blob, t) for t in blob.inputs],
        "outputs": [_io(blob, t) for t in blob.outputs],
        "metadata": {k: _meta_value(k, v) for k, v in blob.metadata.items()},
    }


def _meta_value(key: str, value: str) -> str:
    if key == "labels":
        return f"{len(value.splitlines())} labels"
    if key == PROGRAM_KEY:
        return f"compiler's program account, {len(value)} bytes (shown as ops and jobs)"
    return value


def _io(blob: vipbin.Blob, t: int) -> dict[str, Any]:
    info = blob.tensors[t]
    return {"name": info.name, "shape": list(info.shape), "dtype": info.dtype, "layout": info.layout,
            "scale": info.scale, "zero_point": info.zero_point, "buffer": info.buffer, "offset": info.offset}


def _step(i: int, s: vipbin.NpuStep | vipbin.HostStep, blob: vipbin.Blob) -> dict[str, Any]:
    if isinstance(s, vipbin.NpuStep):
        return {"index": i, "kind": "npu", "name": s.name, "stream_words": len(s.stream),
                "buffers": [[b, f] for b, f in s.bos]}
    shapes = lambda ids: [None if t is None else list(blob.tensors[t].shape) for t in ids]  # noqa: E731
    return {"index": i, "kind": "host", "name": s.name, "kernel": s.kernel,
            "inputs": shapes(s.inputs), "outputs": shapes(s.outputs), "params": sorted(s.params)}


# -- text ---------------------------------------------------------------------------------------------


def _dims(shape: list[int] | None) -> str:
    return "x".join(map(str, shape)) if shape else "-"


def _mib(n: int) -> str:
    return f"{n:,} B ({n / 2 ** 20:.2f} MiB)"


def _summary_text(info: dict[str, Any]) -> list[str]:
    s = info["summary"]
    e = s["estimate"]
    b = e["breakdown_ms"]
    ops = s["ops"]
    placed = (", ".join(f"{k} {v}" for k, v in ops.items()) if ops else "unknown (no compiler account in META)")
    out = [f"ops        {placed}",
           f"jobs       {s['jobs']['NN']} NN, {s['jobs']['TP']} TP, {s['jobs']['HOST']} HOST steps, "
           f"in {s['submits']} submit(s)",
           f"latency    {e['latency_ms']:.2f} ms estimated ({e['note']})",
           f"  where    NN {b['nn_compute_bound'] + b['nn_dram_bound'] + b['nn_job_overhead']:.2f} ms "
           f"(MAC-bound {b['nn_compute_bound']:.2f}, DRAM-bound {b['nn_dram_bound']:.2f}, job overhead "
           f"{b['nn_job_overhead']:.2f}), TP {b['tp']:.2f} ms, host {b['host']:.2f} ms ({e['host_cpu']}), "
           f"submits {b['submits']:.2f} ms",
           f"DRAM       {_mib(s['dram_bytes']['total'])} per inference on the NPU: coefficients "
           f"{s['dram_bytes']['coefficients']:,}, activations read {s['dram_bytes']['input']:,}, written "
           f"{s['dram_bytes']['output']:,}; SRAM caching saves {s['dram_bytes']['sram_saved']:,}; host steps "
           f"touch {s['dram_bytes']['host_steps']:,}"]
    ratio = s["compression_ratio"]
    out.append(f"coeffs     {s['coefficient_bytes']:,} B"
               + (f", {ratio:.3f} of the {s['uncompressed_coefficient_bytes']:,} B of the jobs' uncompressed "
                  f"kernels (bias and trailer words included)" if ratio is not None else ""))
    sram = s["sram"]
    k = sram["kernel_cached_jobs"]
    out.append(f"memory     arena {_mib(s['arena_bytes'])}; SRAM peak {sram['peak_used']:,} of {sram['bytes']:,} B "
               f"(kernels cached fully by {k['full']} jobs, partly by {k['partial']}; input tiles by "
               f"{sram['image_cached_jobs']})")
    return out


def _job_text(j: dict[str, Any]) -> str:
    us = j["seconds"] * 1e6
    head = f"  {j['index']:>4} {j['step']:>4} {j['kind']:<4}"
    name = j["name"] if len(j["name"]) <= _NAME_WIDTH else j["name"][:_NAME_WIDTH - 3] + "..."
    if j["kind"] == NN:
        t = j["tiling"]
        tiling = f"{t['tile'][0]}x{t['tile'][1]}/{t['superblocks']}sb" + ("/fpp" if t["first_pixel_pooling"] else "")
        return (f"{head} {name:<{_NAME_WIDTH}} {_dims(j['in_shape']):>12} -> {_dims(j['out_shape']):<12} {tiling:<13} "
                f"{j['cores']:>2} {j['macs'] / 1e6:>8.2f} {j['bytes']['total']:>9,} {j['cycles']:>8,} {us:>8.1f} "
                f"{j['bound']}")
    if j["kind"] == TP:
        return (f"{head} {name:<{_NAME_WIDTH}} {_dims(j['in_shape']):>12} -> {_dims(j['out_shape']):<12} {'-':<13} "
                f"{j['cores']:>2} {'-':>8} {j['bytes']['total']:>9,} {j['cycles']:>8,} {us:>8.1f} {j['bound']}")
    return (f"{head} {name:<{_NAME_WIDTH}} {_dims(j['in_shape']):>12} -> {_dims(j['out_shape']):<12} {'CPU':<13} "
            f"{'-':>2} {'-':>8} {'-':>9} {'-':>8} {us:>8.1f}")


def render_text(info: dict[str, Any]) -> str:
    """The human-readable form of :func:`describe`: summary, per-job table, then the container."""
    h = info["header"]
    npu = h["npu"]
    out = [f"target     {h['target']}  (model {npu['model']} rev {npu['revision']} customer {npu['customer_id']})",
           f"compiler   {h['compiler']}, format {h['format']}, {h['size_bytes']} bytes",
           f"model      sha256 {h['model_sha256']}"]
    out += _summary_text(info)
    for io in ("inputs", "outputs"):
        for t in info[io]:
            out.append(f"{io[:-1]:<10} {t['name']!r} {t['dtype']}{t['shape']} {t['layout']} "
                       f"scale={t['scale']:.6g} zp={t['zero_point']}")
    if info["metadata"]:
        out.append("metadata   " + ", ".join(f"{k}: {v}" for k, v in info["metadata"].items()))
    hosts = [o for o in info["ops"] if o["unit"] == HOST]
    if hosts:
        out.append("\nops on the host CPU")
        out += [f"  #{o['index']} {o['opcode']}: {o['reason']}" for o in hosts]
    out.append("\njobs (x*y*z shapes; tile x*y/superblocks[/first-pixel pooling]; MACs in millions; DRAM bytes; "
               "cycles at the NPU clock; estimated us)")
    out.append(f"  {'#':>4} {'step':>4} {'unit':<4} {'job':<{_NAME_WIDTH}} {'in':>12}    {'out':<12} {'tiling':<13} "
               f"{'co':>2} {'MMACs':>8} {'DRAM B':>9} {'cycles':>8} {'us':>8} bound")
    out += [_job_text(j) for j in info["jobs"]]
    out.append("\nsections")
    for sec in info["sections"]:
        out.append(f"  {sec['kind']}  offset {sec['offset']:>9}  size {sec['size']:>9}  crc32 {sec['crc32']}")
    out.append("\nbuffers")
    for b in info["buffers"]:
        out.append(f"  {b['id']:>3} {b['kind']:<12} {b['size']:>10} B  align {b['align']:<5} "
                   f"init {b['initial_bytes']:>9} B  {b['name']}")
    out.append(f"\n{info['relocations']} relocations")
    return "\n".join(out)
