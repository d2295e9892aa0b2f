"""Front-end command words and the NPU registers the command stream writes.

Source: ../shared/docs/vipnano-tp-cmdstream-uapi.md sections 4.1-4.3 (values
from Mesa's rnndb headers, confirmed by the golden streams).  The backend
encodes streams with these, the simulator parses with them, and the C runtime
template renders them, so none of these numbers appears anywhere else.
"""

from __future__ import annotations

from functools import lru_cache

from .fields import Layout, fields_from_rows

#: Command opcodes (bits 31:27 of a command word).
OP_LOAD_STATE = 1
OP_END = 2
OP_NOP = 3
OP_WAIT = 7
OP_LINK = 8
OP_STALL = 9

#: LOAD_STATE header word: opcode, fixed-point flag, value count and register word address.
LOAD_STATE = Layout("load_state", 1, fields_from_rows([
    ("address", 0, 0, 16),  # register byte address >> 2
    ("count", 0, 16, 10),   # number of value words that follow (0 means 1024)
    ("fixp", 0, 26, 1),
    ("opcode", 0, 27, 5),
]))

#: Register byte addresses.
PA_SYSTEM_MODE = 0x00A28
GL_FLUSH_CACHE = 0x0380C
GL_SEMAPHORE_TOKEN = 0x03808
GL_API_MODE = 0x0384C
GL_NN_CONFIG = 0x03930
GL_OCB_REMAP_START = 0x0393C
GL_OCB_REMAP_END = 0x03940
GL_TP_CONFIG = 0x0394C
GL_UNK03950 = 0x03950
PS_NN_INST_ADDR = 0x010A0
PS_UNK10A4 = 0x010A4
PS_TP_INST_ADDR = 0x010B8

#: Names for display (stream dumps, simulator errors, npuc inspect).
REGISTER_NAMES = {
    PA_SYSTEM_MODE: "PA_SYSTEM_MODE",
    GL_FLUSH_CACHE: "GL_FLUSH_CACHE",
    GL_SEMAPHORE_TOKEN: "GL_SEMAPHORE_TOKEN",
    GL_API_MODE: "GL_API_MODE",
    GL_NN_CONFIG: "GL_NN_CONFIG",
    GL_OCB_REMAP_START: "GL_OCB_REMAP_START",
    GL_OCB_REMAP_END: "GL_OCB_REMAP_END",
    GL_TP_CONFIG: "GL_TP_CONFIG",
    GL_UNK03950: "GL_UNK03950",
    PS_NN_INST_ADDR: "PS_NN_INST_ADDR",
    PS_UNK10A4: "PS_UNK10A4",
    PS_TP_INST_ADDR: "PS_TP_INST_ADDR",
}

#: Register values.
PA_SYSTEM_MODE_INIT = 0x11        # PROVOKING_VERTEX_LAST | HALF_PIXEL_CENTER
GL_API_MODE_OPENCL = 2
GL_NN_CONFIG_SMALL_BATCH = 0x10   # serialise jobs; NN_CORE_COUNT field 0 = all cores powered
GL_FLUSH_CACHE_NPU = 0xC23        # DEPTH | COLOR | SHADER_L1 | UNK10 | UNK11, as Mesa ends a batch
GL_UNK03950_TP_SPLIT = 0x8        # written before non-last cores of a split PAD/RELU/ABS TP job
TP_INST_ADDR_CHAINED = 0x1        # low address bit on non-last cores of a split TP job

#: The low bits of an INST_ADDR value are flags, not address: descriptors are page aligned.
INST_ADDR_FLAG_MASK = 0x3F


@lru_cache(maxsize=None)
def _load_state_header(register: int) -> int:
    return LOAD_STATE.pack_words({"opcode": OP_LOAD_STATE, "count": 1, "address": register >> 2})[0]


def load_state(register: int, value: int) -> list[int]:
    """The two words that write ``value`` to ``register`` (the header word of each register computed once)."""
    return [_load_state_header(register), value & 0xFFFFFFFF]
