"""From a convolution in hardware terms to a complete NN job (descriptor fields and kernels).

Every NPU lowering reduces its operator to one or more stride-1 convolutions
over planar images, described by :class:`ConvJob`; :func:`build_nn_job` does
what all of them share: pad the kernels to the cores' slot count, fold the
input zero point into the bias words, tile, encode the coefficients once (the
SRAM cache fields need their size; the chosen zero-run width is kept in the
job so that the emitter's encoding is the same) and fill the descriptor.

Padding slots (v7): when the output channels do not split evenly over the NN
cores, every core still runs the same number of kernels and writes a plane for
each (docs/simulator.md).  npuc repeats the job's last kernel in those slots,
trailer included, so the extra writes store the very values the real kernel
stores into a plane that exists (Mesa fills them from whatever memory follows
its weights, which writes arbitrary planes).  v8 streams carry exactly the
output channels (each core its share) and no plane offsets: kernel ``o``
writes plane ``o`` of the output, so a job's planes must be consecutive; the
lowering's trailers then only say where the first plane is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..coefs import KernelGeometry, codec_for, plane_offsets_in_stream
from ..hw.descriptors import NN_DESCRIPTOR, NN_POOLING_FIRST_PIXEL, NN_POOLING_NONE
from ..hw.fields import LayoutError
from ..backend_vip.jobs import NNJob, Ref
from ..hw.perf import Cost, estimate_nn_job
from ..hw.target import Target
from ..errors import LimitError
from .requant import PostScale, bias_words
from .tiling import plan_tiling, sram_fields

#: First-pixel pooling keeps one pixel of every 2x2 block: the job's convolution output is twice as large.
POOLED_STEP = 2
#: pooling_xy_size Mesa writes without pooling (1) and with first-pixel pooling (0).
_POOLING_XY_SIZE = {NN_POOLING_NONE: 1, NN_POOLING_FIRST_PIXEL: 0}


@dataclass
class ConvJob:
    """One stride-1 convolution over planar 8-bit images, in hardware terms.

    ``weights`` are stored bytes [kernels][z][y][x]; ``bias`` TFLite's int32
    biases per kernel (the input zero point is folded in here) unless
    ``words`` gives the final bias words.  ``trailers`` are the byte offsets of
    each kernel's output plane from ``output``.  Images are whole planes (rows
    of in_x / out_x bytes, in_y / out_y rows); output sizes are the kept pixels
    (after first-pixel pooling).  ``depthwise`` (targets with native depthwise):
    kernel o ([kernels][1][y][x]) reads input plane o only.
    """

    name: str
    op: int
    input: Ref
    output: Ref
    in_x: int
    in_y: int
    weights: np.ndarray
    bias: np.ndarray
    trailers: np.ndarray
    coef_zero_point: int
    input_zero_point: int
    output_zero_point: int
    scale: PostScale
    out_x: int
    out_y: int
    offset_x: int = 0
    offset_y: int = 0
    first_pixel: bool = False
    strided: bool = False
    relu: bool = False
    words: np.ndarray | None = None
    depthwise: bool = False
    note: str = ""


@dataclass
class BuiltJob:
    """An NN job with its estimated cost (lowerings compare alternatives by it)."""

    job: NNJob
    cost: Cost


def _pad_slots(a: np.ndarray, slots: int) -> np.ndarray:
    if a.shape[0] == slots:
        return a
    extra = np.repeat(a[-1:], slots - a.shape[0], axis=0)
    return np.concatenate((a, extra), axis=0)


def single_channel_pointwise_as_2x2(weights: np.ndarray, coef_zero_point: int) -> np.ndarray:
    """A 1x1 kernel over one input channel becomes a 2x2 kernel whose other taps are real zeros.

    Mesa rewrites every such kernel (vipnano-nn.md 4.0); the validated jobs
    never have a single-channel 1x1 kernel, so npuc does the same.  The extra
    taps read the pixel to the right and below (the border past the image), to
    no effect.
    """
    oc, kz, ky, kx = weights.shape
    if (kz, ky, kx) != (1, 1, 1):
        return weights
    out = np.full((oc, 1, 2, 2), coef_zero_point, dtype=np.uint8)
    out[:, :, 0, 0] = weights[:, :, 0, 0]
    return out


def build_nn_job(spec: ConvJob, target: Target) -> BuiltJob:
    """The NN job for ``spec``; LimitError (naming the job) when a value does not fit its descriptor field."""
    step = POOLED_STEP if spec.first_pixel else 1
    conv_x, conv_y = spec.out_x * step, spec.out_y * step
    words = spec.words if spec.words is not None else bias_words(spec.bias, spec.weights, spec.coef_zero_point,
                                                                 spec.input_zero_point, target)
    weights = single_channel_pointwise_as_2x2(np.ascontiguousarray(spec.weights, dtype=np.uint8),
                                              spec.coef_zero_point)
    oc, kz, ky, kx = weights.shape
    output = spec.output
    trailers = np.asarray(spec.trailers, dtype=np.int64)
    if plane_offsets_in_stream(target):
        cores = min(oc, target.nn_cores)
        slots = cores * -(-oc // cores)
        weights = _pad_slots(weights, slots)
        words = _pad_slots(np.asarray(words, dtype=np.uint32), slots)
        trailers = _pad_slots(trailers.astype(np.uint32), slots)
    else:
        output = Ref(output.tensor, output.offset + int(trailers[0]))
        trailers = trailers - trailers[0]
        if not np.array_equal(trailers, np.arange(oc) * spec.out_x * spec.out_y):
            raise ValueError(f"{spec.name}: target {target.name} writes kernel o to output plane o, but the "
                             f"lowering placed the planes elsewhere")
    in_planes = oc if spec.depthwise else kz

    tiling = plan_tiling(conv_x, conv_y, kx, ky, oc, spec.strided, target)
    pooling = NN_POOLING_FIRST_PIXEL if spec.first_pixel else NN_POOLING_NONE
    x_offset, y_offset = target.offset_composites
    desc: dict[str, int] = {
        **dict(target.descriptor_flags),
        "kernel_xy_size": kx, "kernel_y_size": ky, "kernel_z_size": in_planes,
        "kernels_per_core": tiling.kernels_per_core,
        "pooling": pooling, "pooling_xy_size": _POOLING_XY_SIZE[pooling],
        "in_image_x_size": spec.in_x, "in_image_y_size": spec.in_y,
        "in_image_x_stride": spec.in_x, "in_image_y_stride": spec.in_y,
        x_offset: spec.offset_x, y_offset: spec.offset_y,
        "relu": int(spec.relu),
        **spec.scale.fields(),
        "out_image_x_size": conv_x, "out_image_y_size": conv_y, "out_image_z_size": oc,
        "out_image_tile_x_size": tiling.tile_x, "out_image_tile_y_size": tiling.tile_y,
        "out_image_x_stride": spec.out_x, "out_image_y_stride": spec.out_y,
        "in_image_border_const": spec.input_zero_point,
        "coef_zero_point": spec.coef_zero_point, "out_zero_point": spec.output_zero_point,
    }
    if spec.depthwise:
        if not target.native_depthwise:
            raise ValueError(f"{spec.name}: target {target.name} has no depthwise mode")
        desc["depthwise"] = 1
    try:
        NN_DESCRIPTOR.pack(desc)
    except LayoutError as e:
        raise LimitError(f"{spec.name}: {e}") from None

    coefficients = codec_for(target).encode(weights, words, trailers,
                                            KernelGeometry.from_descriptor({**desc, "depthwise": int(spec.depthwise)}))
    desc.update(sram_fields(tiling, kx, ky, in_planes, oc, coefficients.cache_bytes, target))
    job = NNJob(name=spec.name, op=spec.op, desc=desc, weights=weights, biases=words, trailers=trailers,
                input=spec.input, output=output, coefficients=coefficients, note=spec.note)
    return BuiltJob(job, estimate_nn_job(desc, coefficients.total_bytes, target))
