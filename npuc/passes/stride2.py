"""The two ways a v7 NN core runs a stride-2 convolution (vipnano-nn.md 6.4).

NN cores only convolve at stride 1.  A stride-2 convolution is either

* **first-pixel pooling**: the convolution runs at stride 1 over twice the
  output size and the core keeps the top-left pixel of every 2x2 block (4x the
  MACs, no extra job); or
* **reshuffle**: a TP job rearranges the input by 2x2 space-to-depth (channel
  ``4c + 2py + px`` holds phase (py, px) of channel c) and the kernel is
  rewritten the same way (IC' = 4 IC, K' = ceil(K / 2)), so that a stride-1
  VALID convolution over the reshuffled image gives the result (one more TP
  job and its DRAM traffic, but a quarter of the MACs of pooling).

The scheduler estimates both (:mod:`npuc.scheduler.reshuffle`) and keeps the cheaper; this module
holds the geometry both share.
"""

from __future__ import annotations

import numpy as np

from ..hw.target import Target
from .conv_params import ConvGeometry

#: Space-to-depth factor of the reshuffle (stride 2 only).
PHASES = 2
def pooling_allowed(geo: ConvGeometry, target: Target) -> bool:
    """First-pixel pooling needs the SAME padding as a start offset and an input width Mesa pools
    (``Target.no_pooling_widths``: on v7 Mesa pools no depthwise input 3..7 wide, for a reason not
    known, so npuc keeps away from those widths for every v7 convolution)."""
    lowest = -(1 << (target.offset_bits - 1))
    return (geo.stride_h == geo.stride_w == PHASES and -geo.pad_top >= lowest and -geo.pad_left >= lowest
            and geo.in_w not in target.no_pooling_widths)


def reshuffled_kernel(geo: ConvGeometry) -> tuple[int, int]:
    """(K'h, K'w) of the rewritten kernel."""
    return -(-geo.k_h // PHASES), -(-geo.k_w // PHASES)


def reshuffled_size(geo: ConvGeometry) -> tuple[int, int]:
    """(rows, columns) of the reshuffled image: what a VALID K' convolution needs for the output."""
    kh, kw = reshuffled_kernel(geo)
    return geo.out_h + kh - 1, geo.out_w + kw - 1


def reshuffle_weights(weights: np.ndarray, zero_point: int) -> np.ndarray:
    """[OC][IC][KH][KW] -> [OC][4 IC][K'h][K'w]: tap (2i + py, 2j + px) of channel c to channel 4c + 2py + px.

    Taps past the original kernel are the weight zero point (real zero).
    """
    oc, ic, kh, kw = weights.shape
    hh, hw = -(-kh // PHASES), -(-kw // PHASES)
    padded = np.full((oc, ic, PHASES * hh, PHASES * hw), zero_point, dtype=np.uint8)
    padded[:, :, :kh, :kw] = weights
    phased = padded.reshape(oc, ic, hh, PHASES, hw, PHASES).transpose(0, 1, 3, 5, 2, 4)  # [oc][c][py][px][i][j]
    return np.ascontiguousarray(phased.reshape(oc, ic * PHASES * PHASES, hh, hw))
