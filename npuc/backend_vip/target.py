"""Every hardware number of the NPUs npuc targets, in one place.

Each value says where it comes from: "hwdb" is VeriSilicon's feature database as
Mesa copies it (../shared/docs/vipnano-nn.md section 8.1), "golden" is what
Mesa's submits in ../shared/golden show, "dt" is the mainline device tree.
Passes, backend, simulator and runtime read these objects; no other module
holds a hardware number.  Differences between NN core generations are
properties here (``nn_version``, ``coef_format``, ``offset_bits`` ...), never an
``if`` on a chip name elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class NpuIdentity:
    """What the etnaviv kernel reports for the core (GET_PARAM), used to match blobs to devices."""

    model: int
    revision: int
    product_id: int
    customer_id: int
    eco_id: int


@dataclass(frozen=True)
class Target:
    """One NPU configuration."""

    name: str
    description: str
    identity: NpuIdentity
    nn_version: int                  # NN core generation: 7 (ZRL coefficients) or 8 (Huffman)
    nn_cores: int                    # hwdb NNCoreCount
    mads_per_core: int               # hwdb NNMadPerCore
    tp_cores: int                    # hwdb TPEngine_CoreCount
    sram_bytes: int                  # hwdb VIP_SRAM_SIZE (on-chip SRAM for kernel/image caching)
    axi_sram_bytes: int              # hwdb AXI_SRAM_SIZE
    input_buffer_depth: int          # hwdb NNInputBufferDepth
    accum_buffer_depth: int          # hwdb NNAccumBufferDepth
    zrl_bits_max: int                # hwdb NN_ZRL_BITS
    kernel_size_max: int             # hwdb NN_KERNEL_X/Y_SIZE
    offset_bits: int                 # hwdb NN_INIMAGE_OFFSET_BITS
    native_depthwise: bool           # hwdb NN_DEPTHWISE_SUPPORT
    clock_hz: int                    # dt: NPU core clock
    post_multiplier_bits: int        # 15 on v7, 23 on v8 (vipnano-nn.md 3.3)
    post_shift_base: int             # shift = base - biased float exponent: 142 (v7), 127 (v8)
    sram_caching: bool               # Mesa uses SRAM caching on v7 only
    max_tile_x: int = 64             # hwdb MAX_TILE_X_SIZE
    sram_reserved_bytes: int = 0x800 # first 2 KiB of SRAM are never used for caching (golden + galcore log)
    coef_align: int = 64             # coefficient buffers are addressed >> 6 (descriptor word 5)
    descriptor_flags: tuple[tuple[str, int], ...] = ()  # per-generation constant NN descriptor fields
    # What the MAC array subtracts from every 8-bit input value before multiplying: the raw
    # byte on v7 (0), byte - 128 on v8 (vipnano-nn.md 3.2); the bias word corrects the rest.
    mac_input_offset: int = 0
    # SRAM caching (vipnano-nn.md 5.4, golden descriptors): cache regions end on
    # sram_cache_align boundaries, an image tile's rows*columns are rounded up to
    # image_cache_tile_align bytes per channel, and the kernel cache ends at least at
    # kernel_cache_min_end.
    sram_cache_align: int = 128
    image_cache_tile_align: int = 16
    kernel_cache_min_end: int = 0xA00
    # Performance model (npuc/backend_vip/perf.py).  ESTIMATES, not measurements: to be
    # calibrated against Mesa's measured latencies (docs/teflon.rst: MobileNet v1 6.6 ms).
    perf_nn_macs_per_core_cycle: int = 192      # 64 MADs x 6-wide dot products (XYDP6) at ~50 %
    perf_dram_bytes_per_cycle: float = 8.0      # ~6.4 GB/s at 800 MHz (DDR4 board, shared)
    perf_nn_job_cycles: int = 1600              # per NN job: descriptor fetch, pipeline fill, flush (~2 us)
    perf_tp_bytes_per_core_cycle: float = 2.0   # TP element moves per core and cycle
    perf_tp_job_cycles: int = 1200              # per TP job

    @property
    def offset_composites(self) -> tuple[str, str]:
        """The NN descriptor composites that hold the signed input x/y offsets."""
        return f"in_image_x_offset_{self.offset_bits}b", f"in_image_y_offset_{self.offset_bits}b"


VIPNANO_QI = Target(
    name="vipnano-qi",
    description="VeriSilicon VIPNano-QI.7120 (Amlogic A311D, Khadas VIM3)",
    identity=NpuIdentity(model=0x8000, revision=0x7120, product_id=0x45080009, customer_id=0x88, eco_id=0),
    nn_version=7, nn_cores=8, mads_per_core=64, tp_cores=4,
    sram_bytes=512 * 1024, axi_sram_bytes=1024 * 1024,
    input_buffer_depth=12, accum_buffer_depth=64, zrl_bits_max=5, kernel_size_max=11, offset_bits=4,
    native_depthwise=False, clock_hz=800_000_000,
    post_multiplier_bits=15, post_shift_base=142, sram_caching=True,
    descriptor_flags=(("no_z_offset", 0), ("no_flush", 0)),
)

TARGETS: dict[str, Target] = {t.name: t for t in (VIPNANO_QI,)}


def get_target(name: str) -> Target:
    """Look a target up by its command-line name."""
    try:
        return TARGETS[name]
    except KeyError:
        raise UsageError(f"unknown target {name!r}; known targets: {', '.join(sorted(TARGETS))}") from None


def target_for_identity(identity: NpuIdentity) -> Target | None:
    """The target whose model, revision and customer id match a device's identity."""
    for t in TARGETS.values():
        i = t.identity
        if (i.model, i.revision, i.customer_id) == (identity.model, identity.revision, identity.customer_id):
            return t
    return None
