"""Command-line entry points: ``npuc`` (compile, inspect, report, verify, run, ...) and ``npu-run``.

Every user error is an :class:`~npuc.errors.NpucError`: the CLI prints it as one
line on stderr and exits with its code (1, or 2 for bad usage).  Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .errors import InputError, NpucError, UsageError

if TYPE_CHECKING:  # each command imports what it uses, so that `npuc --help` or `npuc inspect` stay light
    import numpy as np


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as a one-line UsageError (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _run_guarded(fn, argv: Sequence[str] | None) -> int:
    try:
        return fn(argv)
    except NpucError as e:
        print(f"npuc: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("npuc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


# -- npuc compile ---------------------------------------------------------------------

def cmd_compile(args: argparse.Namespace) -> int:
    # The compiler makes no BLAS call, yet numpy's import starts OpenBLAS's thread pool (a thread per core):
    # 40-70 ms of a compile on the 2-core development machine for threads that never run a BLAS call.  Set
    # before numpy is first imported (nothing the CLI runs before this imports it), unless the user set it.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .driver import compile_model
    from .files import write_atomically
    from .passes.placement import HOST, unit_counts

    result = compile_model(args.model, args.target, args.labels, npu=not args.cpu_only, exact=args.exact,
                           split_steps=args.one_job_per_submit)
    write_atomically(args.output, result.blob)
    program = result.program
    counts = unit_counts(program)
    print(f"{args.model}: {len(program.units)} ops -> "
          + ", ".join(f"{u} {counts.get(u, 0)}" for u in ("NN", "TP", "HOST", "alias")))
    if result.folded:
        print(f"  {len(result.folded)} ops computed at compile time: "
              + ", ".join(sorted({op.opcode for op in result.folded})))
    for index, (unit, reason) in sorted(program.units.items()):
        if unit == HOST:
            print(f"  HOST {program.op(index).name}: {reason}")
    s = result.stats
    print(f"  {s.nn_jobs} NN jobs, {s.tp_jobs} TP jobs, {s.coefficient_bytes} coefficient bytes, "
          f"arena {result.plan.arena_size} bytes")
    print(f"wrote {args.output}: {len(result.blob)} bytes")
    return 0


# -- npuc inspect ---------------------------------------------------------------------

def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from . import vipbin
    from .inspect_blob import describe, render_text

    raw = vipbin.read_blob_file(args.blob)
    info = describe(vipbin.read_blob(raw, str(args.blob)), raw, str(args.blob))
    print(json.dumps(info, indent=1) if args.json else render_text(info))
    return 0


# -- npuc report ----------------------------------------------------------------------

def cmd_report(args: argparse.Namespace) -> int:
    from . import vipbin
    from .files import write_atomically
    from .report_html import report

    raw = vipbin.read_blob_file(args.blob)
    page = report(vipbin.read_blob(raw, str(args.blob)), raw, str(args.blob))
    write_atomically(args.output, page.encode("utf-8"))
    print(f"wrote {args.output}")
    return 0


# -- npu-run --------------------------------------------------------------------------

def is_classifier(outputs: list[np.ndarray]) -> bool:
    """Whether npu-run ranks the outputs as classes: one output of shape [1, N], N > 1."""
    return len(outputs) == 1 and outputs[0].ndim == 2 and outputs[0].shape[0] == 1 and outputs[0].size > 1


def output_summary(name: str, value: np.ndarray) -> str:
    """One line about an output npu-run does not rank: type, shape, range (%g for floats; NaN if any)."""
    def number(v: np.generic) -> str:
        return f"{float(v):g}" if value.dtype.kind == "f" else str(int(v))

    span = f"min {number(value.min())} max {number(value.max())}" if value.size else "empty"
    return f"{name}: {value.dtype}{list(value.shape)} {span} (use --output-dir DIR to save it)"


def top_n(scores: np.ndarray, dtype: str, n: int) -> list[tuple[float, int]]:
    """The n best classes as label_image ranks and scales them (uint8/255, int8 shifted by 128)."""
    import numpy as np

    flat = scores.reshape(-1)
    if dtype == "uint8":
        values = flat.astype(np.float64) / 255.0
    elif dtype == "int8":
        values = (flat.astype(np.float64) + 128.0) / 255.0
    else:
        values = flat.astype(np.float64)
    order = np.argsort(-values, kind="stable")[:n]
    return [(float(values[i]), int(i)) for i in order]


def _channel_values(text: str, option: str) -> tuple[float, ...]:
    """``--mean``/``--std``: one value, or one per channel (R,G,B), comma-separated."""
    import numpy as np

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected a number or three comma-separated numbers") from None
    if len(values) not in (1, 3) or not all(np.isfinite(values)) or (option == "--std" and 0.0 in values):
        raise UsageError(f"{option} {text!r}: expected one or three finite numbers{' (not 0)' * (option == '--std')}")
    return values


def _normalization(args: argparse.Namespace, metadata: dict[str, str], dtype: str):
    """How to turn pixels into the image input: --mean/--std, else the blob's own for a float input, else None."""
    from .passes.inputs import MEAN_KEY, STD_KEY
    from .runtime.image import Normalization

    if args.mean is not None or args.std is not None:
        return Normalization(_channel_values(args.mean or "0", "--mean"), _channel_values(args.std or "1", "--std"))
    if dtype == "float32" and MEAN_KEY in metadata and STD_KEY in metadata:
        try:
            return Normalization((float(metadata[MEAN_KEY]),), (float(metadata[STD_KEY]),))
        except ValueError:
            raise InputError(f"blob metadata {MEAN_KEY}/{STD_KEY} are not numbers") from None
    return None


def _inputs(args: argparse.Namespace, infos: list, source: str, prog: str, metadata: dict[str, str],
            letterbox: bool = False) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The graph inputs from ``--input NAME=FILE.npy`` arguments and an image (for one image input; with
    ``letterbox``, YOLO's aspect-keeping resize), and the image's pixels (None without an image)."""
    from .runtime.image import image_layout, load_rgb, rgb_input
    from .runtime.tensor_io import load_npy, parse_input_arg

    given: dict[int, np.ndarray] = {}
    for arg in args.input:
        k, path = parse_input_arg(arg, infos)
        given[k] = load_npy(path, infos[k])
    rgb = None
    if args.image is not None:
        if len(infos) != 1 or image_layout(tuple(infos[0].shape)) is None:
            raise InputError(f"{source}: the model does not take a single image ([1, H, W, 3] or [1, 3, H, W]); "
                             f"use --input NAME=FILE.npy")
        info = infos[0]
        if info.dtype not in ("uint8", "int8", "float32"):
            raise InputError(f"{args.image}: cannot feed an image to an input of type {info.dtype}")
        normalization = _normalization(args, metadata, info.dtype)
        rgb = load_rgb(args.image)
        given[0] = rgb_input(rgb, tuple(info.shape), info.dtype, info.scale, info.zero_point, normalization,
                             str(args.image), letterbox)
    missing = [infos[k].name for k in range(len(infos)) if k not in given]
    if missing:
        raise UsageError(f"{prog}: no value for input(s) {', '.join(map(repr, missing))}: give an image or "
                         f"--input NAME=FILE.npy")
    return [given[k] for k in range(len(infos))], rgb


def cmd_run(args: argparse.Namespace) -> int:
    from . import vipbin
    from .files import read_labels_text
    from .runtime.runtime import Runtime
    from .runtime.tensor_io import save_outputs
    from .sim.device import device_like

    if not 0.0 <= args.threshold <= 1.0:
        raise UsageError(f"npu-run: --threshold must be between 0 and 1, not {args.threshold:g}")
    if args.draw is not None and args.image is None:
        raise UsageError("npu-run: --draw needs an IMAGE to draw on")
    blob = vipbin.load_blob(args.blob)
    runtime = Runtime(blob, device_like(blob.identity))
    inputs, rgb = _inputs(args, runtime.input_infos, str(args.blob), "npu-run", blob.metadata, args.letterbox)
    for k, value in enumerate(inputs):
        runtime.set_input(k, value)
    outputs = runtime.run()
    out_infos = runtime.output_infos
    if args.output_dir is not None:
        for path in save_outputs(args.output_dir, out_infos, outputs):
            print(f"wrote {path}")
    text = read_labels_text(args.labels) if args.labels else blob.metadata.get("labels", "")
    from .runtime.detect import recognise

    head = recognise(out_infos)
    if head is not None:
        return _print_detections(args, head, runtime, outputs, rgb, text.splitlines())
    if args.json or args.draw is not None:
        raise InputError(f"{args.blob}: {'--json' if args.json else '--draw'} needs a detection model "
                         f"(SSD post-processing or YOLO outputs)")
    if is_classifier(outputs):
        labels = text.splitlines()
        for score, index in top_n(outputs[0], out_infos[0].dtype, args.top):
            label = labels[index] if index < len(labels) else ""
            print(f"{score:g}: {index} {label}".rstrip())
    elif args.output_dir is None:
        for info, value in zip(out_infos, outputs):
            print(output_summary(info.name, value))
    return 0


def _print_detections(args: argparse.Namespace, head, runtime, outputs: list[np.ndarray], rgb: np.ndarray | None,
                      lines: list[str]) -> int:
    """Decode a detection head's outputs; print a line (or --json) per detection; --draw them."""
    from .runtime import detect
    from .runtime.image import fit_image, image_layout, input_size

    in_info = runtime.input_infos[0]
    if image_layout(tuple(in_info.shape)) is None:
        raise InputError(f"{args.blob}: a detection model needs an image input to place its boxes")
    in_w, in_h = input_size(tuple(in_info.shape))
    image_w, image_h = (rgb.shape[1], rgb.shape[0]) if rgb is not None else (in_w, in_h)
    fit = fit_image(image_w, image_h, in_w, in_h, args.letterbox and rgb is not None)
    dets = detect.decode(head, runtime.output_infos, outputs, fit, args.threshold)
    labels = detect.class_labels(lines, head)
    if args.json:
        print(detect.detections_json(dets, labels))
    else:
        for d in dets:
            print(detect.detection_line(d, labels))
    if args.draw is not None:
        from .files import write_atomically
        from .runtime.draw import draw_png

        write_atomically(args.draw, draw_png(rgb, dets, labels))
    return 0


# -- npuc verify ----------------------------------------------------------------------

def cmd_verify(args: argparse.Namespace) -> int:
    from . import vipbin
    from .driver import compile_model
    from .frontend_tflite import load_tflite
    from .verify import check_model_hash, render, verify

    graph = load_tflite(args.model)
    if args.blob is not None:
        blob = vipbin.load_blob(args.blob)
        check_model_hash(blob, args.model, args.blob)
        name = str(args.blob)
    else:
        blob = vipbin.read_blob(compile_model(args.model, args.target, split_steps=True).blob, str(args.model))
        name = f"{args.model} (compiled, one job per submit)"
    result = verify(args.model, blob, name, graph,
                    lambda runtime: _inputs(args, runtime.input_infos, str(args.model), "npuc verify", blob.metadata)[0],
                    args.target)
    print(render(result))
    return 0 if result.passed else 1


# -- npuc ops -------------------------------------------------------------------------

def cmd_ops(args: argparse.Namespace) -> int:
    from .hw.target import get_target
    from .ops_report import render_markdown, render_text

    target = get_target(args.target)
    print(render_markdown(target) if args.markdown else render_text(target), end="" if args.markdown else "\n")
    return 0


# -- npuc emit-runtime ---------------------------------------------------------------

def cmd_emit_runtime(args: argparse.Namespace) -> int:
    from .cruntime import emit_runtime

    for path in emit_runtime(args.output, args.embed):
        print(path)
    return 0


# -- parsers --------------------------------------------------------------------------

def _add_normalization_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mean", help="pixel value(s) subtracted before --std divides (one, or R,G,B); default: the "
                                  "model's own for a float input (from its input quantization), else none")
    p.add_argument("--std", help="divisor(s) of the pixels after --mean (one, or R,G,B); a quantized input is then "
                                 "quantized with its scale and zero point")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("blob", type=Path, help="compiled .vipbin")
    p.add_argument("image", type=Path, nargs="?", help="image file (BMP, PNG, JPEG, PPM) for a single image input "
                                                       "(NHWC or NCHW)")
    _add_normalization_args(p)
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="value of input NAME (tensor name or position) from a .npy file; repeat for each input")
    p.add_argument("--output-dir", type=Path, help="write every output tensor as DIR/<name>.npy")
    p.add_argument("--labels", type=Path, help="labels file, one per line (default: labels embedded at compile time)")
    p.add_argument("-n", "--top", type=int, default=5, help="how many classes to print (default 5)")
    p.add_argument("--threshold", type=float, default=0.25, metavar="T",
                   help="a detection model's lowest score printed (0 to 1, default 0.25)")
    p.add_argument("--letterbox", action="store_true",
                   help="fit the image keeping its aspect ratio, padded with gray 114 (YOLO's preprocessing)")
    p.add_argument("--json", action="store_true", help="print a detection model's detections as JSON")
    p.add_argument("--draw", type=Path, metavar="OUT.png", help="write the image with the detections drawn")


def _npuc_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="npuc", description="Ahead-of-time compiler for VeriSilicon VIPNano NPUs.")
    p.add_argument("--version", action="version", version=f"npuc {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser("compile", help="compile a quantized .tflite model into a .vipbin")
    c.add_argument("model", type=Path)
    c.add_argument("-o", "--output", type=Path, required=True)
    c.add_argument("--target", default="vipnano-qi", help="NPU target (default vipnano-qi: Amlogic A311D)")
    c.add_argument("--labels", type=Path, help="labels file to embed in the blob")
    c.add_argument("--cpu-only", action="store_true",
                   help="run every operator on the host CPU (bit-exact with TFLite's reference kernels)")
    c.add_argument("--one-job-per-submit", action="store_true",
                   help="give every NPU job its own submit, so that npuc verify can compare every layer")
    c.add_argument("--exact", action="store_true",
                   help="keep on the NPU only what it computes bit-identically to TFLite (views, layout changes, "
                        "padding, table lookups); for models whose outputs a one-step difference can change, "
                        "such as keypoints picked by arg-max")
    c.set_defaults(fn=cmd_compile)
    i = sub.add_parser("inspect", help="show what a .vipbin contains")
    i.add_argument("blob", type=Path)
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(fn=cmd_inspect)
    rp = sub.add_parser("report", help="write a self-contained HTML report of a .vipbin (time, bytes, placement, "
                                       "memory map)")
    rp.add_argument("blob", type=Path)
    rp.add_argument("-o", "--output", type=Path, required=True, help="HTML file to write")
    rp.set_defaults(fn=cmd_report)
    v = sub.add_parser("verify", help="run a model on the simulated NPU and compare every layer with TFLite's "
                                      "reference kernels; exit status 1 when the output disagrees")
    v.add_argument("model", type=Path, help="the .tflite model")
    v.add_argument("--image", type=Path, help="image file for a single image input")
    _add_normalization_args(v)
    v.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="value of input NAME (tensor name or position) from a .npy file; repeat for each input")
    v.add_argument("--blob", type=Path, help="a .vipbin compiled from MODEL (default: compile it, one job per "
                                             "submit)")
    v.add_argument("--target", default="vipnano-qi", help="NPU target when compiling (default vipnano-qi)")
    v.set_defaults(fn=cmd_verify)
    o = sub.add_parser("ops", help="list the operators npuc compiles and where they run")
    o.add_argument("--target", default="vipnano-qi")
    o.add_argument("--markdown", action="store_true", help="a markdown table (docs/supported-ops.md)")
    o.set_defaults(fn=cmd_ops)
    e = sub.add_parser("emit-runtime", help="write the C runtime (library, npu-run, Makefile) for a board")
    e.add_argument("-o", "--output", type=Path, required=True, help="directory to write the sources to")
    e.add_argument("--embed", type=Path, help="compile this .vipbin into the generated npu-run")
    e.set_defaults(fn=cmd_emit_runtime)
    r = sub.add_parser("run", help="run a .vipbin on an image (same as npu-run)")
    _add_run_args(r)
    r.set_defaults(fn=cmd_run)
    return p


def _npuc(argv: Sequence[str] | None) -> int:
    args = _npuc_parser().parse_args(argv)
    return args.fn(args)


def _npu_run(argv: Sequence[str] | None) -> int:
    p = _Parser(prog="npu-run", description="Run a compiled .vipbin (simulated NPU when no board is present).")
    _add_run_args(p)
    args = p.parse_args(argv)
    if args.top < 1:
        raise UsageError("npu-run: -n must be at least 1")
    return cmd_run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``npuc``."""
    return _run_guarded(_npuc, argv)


def npu_run_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``npu-run``."""
    return _run_guarded(_npu_run, argv)


def console_main() -> None:
    """The ``npuc`` script and ``python -m npuc``: :func:`main` on the command line, then exit.

    A finished ``npuc compile`` has nothing left to flush or release (its output
    is written and closed), so its process ends without the interpreter's
    teardown, which would free every object of the compiled program one by one
    (about 40 ms, a tenth of a MobileNet compile).  Other commands exit normally.
    """
    argv = sys.argv[1:]
    code = main(argv)
    if argv[:1] == ["compile"]:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console_main()
