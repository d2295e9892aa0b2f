"""The simulator behind the fake etnaviv device (tests/fake_etnaviv/fake_etnaviv.c).

Started by the fake library at a process's first GEM_SUBMIT as ``python sim_server.py <socket fd>``; it
lives as long as the render node stays open.  Over the socket it receives

* NEW (op 1): ``handle, 0, size`` plus the buffer's memfd (SCM_RIGHTS): the memfd is mapped and becomes
  the storage of a :class:`~npuc.sim.device.SimDevice` buffer, so the simulator reads and writes the very
  pages the runtime mapped;
* SUBMIT (op 2): ``nr_bos, stream_size``, then ``nr_bos`` records ``handle, flags, presumed (64 bits)``,
  then the stream bytes: one ``SimDevice.submit``.

and answers each SUBMIT with ``status, length, message`` (status 0: done; 1: the simulator refused, the
message says why).  All integers are native 32-bit words, as the C side writes them.
"""

from __future__ import annotations

import mmap
import os
import socket
import struct
import sys
import traceback

import numpy as np

from npuc.hw.target import VIPNANO_QI, NpuIdentity, Target, target_for_identity
from npuc.errors import NpucError
from npuc.hw.kernel_abi import DeviceBuffer, SubmitBo
from npuc.sim.device import SimDevice

OP_NEW = 1
OP_SUBMIT = 2
#: Longest message sent back (the fake reads at most 4 KiB).
MAX_MESSAGE = 2000


class Channel:
    """Exact-length reads from the socket, collecting any descriptors passed along."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fds: list[int] = []

    def read(self, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            chunk, fds, _, _ = socket.recv_fds(self.sock, n - len(data), 4)
            self.fds.extend(fds)
            if not chunk:
                return None
            data += chunk
        return data


def simulated_target() -> Target:
    """The core the fake reports: npuc's A311D unless FAKE_ETNAVIV_MODEL/REVISION/CUSTOMER_ID name another."""
    numbers = [int(os.environ[f"FAKE_ETNAVIV_{p}"], 0) if f"FAKE_ETNAVIV_{p}" in os.environ else None
               for p in ("MODEL", "REVISION", "CUSTOMER_ID")]
    if numbers == [None] * 3:
        return VIPNANO_QI
    target = target_for_identity(NpuIdentity(numbers[0], numbers[1], 0, numbers[2], 0))
    if target is None:
        raise SystemExit(f"sim_server: no npuc target has the identity {numbers}")
    return target


def serve(sock: socket.socket) -> None:
    device = SimDevice(simulated_target())
    buffers: dict[int, DeviceBuffer] = {}
    channel = Channel(sock)
    submits = 0
    while True:
        head = channel.read(8)
        if head is None:
            return
        op, length = struct.unpack("=II", head)
        body = channel.read(length)
        if body is None:
            return
        if op == OP_NEW:
            handle, _, size = struct.unpack("=IIQ", body)
            fd = channel.fds.pop(0)
            pages = mmap.mmap(fd, -(-size // mmap.PAGESIZE) * mmap.PAGESIZE)
            os.close(fd)
            buffer = device.new_buffer(size)
            buffer.data = np.frombuffer(pages, dtype=np.uint8, count=size)
            buffers[handle] = buffer
            continue
        if op != OP_SUBMIT:
            raise SystemExit(f"sim_server: unknown message {op}")
        nr_bos, stream_size = struct.unpack_from("=II", body)
        bos = [struct.unpack_from("=IIQ", body, 8 + 16 * i) for i in range(nr_bos)]
        stream = body[8 + 16 * nr_bos:8 + 16 * nr_bos + stream_size]
        try:
            device.submit(stream, [SubmitBo(buffers[h], presumed, flags) for h, flags, presumed in bos],
                          name=f"submit {submits}")
            status, message = 0, b""
        except NpucError as e:
            status, message = 1, str(e).encode()
        except Exception as e:  # a simulator bug must fail the submit, not hang the runtime
            traceback.print_exc()
            status, message = 1, f"simulator crashed: {type(e).__name__}: {e}".encode()
        submits += 1
        message = message[:MAX_MESSAGE]
        sock.sendall(struct.pack("=II", status, len(message)) + message)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(sock)
    finally:
        sock.close()


if __name__ == "__main__":
    main()
