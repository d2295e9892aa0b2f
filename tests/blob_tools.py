"""Test helpers for corrupting .vipbin files on purpose."""

from __future__ import annotations

import zlib

from npuc import vipbin


def fix_crcs(raw: bytearray) -> bytearray:
    """Recompute section and header CRCs in place, so that a corruption reaches the reader's semantic checks.

    Table entries that a corruption made unreadable are left alone (the reader must reject those anyway).
    """
    h = vipbin.HEADER.unpack(raw)
    for i in range(min(h["section_count"], vipbin.MAX_SECTIONS)):
        at = h["section_table_offset"] + i * vipbin.SECTION.size
        if at + vipbin.SECTION.size > len(raw):
            break
        s = vipbin.SECTION.unpack(raw, at)
        s["crc32"] = zlib.crc32(bytes(raw[s["offset"]:s["offset"] + s["size"]]))
        raw[at:at + vipbin.SECTION.size] = vipbin.SECTION.pack(s)
    h = vipbin.HEADER.unpack(raw)
    h["header_crc32"] = 0
    h["header_crc32"] = zlib.crc32(vipbin.HEADER.pack(h))
    raw[:vipbin.HEADER.size] = vipbin.HEADER.pack(h)
    return raw
