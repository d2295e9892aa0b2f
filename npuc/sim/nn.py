"""NN (convolution) jobs of the simulated v7 NPU.

An NN job is one 136-byte descriptor (``descriptors.NN_DESCRIPTOR``) plus the
coefficient buffer it points at.  The simulator reads both from memory and
computes what the v7 NN core computes, knowing nothing of the model the job
came from (docs/simulator.md, "NN jobs"):

* The input is ``kernel_z_size`` channel planes of ``in_image_x_stride`` x
  ``in_image_y_stride`` bytes at ``in_image_address``, of which
  ``in_image_x_size`` x ``in_image_y_size`` are the image; a read outside the
  image returns ``in_image_border_const`` (the input zero point).
* Output pixel (x, y) of output slot ``o`` accumulates, at stride 1,
  ``sum (w - coef_zero_point) * in(x + dx + kx, y + dy + ky)`` over the input
  channels and the kernel_xy_size (x) by kernel_y_size (y) taps, with the
  signed offsets (dx, dy), plus the kernel's 32-bit bias word.
* Requantization: ``acc * (2**15 + post_multiplier) / 2**post_shift`` rounded
  twice as TFLite's reference arithmetic does (first to ``acc * q`` with
  q = (2**15 + post_multiplier) / 2**16, ties up, then by the remaining shift,
  ties away from zero), plus ``out_zero_point``; ``relu`` clamps at the zero
  point and the result saturates to 0..255.
* First-pixel pooling (pooling 3) keeps the top-left pixel of every 2x2 block of
  the ``out_image_{x,y}_size`` convolution output.
* Slot ``o`` is written as a plane of rows ``out_image_x_stride`` bytes apart at
  ``out_image_address`` plus the kernel's trailer word.

Fields selecting anything else (max/average pooling, other data types or
rounding modes, PReLU, bricks, circular buffers, per-channel multipliers) are
refused with a :class:`SimError` instead of being guessed.  SRAM caching
fields only change where the hardware keeps data and are not interpreted.

Speed: decoded and prepared kernels are cached by the coefficient bytes.  Dense
kernels run as one exact float64 matrix product (im2col; every partial sum of
8-bit products stays far below 2**53); kernels whose output slots each read only
a few input channels (Mesa expands every v7 depthwise convolution into a dense
one whose weights are the zero point off the diagonal) run as a few int32
multiply-adds over just those channels, found in the decoded weights.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..coefs import DecodedKernels, KernelGeometry, codec_for
from ..hw.descriptors import NN_DESCRIPTOR, NN_POOLING_FIRST_PIXEL, NN_POOLING_NONE
from ..hw.target import Target
from ..errors import CoefficientError, SimError
from .memory import Memory

#: Fields whose only modelled value is this one (Mesa's v7 values): any other
#: value selects a feature whose semantics no validated job shows.
_MODELLED_VALUES = {
    "layer_type": 0, "prelu": 0, "brick_mode": 0,
    "kernel_data_type": 0, "in_image_data_type": 0, "out_image_data_type": 0,
    "kernel_data_type_bit_2": 0, "in_image_data_type_bit_2": 0, "out_image_data_type_bit_2": 0,
    "in_image_border_mode": 0, "per_channel_post_mul": 0,
    "kernel_direct_stream_from_VIP_sram": 0,
    "in_image_circular_buf_size": 0, "out_image_circular_buf_size": 0,
    "rounding_mode": 1,
}

#: The pooling_xy_size Mesa writes with first-pixel pooling (a 2x2 window); others are not modelled.
_POOLING_FIRST_PIXEL_XY_SIZE = 0
#: First-pixel pooling keeps one pixel of every FIRST_PIXEL_STEP x FIRST_PIXEL_STEP block.
FIRST_PIXEL_STEP = 2

#: Largest value of an 8-bit activation (the saturation bound of the output).
_U8_MAX = 255

#: Most accumulators (slots x output pixels) and input window bytes one simulated NN job
#: may use: far above MobileNet's largest job (0.8 M and 0.4 M); a descriptor asking for
#: more is refused instead of exhausting the host's memory.
MAX_NN_OUTPUTS = 1 << 26
MAX_NN_WINDOW = 1 << 27

#: Prepared kernels kept (each holds a reference to its cached decode).
PREPARED_CACHE_ENTRIES = 256
#: Output slots that read at most this many input channels (or this many taps in all) run on
#: the gathered-channel path instead of the dense matrix product.
_GATHER_MAX_TAPS = 9
_GATHER_CHANNEL_FRACTION = 16


@dataclass(frozen=True)
class PreparedKernels:
    """Decoded kernels in the form the arithmetic needs (cached with the decode)."""

    decoded: DecodedKernels
    bias: np.ndarray                 # int64 [slots]
    dense: np.ndarray | None         # float64 [slots][Z*KY*KX] of (w - coef_zero_point)
    channels: np.ndarray | None      # int64 [slots][m]: the input channels each slot reads
    channel_weights: np.ndarray | None  # int32 [slots][m][KY][KX]


@dataclass(frozen=True)
class NNJob:
    """One NN job as read from memory: validated geometry, input view, kernels."""

    name: str
    desc: dict[str, int]
    image: np.ndarray         # uint8 [Z][in_y][in_x], a view of the input planes
    kernels: PreparedKernels
    x_offset: int
    y_offset: int
    step: int                 # 1, or FIRST_PIXEL_STEP with first-pixel pooling
    out_x: int                # pixels written per row / rows per plane (after pooling)
    out_y: int

    @property
    def kernel_x(self) -> int:
        return self.desc["kernel_xy_size"]

    @property
    def kernel_y(self) -> int:
        return self.desc["kernel_y_size"]


def run_nn_job(mem: Memory, desc_address: int, target: Target, job: str) -> None:
    """Execute the NN job whose descriptor is at ``desc_address``; raises SimError naming ``job``."""
    nn = load_nn_job(mem, desc_address, target, job)
    store_output(mem, nn, requantize(accumulate(nn), nn.desc, target))


# -- reading and validating the job --------------------------------------------------------------


def load_nn_job(mem: Memory, desc_address: int, target: Target, job: str) -> NNJob:
    """Read the descriptor, check it, and gather the input view and the (cached) kernels."""
    desc = NN_DESCRIPTOR.unpack(mem.read(desc_address, NN_DESCRIPTOR.size, job, "NN descriptor"))
    _check_fields(desc, target, job)
    step = FIRST_PIXEL_STEP if desc["pooling"] == NN_POOLING_FIRST_PIXEL else 1
    _check_tiles(desc, target, step, job)
    out_x, out_y = desc["out_image_x_size"] // step, desc["out_image_y_size"] // step
    if out_x > desc["out_image_x_stride"] or out_y > desc["out_image_y_stride"]:
        raise SimError(f"{job}: output of {out_x}x{out_y} pixels does not fit planes of "
                       f"{desc['out_image_x_stride']}x{desc['out_image_y_stride']}")
    x_name, y_name = target.offset_composites
    image = _input_planes(mem, desc, job)
    kernels = _kernels(mem, desc, target, job)
    slots, z = kernels.decoded.weights.shape[:2]
    rows = (out_y - 1) * step + desc["kernel_y_size"]
    cols = (out_x - 1) * step + desc["kernel_xy_size"]
    if slots * out_x * out_y > MAX_NN_OUTPUTS or z * rows * cols > MAX_NN_WINDOW:
        raise SimError(f"{job}: {slots} planes of {out_x}x{out_y} from {z} input planes exceed the simulator's "
                       f"limits ({MAX_NN_OUTPUTS} outputs, {MAX_NN_WINDOW} input window bytes)")
    nn = NNJob(name=job, desc=desc, image=image, kernels=kernels, x_offset=desc[x_name], y_offset=desc[y_name],
               step=step, out_x=out_x, out_y=out_y)
    _output_view(mem, nn)  # refuse planes outside memory before computing anything
    return nn


def _check_fields(desc: dict[str, int], target: Target, job: str) -> None:
    flags = dict(target.descriptor_flags)
    expected = dict(_MODELLED_VALUES, no_z_offset=flags.get("no_z_offset", 0))
    if not target.native_depthwise:
        expected["depthwise"] = 0
    for name, value in expected.items():
        if desc[name] != value:
            raise SimError(f"{job}: NN descriptor {name}={desc[name]} is not modelled (only {value})")
    if desc["pooling"] not in (NN_POOLING_NONE, NN_POOLING_FIRST_PIXEL):
        raise SimError(f"{job}: NN pooling mode {desc['pooling']} is not modelled")
    if desc["pooling"] == NN_POOLING_FIRST_PIXEL and desc["pooling_xy_size"] != _POOLING_FIRST_PIXEL_XY_SIZE:
        raise SimError(f"{job}: first-pixel pooling with pooling_xy_size {desc['pooling_xy_size']} is not modelled")
    for name in ("in_image_x_size", "in_image_y_size", "out_image_x_size", "out_image_y_size"):
        if desc[name] == 0:
            raise SimError(f"{job}: NN descriptor {name} is 0")
    for size, stride in (("in_image_x_size", "in_image_x_stride"), ("in_image_y_size", "in_image_y_stride")):
        if desc[size] > desc[stride]:
            raise SimError(f"{job}: {size} {desc[size]} exceeds {stride} {desc[stride]}")
    if desc["post_multiplier_value"] >> target.post_multiplier_bits:
        raise SimError(f"{job}: post multiplier 0x{desc['post_multiplier_value']:x} has more than "
                       f"{target.post_multiplier_bits} bits")
    if desc["in_image_border_const"] > _U8_MAX:
        raise SimError(f"{job}: border constant {desc['in_image_border_const']} is not an 8-bit value")


def _check_tiles(desc: dict[str, int], target: Target, step: int, job: str) -> None:
    """Tiles must lie inside the output, respect the tile width limit and the accumulation buffer."""
    tx, ty = desc["out_image_tile_x_size"], desc["out_image_tile_y_size"]
    ox, oy = desc["out_image_x_size"], desc["out_image_y_size"]
    if not 1 <= tx <= target.max_tile_x or not 1 <= ty <= oy:
        raise SimError(f"{job}: tile {tx}x{ty} does not fit an output of {ox}x{oy} "
                       f"(tile width limit {target.max_tile_x})")
    if step > 1 and (tx % step or ty % step or ox % step or oy % step):
        raise SimError(f"{job}: first-pixel pooling needs even output and tile sizes, got output {ox}x{oy}, "
                       f"tile {tx}x{ty}")
    accumulators = desc["kernels_per_core"] * tx * ty
    capacity = target.accum_buffer_depth * target.max_tile_x
    if accumulators > capacity:
        raise SimError(f"{job}: {desc['kernels_per_core']} kernels x {tx}x{ty} tile need {accumulators} "
                       f"accumulators per core, the core has {capacity}")


def _input_planes(mem: Memory, desc: dict[str, int], job: str) -> np.ndarray:
    z = KernelGeometry.from_descriptor(desc).kernel_z
    xs, ys = desc["in_image_x_stride"], desc["in_image_y_stride"]
    x, y = desc["in_image_x_size"], desc["in_image_y_size"]
    span = (z - 1) * xs * ys + (y - 1) * xs + x
    raw = mem.view(desc["in_image_address"], span, job, f"input of {z} planes {x}x{y}")
    return np.lib.stride_tricks.as_strided(raw, shape=(z, y, x), strides=(xs * ys, xs, 1), writeable=False)


_PREPARED: OrderedDict[int, PreparedKernels] = OrderedDict()


def _kernels(mem: Memory, desc: dict[str, int], target: Target, job: str) -> PreparedKernels:
    address = desc["kernel_address"] * target.coef_align
    codec = codec_for(target)
    try:
        header = mem.view(address, codec.header_bytes, job, "coefficient header")
        size = codec.size(header, desc, job)
        decoded = codec.decode(mem.view(address, size, job, "coefficients"), desc, job)
    except CoefficientError as e:  # the device refuses the job
        raise SimError(str(e)) from None
    hit = _PREPARED.get(id(decoded))
    if hit is not None and hit.decoded is decoded:
        _PREPARED.move_to_end(id(decoded))
        return hit
    prepared = _prepare(decoded, desc["coef_zero_point"], bool(desc["depthwise"]), target.mac_input_offset)
    _PREPARED[id(decoded)] = prepared
    if len(_PREPARED) > PREPARED_CACHE_ENTRIES:
        _PREPARED.popitem(last=False)
    return prepared


def _prepare(decoded: DecodedKernels, zero_point: int, depthwise: bool, input_offset: int) -> PreparedKernels:
    """``input_offset``: what the MAC array subtracts from every input byte (folded into the bias here)."""
    w = decoded.weights.astype(np.int16) - np.int16(zero_point)  # [slots][Z][KY][KX]
    slots, z = w.shape[:2]
    bias = decoded.biases.view(np.int32).astype(np.int64)
    bias = bias - input_offset * w.reshape(slots, -1).sum(axis=1, dtype=np.int64)
    if depthwise:  # native depthwise (v8): kernel o reads input plane o only
        return PreparedKernels(decoded, bias, None, np.arange(slots)[:, None], w.astype(np.int32))
    used = (w != 0).any(axis=(2, 3))                          # [slots][Z]
    m = max(int(used.sum(axis=1).max()), 1)
    if m * w.shape[2] * w.shape[3] <= _GATHER_MAX_TAPS or m * _GATHER_CHANNEL_FRACTION <= z:
        channels = np.argsort(~used, axis=1, kind="stable")[:, :m]
        picked = np.take_along_axis(w, channels[:, :, None, None], axis=1).astype(np.int32)
        return PreparedKernels(decoded, bias, None, channels, picked)
    return PreparedKernels(decoded, bias, w.reshape(slots, -1).astype(np.float64), None, None)


def plane_offsets(nn: NNJob) -> np.ndarray:
    """Byte offset of every slot's output plane from out_image_address.

    v7 streams carry it as each kernel's trailer word; without them
    (``no_z_offset``, v8) slot o writes the o-th plane of
    ``out_image_x_stride`` x ``out_image_y_stride`` bytes.
    """
    trailers = nn.kernels.decoded.trailers
    if trailers is not None:
        return trailers.astype(np.int64)
    plane = nn.desc["out_image_x_stride"] * nn.desc["out_image_y_stride"]
    return np.arange(nn.kernels.decoded.weights.shape[0], dtype=np.int64) * plane


def _output_view(mem: Memory, nn: NNJob) -> np.ndarray:
    trailers = plane_offsets(nn)
    xs = nn.desc["out_image_x_stride"]
    lo = int(trailers.min())
    extent = int(trailers.max()) - lo + (nn.out_y - 1) * xs + nn.out_x
    return mem.view(nn.desc["out_image_address"] + lo, extent, nn.name, "output planes")


# -- arithmetic -----------------------------------------------------------------------------------


def _window(nn: NNJob) -> np.ndarray:
    """The input pixels the kept outputs read, border-filled: [Z][rows][cols]."""
    z, in_y, in_x = nn.image.shape
    rows = (nn.out_y - 1) * nn.step + nn.kernel_y
    cols = (nn.out_x - 1) * nn.step + nn.kernel_x
    y0, x0 = nn.y_offset, nn.x_offset
    if y0 >= 0 and x0 >= 0 and y0 + rows <= in_y and x0 + cols <= in_x:
        return nn.image[:, y0:y0 + rows, x0:x0 + cols]
    win = np.full((z, rows, cols), nn.desc["in_image_border_const"], dtype=np.uint8)
    ys, ye = max(y0, 0), min(y0 + rows, in_y)
    xs, xe = max(x0, 0), min(x0 + cols, in_x)
    if ys < ye and xs < xe:
        win[:, ys - y0:ye - y0, xs - x0:xe - x0] = nn.image[:, ys:ye, xs:xe]
    return win


def accumulate(nn: NNJob) -> np.ndarray:
    """The exact accumulators (int64 [slots][out_y][out_x]) including the bias words."""
    k = nn.kernels
    win = _window(nn)
    s, ky, kx, oy, ox = nn.step, nn.kernel_y, nn.kernel_x, nn.out_y, nn.out_x
    if k.dense is not None:
        if kx == ky == 1 and s == 1:
            cols = win.reshape(win.shape[0], -1).astype(np.float64)
        else:
            win = np.ascontiguousarray(win)
            sz, sy, sx = win.strides
            taps = np.lib.stride_tricks.as_strided(win, shape=(win.shape[0], ky, kx, oy, ox),
                                                   strides=(sz, sy, sx, s * sy, s * sx), writeable=False)
            cols = taps.astype(np.float64).reshape(-1, oy * ox)
        acc = (k.dense @ cols).astype(np.int64).reshape(-1, oy, ox)
    else:
        picked = win[k.channels]                          # [slots][m][rows][cols]
        taps = k.channel_weights[0].size
        exact32 = taps * _U8_MAX * _U8_MAX < np.iinfo(np.int32).max
        partial = np.zeros((k.channels.shape[0], oy, ox), dtype=np.int32 if exact32 else np.int64)
        for j in range(k.channels.shape[1]):
            for dy in range(ky):
                for dx in range(kx):
                    tap = picked[:, j, dy:dy + (oy - 1) * s + 1:s, dx:dx + (ox - 1) * s + 1:s]
                    partial += k.channel_weights[:, j, dy, dx, None, None] * tap
        acc = partial.astype(np.int64)
    acc += k.bias[:, None, None]
    return acc


def round_half_up(value: np.ndarray, shift: int) -> np.ndarray:
    """``value / 2**shift`` rounded to nearest, ties towards +infinity."""
    if shift <= 0:
        return value
    if shift >= 63:
        return np.zeros_like(value)
    return (value + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)


def round_half_away(value: np.ndarray, shift: int) -> np.ndarray:
    """``value / 2**shift`` rounded to nearest, ties away from zero."""
    if shift <= 0:
        return value
    if shift >= 63:
        return np.zeros_like(value)
    magnitude = (np.abs(value) + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)
    return np.where(value < 0, -magnitude, magnitude)


#: IEEE-754 single precision exponent bias: the post shift counts from a float exponent (vipnano-nn.md 3.3).
_F32_EXPONENT_BIAS = 127


def total_shift(post_shift: int, target: Target) -> int:
    """Bits ``acc * (2**bits + post_multiplier)`` is shifted right by in all.

    The scale is ``(1 + m / 2**bits) * 2**(base - 127 - post_shift)`` (base =
    ``target.post_shift_base``): on v7 (bits 15, base 142) that is the post
    shift itself, on v8 (bits 23, base 127) the post shift plus 23.
    """
    return post_shift + target.post_multiplier_bits + _F32_EXPONENT_BIAS - target.post_shift_base


def requantize(acc: np.ndarray, desc: dict[str, int], target: Target) -> np.ndarray:
    """Scale the accumulators to 8 bits: rounding_mode 1 rounds twice, as TFLite's gemmlowp arithmetic does.

    The multiplier ``2**bits + post_multiplier`` (bits = 15 on v7) is applied as a
    fraction q in [0.5, 1) with a round-half-up to an integer (gemmlowp's
    rounding doubling high multiply), and the remaining ``post_shift - bits - 1``
    bits are shifted out rounding half away from zero (its rounding divide by a
    power of two).  docs/simulator.md compares this with single roundings on
    the golden jobs.
    """
    bits = target.post_multiplier_bits
    multiplier = np.int64((1 << bits) + desc["post_multiplier_value"])
    shift = total_shift(desc["post_shift_value"], target)
    first = min(shift, bits + 1)
    scaled = round_half_away(round_half_up(acc * multiplier, first), shift - first)
    low = desc["out_zero_point"] if desc["relu"] else 0
    return np.clip(scaled + desc["out_zero_point"], low, _U8_MAX).astype(np.uint8)


def store_output(mem: Memory, nn: NNJob, out: np.ndarray) -> None:
    """Write every slot's plane at out_image_address + its trailer word."""
    trailers = plane_offsets(nn)
    xs = nn.desc["out_image_x_stride"]
    view = _output_view(mem, nn)
    lo = int(trailers.min())
    plane = nn.out_x * nn.out_y
    if xs == nn.out_x and np.array_equal(trailers - lo, np.arange(trailers.size) * plane):
        view[:trailers.size * plane] = out.reshape(-1)
        return
    offsets = ((trailers - lo)[:, None, None] + np.arange(nn.out_y)[None, :, None] * xs
               + np.arange(nn.out_x)[None, None, :])
    view[offsets] = out
