"""Running TP jobs on the simulator in tests: tensors in a small Program, buffers at fixed addresses.

The builders of ``npuc.backend_vip.tp_jobs`` take tensors of a Program and
return descriptors without addresses; ``descriptors_at`` fills them in the way
the emitter's relocations do (buffer address + Ref offset), and ``run_tp``
runs descriptors over a source buffer with ``npuc.sim.tp`` and returns the
destination buffer.
"""

from __future__ import annotations

import numpy as np

from npuc.backend_vip import tp_jobs
from npuc.hw.descriptors import TP_DESCRIPTOR
from npuc.passes.npu_program import NHWC, PLANAR, Program
from npuc.backend_vip.jobs import TPJob
from npuc.hw.target import VIPNANO_QI, Target
from npuc.ir import Graph, Quant
from npuc.sim import tp
from npuc.sim.memory import Memory

SRC, DST, DESC, LUT = 0x0100_0000, 0x0200_0000, 0x0300_0000, 0x0400_0000
BUF = 1 << 21
FILL = 0xA5  # output bytes no job wrote
TP_CORES = VIPNANO_QI.tp_cores


def rng_bytes(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def program(*tensors: tuple[tuple[int, ...], str, int, float]) -> Program:
    """A Program holding uint8 tensors t0, t1, ... given as (shape, layout, zero point, scale)."""
    p = Program(Graph(tensors=[], ops=[], inputs=[], outputs=[]), VIPNANO_QI)
    for i, (shape, layout, zp, scale) in enumerate(tensors):
        p.new_tensor(f"t{i}", shape, "uint8", Quant(np.array([scale]), np.array([zp])), layout)
    return p


def transpose_job(shape: tuple[int, int, int], zp: int = 0) -> TPJob:
    """tp_jobs.transpose of an (H, W, C) tensor."""
    p = program(((1, *shape), NHWC, zp, 0.1), ((1, *shape), PLANAR, zp, 0.1))
    return tp_jobs.transpose(p, 0, 0, 1, VIPNANO_QI)


def detranspose_job(shape: tuple[int, int, int], zp: int = 0) -> TPJob:
    """tp_jobs.detranspose of an (H, W, C) tensor."""
    p = program(((1, *shape), PLANAR, zp, 0.1), ((1, *shape), NHWC, zp, 0.1))
    return tp_jobs.detranspose(p, 0, 0, 1, VIPNANO_QI)


def reshuffle_job(shape: tuple[int, int, int], zp: int, kernel: tuple[int, int], pads: tuple[int, int],
                  out: tuple[int, int], target: Target = VIPNANO_QI) -> TPJob:
    """tp_jobs.reshuffle of an (H, W, C) tensor with (top, left) ``pads`` into (Ho, Wo) = ``out``."""
    h, w, c = shape
    p = program(((1, h, w, c), PLANAR, zp, 0.1), ((1, *out, 4 * c), PLANAR, zp, 0.1))
    return tp_jobs.reshuffle(p, 0, 0, 1, *kernel, *pads, target)


def pad_job(shape: tuple[int, int, int], pads: tuple, zp: int, layout: str, out_zp: int | None = None) -> TPJob:
    """tp_jobs.pad of an (H, W, C) tensor stored in ``layout``."""
    (hb, ha), (wb, wa), (cb, ca) = pads
    h, w, c = shape
    out = (1, h + hb + ha, w + wb + wa, c + cb + ca)
    p = program(((1, *shape), layout, zp, 0.1), (out, layout, zp if out_zp is None else out_zp, 0.1))
    return tp_jobs.pad(p, 0, 0, 1, pads, VIPNANO_QI)


def lut_job(kind: str, shape: tuple[int, int, int], in_q: tuple[int, float], out_q: tuple[int, float],
            layout: str = NHWC) -> TPJob:
    """tp_jobs.lut of an (H, W, C) tensor quantized (zero point, scale) ``in_q`` into ``out_q``."""
    p = program(((1, *shape), layout, *in_q), ((1, *shape), layout, *out_q))
    return tp_jobs.lut(p, 0, 0, 1, kind, VIPNANO_QI)


def descriptors_at(job: TPJob, src: int = SRC, dst: int = DST, lut: int = LUT) -> list[dict]:
    """The job's per-core field dicts with the input tensor at ``src``, the output at ``dst``, the LUT at ``lut``."""
    out = []
    for core in job.cores:
        d = dict(core.desc, in_image_base_address=src + core.input.offset,
                 out_image_base_address=dst + core.output.offset)
        if job.lut is not None:
            d["alu_load_pwl_lut_address"] = lut
        out.append(d)
    return out


def run_tp(data: np.ndarray, descs: list[dict], lut: bytes | None = None) -> np.ndarray:
    """Run the TP descriptors (one per core, in order) over ``data`` at SRC; return the DST buffer."""
    mem = Memory()
    src = np.zeros(BUF, np.uint8)
    src[:data.size] = data.ravel()
    dst = np.full(BUF, FILL, np.uint8)
    mem.map(SRC, src, "src")
    mem.map(DST, dst, "dst")
    table = np.zeros(4096 * len(descs), np.uint8)
    mem.map(DESC, table, "descriptors")
    if lut is not None:
        mem.map(LUT, np.frombuffer(lut, np.uint8).copy(), "lut")
    for i, fields in enumerate(descs):
        table[4096 * i:4096 * i + TP_DESCRIPTOR.size] = np.frombuffer(TP_DESCRIPTOR.pack(fields), np.uint8)
    for i in range(len(descs)):
        tp.run_tp_job(mem, DESC + 4096 * i, VIPNANO_QI, f"test job {i} (TP)")
    return dst


def run_job(job: TPJob, data: np.ndarray) -> np.ndarray:
    """Run a built job with its input bytes ``data`` (as stored) at SRC; return the DST buffer."""
    return run_tp(data, descriptors_at(job), job.lut)


def space_to_depth(planes: np.ndarray, zp: int, ho: int, wo: int, pad_top: int, pad_left: int) -> np.ndarray:
    """Stride-2 space-to-depth of [C][H][W]: plane 4c + 2py + px holds input (2y + py - pad_top, 2x + px - pad_left)."""
    c, h, w = planes.shape
    padded = np.full((c, pad_top + max(h, 2 * ho), pad_left + max(w, 2 * wo)), zp, np.uint8)
    padded[:, pad_top:pad_top + h, pad_left:pad_left + w] = planes
    out = np.empty((c, 2, 2, ho, wo), np.uint8)
    for py in range(2):
        for px in range(2):
            out[:, py, px] = padded[:, py:py + 2 * ho:2, px:px + 2 * wo:2]
    return out.reshape(4 * c, ho, wo)
