"""Encoder of NN jobs: a scheduled convolution to its descriptor fields (a pure function).

Every field but the three addresses (coefficients, input, output), which the
emitter relocates: the kernel and image geometry, the requantization, zero
points, the tiling and SRAM caches the scheduler chose, and the target's
constant flags.  A value that does not fit its field is a LimitError naming
the job (the operator then runs on the host).
"""

from __future__ import annotations

from ..errors import LimitError
from ..hw.descriptors import NN_DESCRIPTOR, NN_POOLING_FIRST_PIXEL, NN_POOLING_NONE, NN_POOLING_XY_SIZE
from ..hw.fields import LayoutError
from ..hw.target import Target
from ..scheduler.nn_schedule import ScheduledConv
from ..scheduler.tiling import SramPlan
from .jobs import NNJob


def sram_fields(sram: SramPlan) -> dict[str, int]:
    """The descriptor's SRAM cache fields."""
    msb, low, high = sram.kernel_pattern
    return {"kernel_cache_start_address": sram.kernel_start, "kernel_caching_mode": sram.kernel_mode,
            "kernel_pattern_msb": msb, "kernel_pattern_low": low, "kernel_pattern_high": high,
            "kernel_cache_end_address": sram.kernel_end, "image_caching_mode": sram.image_mode,
            "image_cache_start_address": sram.image_start, "image_cache_end_address": sram.image_end}


def nn_descriptor(job: ScheduledConv, target: Target) -> dict[str, int]:
    """Every descriptor field of ``job`` except the addresses."""
    spec, tiling = job.op, job.tiling
    ky, kx = job.weights.shape[2:]
    pooling = NN_POOLING_FIRST_PIXEL if spec.first_pixel else NN_POOLING_NONE
    x_offset, y_offset = target.offset_composites
    desc: dict[str, int] = {
        **dict(target.descriptor_flags),
        "kernel_xy_size": kx, "kernel_y_size": ky, "kernel_z_size": job.in_planes,
        "kernels_per_core": tiling.kernels_per_core,
        "pooling": pooling, "pooling_xy_size": NN_POOLING_XY_SIZE[pooling],
        "in_image_x_size": spec.in_x, "in_image_y_size": spec.in_y,
        "in_image_x_stride": spec.in_x, "in_image_y_stride": spec.in_y,
        x_offset: spec.offset_x, y_offset: spec.offset_y,
        "relu": int(spec.relu),
        **spec.scale.fields(),
        "out_image_x_size": job.conv_x, "out_image_y_size": job.conv_y, "out_image_z_size": job.out_channels,
        "out_image_tile_x_size": tiling.tile_x, "out_image_tile_y_size": tiling.tile_y,
        "out_image_x_stride": spec.out_x, "out_image_y_stride": spec.out_y,
        "in_image_border_const": spec.input_zero_point,
        "coef_zero_point": spec.coef_zero_point, "out_zero_point": spec.output_zero_point,
    }
    if spec.depthwise:
        desc["depthwise"] = 1
    desc.update(sram_fields(job.sram))
    return desc


def encode_nn(job: ScheduledConv, target: Target) -> NNJob:
    """The encoded NN job: descriptor fields and bytes (addresses 0), the slots' kernels and words, the
    coefficient plan; LimitError naming the job when a value does not fit its field."""
    desc = nn_descriptor(job, target)
    try:
        packed = NN_DESCRIPTOR.pack(desc)
    except LayoutError as e:
        raise LimitError(f"{job.op.name}: {e}") from None
    return NNJob(name=job.op.name, op=job.op.op, desc=desc, packed=packed, weights=job.weights, biases=job.words,
                 trailers=job.trailers, input=job.op.input, output=job.output, coefficients=job.coefficients,
                 note=job.op.note)
