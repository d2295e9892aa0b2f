"""TP (tensor processor) jobs of the simulated NPU.

A TP job is one 124-byte descriptor (``descriptors.TP_DESCRIPTOR``) that moves
8-bit elements from an input image to an output image through a small ALU.  The
simulator interprets the descriptor generically: it knows nothing of the roles
Mesa gives TP jobs (transpose, reshuffle, pad, activations); one traversal rule
has to explain all of them.  That rule, written out in docs/simulator.md
("TP jobs"), is:

* The input window (signed start, inclusive end, in x and y) is cut into tiles
  of ``in_tile_{x,y}_size`` elements starting every ``in_tile_{x,y}_inc``
  elements, clipped at the window's end.  Planes run over z from
  ``-in_window_z_start_overfetch`` to ``in_image_z_size - 1 +
  in_window_z_end_overfetch``.  The traversal is: planes, tile rows, tiles,
  rows inside a tile, elements inside a row (innermost).
* An element inside the image (x, y, z) is read at ``in_image_base_address + x +
  y * in_image_stride + z * in_image_slice``; outside it reads the border,
  which in border mode 0 is the input zero point (real zero).
* The output address is ``out_image_base_address + sum(index_n * inc_n)`` over
  the 7 output loops.  The reset bits cut the loops into groups, and each group
  splits one traversal counter into its loops' indices as a mixed-radix number
  (loop with the lowest number fastest; a count of 0, and loop 6, which has no
  count, take everything left).  ``out_loop_1_reset`` makes loops 0-1 count the
  element inside its tile row; ``out_loop_2_reset`` (or ``_3_``) makes the
  loops up to 2 (or 3) count the row inside the tile, or, without loop 1's
  reset, the element inside the tile; the loops above the last reset count
  tiles.  Without any reset bit all loops count the elements of the job.
* The ALU maps each input byte q to ``clamp(round(f(q - in_zp) * m) + out_zp)``
  where f is the identity or, with ``alu_pwl_enable``, the piecewise-linear LUT
  (1024 fp21 entries, linear interpolation), and m the post multiplier
  ``(1 + mult / 2**15) * 2**-shift`` with a signed 7-bit shift; it is exactly 1
  for the all-zero fields of pass-through jobs.

Fields that select features this rule does not cover (SRAM images, tile lists,
circular buffers, other data types or rounding modes, the square/NMS/filter
units ...) are refused with a :class:`SimError` rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..hw import fp21
from ..hw.descriptors import TP_DESCRIPTOR, TP_OUT_LOOPS, TP_PWL_INDEX_SHIFT, TP_PWL_LUT_ENTRIES
from ..hw.target import Target
from ..errors import SimError
from .memory import Memory

#: Most elements one simulated TP job may traverse.  Far above any 8-bit tensor
#: an NPU model holds (MobileNet's largest TP job moves 0.15 M); a descriptor that
#: asks for more is refused instead of exhausting the host's memory.
MAX_TP_ELEMENTS = 1 << 24

#: Fields with the only value the simulator models; any other value selects a
#: feature whose semantics no validated parameter set shows, so it is refused.
_MODELLED_VALUES = {
    "in_tile_sequence": 0,
    "in_tile_global_mem": 0,
    "in_tile_list_address": 0,
    "in_image_global_mem": 1,
    "out_image_global_mem": 1,
    "alu_i2f_enable": 1,
    "alu_f2i_enable": 1,
    "alu_square_enable": 0,
    "alu_square_preshift": 0,
    "alu_horz_processing": 0,
    "alu_horz_proc_count": 0,
    "alu_horz_proc_stride": 0,
    "alu_vert_processing": 0,
    "alu_vert_proc_count": 0,
    "alu_vert_proc_stride": 0,
    "alu_nms_enable": 0,
    "alu_mult_enable": 0,
    "alu_relu_enable": 0,
    "alu_z_filter_mode": 0,
    "alu_filter_pwl_swap": 0,
    "alu_input_preshift": 0,
    "alu_reorder_bits_used": 0,
    "alu_reorder_loop_2_mode": 0,
    "out_tile_skip_at_border": 0,
    "out_brick_mode": 0,
    "in_image_data_type": 0,
    "out_image_data_type": 0,
    "flat_rounding_mode": 1,
    "integer_rounding_mode": 1,
    "in_image_border_mode": 0,
    "in_image_circular_buf_size": 0,
    "out_image_circular_buf_size": 0,
    "last": 1,
}

#: What a PWL job additionally needs: a LUT loaded from memory, signed inputs.
_PWL_VALUES = {"alu_load_pwl_lut": 1, "alu_load_pwl_lut_global_mem": 1, "alu_pwl_sign_support": 1}

#: Output spans up to this many bytes are checked for repeated addresses with a bitmap.
_BITMAP_SPAN = 1 << 24

_BYTE_VALUES = 256  # every input element is one byte: the ALU is a 256-entry table


def read_tp_descriptor(mem: Memory, address: int, job: str) -> dict[str, int]:
    """Unpack the TP descriptor at ``address`` (every field and composite)."""
    return TP_DESCRIPTOR.unpack(mem.read(address, TP_DESCRIPTOR.size, job, "TP descriptor read"))


def run_tp_job(mem: Memory, desc_address: int, target: Target, job: str) -> dict[str, int]:
    """Run the TP job whose descriptor is at ``desc_address``; return its fields.

    ``target`` is taken for symmetry with NN jobs: the TP descriptor and its
    semantics are the same on every VIPNano generation (tp notes section 8).
    """
    d = read_tp_descriptor(mem, desc_address, job)
    _check_modelled(d, job)
    table = _alu_table(mem, d, job)
    x = _axis("x", d["in_window_x_start"], d["in_window_x_end"], d["in_tile_x_size"], d["in_tile_x_inc"], job)
    y = _axis("y", d["in_window_y_start"], d["in_window_y_end"], d["in_tile_y_size"], d["in_tile_y_inc"], job)
    z_first = -d["in_window_z_start_overfetch"]
    planes = d["in_image_z_size"] + d["in_window_z_start_overfetch"] + d["in_window_z_end_overfetch"]
    if planes * y.covered * x.covered > MAX_TP_ELEMENTS:
        raise SimError(f"{job}: TP job of {planes} x {y.covered} x {x.covered} elements exceeds the simulator's "
                       f"limit of {MAX_TP_ELEMENTS}")
    if planes == 0:
        return d
    g = _Grid(x, y, np.arange(z_first, z_first + planes, dtype=np.int64)[:, None, None])
    values = table[_read_input(mem, d, g, job)]
    addresses = (d["out_image_base_address"] + _output_offsets(d, g)) & 0xFFFFFFFF
    _write_output(mem, g, addresses, values, job)
    return d


def _check_modelled(d: dict[str, int], job: str) -> None:
    required = dict(_MODELLED_VALUES)
    if d["alu_pwl_enable"]:
        required.update(_PWL_VALUES)
    for name, value in required.items():
        if d[name] != value:
            raise SimError(f"{job}: TP descriptor field {name} = {d[name]} is not modelled by the simulator "
                           f"(only {value})")
    if d["out_loop_2_reset"] and d["out_loop_3_reset"]:
        raise SimError(f"{job}: TP descriptor sets both out_loop_2_reset and out_loop_3_reset, "
                       f"which the simulator does not model")


# -- traversal --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Axis:
    """One window axis cut into tiles; arrays have one entry per traversed position, tiles in order.

    ``size`` and ``before`` are plain ints when every tile has the same size, so
    that counters built from them stay separable (cheap to broadcast).
    """

    coord: np.ndarray           # image coordinate read
    tile: np.ndarray            # number of the tile along this axis
    offset: np.ndarray          # position inside the tile
    size: np.ndarray | int      # size of that tile (clipped at the window's end)
    before: np.ndarray          # positions covered by the earlier tiles of this axis
    tiles: int
    covered: int
    largest: int                # size of the largest tile


def _axis(name: str, start: int, end: int, size: int, inc: int, job: str) -> _Axis:
    if end < start:
        raise SimError(f"{job}: TP input window {name} ends at {end}, before its start {start}")
    if size == 0 or inc == 0:
        raise SimError(f"{job}: TP input tile {name} size {size} and increment {inc} must be positive")
    n = (end - start) // inc + 1
    starts = start + np.arange(n, dtype=np.int64) * inc
    sizes = np.minimum(size, end - starts + 1)
    covered = int(sizes.sum())
    if covered > MAX_TP_ELEMENTS:
        raise SimError(f"{job}: TP tiles cover {covered} positions along {name}, more than the simulator's "
                       f"limit of {MAX_TP_ELEMENTS}")
    before = np.cumsum(sizes) - sizes
    tile = np.repeat(np.arange(n, dtype=np.int64), sizes)
    offset = np.arange(covered, dtype=np.int64) - before[tile]
    largest = int(sizes.max())
    uniform = bool((sizes == largest).all())
    return _Axis(starts[tile] + offset, tile, offset, largest if uniform else sizes[tile], before[tile],
                 n, covered, largest)


@dataclass(frozen=True)
class _Grid:
    """Every traversed element, laid out as (plane, y position, x position) with broadcastable parts."""

    x: _Axis
    y: _Axis
    z: np.ndarray  # image z of each plane, shaped (planes, 1, 1)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.z.shape[0], self.y.covered, self.x.covered

    def counter(self, which: str) -> tuple[np.ndarray, int]:
        """A traversal counter (broadcastable to ``shape``) and the number of values it takes."""
        x, y = self.x, self.y
        xo, xt, xb = x.offset[None, None, :], x.tile[None, None, :], x.before[None, None, :]
        yo, yt, yb = y.offset[None, :, None], y.tile[None, :, None], y.before[None, :, None]
        xs = x.size if isinstance(x.size, int) else x.size[None, None, :]
        ys = y.size if isinstance(y.size, int) else y.size[None, :, None]
        zi = np.arange(self.shape[0], dtype=np.int64)[:, None, None]
        planes = self.shape[0]
        # Terms are summed per axis first, so that uniform tiles give separable counters.
        if which == "x":
            return xo, x.largest
        if which == "y":
            return yo, y.largest
        if which == "tile_element":
            return yo * xs + xo, x.largest * y.largest
        if which == "tile":
            return zi * (y.tiles * x.tiles) + (yt * x.tiles + xt), planes * y.tiles * x.tiles
        if which == "row":
            return zi * (x.tiles * y.covered) + (yb * x.tiles + yo) + ys * xt, planes * x.tiles * y.covered
        return (zi * (x.covered * y.covered) + (yb * x.covered + yo * xs) + (ys * xb + xo),
                planes * x.covered * y.covered)


def _read_input(mem: Memory, d: dict[str, int], g: _Grid, job: str) -> np.ndarray:
    """Raw input bytes of every traversed element; outside the image, the border."""
    sizes = (d["in_image_x_size"], d["in_image_y_size"], d["in_image_z_size"])
    coords = (g.x.coord[None, None, :], g.y.coord[None, :, None], g.z)
    inside = [(c >= 0) & (c < n) for c, n in zip(coords, sizes)]
    if not all(m.any() for m in inside):
        return np.full(g.shape, d["in_zp"], dtype=np.uint8)
    # Coordinates outside are clamped to the image (so every read stays among the
    # addresses the window touches) and their bytes replaced by the border afterwards.
    cx, cy, cz = (np.clip(c, 0, n - 1) for c, n in zip(coords, sizes))
    offsets = (cx + cy * d["in_image_stride"]) + cz * d["in_image_slice"]
    raw = mem.gather(d["in_image_base_address"], offsets, job, "TP input read")
    if all(m.all() for m in inside):
        return raw
    return np.where(inside[2] & inside[1] & inside[0], raw, np.uint8(d["in_zp"]))  # border mode 0: real zero


# -- ALU -------------------------------------------------------------------------------


def _alu_table(mem: Memory, d: dict[str, int], job: str) -> np.ndarray:
    """The output byte for each of the 256 input bytes."""
    v = np.arange(_BYTE_VALUES, dtype=np.float64) - d["in_zp"]
    if d["alu_pwl_enable"]:
        v = _pwl(v, _read_lut(mem, d["alu_load_pwl_lut_address"], job))
    v = v * _post_multiplier(d)
    rounded = np.sign(v) * np.floor(np.abs(v) + 0.5)  # rounding mode 1: nearest, ties away from zero
    return np.clip(rounded + d["out_zp"], 0, _BYTE_VALUES - 1).astype(np.uint8)


def _post_multiplier(d: dict[str, int]) -> float:
    """(1 + mult / 2**bits) * 2**-shift; the 7-bit shift is signed (Mesa stores 0x7F - exponent)."""
    bits = TP_DESCRIPTOR["alu_output_post_multiplier"].width
    width = TP_DESCRIPTOR.composite("alu_output_postshift_value").width
    shift = d["alu_output_postshift_value"]
    if shift >> (width - 1):
        shift -= 1 << width
    return (1.0 + d["alu_output_post_multiplier"] / (1 << bits)) * 2.0 ** -shift


def _read_lut(mem: Memory, address: int, job: str) -> np.ndarray:
    raw = mem.read(address, TP_PWL_LUT_ENTRIES * 4, job, "PWL LUT read")
    return fp21.decode(np.frombuffer(raw, dtype="<u4").astype(np.int64))


def _pwl(v: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Look ``v`` up in the LUT, interpolating linearly towards the next entry of the same sign half."""
    bits = fp21.encode(v)
    index = bits >> TP_PWL_INDEX_SHIFT
    frac = (bits & ((1 << TP_PWL_INDEX_SHIFT) - 1)) / float(1 << TP_PWL_INDEX_SHIFT)
    half = TP_PWL_LUT_ENTRIES // 2
    nxt = np.where(index % half == half - 1, index, index + 1)
    return lut[index] + (lut[nxt] - lut[index]) * frac


# -- output ---------------------------------------------------------------------------


def _loop_groups(d: dict[str, int]) -> list[tuple[int, int, str]]:
    """The output loops as (first, last, counter) groups, cut by the reset bits."""
    tile_reset = 2 if d["out_loop_2_reset"] else 3 if d["out_loop_3_reset"] else None
    last = TP_OUT_LOOPS - 1
    if d["out_loop_1_reset"] and tile_reset is not None:
        return [(0, 1, "x"), (2, tile_reset, "y"), (tile_reset + 1, last, "tile")]
    if d["out_loop_1_reset"]:
        return [(0, 1, "x"), (2, last, "row")]
    if tile_reset is not None:
        return [(0, tile_reset, "tile_element"), (tile_reset + 1, last, "tile")]
    return [(0, last, "element")]


def _group_offsets(counts: list[int], incs: list[int], first: int, last: int, values: int) -> np.ndarray:
    """Output offset contributed by loops ``first..last`` for each counter value in ``range(values)``.

    The counter is split into the loops' indices as a mixed-radix number, lowest
    loop fastest, by building the table as a broadcast sum of ``arange(count) *
    inc`` per loop (no division).  A count of 0 (and loop 6) takes every value
    left; if finite counts cannot hold all values, the group's indices wrap.
    """
    table = np.zeros(1, dtype=np.int64)
    period = 1
    for n in range(first, last + 1):
        needed = -(-values // period)  # digits this loop can reach
        if needed <= 1:
            break
        count = needed if counts[n] == 0 else min(counts[n], needed)
        table = ((np.arange(count, dtype=np.int64) * incs[n])[:, None] + table[None, :]).ravel()
        period *= count
    if period < values:
        return table[np.arange(values) % period]
    return table[:values]


def _output_offsets(d: dict[str, int], g: _Grid) -> np.ndarray:
    """Offset from out_image_base_address of every traversed element (broadcastable to the grid)."""
    counts = [d[f"out_loop_{n}_count"] for n in range(TP_OUT_LOOPS - 1)] + [0]
    incs = [d[f"out_loop_{n}_inc"] for n in range(TP_OUT_LOOPS)]
    total: np.ndarray | int = 0
    for first, last, which in _loop_groups(d):
        counter, values = g.counter(which)
        total = total + _group_offsets(counts, incs, first, last, values)[counter]
    return np.broadcast_to(total, g.shape)


def _write_output(mem: Memory, g: _Grid, addresses: np.ndarray, values: np.ndarray, job: str) -> None:
    """Store every element; where several land on one address the last in traversal order wins."""
    addresses, values = addresses.ravel(), values.ravel()
    lo, hi = int(addresses.min()), int(addresses.max())
    span = hi - lo + 1
    if span < addresses.size:
        repeated = True
    elif span <= max(16 * addresses.size, _BITMAP_SPAN):
        seen = np.zeros(span, dtype=bool)
        seen[addresses - lo] = True
        repeated = int(np.count_nonzero(seen)) < addresses.size
    else:
        repeated = np.unique(addresses).size < addresses.size
    if repeated:
        order = np.argsort(np.broadcast_to(g.counter("element")[0], g.shape).ravel(), kind="stable")[::-1]
        addresses, values = addresses[order], values[order]
        _, keep = np.unique(addresses, return_index=True)  # first in reversed order = last written
        addresses, values = addresses[keep], values[keep]
    mem.scatter(0, addresses, values, job, "TP output write")
