"""DEPTHWISE_CONV_2D on v7 NN cores, which have no depthwise mode: dense convolutions over channel groups.

Mesa expands a depthwise layer of C channels into one dense convolution with
C input channels, every kernel carrying its 3x3 taps on its own channel and
the weight zero point (real zero) on the C - 1 others; zero-run coding shrinks
the zeros, but the buffer still grows with C (and the MACs with C squared).
npuc cuts the channels into groups of g: each group is one job whose input is
the group's g planes (the input Ref starts at the group's first plane), whose
kernels are the group's diagonal block of Mesa's expansion, and whose trailers
put each output plane in place.  g trades coefficient bytes and MACs (both
grow with g) against per-job overhead (more jobs for small g); it is chosen
per layer by the cost model, for each way of handling stride 2 (:mod:`stride2`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backend_vip.jobs import NNJob, Program, Ref
from ..backend_vip.perf import Cost
from ..backend_vip.target import Target
from ..ir import Op
from . import stride2
from .conv_params import ConvGeometry, Quantization, bias_of, planar_operands, uses_relu
from .nn_job import ConvJob, build_nn_job
from .requant import PostScale, stored_bytes

#: Channel-group sizes tried (plus the whole layer when it has fewer channels than the largest).
#: Beyond 128 both the coefficient bytes per channel and the MACs only grow; below 16 a core
#: holds one kernel of 9 weights padded to 64 bytes, more bytes per channel than 16 for twice the jobs.
GROUP_SIZES = (16, 24, 32, 48, 64, 96, 128)

DIRECT, POOLED, RESHUFFLED = "stride 1", "first-pixel pooling", "TP reshuffle"


@dataclass
class _Layer:
    """What every group job of the layer shares."""

    op: Op
    geo: ConvGeometry
    taps: np.ndarray          # stored [C][KH][KW]
    bias: np.ndarray
    q: Quantization
    scale: PostScale
    relu: bool

    def group(self, mode: str, first: int, count: int, src: int, dst: int) -> ConvJob:
        """The job computing channels first .. first + count - 1 of the layer."""
        geo, zp = self.geo, self.q.w_zp
        taps = self.taps[first:first + count]
        if mode == RESHUFFLED:
            blocks = stride2.reshuffle_weights(taps[:, None], zp)            # [count][4][K'][K']
            phases = blocks.shape[1]
            rows, cols = stride2.reshuffled_size(geo)
            weights = np.full((count, count * phases) + blocks.shape[2:], zp, dtype=np.uint8)
            for j in range(count):
                weights[j, j * phases:(j + 1) * phases] = blocks[j]
            image = dict(input=Ref(src, first * phases * rows * cols), in_x=cols, in_y=rows)
        else:
            weights = np.full((count, count, geo.k_h, geo.k_w), zp, dtype=np.uint8)
            weights[np.arange(count), np.arange(count)] = taps
            image = dict(input=Ref(src, first * geo.in_h * geo.in_w), in_x=geo.in_w, in_y=geo.in_h,
                         offset_x=-geo.pad_left, offset_y=-geo.pad_top)
        plane = geo.out_h * geo.out_w
        return ConvJob(name=f"{self.op.name} depthwise channels {first}-{first + count - 1}", op=self.op.index,
                       output=Ref(dst, first * plane), weights=weights, bias=self.bias[first:first + count],
                       trailers=np.arange(count, dtype=np.int64) * plane, coef_zero_point=zp,
                       input_zero_point=self.q.in_zp, output_zero_point=self.q.out_zp, scale=self.scale,
                       out_x=geo.out_w, out_y=geo.out_h, first_pixel=mode == POOLED, strided=geo.stride > 1,
                       relu=self.relu, **image)


def group_sizes(channels: int) -> list[int]:
    sizes = [g for g in GROUP_SIZES if g <= channels]
    if channels < GROUP_SIZES[-1] and channels not in sizes:
        sizes.append(channels)
    return sizes


def _groups(channels: int, size: int) -> list[tuple[int, int]]:
    return [(first, min(size, channels - first)) for first in range(0, channels, size)]


def estimate(layer: _Layer, mode: str, size: int, target: Target) -> Cost:
    """Cost of the layer in groups of ``size``: one full group and the remainder are built, the rest repeat."""
    channels = layer.geo.out_c
    full, rest = divmod(channels, size)
    one = build_nn_job(layer.group(mode, 0, size, 0, 0), target).cost if full else Cost()
    total = Cost(*(full * v for v in one.astuple()))
    if rest:
        total += build_nn_job(layer.group(mode, channels - rest, rest, 0, 0), target).cost
    if mode == RESHUFFLED:
        total += stride2.reshuffle_cost(layer.geo, target)
    return total


#: Estimated times this close to the fastest count as equal: the cost model's
#: constants are estimates (per-job overhead above all), while DRAM traffic is
#: the documented bottleneck of this NPU, so among near-equal choices npuc takes
#: the one that reads the fewest coefficient bytes.
ESTIMATE_MARGIN = 0.25


def pick_cheapest(choices: dict[tuple[str, int], Cost]) -> tuple[str, int]:
    """The fewest coefficient bytes among the choices within ESTIMATE_MARGIN of the fastest."""
    fastest = min(c.cycles for c in choices.values())
    close = [k for k, c in choices.items() if c.cycles <= fastest * (1 + ESTIMATE_MARGIN)]
    return min(close, key=lambda k: (choices[k].coefficient_bytes, choices[k].cycles, k[1]))


def lower_depthwise(program: Program, op: Op, target: Target) -> None:
    """Append the group jobs of a DEPTHWISE_CONV_2D (constraints in npu_ops already checked)."""
    c = planar_operands(program, op)
    geo, q, src, dst = c.geo, c.q, c.src, c.dst
    layer = _Layer(op, geo, stored_bytes(c.weights)[0].transpose(2, 0, 1), bias_of(program.graph, op, geo.out_c),
                   q, q.post_scale(target, op.name), uses_relu(op))
    if geo.stride == 1:
        modes = [DIRECT]
    else:
        modes = ([POOLED] if stride2.pooling_allowed(geo, target) else []) + [RESHUFFLED]
    choices = {(mode, size): estimate(layer, mode, size, target)
               for mode in modes for size in group_sizes(geo.out_c)}
    mode, size = pick_cheapest(choices)
    if mode == RESHUFFLED:
        src = stride2.add_reshuffle(program, op.index, src, geo, target)
    groups = _groups(geo.out_c, size)
    note = f"depthwise as {len(groups)} dense job(s) of {size} channels, {mode}"
    for first, count in groups:
        job: NNJob = build_nn_job(layer.group(mode, first, count, src, dst), target).job
        job.note = note
        program.steps.append(job)
