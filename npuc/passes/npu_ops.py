"""The table of operators the NPU can run: one lowering per TFLite opcode, with its constraints as data.

Placement consults ``NPU_LOWERINGS``: an operator goes to the NPU when its
opcode has a lowering and no constraint refuses it.  Each constraint carries a
human description, so that the reason an operator fell back to the host is
always one of these sentences, and a report of supported operators can be
generated from this same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .npu_program import Program
from ..hw.target import Target
from ..ir import Graph, Op
from . import npu_checks as k
from .lower_add import lower_add
from .lower_alias import lower_reshape
from .lower_concat import lower_concatenation, lower_split
from .lower_conv import lower_conv2d, lower_depthwise
from .lower_fc import lower_fully_connected
from .lower_lut import LUT_OPCODES, lower_lut
from .lower_pad import lower_pad
from .lower_pool import lower_average_pool, lower_mean
from .lower_quantize import lower_quantize
from .scale_groups import MAX_CONSECUTIVE_RUNS


@dataclass(frozen=True)
class Constraint:
    """One condition an operator must meet; ``check`` returns None or why it is not met."""

    description: str
    check: Callable[[Graph, Op, Target], str | None]


#: Whether the NPU's result is bit-identical to TFLite's reference kernel (``npuc compile --exact`` keeps
#: only such lowerings on the NPU).  Byte movement (views, transposes, padding) and PWL tables fitted to every
#: input byte are; anything computed by the NN cores' requantization is not.
BIT_EXACT = Constraint("always: bytes are moved or looked up, not recomputed", k.byte_copy)
NN_ARITHMETIC = Constraint("never: NN requantization rounds differently from TFLite", k.nn_arithmetic)


@dataclass(frozen=True)
class Lowering:
    """How one opcode runs on the NPU: the unit it uses, its constraints, and the function that lowers it.

    ``exact`` says when the result equals TFLite's reference kernel bit for bit.
    """

    unit: str                                  # "NN", "TP" or "alias"
    lower: Callable[[Program, Op, Target], None]
    constraints: tuple[Constraint, ...] = ()
    exact: Constraint = NN_ARITHMETIC

    def refusal(self, graph: Graph, op: Op, target: Target) -> str | None:
        """The first constraint ``op`` does not meet, or None."""
        for c in self.constraints:
            why = c.check(graph, op, target)
            if why is not None:
                return why
        return None


_ACTIVATIONS = Constraint("activations are uint8 or int8 with one scale and zero point", k.eight_bit_activations)
_CONV_WEIGHTS = Constraint("weights are constant, of the activations' type, with one scale and zero point or (int8) "
                           f"one scale per output channel and zero point 0 (v8: in at most {MAX_CONSECUTIVE_RUNS} "
                           "runs of consecutive channels of similar scale); bias int32", k.conv_weights)
_BATCH = Constraint("4-D tensors hold one image (batch 1)", k.batch_one)
_ACTIVATION = Constraint("fused activation NONE, RELU, or RELU6 where the 8-bit range already ends at 6",
                         k.fused_activation)
_CONV = (_ACTIVATIONS, _CONV_WEIGHTS, _BATCH, _ACTIVATION,
         Constraint("stride 1x1 or 2x2", k.conv_strides),
         Constraint("dilation 1x1", k.no_dilation),
         Constraint("kernel at most the target's NN_KERNEL_X/Y_SIZE", k.kernel_size),
         Constraint("SAME padding within the descriptor's signed input offset", k.padding_offset),
         Constraint("image sides and channel counts fit the descriptor fields", k.image_fits))
_MEAN = (_ACTIVATIONS, _BATCH)
_MEAN_FITS = Constraint("C and H*W fit the descriptor fields", k.mean_fits)
_VIEWABLE = Constraint("the input is not a constant", k.non_constant_input)
_ADD = (_ACTIVATIONS, _BATCH, _ACTIVATION,
        Constraint("both inputs have the output's shape (no broadcasting)", k.equal_shapes),
        Constraint("both inputs are activations, not constants", k.two_activations),
        Constraint("input scales within a factor 255 (SUB: 254) of each other (two 8-bit weights)", k.add_ratio),
        Constraint("the tensor can be viewed as an image the descriptor holds", k.add_image))
_TP_IMAGE = Constraint("one [1, H, W, C] image", k.four_d_image)
_LUT = (_ACTIVATIONS, _VIEWABLE, _TP_IMAGE,
        Constraint("a PWL table reproduces TFLite's result (its host kernel, bit-exact) for every "
                   "input byte", k.lut_table))
_PAD = (_ACTIVATIONS, _VIEWABLE, _TP_IMAGE,
        Constraint("constant paddings, none on the batch, at most one channel (or row) per side", k.pad_amounts))

NPU_LOWERINGS: dict[str, Lowering] = {
    "CONV_2D": Lowering("NN", lower_conv2d, _CONV + (
        Constraint("the filter spans all input channels (no grouped convolution)", k.ungrouped),)),
    "DEPTHWISE_CONV_2D": Lowering("NN", lower_depthwise, _CONV + (
        Constraint("depth multiplier 1", k.depth_multiplier_one),)),
    "ADD": Lowering("NN", lower_add, _ADD),
    "SUB": Lowering("NN", lower_add, _ADD),
    "AVERAGE_POOL_2D": Lowering("NN", lower_average_pool, _MEAN + (
        _ACTIVATION,
        Constraint("the window covers the whole input (global average)", k.whole_plane_pool),
        Constraint("input and output share scale and zero point (as TFLite requires)", k.pool_quantization),
        Constraint("uint8, or int8 over an odd number of pixels (no ties to round away from zero)",
                   k.pool_rounding),
        _MEAN_FITS)),
    "MEAN": Lowering("NN", lower_mean, _MEAN + (
        Constraint("constant axes: H and W of a 4-D input", k.mean_axes), _MEAN_FITS)),
    "FULLY_CONNECTED": Lowering("NN", lower_fully_connected, (
        _ACTIVATIONS, _CONV_WEIGHTS, _ACTIVATION,
        Constraint("the input is one vector of the weights' length, default weights format", k.fc_input),
        Constraint("inputs and units fit the descriptor's channel fields", k.fc_fits))),
    "CONCATENATION": Lowering("alias", lower_concatenation, (
        Constraint("8-bit tensors with one scale and zero point each, concatenated along channels, no constant "
                   "input, no fused activation (inputs quantized unlike the output get a requantizing NN job)",
                   k.concat_views),), Constraint("when no input needs requantizing",
                                                 k.concat_without_requantization)),
    "QUANTIZE": Lowering("NN", lower_quantize, (
        _ACTIVATIONS,
        Constraint("the tensor can be viewed as an image the descriptor holds (unless only int8/uint8 storage "
                   "differs: then no job)", k.flat_image)),
        Constraint("when only the int8/uint8 storage differs (a view)", k.relabelled_bytes)),
    "PAD": Lowering("TP", lower_pad, _PAD, BIT_EXACT),
    "PADV2": Lowering("TP", lower_pad, _PAD + (
        Constraint("the padding constant is the output zero point", k.pad_value),), BIT_EXACT),
    **{name: Lowering("TP", lower_lut, _LUT, BIT_EXACT) for name in LUT_OPCODES},
    "SPLIT": Lowering("alias", lower_split, (
        Constraint("uint8 tensors sharing one scale and zero point, split along channels by a constant axis",
                   k.split_views),), BIT_EXACT),
    "SPLIT_V": Lowering("alias", lower_split, (
        Constraint("uint8 tensors sharing one scale and zero point, split along channels by a constant axis",
                   k.split_views),), BIT_EXACT),
    "RESHAPE": Lowering("alias", lower_reshape, (_VIEWABLE,), BIT_EXACT),
    "SQUEEZE": Lowering("alias", lower_reshape, (_VIEWABLE,), BIT_EXACT),
}
