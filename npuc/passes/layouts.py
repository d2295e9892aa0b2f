"""Tensor versions: the layout and byte representation each step needs, converted where they meet.

Lowering asks for an operator's operands as it needs them (:func:`operand`)
and declares its outputs (:func:`produce`).  Tensors are stored planar or NHWC
(the NPU's bytes: int8 stored + INT8_OFFSET) or as TFLite stores them (host
kernels and the graph's edge); a conversion is added once per tensor and
layout, only where an NPU operator meets a host operator or the graph's edge.
"""

from __future__ import annotations

from ..host import fold
from ..ir import Op, Tensor
from .npu_program import (NHWC, NPU_DTYPE, PLANAR, TFLITE, HostCall, Program, Ref, TPOp, npu_quant,
                          same_bytes_in_both_layouts, shifted_on_npu)


def produce(program: Program, tensor: int, layout: str) -> int:
    """Declare that the step being lowered writes ``tensor`` as ``layout``; returns the tensor to write.

    ``layout`` is NHWC or PLANAR for NPU steps, TFLITE for host steps.  An
    int8 tensor written by the NPU gets a uint8 version (see INT8_OFFSET);
    otherwise the tensor itself is written.
    """
    t = program.graph.tensors[tensor]
    key = _key(t, layout)
    have = program.versions.setdefault(tensor, {})
    if key not in have:
        if key != TFLITE and shifted_on_npu(t):
            have[key] = _new_version(program, t, key)
        else:
            program.set_layout(tensor, NHWC if key == TFLITE else key)
            have[key] = tensor
    return have[key]


def operand(program: Program, tensor: int, layout: str, op: int) -> int:
    """The tensor that holds ``tensor``'s value as ``layout``, converting on first need.

    Graph inputs and host outputs exist as TFLITE, NPU outputs as PLANAR (or
    NHWC).  A conversion is inserted once per tensor and layout: between
    TFLite's int8 bytes and the NPU's uint8 bytes a host QUANTIZE step (an
    exact XOR 0x80), between NHWC and PLANAR an alias when both layouts are
    the same bytes (one pixel, or one channel), otherwise a TP transpose
    (NHWC to planar) or detranspose (planar to NHWC).  Constants are
    returned as they are.
    """
    t = program.graph.tensors[tensor]
    if t.is_constant:
        return tensor
    have = existing(program, tensor)
    key = _key(t, layout)
    if key in have:
        return have[key]
    if key == TFLITE:  # only NPU bytes exist
        src = operand(program, tensor, NHWC, op)
        program.set_layout(tensor, NHWC)
        have[TFLITE] = tensor
        program.steps.append(_storage_change(program, op, src, tensor))
        return tensor
    other = PLANAR if key == NHWC else NHWC
    dst = _new_version(program, t, key)
    if key == NHWC and PLANAR not in have:  # only TFLite's int8 bytes exist
        program.steps.append(_storage_change(program, op, have[TFLITE], dst))
    else:
        src = operand(program, tensor, other, op)
        if same_bytes_in_both_layouts(t.shape):
            program.aliases[dst] = Ref(src)
        else:
            program.steps.append(TPOp("transpose" if key == PLANAR else "detranspose", op, src, dst))
    have[key] = dst
    return dst


def existing(program: Program, tensor: int) -> dict[str, int]:
    """The versions of non-constant ``tensor`` made so far (a graph input exists as TFLITE)."""
    have = program.versions.setdefault(tensor, {})
    if not have:
        produce(program, tensor, TFLITE)
    return have


def _key(t: Tensor, layout: str) -> str:
    return NHWC if layout == TFLITE and not shifted_on_npu(t) else layout


def _new_version(program: Program, t: Tensor, layout: str) -> int:
    """A tensor for ``t``'s value in NPU ``layout`` (uint8 bytes for an int8 tensor)."""
    if shifted_on_npu(t):
        return program.new_tensor(f"{t.name} (uint8 {layout})", t.shape, NPU_DTYPE, npu_quant(t), layout)
    return program.new_tensor(f"{t.name} ({layout})", t.shape, t.dtype, t.quant, layout)


def _storage_change(program: Program, op: int, src: int, dst: int) -> HostCall:
    """A host step converting between TFLite's int8 bytes and the NPU's uint8 bytes of one tensor.

    TFLite's QUANTIZE between int8 and uint8 with equal scales and zero
    points INT8_OFFSET apart is exactly that conversion, and every host has
    its kernel.
    """
    g = program.graph
    convert = Op(index=op, opcode="QUANTIZE", inputs=[src], outputs=[dst])
    name = f"{g.tensors[dst].name} from {g.tensors[src].dtype}"
    kernel, params = fold(g, convert)
    return HostCall(name, op, kernel.name, [src], [dst], params)
