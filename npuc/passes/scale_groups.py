"""Per-channel quantized weights on NN cores that have one post multiplier per job: channels grouped by scale.

TFLite's int8 convolutions give every output channel c its own weight scale
s_c, so channel c is requantized by ``s_in * s_c / s_out``.  A v7 NN job has
one post multiplier (the descriptor's ``per_channel_post_mul`` bit is never set
by Mesa, the A311D's feature database says ``NN_PER_CHANNEL_QUANT`` = 0, and
nothing shows what the hardware would read with it: npuc does not use it).
npuc therefore sorts the channels by scale and cuts them into groups whose
scales lie within a factor ``POLICY.max_ratio`` of the group's largest, S; each
group becomes its own job(s) with the multiplier ``s_in * S / s_out``, and its
weights are requantized to S: ``round(w * s_c / S)`` keeps at least
``8 - log2(max_ratio)`` bits of every channel (the group's largest
channel is exact).  The kernel's roundings are chosen so that their errors
sum to zero: a uniform input (the bulk of a post-ReLU activation) then meets
no error at all.  Biases are requantized to S too.  Channels whose weights are
all zero output a constant; they join the largest group with the bias that
makes the job output TFLite's constant exactly.

docs/per-channel-int8.md compares this with the other options (one multiplier
for the whole layer as Mesa's fallback does, groups without requantized
weights, one job per channel), layer by layer against TFLite.  Per-tensor
weights are one group with the weights as they are, so every convolution
lowering goes through here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..coefs import plane_offsets_in_stream
from .npu_program import INT8_OFFSET, npu_bytes
from ..hw.target import Target
from ..ir import Tensor
from ..host.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from . import requant



@dataclass(frozen=True)
class GroupingPolicy:
    """How per-channel weights become jobs (docs/per-channel-int8.md measures the alternatives)."""

    max_ratio: float           # largest ratio between the scales of two channels sharing a job
    requantize: bool = True    # requantize weights to the group's largest scale (else keep them, and use
                               # the geometric mean of the group's scales as its scale)
    zero_sum: bool = True      # choose roundings whose errors sum to zero per kernel


#: npuc's choice: a group's smallest channel keeps 7 of its 8 bits.
POLICY = GroupingPolicy(max_ratio=2.0)
#: On cores whose kernels write consecutive output planes (v8: no plane offsets in the coefficient
#: stream) every job is a run of consecutive channels, and TF2 models' scales put neighbours in
#: different groups (MobileNet v2: ~140 runs per layer against ~11 groups).  Layers needing more
#: runs than this stay on the host.
MAX_CONSECUTIVE_RUNS = 8
#: Requantized int8 weights stay in TFLite's int8 range.
_W_MIN, _W_MAX = int(np.iinfo(np.int8).min), int(np.iinfo(np.int8).max)


@dataclass(frozen=True)
class ScaleGroup:
    """Output channels that share one post multiplier."""

    channels: np.ndarray    # output channel indices, ascending
    kernels: np.ndarray     # stored bytes [len(channels)][...], the layer's kernel shape per channel
    bias: np.ndarray        # int64 TFLite biases at the group's scale
    scale: requant.PostScale
    coef_zero_point: int


@dataclass(frozen=True)
class WeightedLayer:
    """What scale grouping needs of a convolution: its weights per output channel and its scales."""

    weights: Tensor
    kernels: np.ndarray      # TFLite's weight values, [out channels][...]
    bias: np.ndarray         # int64 [out channels]
    in_scale: float
    out_scale: float

    @property
    def per_channel(self) -> bool:
        return self.weights.quant.per_channel


def scale_groups(layer: WeightedLayer, channels: np.ndarray, target: Target, what: str) -> list[ScaleGroup]:
    """The jobs' channel groups among ``channels`` (ascending output channel indices), largest scales first."""
    policy = POLICY
    q = layer.weights.quant
    if not layer.per_channel:
        scale = requant.encode_scale(requant.conv_scale(layer.in_scale, q.single_scale, layer.out_scale), target,
                                     what=what)
        return [ScaleGroup(channels, npu_bytes(layer.kernels[channels]), layer.bias[channels], scale,
                           requant.stored_zero_point(layer.weights))]
    values = layer.kernels[channels].astype(np.int64)
    flat = values.reshape(len(channels), -1)
    live = flat.any(axis=1)
    scales = q.scale.astype(np.float64)[channels]
    groups = [np.sort(members) for members in _partition(np.nonzero(live)[0], scales, policy.max_ratio)]
    if not groups:
        groups = [np.zeros(0, dtype=np.int64)]   # every channel is constant
    constant = np.nonzero(~live)[0]
    largest = max(range(len(groups)), key=lambda i: len(groups[i]))
    out = []
    for i, members in enumerate(groups):
        top = float(scales[members].max()) if live[members].any() else float(scales.max())
        if not policy.requantize:
            top = float(np.sqrt(scales[members].min() * top))
        ratio = scales[members] / top if policy.requantize else np.ones(len(members))
        kernels = _round(flat[members] * ratio[:, None], policy.zero_sum).reshape((len(members),) + values.shape[1:])
        bias = np.floor(layer.bias[channels][members] * ratio + 0.5).astype(np.int64)
        # TFLite's per-channel multipliers are computed in double (float32 scales, double product).
        scale = requant.encode_scale(float(np.float32(layer.in_scale)) * top / float(np.float32(layer.out_scale)),
                                     target, what=what)
        if i == largest and constant.size:
            members = np.concatenate((members, constant))
            kernels = np.concatenate((kernels, np.zeros((constant.size,) + values.shape[1:], np.int64)))
            bias = np.concatenate((bias, _constant_bias(layer, channels[constant], scale, target)))
        order = np.argsort(members)
        out.append(ScaleGroup(channels[members[order]], (kernels[order] + INT8_OFFSET).astype(np.uint8),
                              bias[order], scale, INT8_OFFSET))
    if not plane_offsets_in_stream(target):
        out = [run for g in out for run in _consecutive_runs(g)]
    return out


def _consecutive_runs(group: ScaleGroup) -> list[ScaleGroup]:
    """The group cut where its channel numbers jump: a job whose kernels carry no plane offsets (v8)
    writes kernel o to the o-th plane after its first, so its channels must be consecutive."""
    cuts = np.flatnonzero(np.diff(group.channels) != 1) + 1
    return [ScaleGroup(group.channels[a:b], group.kernels[a:b], group.bias[a:b], group.scale, group.coef_zero_point)
            for a, b in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [len(group.channels)])))]


def _partition(live: np.ndarray, scales: np.ndarray, max_ratio: float) -> list[np.ndarray]:
    """Live channel positions, largest scale first, cut where a scale falls below the group's largest / max_ratio."""
    order = live[np.argsort(-scales[live], kind="stable")]
    groups, start = [], 0
    for i in range(1, len(order) + 1):
        if i == len(order) or scales[order[i]] * max_ratio < scales[order[start]]:
            groups.append(order[start:i])
            start = i
    return groups


def _round(values: np.ndarray, zero_sum: bool) -> np.ndarray:
    """Round each row to integers in int8's range, with rounding errors that sum to (nearly) zero if ``zero_sum``.

    Plain rounding first; then the row's total error, rounded to k units, is
    taken back by moving the |k| entries whose error points furthest in its
    direction one unit the other way (each such move costs the least squared
    error).
    """
    rounded = np.floor(values + 0.5)
    if not zero_sum:
        return np.clip(rounded, _W_MIN, _W_MAX).astype(np.int64)
    err = rounded - values
    k = np.floor(err.sum(axis=1) + 0.5).astype(np.int64)
    direction = np.sign(k)[:, None]
    order = np.argsort(-err * direction, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(values.shape[1]), values.shape), axis=1)
    rounded -= (rank < np.abs(k)[:, None]) * direction
    return np.clip(rounded, _W_MIN, _W_MAX).astype(np.int64)


def _constant_bias(layer: WeightedLayer, channels: np.ndarray, scale: requant.PostScale,
                   target: Target) -> np.ndarray:
    """Biases that make a job with ``scale`` output what TFLite outputs for channels with all-zero weights.

    TFLite rescales the bias alone with the channel's own multiplier; the job
    gets the bias nearest to that result divided by its multiplier (exact
    whenever the multiplier is below 1, as every convolution's is).
    """
    factor = scale.factor(target)
    out = []
    for c in channels:
        multiplier, shift = quantize_multiplier(layer.in_scale * float(layer.weights.quant.scale[c]) / layer.out_scale)
        target_value = int(multiply_by_quantized_multiplier(np.array([layer.bias[c]]), multiplier, shift)[0])
        out.append(int(np.floor(target_value / factor + 0.5)))
    return np.array(out, dtype=np.int64)
