"""``npuc report BLOB -o report.html``: one self-contained HTML page about a compiled blob.

The page holds the summary ``npuc inspect`` gives, a chart of every layer's
estimated time (by unit) and DRAM bytes, the placement of every operator with
the reason for each host fallback, and the memory map over time (which arena
bytes each tensor holds from the step that first touches it to the last).
Charts are inline SVG drawn here; the page loads nothing (no scripts, fonts,
images or style sheets from anywhere), so it opens offline in any browser.
All figures come from :func:`npuc.inspect_blob.describe`, i.e. from the blob.
"""

from __future__ import annotations

from html import escape
from typing import Any

from . import vipbin
from .blob_program import DecodedBlob, decode_blob
from .inspect_blob import describe_decoded
from .program_meta import HOST, NN, TP, display_name

#: Colours of the units (bars, table badges) and of DRAM bytes.
COLOURS = {NN: "#4c78a8", TP: "#f58518", HOST: "#e45756", "alias": "#9d9d9d", "DRAM": "#54a24b"}
#: Memory-map colours: graph inputs, graph outputs, everything else.
MAP_COLOURS = {"input": "#b279a2", "output": "#e45756", "tensor": "#4c78a8"}
CHART_WIDTH = 1100
CHART_HEIGHT = 220
MAP_HEIGHT = 420
_LEFT, _BOTTOM, _TOP = 70, 28, 14

_STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.badge { color: #fff; padding: 1px 6px; border-radius: 3px; font-size: 0.85em; }
.note { color: #666; font-size: 0.9em; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
dt { font-weight: bold; } dd { margin: 0; }
svg text { font-family: sans-serif; font-size: 11px; fill: #333; }
"""


def _fmt(n: float) -> str:
    return f"{n:,.0f}"


def _badge(unit: str) -> str:
    return f'<span class="badge" style="background:{COLOURS.get(unit, "#777")}">{escape(unit)}</span>'


def _axis(height: int, top: float, label: str, unit: str) -> list[str]:
    """Y axis with three ticks (0, half, top) and a label."""
    out = []
    for k in range(3):
        y = _TOP + height * (1 - k / 2)
        out.append(f'<line x1="{_LEFT}" x2="{CHART_WIDTH - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{top * k / 2:,.0f}{unit}</text>')
    out.append(f'<text x="12" y="{_TOP + height / 2:.1f}" transform="rotate(-90 12 {_TOP + height / 2:.1f})" '
               f'text-anchor="middle">{escape(label)}</text>')
    return out


def _bars(rows: list[dict[str, Any]], parts: list[tuple[str, str]], label: str, unit: str, scale: float) -> str:
    """A stacked bar per row; ``parts`` are (row key, colour); values times ``scale`` are drawn."""
    height = CHART_HEIGHT - _TOP - _BOTTOM
    totals = [sum(r[k] for k, _ in parts) * scale for r in rows]
    top = max(totals, default=0) or 1
    width = (CHART_WIDTH - _LEFT - 10) / max(len(rows), 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
           f'role="img" aria-label="{escape(label)}">', *_axis(height, top, label, unit)]
    for i, r in enumerate(rows):
        x, y = _LEFT + i * width, _TOP + height
        for key, colour in parts:
            h = r[key] * scale / top * height
            if h <= 0:
                continue
            y -= h
            out.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(width - 2, 1):.1f}" height="{h:.1f}" '
                       f'fill="{colour}"><title>{escape(r["label"])}: {r[key] * scale:,.1f}{unit} '
                       f'{escape(key)}</title></rect>')
        if len(rows) <= 80 or i % 5 == 0:
            out.append(f'<text x="{x + width / 2:.1f}" y="{CHART_HEIGHT - 10}" text-anchor="middle">'
                       f'{escape(r["tick"])}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _layer_rows(info: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per operator that has jobs (per job when the blob has no compiler account)."""
    rows = []
    if info["ops"]:
        by_op: dict[int, list[dict[str, Any]]] = {}
        for j in info["jobs"]:
            by_op.setdefault(j["op"], []).append(j)
        for o in info["ops"]:
            own = by_op.get(o["index"], [])
            if not own:
                continue
            rows.append({"label": f"#{o['index']} {o['opcode']}", "tick": str(o["index"]) if o["index"] >= 0
                         else "out", **_unit_seconds(own)})
    else:
        rows = [{"label": j["name"], "tick": str(j["index"]), **_unit_seconds([j])} for j in info["jobs"]]
    return rows


def _unit_seconds(jobs: list[dict[str, Any]]) -> dict[str, float]:
    out = {k: sum(j["seconds"] for j in jobs if j["kind"] == k) for k in (NN, TP, HOST)}
    out["DRAM"] = sum(j["bytes"]["total"] for j in jobs if "bytes" in j)
    return out


def _lifetimes(decoded: DecodedBlob) -> dict[int, tuple[int, int]]:
    """For every arena tensor a step names, (first, last) position in execution order; graph inputs
    and outputs live for the whole program, as the planner keeps them."""
    blob = decoded.blob
    touched: dict[int, list[int]] = {}
    for e in decoded.entries:
        if e.kind == HOST:
            step = blob.steps[e.step]
            assert isinstance(step, vipbin.HostStep)
            ids = [t for t in [*step.inputs, *step.outputs] if t is not None]
        elif e.info is not None:
            ids = [t for t in map(decoded.tensor, (*e.info.reads, *e.info.writes)) if t is not None]
        else:
            ids = []
        for t in ids:
            touched.setdefault(t, []).append(e.index)
    end = max(len(decoded.entries) - 1, 0)
    for t in blob.inputs + blob.outputs:
        touched.setdefault(t, []).extend((0, end))
    arena = {i for i, b in enumerate(blob.buffers) if b.kind == "tensor"}
    return {t: (min(p), max(p)) for t, p in touched.items() if blob.tensors[t].buffer in arena}


def _memory_map(decoded: DecodedBlob) -> str:
    blob = decoded.blob
    spans = _lifetimes(decoded)
    arena = max((b.size for b in blob.buffers if b.kind == "tensor"), default=1)
    steps = max(len(decoded.entries), 1)
    height = MAP_HEIGHT - _TOP - _BOTTOM
    width = CHART_WIDTH - _LEFT - 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{MAP_HEIGHT}" role="img" '
           f'aria-label="memory map">', *_axis(height, arena / 1024, "arena offset", " KiB")]
    kinds = {t: "input" for t in blob.inputs} | {t: "output" for t in blob.outputs}
    for t, (first, last) in sorted(spans.items(), key=lambda kv: -blob.tensors[kv[0]].nbytes):
        info = blob.tensors[t]
        x = _LEFT + first / steps * width
        w = max((last - first + 1) / steps * width, 1.5)
        y = _TOP + height * (1 - (info.offset + info.nbytes) / arena)
        h = max(info.nbytes / arena * height, 1.0)
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="'
                   f'{MAP_COLOURS[kinds.get(t, "tensor")]}" fill-opacity="0.55" stroke="#fff" stroke-width="0.5">'
                   f'<title>{escape(info.name)}: {info.nbytes:,} B at {info.offset:,}, steps {first}-{last}'
                   f'</title></rect>')
    out.append(f'<text x="{_LEFT + width / 2}" y="{MAP_HEIGHT - 8}" text-anchor="middle">execution order '
               f'(jobs and host steps, 0-{steps - 1})</text>')
    out.append("</svg>")
    return "\n".join(out)


def _summary(info: dict[str, Any]) -> str:
    s, h = info["summary"], info["header"]
    e = s["estimate"]
    b = e["breakdown_ms"]
    ops = s["ops"] or {}
    rows = [
        ("target", f"{h['target']} ({h['npu']['model']} rev {h['npu']['revision']}), NPU at "
                   f"{e['npu_clock_mhz']:.0f} MHz, host CPU {e['host_cpu']}"),
        ("compiler", f"{h['compiler']}, format {h['format']}, {h['size_bytes']:,} bytes"),
        ("model", f"{info['metadata'].get('source', '?')}, sha256 {h['model_sha256'][:16]}..."),
        ("operators", ", ".join(f"{_badge(k)} {v}" for k, v in ops.items()) or "unknown"),
        ("jobs", f"{s['jobs']['NN']} NN, {s['jobs']['TP']} TP, {s['jobs']['HOST']} host steps in "
                 f"{s['submits']} submit(s)"),
        ("estimated latency", f"<b>{e['latency_ms']:.2f} ms</b>: NN {b['nn_compute_bound']:.2f} ms MAC-bound + "
                              f"{b['nn_dram_bound']:.2f} ms DRAM-bound + {b['nn_job_overhead']:.2f} ms job "
                              f"overhead, TP {b['tp']:.2f} ms, host {b['host']:.2f} ms, submits {b['submits']:.2f} ms"),
        ("DRAM per inference", f"{_fmt(s['dram_bytes']['total'])} bytes on the NPU (coefficients "
                               f"{_fmt(s['dram_bytes']['coefficients'])}); SRAM caching saves "
                               f"{_fmt(s['dram_bytes']['sram_saved'])}"),
        ("coefficients", f"{_fmt(s['coefficient_bytes'])} bytes"
                         + (f", {s['compression_ratio']:.3f} of uncompressed" if s["compression_ratio"] else "")),
        ("memory", f"arena {_fmt(s['arena_bytes'])} bytes; SRAM peak {_fmt(s['sram']['peak_used'])} of "
                   f"{_fmt(s['sram']['bytes'])} bytes"),
    ]
    body = "\n".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<dl>{body}</dl>\n<p class="note">Latency and traffic are an {escape(e["note"])}.</p>'


def _placement(info: dict[str, Any]) -> str:
    if not info["ops"]:
        return '<p class="note">This blob carries no compiler account (META npuc.program): no operator table.</p>'
    head = ('<tr><th class="n">#</th><th>operator</th><th>unit</th><th>reason</th><th>jobs</th>'
            '<th class="n">est. &micro;s</th><th class="n">DRAM bytes</th></tr>')
    rows = []
    for o in info["ops"]:
        jobs = ", ".join(f"{v} {k}" for k, v in o["jobs"].items()) or ("view" if o["unit"] == "alias" else "")
        rows.append(f'<tr><td class="n">{o["index"] if o["index"] >= 0 else ""}</td>'
                    f'<td>{escape(o["opcode"])}<br><span class="note">{escape(display_name(o["name"]))}</span></td>'
                    f'<td>{_badge(o["unit"])}</td><td>{escape(o["reason"])}</td><td>{escape(jobs)}</td>'
                    f'<td class="n">{o["seconds"] * 1e6:,.1f}</td><td class="n">{_fmt(o["dram_bytes"])}</td></tr>')
    return f"<table>{head}{''.join(rows)}</table>"


def _legend(items: list[tuple[str, str]]) -> str:
    return " ".join(f'<span class="badge" style="background:{c}">{escape(k)}</span>' for k, c in items)


def render_html(info: dict[str, Any], decoded: DecodedBlob) -> str:
    """The whole page."""
    rows = _layer_rows(info)
    time_chart = _bars(rows, [(NN, COLOURS[NN]), (TP, COLOURS[TP]), (HOST, COLOURS[HOST])],
                       "estimated time", " us", 1e6)
    dram_chart = _bars(rows, [("DRAM", COLOURS["DRAM"])], "DRAM bytes", " KB", 1e-3)
    title = f"npuc report: {info['metadata'].get('source', decoded.source)}"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _summary(info),
        '<h2 id="layers">Per layer: estimated time and DRAM bytes</h2>',
        f'<p>{_legend([(k, COLOURS[k]) for k in (NN, TP, HOST)])} estimated time per operator '
        f'(bars stack the units it uses); below, its estimated DRAM traffic. Hover a bar for its value.</p>',
        f'<div id="time-chart">{time_chart}</div>',
        f'<div id="dram-chart">{dram_chart}</div>',
        '<h2 id="placement">Placement of every operator</h2>',
        _placement(info),
        '<h2 id="memory">Memory map over time</h2>',
        f'<p>{_legend([(k, c) for k, c in MAP_COLOURS.items()])} each tensor of the arena from the first to the '
        f'last step that touches it; bytes used by two tensors at different times are reused by the planner.</p>',
        f'<div id="memory-map">{_memory_map(decoded)}</div>',
        "</body></html>",
    ]) + "\n"


def report(blob: vipbin.Blob, raw: bytes, source: str) -> str:
    """The HTML report of a validated blob."""
    decoded = decode_blob(blob, source)
    return render_html(describe_decoded(decoded, raw), decoded)
