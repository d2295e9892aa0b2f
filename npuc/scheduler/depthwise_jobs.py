"""DEPTHWISE_CONV_2D layers as NN jobs: native depthwise jobs (v8), or dense convolutions over channel groups (v7).

Cores with a depthwise mode (``Target.native_depthwise``, v8) run the layer as
one job whose kernel o reads input plane o only (one per group of channels
sharing a weight scale); stride 2 is first-pixel pooling, as Mesa does on v8
(a reshuffled input would give each channel four planes).  Where that is not
possible (a SAME padding beyond the offset field with stride 2, or fewer
channels than NN cores but more than one, for which the hardware's kernel
distribution is unknown) the layer takes the v7 path below.

v7 cores have no depthwise mode.

Mesa expands a depthwise layer of C channels into one dense convolution with
C input channels, every kernel carrying its 3x3 taps on its own channel and
the weight zero point (real zero) on the C - 1 others; zero-run coding shrinks
the zeros, but the buffer still grows with C (and the MACs with C squared).
npuc cuts the channels into groups of g: each group is one job whose input is
the group's g planes (the input Ref starts at the group's first plane), whose
kernels are the group's diagonal block of Mesa's expansion, and whose trailers
put each output plane in place.  g trades coefficient bytes and MACs (both
grow with g) against per-job overhead (more jobs for small g); it is chosen
per layer by the cost model, for each way of handling stride 2 (passes/stride2.py, reshuffle.py).
With per-channel weights each group of channels is further split by weight
scale (passes/scale_groups.py): one job per scale group, each reading the group's
g planes and computing only its own channels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..hw.perf import Cost
from ..hw.target import Target
from ..passes import stride2
from ..passes.conv_params import ConvGeometry
from ..passes.npu_program import ConvOp, LayerOp, Program, Ref
from ..passes.scale_groups import WeightedLayer, scale_groups
from .nn_schedule import schedule_conv
from .reshuffle import add_reshuffle, reshuffle_cost

#: Channel-group sizes tried (plus the whole layer when it has fewer channels than the largest).
#: Beyond 128 both the coefficient bytes per channel and the MACs only grow; below 16 a core
#: holds one kernel of 9 weights padded to 64 bytes, more bytes per channel than 16 for twice the jobs.
GROUP_SIZES = (16, 24, 32, 48, 64, 96, 128)

DIRECT, POOLED, RESHUFFLED = "stride 1", "first-pixel pooling", "TP reshuffle"
#: TFLite's depthwise filter is [1][KH][KW][C]: the output channels are its last axis.
_CHANNEL_AXIS = 3


@dataclass
class _Layer:
    """What every group job of the layer shares."""

    layer: LayerOp
    weights: WeightedLayer    # kernels [C][KH][KW]
    target: Target

    @property
    def geo(self) -> ConvGeometry:
        return self.layer.geo

    def group(self, mode: str, first: int, count: int, src: int, dst: int) -> list[ConvOp]:
        """The jobs computing channels first .. first + count - 1 of the layer: one per scale group among them.

        Every job reads the count planes of the range; its kernels are the rows
        of the range's diagonal block for its own channels.
        """
        geo = self.geo
        groups = scale_groups(self.weights, np.arange(first, first + count), self.target, self.layer.name)
        plane = geo.out_h * geo.out_w
        jobs = []
        for g in groups:
            zp, rows = g.coef_zero_point, g.channels - first
            if mode == RESHUFFLED:
                blocks = stride2.reshuffle_weights(g.kernels[:, None], zp)       # [n][4][K'][K']
                phases = blocks.shape[1]
                in_rows, cols = stride2.reshuffled_size(geo)
                weights = np.full((len(rows), count * phases) + blocks.shape[2:], zp, dtype=np.uint8)
                for j, r in enumerate(rows):
                    weights[j, r * phases:(r + 1) * phases] = blocks[j]
                image = dict(input=Ref(src, first * phases * in_rows * cols), in_x=cols, in_y=in_rows)
            else:
                weights = np.full((len(rows), count, geo.k_h, geo.k_w), zp, dtype=np.uint8)
                weights[np.arange(len(rows)), rows] = g.kernels
                image = dict(input=Ref(src, first * geo.in_h * geo.in_w), in_x=geo.in_w, in_y=geo.in_h,
                             offset_x=-geo.pad_left, offset_y=-geo.pad_top)
            subset = "" if len(groups) == 1 else f" ({len(rows)} by weight scale)"
            jobs.append(ConvOp(
                name=f"{self.layer.name} depthwise channels {first}-{first + count - 1}{subset}", op=self.layer.op,
                output=Ref(dst, first * plane), weights=weights, bias=g.bias, trailers=rows * plane,
                coef_zero_point=zp, input_zero_point=self.layer.in_zp, output_zero_point=self.layer.out_zp,
                scale=g.scale,
                out_x=geo.out_w, out_y=geo.out_h, first_pixel=mode == POOLED, strided=geo.stride > 1,
                relu=self.layer.relu, **image))
        return jobs


def group_sizes(channels: int) -> list[int]:
    sizes = [g for g in GROUP_SIZES if g <= channels]
    if channels < GROUP_SIZES[-1] and channels not in sizes:
        sizes.append(channels)
    return sizes


def _groups(channels: int, size: int) -> list[tuple[int, int]]:
    return [(first, min(size, channels - first)) for first in range(0, channels, size)]


def estimate(layer: _Layer, mode: str, size: int, target: Target) -> Cost:
    """Cost of the layer in groups of ``size``.

    With per-tensor weights every full group is the same job, so one full
    group and the remainder are built; per-channel weights split each range
    by scale differently, so every job is built.
    """
    channels = layer.geo.out_c
    total = Cost()
    if layer.weights.per_channel:
        ranges = _groups(channels, size)
    else:
        full, rest = divmod(channels, size)
        if full:
            one = _cost(layer.group(mode, 0, size, 0, 0), target)
            total = Cost(*(full * v for v in one.astuple()))
        ranges = [(channels - rest, rest)] if rest else []
    for first, count in ranges:
        total += _cost(layer.group(mode, first, count, 0, 0), target)
    if mode == RESHUFFLED:
        total += reshuffle_cost(layer.geo, target)
    return total


def _cost(specs: list[ConvOp], target: Target) -> Cost:
    return sum((schedule_conv(spec, target).cost for spec in specs), Cost())


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


def native_allowed(geo: ConvGeometry, target: Target) -> bool:
    """Whether the layer can be native depthwise jobs: the mode exists, stride 2 can be pooled, and the
    channels are one or at least one per NN core (the only counts whose kernel order is known)."""
    return (target.native_depthwise and (geo.stride == 1 or stride2.pooling_allowed(geo, target))
            and (geo.out_c == 1 or geo.out_c >= target.nn_cores))


def native_jobs(layer: _Layer, src: int, dst: int) -> list[ConvOp] | None:
    """One native depthwise job per group of consecutive channels sharing a post multiplier; None when a
    group's channel count has no known kernel order (more than one, fewer than the NN cores)."""
    geo, cores = layer.geo, layer.target.nn_cores
    plane_in, plane_out = geo.in_h * geo.in_w, geo.out_h * geo.out_w
    groups = scale_groups(layer.weights, np.arange(geo.out_c), layer.target, layer.layer.name)
    if any(1 < len(g.channels) < cores for g in groups):
        return None
    jobs = []
    for g in groups:
        first = int(g.channels[0])
        jobs.append(ConvOp(
            name=f"{layer.layer.name} depthwise" + (f" channels {first}-{int(g.channels[-1])}"
                                                 if len(g.channels) < geo.out_c else ""),
            op=layer.layer.op, input=Ref(src, first * plane_in), output=Ref(dst, first * plane_out),
            in_x=geo.in_w, in_y=geo.in_h, weights=g.kernels[:, None], bias=g.bias,
            trailers=(g.channels - first) * plane_out, coef_zero_point=g.coef_zero_point,
            input_zero_point=layer.layer.in_zp, output_zero_point=layer.layer.out_zp, scale=g.scale, out_x=geo.out_w,
            out_y=geo.out_h, offset_x=-geo.pad_left, offset_y=-geo.pad_top, first_pixel=geo.stride > 1,
            strided=geo.stride > 1, relu=layer.layer.relu, depthwise=True,
            note="native depthwise" + (", stride 2 as first-pixel pooling" if geo.stride > 1 else "")))
    return jobs


def depthwise_jobs(program: Program, layer_op: LayerOp, target: Target) -> list:
    """The steps (NN jobs, a TP reshuffle) of a DEPTHWISE_CONV_2D layer."""
    geo, src, dst = layer_op.geo, layer_op.src, layer_op.dst
    weights = replace(layer_op.layer, kernels=layer_op.layer.kernels[:, 0])    # [C][1][KH][KW] -> [C][KH][KW]
    layer = _Layer(layer_op, weights, target)
    specs = native_jobs(layer, src, dst) if native_allowed(geo, target) else None
    if specs is not None:
        if len(specs) > 1:
            for spec in specs:
                spec.note += f"; {len(specs)} jobs by weight scale"
        return specs
    if geo.stride == 1:
        modes = [DIRECT]
    else:
        modes = ([POOLED] if stride2.pooling_allowed(geo, target) else []) + [RESHUFFLED]
    choices = {(mode, size): estimate(layer, mode, size, target)
               for mode in modes for size in group_sizes(geo.out_c)}
    mode, size = pick_cheapest(choices)
    steps: list = []
    if mode == RESHUFFLED:
        src = add_reshuffle(program, steps, layer_op.op, src, geo)
    groups = _groups(geo.out_c, size)
    specs = [spec for first, count in groups for spec in layer.group(mode, first, count, src, dst)]
    note = f"depthwise as {len(groups)} dense job(s) of {size} channels, {mode}"
    if len(specs) > len(groups):
        note += f"; {len(specs)} jobs by weight scale"
    for spec in specs:
        spec.note = note
    return steps + specs
