"""What ``npuc inspect`` shows: a blob's header, sections, buffers, program and I/O.

The same content is produced as text for people and as a JSON-ready dict for
scripts, from one function, so the two can never disagree.
"""

from __future__ import annotations

from typing import Any

from . import vipbin


def describe(blob: vipbin.Blob, raw: bytes) -> dict[str, Any]:
    """Everything ``npuc inspect`` reports, as plain data."""
    labels = blob.metadata.get("labels")
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
        "sections": [{"kind": k, "offset": o, "size": s, "crc32": f"{c:08x}"} for k, o, s, c in vipbin.section_summary(raw)],
        "buffers": [{"id": i, "name": b.name, "kind": b.kind, "size": b.size, "align": b.align,
                     "initial_bytes": len(b.init)} for i, b in enumerate(blob.buffers)],
        "relocations": len(blob.relocations),
        "steps": [_step(i, s, blob) for i, s in enumerate(blob.steps)],
        "inputs": [_io(blob, t) for t in blob.inputs],
        "outputs": [_io(blob, t) for t in blob.outputs],
        "metadata": {k: (f"{len(v.splitlines())} labels" if k == "labels" else v) for k, v in blob.metadata.items()},
        "summary": {
            "steps": {"npu": sum(isinstance(s, vipbin.NpuStep) for s in blob.steps),
                      "host": sum(isinstance(s, vipbin.HostStep) for s in blob.steps)},
            "buffer_bytes": sum(b.size for b in blob.buffers),
            # Every coefficient stream is read once per inference by its NN job.
            "coefficient_bytes": sum(len(b.init) for b in blob.buffers if b.kind == "coefficients"),
            "labels": len(labels.splitlines()) if labels else 0,
        },
    }


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


def render_text(info: dict[str, Any]) -> str:
    """The human-readable form of :func:`describe`."""
    h = info["header"]
    npu = h["npu"]
    out = [f"target     {h['target']}  (model {npu['model']} rev {npu['revision']} customer {npu['customer_id']})",
           f"compiler   {h['compiler']}, format {h['format']}, {h['size_bytes']} bytes",
           f"model      sha256 {h['model_sha256']}"]
    s = info["summary"]
    out.append(f"program    {len(info['steps'])} steps: {s['steps']['npu']} NPU, {s['steps']['host']} HOST; "
               f"{s['buffer_bytes']} buffer bytes; {s['coefficient_bytes']} coefficient bytes per inference; "
               f"{info['relocations']} relocations")
    for io in ("inputs", "outputs"):
        for t in info[io]:
            out.append(f"{io[:-1]:<10} {t['name']!r} {t['dtype']}{t['shape']} {t['layout']} "
                       f"scale={t['scale']:.6g} zp={t['zero_point']}")
    if info["metadata"]:
        out.append("metadata   " + ", ".join(f"{k}: {v}" for k, v in info["metadata"].items()))
    out.append("\nsections")
    for sec in info["sections"]:
        out.append(f"  {sec['kind']}  offset {sec['offset']:>9}  size {sec['size']:>9}  crc32 {sec['crc32']}")
    out.append("\nbuffers")
    for b in info["buffers"]:
        out.append(f"  {b['id']:>3} {b['kind']:<12} {b['size']:>10} B  align {b['align']:<5} "
                   f"init {b['initial_bytes']:>9} B  {b['name']}")
    out.append("\nsteps")
    for st in info["steps"]:
        if st["kind"] == "npu":
            out.append(f"  {st['index']:>3} NPU  {st['name']}: {st['stream_words']} stream words, "
                       f"{len(st['buffers'])} buffers")
        else:
            ins = " ".join("x".join(map(str, sh)) if sh else "-" for sh in st["inputs"])
            outs = " ".join("x".join(map(str, sh)) for sh in st["outputs"])
            out.append(f"  {st['index']:>3} HOST {st['kernel']:<18} {ins} -> {outs}")
    return "\n".join(out)
