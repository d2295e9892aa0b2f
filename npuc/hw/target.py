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
from .coef_v7 import PATCH_COLUMNS, PATCH_ROWS, POINTWISE_Z_BLOCK


#: Coefficient buffer formats (``Target.coef_format``): npuc/coefs/v7.py and v8.py (declared in coef_v7/coef_v8).
COEF_ZERO_RUN = "zero-run"
COEF_HUFFMAN = "huffman"
#: Mesa's tiling rules (``Target.tiling_rule``, vipnano-nn.md 5.1 and 5.2).
TILING_V7 = "v7"
TILING_V8 = "v8"
#: Tiling rules' constants (npuc/scheduler/tiling.py).  Mesa caps kernels per core per superblock at 127 (the 7-bit descriptor field) and, on v7 for
#: 1x1 kernels, at a third of the accumulation buffer (vipnano-nn.md 5.1); on v8 at 6/9 of it for
#: every kernel (5.2).
POINTWISE_ACCUM_DIVISOR = 3
V8_ACCUM_SHARE = (6, 9)
#: v8: Mesa's cap on the tile height (its best setting on MobileDet) and the burst a tile's pixels
#: are counted in when sizing superblocks.
V8_TILE_Y_MAX = 4
V8_TILE_BURST = 64
#: ADD/SUB lowerings (``Target.add_lowering``, vipnano-nn.md 6.7): one kernel over the two inputs as two
#: planes (v7), or a 1x1 convolution over the inputs' channels concatenated, a weight pair per channel (v8).
ADD_TWO_PLANES = "two-planes"
ADD_CHANNEL_PAIRS = "channel-pairs"


@dataclass(frozen=True)
class NpuIdentity:
    """What the etnaviv kernel reports for the core (GET_PARAM), used to match blobs to devices."""

    model: int
    revision: int
    product_id: int
    customer_id: int
    eco_id: int


@dataclass(frozen=True)
class HostCpu:
    """What the performance model assumes of the CPU that runs HOST steps (estimates, not measurements).

    Defaults: a Cortex-A73 core of the A311D at 2.2 GHz running TFLite-class optimized kernels; the
    MAC rate is TFLite + XNNPACK's published MobileNet v1 time on that core (anchors.md: 568.7 M MACs
    in 31.2 ms), the rest are rough per-element costs (docs/performance-model.md).
    """

    name: str = "Cortex-A73 at 2.2 GHz"
    clock_hz: int = 2_200_000_000
    call_cycles: int = 2200                  # per host step: dispatch, cache maintenance (~1 us)
    macs_per_cycle: float = 8.0              # convolutions, fully connected
    copy_bytes_per_cycle: float = 4.0        # data movement (reshape, concatenation, quantize by XOR ...)
    elementwise_cycles: float = 2.0          # per output element of arithmetic (add, requantize ...)
    reduce_cycles: float = 1.0               # per input element of pooling and reductions
    transcendental_cycles: float = 10.0      # per element of softmax, logistic, tanh ...


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
    # What else differs between NN core generations (vipnano-nn.md 2-6); the defaults are v7's.
    coef_format: str = COEF_ZERO_RUN           # coefficient buffers: zero-run pairs (v7) or Huffman codes (v8)
    coef_delta_zero_point: bool = True         # v8 streams code w - coef_zero_point (Mesa: raw w on customer 0x99)
    tiling_rule: str = TILING_V7               # Mesa's tile/superblock rule for this generation (scheduler/tiling.py)
    add_lowering: str = ADD_TWO_PLANES         # how ADD/SUB become an NN job (passes/lower_add.py)
    # Input widths at which stride 2 is not done by first-pixel pooling: Mesa's v7 rule for
    # depthwise inputs 3..7 wide (reason unknown, so npuc avoids them for every v7 convolution).
    no_pooling_widths: tuple[int, ...] = tuple(range(3, 8))
    other_customer_ids: tuple[int, ...] = ()   # further hwdb rows with the same numbers
    # Performance model (npuc/hw/perf.py, npuc/latency.py, docs/performance-model.md).
    # ESTIMATES, not measurements.  "fitted": chosen so that Mesa's golden jobs give Mesa's
    # measured latencies (vipnano-nn.md 8.4); every other value is fixed from the docs or assumed.
    perf_dp_rows: int = PATCH_ROWS              # XYDP6 (hwdb): a MAD multiplies a 2x3 patch of a kernel
    perf_dp_columns: int = PATCH_COLUMNS        # slice per cycle (the v7 coefficient order's patches)
    perf_dp_channels: int = POINTWISE_Z_BLOCK   # 1x1 kernels: 6 input channels per cycle (pointwise-6 order)
    perf_dram_bytes_per_cycle: float = 16.0     # fitted (within the documented 8-16): DRAM bytes per NPU cycle
    perf_nn_job_cycles: int = 800               # assumed: per NN job (descriptor fetch, pipeline fill, drain)
    perf_tp_bytes_per_core_cycle: float = 1.0   # assumed: TP element moves per core and cycle
    perf_tp_job_cycles: int = 800               # assumed: per TP job (descriptor fetch, fill, drain)
    perf_submit_seconds: float = 640e-6         # fitted: host round trip of one submit (ioctl, fence, copies)
    perf_host: HostCpu = HostCpu()              # the CPU that runs HOST steps

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

VIPNANO_SI_PLUS = Target(
    name="vipnano-si-plus",
    description="VeriSilicon VIPNano-SI+ (NXP i.MX 8M Plus)",
    identity=NpuIdentity(model=0x8000, revision=0x8002, product_id=0x5080009, customer_id=0x9F, eco_id=0x6000000),
    other_customer_ids=(0xA0,),
    nn_version=8, nn_cores=6, mads_per_core=64, tp_cores=3,
    sram_bytes=256 * 1024, axi_sram_bytes=0,
    input_buffer_depth=9, accum_buffer_depth=32, zrl_bits_max=8, kernel_size_max=15, offset_bits=5,
    native_depthwise=True, clock_hz=800_000_000,   # dt: ML_CORE from SYS_PLL1_800M (mainline)
    post_multiplier_bits=23, post_shift_base=127,
    # Mesa 25.0.7 turns both SRAM caches off on v8 (it still fills the cache addresses); no v8
    # descriptor with caching on was ever validated, so npuc leaves them off too.
    sram_caching=False,
    descriptor_flags=(("no_z_offset", 1), ("no_flush", 1)),
    mac_input_offset=128,
    coef_format=COEF_HUFFMAN, tiling_rule=TILING_V8, add_lowering=ADD_CHANNEL_PAIRS,
    no_pooling_widths=(),                          # Mesa pools stride-2 depthwise at every width on v8
    # Performance model (ESTIMATES).  XYDP0/ZDP3 (hwdb): a MAD is a 3-wide dot product (the 9-value
    # blocks of the v8 stream are 3 of them).  The DRAM rate is fitted to Mesa's measured 7.9 and 8.0 ms
    # on the Verdin i.MX 8M Plus (vipnano-nn.md 8.4) with the A311D's submit cost (bench/fit_perf_model.py).
    perf_dp_rows=1, perf_dp_columns=3, perf_dp_channels=3, perf_dram_bytes_per_cycle=5.25,
    perf_host=HostCpu(name="Cortex-A53 at 1.8 GHz (estimate)", clock_hz=1_800_000_000, macs_per_cycle=4.0),
)

#: The Amlogic S905D3's NPU (VIPPico v3), described as far as ../shared/docs/vipnano-nn.md goes (sections 1,
#: 4.2 and 8.1) and NOT selectable: no golden submit, no hardware run and no complete identity exist for it.
#: From the Amlogic hwdb row (0x8000 rev 0x7131, customer 0x99): 2 NN cores x 64 MADs, 1 TP core (+7 TP-lite),
#: 512 KiB VIP SRAM, no AXI SRAM, input buffer depth 6, accumulation depth 64, ZRL 8 bits, kernels up to 11,
#: 4 offset bits, no native depthwise.  Mesa codes its coefficients with the v8 (Huffman) encoder, which on
#: customer 0x99 codes raw weights instead of w - zero point (and the vendor's blob uses the run-length mode
#: Mesa leaves off).  UNVERIFIED (see UNVERIFIED_TARGETS): how Mesa selects v8 for this part (its hwdb row
#: has NN_XYDP0 = 0, which Mesa's rule maps to v7), hence every v8 choice below (descriptor flags,
#: 23-bit multiplier, MAC input offset 128, v8 tiling, ADD lowering, SRAM caching off); the product and eco
#: ids (unknown: 0 here); the clock (800 MHz as on the A311D's G12 family device tree).
VIPPICO_V3 = Target(
    name="vippico-v3",
    description="VeriSilicon VIPPico v3 (Amlogic S905D3) -- UNVERIFIED description, not a compile target",
    identity=NpuIdentity(model=0x8000, revision=0x7131, product_id=0, customer_id=0x99, eco_id=0),
    nn_version=8, nn_cores=2, mads_per_core=64, tp_cores=1,
    sram_bytes=512 * 1024, axi_sram_bytes=0,
    input_buffer_depth=6, accum_buffer_depth=64, zrl_bits_max=8, kernel_size_max=11, offset_bits=4,
    native_depthwise=False, clock_hz=800_000_000,
    post_multiplier_bits=23, post_shift_base=127, sram_caching=False,
    descriptor_flags=(("no_z_offset", 1), ("no_flush", 1)),
    mac_input_offset=128,
    coef_format=COEF_HUFFMAN, coef_delta_zero_point=False, tiling_rule=TILING_V8,
    add_lowering=ADD_CHANNEL_PAIRS, no_pooling_widths=(),
    perf_dp_rows=1, perf_dp_columns=3, perf_dp_channels=3,   # estimates, as for vipnano-si-plus
    perf_host=HostCpu(name="Cortex-A55 at 1.9 GHz (estimate)", clock_hz=1_900_000_000, macs_per_cycle=4.0),
)

TARGETS: dict[str, Target] = {t.name: t for t in (VIPNANO_QI, VIPNANO_SI_PLUS)}
#: Targets described from the notes whose choices no golden data or hardware confirms: the reason
#: ``get_target`` gives instead of compiling for them.
UNVERIFIED_TARGETS: dict[str, tuple[Target, str]] = {
    VIPPICO_V3.name: (VIPPICO_V3, "no golden submit or hardware run confirms how Mesa drives it (v8 encoder on a "
                                  "core its hwdb marks v7)"),
}


def get_target(name: str) -> Target:
    """Look a target up by its command-line name."""
    try:
        return TARGETS[name]
    except KeyError:
        if name in UNVERIFIED_TARGETS:
            target, why = UNVERIFIED_TARGETS[name]
            raise UsageError(f"target {name!r} ({target.description}) is not supported: {why}") from None
        raise UsageError(f"unknown target {name!r}; known targets: {', '.join(sorted(TARGETS))}") from None


def target_for_identity(identity: NpuIdentity) -> Target | None:
    """The target whose model, revision and customer id match a device's identity."""
    for t in TARGETS.values():
        i = t.identity
        if (i.model, i.revision) == (identity.model, identity.revision) and \
                identity.customer_id in (i.customer_id, *t.other_customer_ids):
            return t
    return None


def same_core(device: NpuIdentity, blob: NpuIdentity) -> bool:
    """Whether a blob made for ``blob``'s core runs on ``device``: the same target, or the same numbers.

    Several hwdb rows can describe one core (the i.MX 8M Plus reports customer 0x9f or 0xa0), so a
    blob compiled for one row runs on the others of its target.
    """
    known = target_for_identity(device)
    if known is not None and known is target_for_identity(blob):
        return True
    return (device.model, device.revision, device.customer_id) == (blob.model, blob.revision, blob.customer_id)


def customer_id_aliases() -> list[tuple[int, int]]:
    """(customer id a blob names, customer id that also runs it): the pairs :func:`same_core` accepts."""
    pairs = []
    for t in TARGETS.values():
        ids = (t.identity.customer_id, *t.other_customer_ids)
        pairs += [(a, b) for a in ids for b in ids if a != b]
    return pairs
