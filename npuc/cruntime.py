"""Render the C runtime (``npuc emit-runtime``): a library and ``npu-run`` for boards without Python.

The C sources are Jinja2 templates (``runtime_stub.c.j2`` for the library,
``cruntime_templates/`` for the rest).  Every format and hardware number they
contain is rendered from the Python declarations the compiler itself uses, so
the two sides cannot drift apart: the ``.vipbin`` record layouts, enumerations,
limits and section codes from :mod:`npuc.vipbin`, the etnaviv UAPI structures
and ioctl numbers from :mod:`npuc.runtime.etnaviv_uapi`, the error categories
from :mod:`npuc.errors`, the image limit from :mod:`npuc.runtime.image`, the
softmax fixed-point widths from :mod:`npuc.host.kernels.softmax`, the host
kernels' parameter structs and loaders from :mod:`npuc.host`'s declarations, and the
runtime's own choices below.  Records become C structs with
``_decode``/``_encode`` functions generated from each
:class:`~npuc.hw.fields.Layout`'s rows.

``--embed`` copies a validated blob next to the sources; the generated
``npu_embed.c`` includes its bytes with the assembler's ``.incbin``, which
keeps a multi-megabyte model out of the C compiler's parser.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from . import __version__, vipbin
from .hw.fields import Layout
from .hw.target import customer_id_aliases
from .files import write_atomically
from .errors import BlobError, DeviceError, InputError, LimitError, NpucError, UnsupportedError, UsageError
from .runtime import etnaviv_uapi as uapi
from .host import HOST_OPS
from .host.decl import HostOp
from .host.kernels.lstm import STATE_INPUTS as LSTM_STATE_INPUTS
from .host.kernels.softmax import ACCUMULATION_INTEGER_BITS, SCALED_DIFF_INTEGER_BITS
from .host.kernels.svdf import ACTIVATIONS as SVDF_ACTIVATIONS
from .host.kernels.svdf import STATE_INPUT as SVDF_STATE_INPUT
from .passes.inputs import MEAN_KEY, STD_KEY
from .runtime.image import MAX_IMAGE_PIXELS

#: Error categories the C runtime reports, in the order of its status codes (0 is success).
ERROR_CLASSES: tuple[type[NpucError], ...] = (UsageError, BlobError, LimitError, UnsupportedError, DeviceError,
                                              InputError)
#: The C host kernels: one file per group under cruntime_templates/host/, each defining prepare_<stem> and
#: run_<stem> for the declared kernels (npuc.host.HOST_OPS) of its group.
HOST_KERNEL_DIR = "cruntime_templates/host"
#: C types of the declared parameter kinds (npuc.host.decl).
_C_PARAM_TYPES = {"i32": "int32_t", "f64": "double", "i32[]": "struct i32_array", "f32[]": "struct f32_array"}
#: How long the runtime waits for one NPU submit (or a buffer) before it reports the NPU as hung.
WAIT_TIMEOUT_SECONDS = 10
#: Longest error message the C API keeps (bytes, terminator included).
ERROR_MESSAGE_BYTES = 1024
#: zlib's CRC-32 (the checksum of .vipbin headers and sections): reflected polynomial.
CRC32_POLYNOMIAL = 0xEDB88320
#: Identity fields a device's core must match (GET_PARAM), the ones
#: :func:`npuc.hw.target.same_core` matches too (customer ids up to the targets' aliases).
MATCHED_IDENTITY = ("model", "revision", "customer_id")
#: Name of the blob file ``--embed`` copies next to the sources.
EMBEDDED_BLOB_NAME = "embedded.vipbin"

_TEMPLATES = Path(__file__).resolve().parent
_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _ident(name: str) -> str:
    """``name`` as a C identifier; declarations with other names are a bug in npuc."""
    if not _C_IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not usable as a C identifier")
    return name


def _layout(layout: Layout) -> dict[str, Any]:
    """A layout's rows in the form the templates render structs and accessors from."""
    fields = []
    for f in layout.fields:
        wide = f.width == 64
        ctype = ("int64_t" if f.signed else "uint64_t") if wide else ("int32_t" if f.signed else "uint32_t")
        fields.append({"name": _ident(f.name), "word": f.word, "bit": f.bit, "width": f.width, "signed": f.signed,
                       "wide": wide, "ctype": ctype})
    return {"name": _ident(layout.name), "upper": layout.name.upper(), "words": layout.words, "size": layout.size,
            "doc": layout.doc, "fields": fields}


def _enum(prefix: str, table: dict[int, str]) -> dict[str, Any]:
    """A code -> name table as a C enumeration plus a name lookup."""
    return {"prefix": prefix, "items": [{"code": code, "name": name,
                                         "const": f"{prefix}_{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_').upper()}"}
                                        for code, name in sorted(table.items())]}


def _param_types() -> list[dict[str, Any]]:
    """Host-parameter types: whether each is an array and how many PDAT words one value takes."""
    out = []
    for code, name in sorted(vipbin.PARAM_TYPES.items()):
        base = name.removesuffix("[]")
        out.append({"code": code, "name": name, "array": name.endswith("[]"),
                    "words": np.dtype({"i": "int", "f": "float"}[base[0]] + base[1:]).itemsize // 4})
    return out


def _kernel_files() -> list[Path]:
    return sorted((_TEMPLATES / HOST_KERNEL_DIR).glob("*.c.j2"))


def c_kernel_stems() -> set[str]:
    """The stems whose C kernel exists (a ``run_<stem>`` defined in one of the kernel files)."""
    text = "".join(p.read_text(encoding="utf-8") for p in _kernel_files())
    return set(re.findall(r"^static void run_([a-z0-9_]+)\(", text, re.MULTILINE))


def c_host_kernels() -> set[str]:
    """The names of the host kernels the C runtime has."""
    stems = c_kernel_stems()
    return {k.name for k in HOST_OPS.values() if k.stem in stems}


def _host_ops(kernels) -> list[dict[str, Any]]:
    """Declared host kernels grouped by C stem: the names sharing it, its parameters with their C types."""
    by_stem: dict[str, list[HostOp]] = {}
    for k in kernels:
        by_stem.setdefault(k.stem, []).append(k)
    return [{"stem": stem, "names": [k.name for k in ks], "doc": ks[0].doc,
             "params": [{"name": _ident(p.name), "kind": p.kind, "lo": p.lo, "hi": p.hi, "doc": p.doc,
                         "ctype": _C_PARAM_TYPES[p.kind]} for p in ks[0].params]}
            for stem, ks in sorted(by_stem.items())]


def _status_name(cls: type[NpucError]) -> str:
    return "NPU_ERR_" + re.sub(r"Error$", "", cls.__name__).upper()


def context(embed_size: int | None = None) -> dict[str, Any]:
    """Everything the templates render, taken from the Python declarations."""
    ioctls = [{"name": i.name, "number": i.number, "layout": i.layout.name} for i in uapi.IOCTLS]
    return {
        "version": __version__,
        "layouts": [_layout(l) for l in vipbin.all_layouts()],
        "uapi_layouts": [_layout(l) for l in uapi.LAYOUTS],
        "enums": [_enum("VIPBIN_BUFFER_KIND", vipbin.BUFFER_KINDS), _enum("VIPBIN_DTYPE", vipbin.DTYPES),
                  _enum("VIPBIN_LAYOUT", vipbin.LAYOUTS), _enum("VIPBIN_STEP", vipbin.STEP_KINDS),
                  _enum("VIPBIN_SITE", vipbin.SITE_KINDS), _enum("VIPBIN_IO", vipbin.IO_DIRECTIONS)],
        "dtype_sizes": [{"code": c, "size": np.dtype(n).itemsize} for c, n in sorted(vipbin.DTYPES.items())],
        "param_types": _param_types(),
        "sections": [{"kind": k, "code": vipbin.fourcc(k), "layout": None if l is None else l.name}
                     for k, l in vipbin.SECTIONS.items()],
        "limits": {
            "MAGIC": vipbin.MAGIC, "FORMAT_MAJOR": vipbin.FORMAT_MAJOR, "SECTION_ALIGN": vipbin.SECTION_ALIGN,
            "MAX_SECTIONS": vipbin.MAX_SECTIONS, "MAX_BUFFERS": vipbin.MAX_BUFFERS,
            "MAX_BUFFER_BYTES": vipbin.MAX_BUFFER_BYTES, "MAX_TOTAL_BUFFER_BYTES": vipbin.MAX_TOTAL_BUFFER_BYTES,
            "MAX_RECORDS": vipbin.MAX_RECORDS, "MAX_STREAM_BYTES": vipbin.MAX_STREAM_BYTES,
            "MAX_RANK": vipbin.MAX_RANK, "MAX_ALIGN": vipbin.MAX_ALIGN, "ABSENT": vipbin.ABSENT,
        },
        "statuses": [{"name": _status_name(c), "code": i + 1, "exit_code": c.exit_code,
                      "doc": (c.__doc__ or "").strip().splitlines()[0]} for i, c in enumerate(ERROR_CLASSES)],
        "error_bytes": ERROR_MESSAGE_BYTES,
        "crc32_polynomial": CRC32_POLYNOMIAL,
        "wait_timeout_s": WAIT_TIMEOUT_SECONDS,
        "max_image_pixels": MAX_IMAGE_PIXELS,
        "image_mean_key": MEAN_KEY, "image_std_key": STD_KEY,
        "host_ops": _host_ops(HOST_OPS.values()),
        "c_host_ops": _host_ops(k for k in HOST_OPS.values() if k.stem in c_kernel_stems()),
        "host_kernel_files": [f"{HOST_KERNEL_DIR}/{p.name}" for p in _kernel_files()],
        "softmax_scaled_diff_integer_bits": SCALED_DIFF_INTEGER_BITS,
        "lstm_state_inputs": LSTM_STATE_INPUTS,
        "svdf_state_input": SVDF_STATE_INPUT, "svdf_activations": SVDF_ACTIVATIONS,
        "softmax_accumulation_integer_bits": ACCUMULATION_INTEGER_BITS,
        "ioctls": ioctls,
        "uapi": {
            "driver_name": uapi.DRIVER_NAME, "params": uapi.PARAMS,
            "identity_since": uapi.IDENTITY_PARAMS_SINCE, "max_pipes": uapi.MAX_PIPES,
            "softpin_unsupported": uapi.SOFTPIN_UNSUPPORTED, "gem_flags": uapi.GEM_FLAGS, "prep_ops": uapi.PREP_OPS,
            "bo_flags": uapi.SUBMIT_BO_FLAGS, "submit_flags": uapi.SUBMIT_FLAGS,
            "exec_state_3d": uapi.EXEC_STATE_3D, "wait_nonblock": uapi.WAIT_NONBLOCK, "va_limit": uapi.VA_LIMIT,
            "gpu_page": uapi.GPU_PAGE,
            "render_prefix": uapi.RENDER_NODE_PREFIX, "render_first": uapi.RENDER_MINOR_FIRST,
            "render_count": uapi.RENDER_MINOR_COUNT,
        },
        "matched_identity": [{"field": f, "param": f.upper(), "versioned": f.upper() in uapi.VERSIONED_PARAMS,
                              "customer": f == "customer_id"} for f in MATCHED_IDENTITY],
        "customer_aliases": customer_id_aliases(),
        "embed": embed_size is not None,
        "embed_name": EMBEDDED_BLOB_NAME,
        "embed_size": embed_size or 0,
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_TEMPLATES)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["hex"] = lambda v: f"0x{v:X}"
    env.filters["cstr"] = lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return env


#: Rendered file -> template, in the order they are written.
_OUTPUTS = {
    "npu_runtime.h": "cruntime_templates/npu_runtime.h.j2",
    "npu_format.h": "cruntime_templates/npu_format.h.j2",
    "npu_runtime.c": "runtime_stub.c.j2",
    "npu_run.c": "cruntime_templates/npu_run.c.j2",
    "Makefile": "cruntime_templates/Makefile.j2",
}


def emit_runtime(out_dir: Path, embed: Path | None) -> list[Path]:
    """Write the C runtime's sources (and, with ``embed``, that blob) into ``out_dir``; returns the paths written.

    An ``embed`` blob is validated first, so a bad blob writes nothing.
    """
    blob_bytes = None
    if embed is not None:
        blob_bytes = vipbin.read_blob_file(embed)
        vipbin.read_blob(blob_bytes, str(embed))
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"{out_dir}: exists and is not a directory") from None
    except OSError as e:
        raise InputError(f"{out_dir}: cannot create directory ({e.strerror})") from None
    env = _environment()
    ctx = context(None if blob_bytes is None else len(blob_bytes))
    outputs = dict(_OUTPUTS)
    if blob_bytes is not None:
        outputs["npu_embed.c"] = "cruntime_templates/npu_embed.c.j2"
    written = []
    for name, template in outputs.items():
        path = out_dir / name
        write_atomically(path, env.get_template(template).render(ctx).encode("utf-8"))
        written.append(path)
    if blob_bytes is not None:
        path = out_dir / EMBEDDED_BLOB_NAME
        write_atomically(path, blob_bytes)
        written.append(path)
    return written

