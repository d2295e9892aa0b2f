"""NN and TP job descriptors of the VIPNano NPUs, declared once as data.

Source: ../shared/docs/vipnano-nn.md section 2.1 (NN, 34 words) and
../shared/docs/vipnano-tp-cmdstream-uapi.md section 2.2 (TP, 31 words); both
tables were derived from Mesa's C bit-field structs with GCC's little-endian
packing and are checked against Mesa's golden descriptors in the tests.  Field
names follow the notes so that a reader can compare them line by line; where the
notes infer a meaning for an "unused" field we name it after that meaning and
say so.  The backend packs these records, the simulator and ``npuc inspect``
unpack them, and the C runtime template renders its accessors from them.
"""

from __future__ import annotations

from typing import Mapping

from .fields import Composite, Layout, Part, fields_from_rows

# fmt: off
_NN_ROWS = [
    # word 0
    ("layer_type", 0, 0, 1), ("no_z_offset", 0, 1, 1), ("kernel_xy_size", 0, 2, 4),
    ("kernel_z_size", 0, 6, 14), ("kernels_per_core", 0, 20, 7), ("pooling", 0, 27, 2),
    ("pooling_xy_size", 0, 29, 1), ("prelu", 0, 30, 1), ("nn_layer_flush", 0, 31, 1),
    # word 1
    ("kernel_data_type", 1, 0, 2), ("in_image_data_type", 1, 2, 2), ("out_image_data_type", 1, 4, 2),
    ("in_image_x_size", 1, 6, 13), ("in_image_y_size", 1, 19, 13),
    # word 2
    ("in_image_x_offset", 2, 0, 3), ("in_image_y_offset", 2, 3, 3), ("unused0", 2, 6, 1),
    ("brick_mode", 2, 7, 1), ("brick_distance", 2, 8, 16), ("relu", 2, 24, 1), ("unused1", 2, 25, 1),
    ("post_multiplier", 2, 26, 1), ("post_shift", 2, 27, 5),
    # word 3
    ("unused2", 3, 0, 3), ("no_flush", 3, 3, 1), ("unused3", 3, 4, 2),
    ("out_image_x_size", 3, 6, 13), ("out_image_y_size", 3, 19, 13),
    # word 4
    ("out_image_z_size", 4, 0, 14), ("rounding_mode", 4, 14, 2), ("in_image_x_offset_bit_3", 4, 16, 1),
    ("in_image_y_offset_bit_3", 4, 17, 1), ("out_image_tile_x_size", 4, 18, 7),
    ("out_image_tile_y_size", 4, 25, 7),
    # words 5-7: addresses (kernel_address is the coefficient VA >> 6)
    ("kernel_address", 5, 0, 26), ("kernel_z_size2", 5, 26, 6),
    ("in_image_address", 6, 0, 32), ("out_image_address", 7, 0, 32),
    # word 8
    ("image_caching_mode", 8, 0, 2), ("kernel_caching_mode", 8, 2, 2), ("partial_cache_data_unit", 8, 4, 2),
    ("kernel_pattern_msb", 8, 6, 6), ("kernel_y_size", 8, 12, 4), ("out_image_y_stride", 8, 16, 16),
    # words 9-14: SRAM cache control (offsets into on-chip SRAM, not GPU addresses)
    ("kernel_pattern_low", 9, 0, 32), ("kernel_pattern_high", 10, 0, 32),
    ("kernel_cache_start_address", 11, 0, 32), ("kernel_cache_end_address", 12, 0, 32),
    ("image_cache_start_address", 13, 0, 32), ("image_cache_end_address", 14, 0, 32),
    # word 15
    ("in_image_border_mode", 15, 0, 2), ("in_image_border_const", 15, 2, 16), ("unused4", 15, 18, 1),
    ("kernel_data_type_bit_2", 15, 19, 1), ("in_image_data_type_bit_2", 15, 20, 1),
    ("out_image_data_type_bit_2", 15, 21, 1), ("post_multiplier_1_to_6", 15, 22, 6),
    ("post_shift_bit_5_6", 15, 28, 2), ("unused5", 15, 30, 2),
    # words 16-17
    ("in_image_x_stride", 16, 0, 16), ("in_image_y_stride", 16, 16, 16),
    ("out_image_x_stride", 17, 0, 16), ("unused6", 17, 16, 8), ("post_multiplier_7_to_14", 17, 24, 8),
    # word 18: the notes call bits 29 and 30 "unused7_2/7_3"; Mesa sets them on v8 with a
    # SAME-padding offset, which reads as bit 4 of the x and y offsets (5 offset bits on v8).
    ("out_image_circular_buf_size", 18, 0, 26), ("per_channel_post_mul", 18, 26, 1),
    ("unused7_0", 18, 27, 1), ("unused7_1", 18, 28, 1),
    ("in_image_x_offset_bit_4", 18, 29, 1), ("in_image_y_offset_bit_4", 18, 30, 1), ("unused7_3", 18, 31, 1),
    # words 19-21: circular buffers (disabled = size 0, end all ones)
    ("out_image_circular_buf_end_addr_plus_1", 19, 0, 26), ("unused8", 19, 26, 6),
    ("in_image_circular_buf_size", 20, 0, 26), ("unused9", 20, 26, 6),
    ("in_image_circular_buf_end_addr_plus_1", 21, 0, 26), ("unused10", 21, 26, 6),
    # word 22
    ("coef_zero_point", 22, 0, 8), ("out_zero_point", 22, 8, 8),
    ("kernel_direct_stream_from_VIP_sram", 22, 16, 1), ("depthwise", 22, 17, 1),
    ("post_multiplier_15_to_22", 22, 18, 8), ("unused11", 22, 26, 6),
    # words 23-33
    ("unused12", 23, 0, 32), ("unused13", 24, 0, 4), ("unused14", 24, 4, 28),
    ("unused15", 25, 0, 4), ("unused16", 25, 4, 28),
    ("further1", 26, 0, 32), ("further2", 27, 0, 32), ("further3", 28, 0, 32), ("further4", 29, 0, 32),
    ("further5", 30, 0, 32), ("further6", 31, 0, 32), ("further7", 32, 0, 32), ("further8", 33, 0, 32),
]
# fmt: on

_NN_COMPOSITES = (
    Composite("post_multiplier_value", (
        Part("post_multiplier", 0, 1), Part("post_multiplier_1_to_6", 1, 6),
        Part("post_multiplier_7_to_14", 7, 8), Part("post_multiplier_15_to_22", 15, 8)),
        doc="fractional bits of the requantization multiplier: 15 used on v7, 23 on v8"),
    Composite("post_shift_value", (Part("post_shift", 0, 5), Part("post_shift_bit_5_6", 5, 2)),
              doc="7-bit right shift applied after the multiplier"),
    Composite("in_image_x_offset_4b", (Part("in_image_x_offset", 0, 3), Part("in_image_x_offset_bit_3", 3, 1)),
              signed=True, doc="signed input x start offset on cores with 4 offset bits (v7)"),
    Composite("in_image_y_offset_4b", (Part("in_image_y_offset", 0, 3), Part("in_image_y_offset_bit_3", 3, 1)),
              signed=True, doc="signed input y start offset on cores with 4 offset bits (v7)"),
    Composite("in_image_x_offset_5b", (Part("in_image_x_offset", 0, 3), Part("in_image_x_offset_bit_3", 3, 1),
                                       Part("in_image_x_offset_bit_4", 4, 1)),
              signed=True, doc="signed input x start offset on cores with 5 offset bits (v8)"),
    Composite("in_image_y_offset_5b", (Part("in_image_y_offset", 0, 3), Part("in_image_y_offset_bit_3", 3, 1),
                                       Part("in_image_y_offset_bit_4", 4, 1)),
              signed=True, doc="signed input y start offset on cores with 5 offset bits (v8)"),
)

#: Values Mesa writes for every NN job whatever the layer (vipnano-nn.md 2.1).
NN_CONSTANTS = {
    "nn_layer_flush": 1,
    "rounding_mode": 1,
    "kernel_cache_start_address": 0x800,
    "out_image_circular_buf_end_addr_plus_1": 0x3FFFFFF,
    "in_image_circular_buf_end_addr_plus_1": 0x3FFFFFF,
    "further3": 0x03FFFFFF,
    "further4": 0x7F800000,  # float32 +inf: presumably the upper clamp of float outputs
    "further5": 0xFF800000,  # float32 -inf
}

NN_DESCRIPTOR = Layout("nn_descriptor", 34, fields_from_rows(_NN_ROWS), _NN_COMPOSITES, NN_CONSTANTS,
                       doc="136-byte NN (convolution) job descriptor")



def kernel_z(desc: Mapping[str, int]) -> int:
    """Input channels of an NN job's kernels: the descriptor splits counts above 14 bits over two fields."""
    return desc["kernel_z_size"] | desc.get("kernel_z_size2", 0) << NN_DESCRIPTOR["kernel_z_size"].width


def kernel_fields_fault(kernel_x: int, kernel_y: int, kernel_z: int, out_channels: int, kernels_per_core: int,
                        kernel_size_max: int) -> str | None:
    """Why no coefficient format can hold an NN job with these kernel fields (None when they are fine): kernel
    sizes within the target's limit, at least one input channel, output channel and kernel per superblock."""
    for name, value in (("kernel_xy_size", kernel_x), ("kernel_y_size", kernel_y)):
        if not 1 <= value <= kernel_size_max:
            return f"{name} {value} outside 1..{kernel_size_max}"
    for name, value in (("kernel_z_size", kernel_z), ("out_image_z_size", out_channels),
                        ("kernels_per_core", kernels_per_core)):
        if value < 1:
            return f"{name} is 0"
    return None


#: NN pooling field values (vipnano-nn.md 2.1).
NN_POOLING_NONE = 0
NN_POOLING_FIRST_PIXEL = 3
#: First-pixel pooling keeps the top-left pixel of every NN_POOLING_STEP x NN_POOLING_STEP block.
NN_POOLING_STEP = 2
#: pooling_xy_size with each pooling mode (what Mesa writes: 1 without pooling, 0 with first-pixel pooling).
NN_POOLING_XY_SIZE = {NN_POOLING_NONE: 1, NN_POOLING_FIRST_PIXEL: 0}

#: NN image_caching_mode / kernel_caching_mode values (vipnano-nn.md 2.1, 5.4).
NN_CACHE_NONE = 0
NN_CACHE_FULL = 1
NN_CACHE_PARTIAL = 2

#: Mesa's partial kernel-cache patterns, chosen by output depth (vipnano-nn.md 5.4; the only
#: values validated on hardware): (smallest out_image_z_size, kernel_pattern_msb,
#: kernel_pattern_low, kernel_pattern_high), first match wins.
NN_PARTIAL_CACHE_PATTERNS = (
    (1024, 0x13, 0x00080000, 0x00000000),
    (512, 0x3D, 0x00000000, 0x2AAAAAA0),
    (256, 0x3E, 0xFFFFAAAA, 0x7FFFFFFF),
    (160, 0x06, 0x0000007E, 0x00000000),
    (0, 0x3F, 0xFFFFFFFE, 0xFFFFFFFF),
)

# fmt: off
_TP_ROWS = [
    ("in_image_x_size", 0, 0, 16), ("unused0", 0, 16, 16),
    ("in_image_y_size", 1, 0, 16), ("in_image_z_size", 1, 16, 16),
    ("in_image_stride", 2, 0, 16), ("unused1", 2, 16, 16),
    ("in_image_slice", 3, 0, 32),
    ("in_window_x_start", 4, 0, 16, True), ("in_window_y_start", 4, 16, 16, True),
    ("in_window_x_end", 5, 0, 16, True), ("in_window_y_end", 5, 16, 16, True),
    ("in_tile_sequence", 6, 0, 2), ("in_tile_global_mem", 6, 2, 1), ("in_image_global_mem", 6, 3, 1),
    ("alu_i2f_enable", 6, 4, 1), ("alu_square_enable", 6, 5, 1), ("alu_horz_processing", 6, 6, 3),
    ("alu_horz_proc_count", 6, 9, 6), ("alu_horz_proc_stride", 6, 15, 1), ("alu_vert_processing", 6, 16, 2),
    ("unused2", 6, 18, 1), ("alu_vert_proc_count", 6, 19, 6), ("alu_vert_proc_stride", 6, 25, 1),
    ("alu_nms_enable", 6, 26, 1), ("alu_pwl_enable", 6, 27, 1), ("alu_mult_enable", 6, 28, 1),
    ("alu_f2i_enable", 6, 29, 1), ("alu_load_pwl_lut", 6, 30, 1), ("alu_load_pwl_lut_global_mem", 6, 31, 1),
    ("in_tile_list_address", 7, 0, 32),
    ("in_tile_x_size", 8, 0, 16), ("in_tile_y_size", 8, 16, 16),
    ("in_tile_x_inc", 9, 0, 16), ("in_tile_y_inc", 9, 16, 16),
    ("in_image_base_address", 10, 0, 32),
    ("alu_load_pwl_lut_address", 11, 0, 32),
    ("out_tile_skip_at_border", 12, 0, 1), ("out_image_global_mem", 12, 1, 1), ("out_loop_1_reset", 12, 2, 1),
    ("out_loop_2_reset", 12, 3, 1), ("out_loop_3_reset", 12, 4, 1), ("out_brick_mode", 12, 5, 1),
    ("alu_z_filter_mode", 12, 6, 1), ("unused3", 12, 7, 1), ("in_window_z_start_overfetch", 12, 8, 2),
    ("unused4", 12, 10, 1), ("in_window_z_end_overfetch", 12, 11, 2), ("unused5", 12, 13, 1),
    ("alu_square_preshift", 12, 14, 4), ("in_image_data_type", 12, 18, 3), ("out_image_data_type", 12, 21, 3),
    ("unused6", 12, 24, 4), ("alu_pwl_sign_support", 12, 28, 1), ("alu_relu_enable", 12, 29, 1),
    ("no_flush", 12, 30, 1), ("last", 12, 31, 1),
    ("out_image_base_address", 13, 0, 32),
    ("out_loop_0_inc", 14, 0, 32), ("out_loop_1_inc", 15, 0, 32),
    ("out_loop_0_count", 16, 0, 16), ("out_loop_1_count", 16, 16, 16),
    ("out_loop_2_inc", 17, 0, 32), ("out_loop_3_inc", 18, 0, 32),
    ("out_loop_2_count", 19, 0, 16), ("out_loop_3_count", 19, 16, 16),
    ("out_loop_4_inc", 20, 0, 32), ("out_loop_5_inc", 21, 0, 32),
    ("out_loop_4_count", 22, 0, 16), ("out_loop_5_count", 22, 16, 16),
    ("out_loop_6_inc", 23, 0, 32),
    ("alu_filter_pwl_swap", 24, 0, 1), ("flat_rounding_mode", 24, 1, 2), ("integer_rounding_mode", 24, 3, 2),
    ("alu_input_preshift", 24, 5, 5), ("alu_output_postshift", 24, 10, 5), ("alu_reorder_bits_used", 24, 15, 4),
    ("alu_reorder_loop_2_mode", 24, 19, 1), ("unused7", 24, 20, 4), ("in_image_border_mode", 24, 24, 2),
    ("alu_output_postshift_5_6", 24, 26, 2), ("unused8", 24, 28, 4),
    ("in_image_circular_buf_size", 25, 0, 32), ("in_image_circular_buf_end_address_plus_1", 26, 0, 32),
    ("out_image_circular_buf_size", 27, 0, 32), ("out_image_circular_buf_end_address_plus_1", 28, 0, 32),
    ("in_image_border_const", 29, 0, 16), ("coef_zp", 29, 16, 8), ("in_zp", 29, 24, 8),
    ("out_zp", 30, 0, 8), ("alu_output_post_multiplier", 30, 8, 15), ("unused9", 30, 23, 9),
]
# fmt: on

_TP_COMPOSITES = (
    Composite("alu_output_postshift_value", (Part("alu_output_postshift", 0, 5), Part("alu_output_postshift_5_6", 5, 2)),
              doc="7-bit post-shift of the TP ALU output"),
)

#: Values Mesa writes for every TP job unless the operation overrides them (tp notes 2.2).
TP_CONSTANTS = {
    "in_image_global_mem": 1,
    "alu_i2f_enable": 1,
    "alu_f2i_enable": 1,
    "in_tile_x_size": 1,
    "in_tile_x_inc": 1,
    "out_image_global_mem": 1,
    "last": 1,
    "out_loop_0_inc": 1,
    "out_loop_3_count": 1,
    "out_loop_4_count": 1,
    "out_loop_5_count": 1,
    "flat_rounding_mode": 1,
    "integer_rounding_mode": 1,
    "in_image_circular_buf_end_address_plus_1": 0x03FFFFFF,
    "out_image_circular_buf_end_address_plus_1": 0x03FFFFFF,
}

TP_DESCRIPTOR = Layout("tp_descriptor", 31, fields_from_rows(_TP_ROWS), _TP_COMPOSITES, TP_CONSTANTS,
                       doc="124-byte TP (tensor processor) job descriptor")

#: Number of TP output loop levels (out address = base + sum(index_n * inc_n)).
TP_OUT_LOOPS = 7

#: The TP's piecewise-linear activation table (tp notes 2.4): 1024 little-endian uint32
#: entries, each an fp21 value, read from alu_load_pwl_lut_address.
TP_PWL_LUT_ENTRIES = 1024

#: fp21, the TP ALU's 21-bit float: 15-bit mantissa, 5-bit exponent biased by 15, sign.
FP21 = Layout("fp21", 1, fields_from_rows([("mantissa", 0, 0, 15), ("exponent", 0, 15, 5), ("sign", 0, 20, 1)]),
              doc="TP ALU float (PWL LUT entries and inputs)")
FP21_EXPONENT_BIAS = 15

#: A PWL input selects LUT entry ``fp21 >> 11`` (sign, exponent, top 4 mantissa bits); entries
#: 0-511 cover positive inputs, 512-1023 negative ones, and the low 11 bits interpolate.
TP_PWL_INDEX_SHIFT = 11

#: Planes of z padding one TP core can over-fetch before or after its image: Mesa programs
#: ``in_window_z_*_overfetch`` = 1 only (tp notes 2.4, PAD); other values are unvalidated.
TP_MAX_Z_OVERFETCH = 1

#: Input tile of Mesa's PWL (RELU/ABS/LOGISTIC) jobs, x by y elements (tp notes 2.4); the
#: output loops 3 and 4 step over these tiles.
TP_PWL_TILE_X = 64
TP_PWL_TILE_Y = 16
