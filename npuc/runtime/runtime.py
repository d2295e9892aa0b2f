"""Run a .vipbin: place its buffers, patch addresses, replay its program.

The runtime does what the C runtime does on a board, in the same order: create
every buffer on the device, choose a GPU virtual address for each inside the
range the device allows, copy the initial bytes, apply the relocations (in the
buffers and in the NPU steps' command streams), then for each step either
submit the stream with its buffers or run the named host kernel on the CPU over
views of the tensors.  It never looks at TFLite.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .. import vipbin
from ..hw.target import same_core
from ..errors import BlobError, InputError, UnsupportedError
from ..hw.kernel_abi import Device, DeviceBuffer, SubmitBo
from ..host import HOST_OPS


@dataclass
class Placement:
    """Where each buffer of a blob lives: its device buffer and GPU address."""

    buffers: list[DeviceBuffer]
    addresses: list[int]


def place_buffers(blob: vipbin.Blob, device: Device) -> Placement:
    """Create the blob's buffers and give each a distinct, aligned address in the device's range."""
    bufs, addrs = [], []
    addr = device.va_start
    for i, b in enumerate(blob.buffers):
        align = max(b.align, device.va_align)
        addr = (addr + align - 1) // align * align
        size = (b.size + device.va_align - 1) // device.va_align * device.va_align
        if addr + size > device.va_end:
            raise BlobError(f"buffer {i} ({b.name!r}) does not fit in the device's address range")
        dev_buf = device.new_buffer(b.size)
        dev_buf.data[: len(b.init)] = np.frombuffer(b.init, dtype=np.uint8)
        bufs.append(dev_buf)
        addrs.append(addr)
        addr += size
    return Placement(bufs, addrs)


def apply_relocations(blob: vipbin.Blob, placement: Placement) -> list[np.ndarray]:
    """Patch every address site; returns the NPU steps' streams as uint32 arrays (None for host steps)."""
    streams = [np.array(s.stream, dtype=np.uint32) if isinstance(s, vipbin.NpuStep) else None for s in blob.steps]
    for r in blob.relocations:
        address = placement.addresses[r.target_buffer]
        if r.site_kind == "buffer":
            data = placement.buffers[r.site_index].data
            word = int(data[r.site_offset:r.site_offset + 4].view("<u4")[0])
            data[r.site_offset:r.site_offset + 4] = np.frombuffer(
                struct.pack("<I", vipbin.patch_word(word, address, r)), dtype=np.uint8)
        else:
            words = streams[r.site_index]
            k = r.site_offset // 4
            words[k] = vipbin.patch_word(int(words[k]), address, r)
    return streams


class Runtime:
    """A blob loaded onto a device, ready to run inferences."""

    def __init__(self, blob: vipbin.Blob, device: Device) -> None:
        self.blob = blob
        self.device = device
        have, want = device.identity, blob.identity
        if not same_core(have, want):
            raise UnsupportedError(f"blob compiled for {blob.target} (model {want.model:#x} revision "
                                   f"{want.revision:#x} customer {want.customer_id:#x}), the device is model "
                                   f"{have.model:#x} revision {have.revision:#x} customer {have.customer_id:#x}")
        for i, s in enumerate(blob.steps):
            if not isinstance(s, vipbin.HostStep):
                continue
            if s.kernel not in HOST_OPS:
                raise UnsupportedError(f"step {i} ({s.name}): this runtime has no host kernel {s.kernel!r}")
            why = HOST_OPS[s.kernel].problem(s.params)
            if why is not None:
                raise BlobError(f"step {i} ({s.name}): host kernel {s.kernel} {why}")
        self.placement = place_buffers(blob, device)
        self.streams = apply_relocations(blob, self.placement)

    # -- tensors ----------------------------------------------------------------------

    def tensor_view(self, index: int) -> np.ndarray:
        """A writable array over a tensor's bytes in its device buffer."""
        t = self.blob.tensors[index]
        raw = self.placement.buffers[t.buffer].data[t.offset:t.offset + t.nbytes]
        return raw.view(t.dtype).reshape(t.shape)

    @property
    def input_infos(self) -> list[vipbin.TensorInfo]:
        return [self.blob.tensors[i] for i in self.blob.inputs]

    @property
    def output_infos(self) -> list[vipbin.TensorInfo]:
        return [self.blob.tensors[i] for i in self.blob.outputs]

    def set_input(self, position: int, value: np.ndarray) -> None:
        """Copy ``value`` into graph input ``position``; shape and dtype must match exactly."""
        info = self.input_infos[position]
        value = np.asarray(value)
        if value.dtype != np.dtype(info.dtype) or tuple(value.shape) != tuple(info.shape):
            raise InputError(f"input {info.name!r} expects {info.dtype}{list(info.shape)}, "
                             f"got {value.dtype}{list(value.shape)}")
        self.tensor_view(self.blob.inputs[position])[...] = value

    def get_output(self, position: int) -> np.ndarray:
        return self.tensor_view(self.blob.outputs[position]).copy()

    # -- execution --------------------------------------------------------------------

    def run(self) -> list[np.ndarray]:
        """Run the program once over the current inputs; returns copies of the outputs."""
        for i in range(len(self.blob.steps)):
            self.run_step(i)
        return [self.get_output(k) for k in range(len(self.blob.outputs))]

    def run_step(self, i: int) -> None:
        """Run step ``i`` alone (a submit, or a host kernel); tools that check results step by step use it."""
        step = self.blob.steps[i]
        if isinstance(step, vipbin.NpuStep):
            bos = [SubmitBo(self.placement.buffers[b], self.placement.addresses[b], flags) for b, flags in step.bos]
            self.device.submit(self.streams[i].astype("<u4").tobytes(), bos, name=f"step {i} ({step.name})")
        else:
            self._run_host(i, step)

    def _run_host(self, index: int, step: vipbin.HostStep) -> None:
        """Run a host kernel; parameters that do not fit its tensors are the blob's fault.

        The compiler derives every parameter from the tensors' shapes and
        quantization, so only a corrupted or hostile blob can give a kernel a
        missing parameter or an array that does not fit; that is reported as a
        BlobError naming the step instead of escaping from inside the kernel.
        """
        ins = [None if t is None else self.tensor_view(t) for t in step.inputs]
        outs = [self.tensor_view(t) for t in step.outputs]
        try:
            HOST_OPS[step.kernel].run(ins, outs, step.params)
        except (KeyError, IndexError, ValueError, TypeError, OverflowError, ZeroDivisionError) as e:
            raise BlobError(f"step {index} ({step.name}): host kernel {step.kernel} cannot run with this blob's "
                            f"parameters and tensors ({type(e).__name__}: {e})") from None
