"""Host parameters of SVDF, as TFLite's Prepare computes them, and the shapes and types its kernels take.

TFLite's SVDF takes five inputs (input [batch, input], weights_feature
[filters, input], weights_time [filters, memory], an optional bias [units]
and the state [batch, filters * memory], a variable tensor) and gives
[batch, units], where ``filters = units * rank``.  Its fully integer kernel
reads an int8 input and weights_feature, int16 weights_time and state and an
int32 bias (whatever their declared types: an int8 weights_time or state
would be read as int16 out of bounds, so npuc refuses them), uses the input's
and output's zero points, assumes zero points of 0 elsewhere and refuses
every fused activation but RELU (which it then does not apply).  Its two
multipliers come from effective scales computed in float32 (``input_scale *
feature_scale / state_scale``, ``state_scale * time_scale / output_scale``),
as the TFLite of ai-edge-litert computes them; newer TFLite sources cast the
scales to double first, which rounds differently.  The float
kernel takes every activation whose arithmetic is plain comparisons; TANH
and SIGMOID run through Eigen's vectorized approximations, which npuc does
not reproduce.  The hybrid kernel (float input, 8-bit weights) has no host
kernel.
"""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Op, Tensor
from ..decl import HostOp, Int, Types
from ..fixedpoint import quantize_multiplier
from ..kernels import svdf
from ..kernels.svdf import ACTIVATIONS, STATE_INPUT
from .common import (Params, fail, input_tensor, optional_input, output_tensor, per_tensor, require_shape,
                     require_type)

#: Largest rank: TFLite's is an int, and the units (filters / rank) must be at least one.
MAX_RANK = (1 << 31) - 1


def _operands(graph: Graph, op: Op, types: tuple[str, str, str, str]) -> tuple[list[Tensor], Tensor | None, int]:
    """([input, weights_feature, weights_time, state, output], the bias or None, the rank), checked.

    ``types`` are the element types of the input and weights_feature, of
    weights_time and the state, of the bias, and of the output.
    """
    if len(op.inputs) != 5 or len(op.outputs) != 1:
        raise fail(op, f"has {len(op.inputs)} inputs and {len(op.outputs)} outputs; SVDF takes 5 and gives 1")
    x, wf, wt = (input_tensor(graph, op, i, what) for i, what in enumerate(("input", "weights_feature",
                                                                            "weights_time")))
    bias = optional_input(graph, op, 3)
    state, y = input_tensor(graph, op, STATE_INPUT, "state"), output_tensor(graph, op)
    for t, what, dtype in ((x, "input", types[0]), (wf, "weights_feature", types[0]), (wt, "weights_time", types[1]),
                           (state, "state", types[1]), (y, "output", types[3])):
        require_type(op, t, what, (dtype,))
        if len(t.shape) != 2:
            raise fail(op, f"{what} {t.describe()} must be 2-D")
    if not state.is_variable:
        raise fail(op, f"state {state.describe()} must be a variable tensor, which TFLite keeps between invokes")
    rank = int(op.options.get("rank", 0))
    filters, memory = wt.shape
    if not 1 <= rank <= MAX_RANK or wf.shape[0] % rank:
        raise fail(op, f"rank {rank} must be positive and divide the {wf.shape[0]} filters of {wf.describe()}")
    if memory < 1:
        raise fail(op, f"weights_time {wt.describe()} must keep at least one step of memory")
    batch, units = x.shape[0], wf.shape[0] // rank
    require_shape(op, wf, (filters, x.shape[1]), "weights_feature")
    require_shape(op, state, (batch, filters * memory), "state")
    require_shape(op, y, (batch, units), "output")
    if bias is not None:
        require_type(op, bias, "bias", (types[2],))
        require_shape(op, bias, (units,), "bias")
    return [x, wf, wt, state, y], bias, rank


def _multiplier(op: Op, params: Params, name: str, scales: tuple[float, float, float]) -> None:
    """TFLite's QuantizeMultiplier of the effective scale ``a * b / c`` (float32 arithmetic), into
    ``<name>_multiplier`` and ``<name>_shift``."""
    a, b, c = (np.float32(s) for s in scales)
    with np.errstate(over="ignore", under="ignore"):
        real = float(a * b / c)
    if not real < float("inf"):
        raise fail(op, f"the {name} effective scale overflows float32")
    params[f"{name}_multiplier"], params[f"{name}_shift"] = quantize_multiplier(real)


def _svdf(graph: Graph, op: Op) -> Params:
    (x, wf, wt, state, y), _, rank = _operands(graph, op, ("int8", "int16", "int32", "int8"))
    activation = op.options.get("fused_activation_function", "NONE")
    if activation != "RELU":
        raise fail(op, f"fused activation {activation}: TFLite's integer SVDF takes only RELU")
    in_scale, in_zp = per_tensor(op, x, "input")
    wf_scale, _ = per_tensor(op, wf, "weights_feature")
    wt_scale, _ = per_tensor(op, wt, "weights_time")
    state_scale, _ = per_tensor(op, state, "state")
    out_scale, out_zp = per_tensor(op, y, "output")
    params: Params = {"rank": rank, "input_zero_point": in_zp, "output_zero_point": out_zp}
    _multiplier(op, params, "feature", (in_scale, wf_scale, state_scale))
    _multiplier(op, params, "time", (state_scale, wt_scale, out_scale))
    return params


def _svdf_f32(graph: Graph, op: Op) -> Params:
    x, wf = input_tensor(graph, op, 0, "input"), input_tensor(graph, op, 1, "weights_feature")
    if wf.dtype != "float32":
        raise fail(op, f"the hybrid SVDF (float input {x.describe()}, weights {wf.describe()}) has no host kernel")
    _, _, rank = _operands(graph, op, ("float32",) * 4)
    activation = op.options.get("fused_activation_function", "NONE")
    if activation not in ACTIVATIONS:
        raise fail(op, f"fused activation {activation} has no host kernel for SVDF (TFLite computes it with Eigen)")
    return {"rank": rank, "activation": ACTIVATIONS.index(activation)}


_RANK = Int("rank", 1, MAX_RANK, doc="filters per unit")

OPS = (
    HostOp("SVDF", (_RANK, Int("input_zero_point", -128, 127), Int("output_zero_point", -128, 127),
                    Int("feature_multiplier", 0), Int("feature_shift", -31, 31),
                    Int("time_multiplier", 0), Int("time_shift", -31, 31)),
           _svdf, svdf.svdf, types=Types(("int8",), "input")),
    HostOp("SVDF_F32", (_RANK, Int("activation", 0, len(ACTIVATIONS) - 1, doc="index into ACTIVATIONS")),
           _svdf_f32, svdf.svdf_float, opcode="SVDF", types=Types(("float32",), "input")),
)
