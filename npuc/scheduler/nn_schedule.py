"""How one convolution (a ConvOp) runs on the NN cores: kernel slots, bias words, tiling, SRAM, coefficients.

What every NN job shares once lowering has said what it computes: pad the
kernels to the cores' slot count, fold the input zero point into the bias
words, tile (tiling.py), plan the coefficient buffer once (its size sets the
SRAM cache regions, and the chosen zero-run width is kept in the plan so that
the encoder writes the same stream), and estimate the job's cost, by which the
scheduler chooses between equivalent ways to run a layer.

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

from ..coefs import CoefficientPlan, KernelGeometry, codec_for, plane_offsets_in_stream
from ..hw.descriptors import NN_CACHE_NONE
from ..hw.descriptors import NN_POOLING_STEP
from ..hw.perf import Cost, NnWork, estimate_nn_job
from ..hw.target import Target
from ..passes.npu_program import ConvOp, Ref
from ..passes.requant import bias_words
from .tiling import SramPlan, Tiling, plan_sram, plan_tiling


@dataclass
class ScheduledConv:
    """A ConvOp with the scheduler's decisions, ready for the encoder.

    ``weights`` [slots][z][y][x], ``words`` and ``trailers`` are per kernel
    slot (v7 pads the slots to a multiple of the cores used); ``output`` is
    where the job's first plane starts (v8 jobs write plane o for kernel o).
    """

    op: ConvOp
    weights: np.ndarray
    words: np.ndarray
    trailers: np.ndarray
    output: Ref
    out_channels: int             # kernels of the job (slots beyond them repeat the last)
    in_planes: int
    tiling: Tiling
    sram: SramPlan
    coefficients: CoefficientPlan
    cost: Cost

    @property
    def conv_x(self) -> int:
        """Width of the stride-1 convolution (before first-pixel pooling)."""
        return self.op.out_x * (NN_POOLING_STEP if self.op.first_pixel else 1)

    @property
    def conv_y(self) -> int:
        return self.op.out_y * (NN_POOLING_STEP if self.op.first_pixel else 1)


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


def schedule_conv(spec: ConvOp, target: Target) -> ScheduledConv:
    """Decide how ``spec`` runs: slots, tiling, coefficient plan and SRAM caches, with its estimated cost."""
    step = NN_POOLING_STEP if spec.first_pixel else 1
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
    if spec.depthwise and not target.native_depthwise:
        raise ValueError(f"{spec.name}: target {target.name} has no depthwise mode")
    in_planes = oc if spec.depthwise else kz
    tiling = plan_tiling(conv_x, conv_y, kx, ky, oc, spec.strided, target)
    geometry = KernelGeometry(kernel_x=kx, kernel_y=ky, kernel_z=in_planes, out_channels=oc,
                              kernels_per_superblock=tiling.kernels_per_core, in_image_x_size=spec.in_x,
                              zero_point=spec.coef_zero_point, depthwise=spec.depthwise)
    coefficients = codec_for(target).encode(weights, words, trailers, geometry)
    sram = plan_sram(tiling, kx, ky, in_planes, oc, coefficients.cache_bytes, target)
    work = NnWork(out_x=conv_x, out_y=conv_y, out_z=oc, kernel_x=kx, kernel_y=ky, kernel_z=in_planes,
                  in_x=spec.in_x, in_y=spec.in_y, depthwise=spec.depthwise, pooled=spec.first_pixel,
                  kernels_per_core=tiling.kernels_per_core, tile_x=tiling.tile_x, tile_y=tiling.tile_y,
                  image_cached=sram.image_mode != NN_CACHE_NONE, kernel_cache_mode=sram.kernel_mode,
                  kernel_cache_room=sram.kernel_room)
    return ScheduledConv(spec, weights, words, trailers, output, oc, in_planes, tiling, sram, coefficients,
                         estimate_nn_job(work, coefficients.total_bytes, target))
