"""Host kernels: npuc's CPU implementations of TFLite operators, bit-exact with TFLite's reference kernels.

The runtime runs every operator the NPU cannot on the CPU with these kernels,
and they are the reference the NPU path is compared against layer by layer.
``KERNELS`` maps a TFLite opcode name to its :class:`HostKernel`; a kernel's
``run(inputs, outputs, params)`` reads NHWC arrays of the tensors' IR shapes and
dtypes (constants such as weights and biases included, None for an absent
optional input) and writes into the preallocated ``outputs`` in place.  Its
``params`` are what ``npuc.passes.host_params`` folds from the IR at compile
time: ints, floats and 1-D int32/float32 arrays.
"""

from __future__ import annotations

from . import arith, conv, lstm, movement, quantize, reduce, resize, softmax, unary
from .kernel import HostKernel

KERNELS: dict[str, HostKernel] = {
    k.name: k for module in (conv, reduce, softmax, quantize, arith, unary, movement, resize, lstm)
    for k in module.KERNELS
}

__all__ = ["HostKernel", "KERNELS"]
