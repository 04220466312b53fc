"""Independent readers for the trace exports and a tiny ELF builder for the trace tests."""
from __future__ import annotations

import re
import struct


def read_drcov(path: str):
    """-> (header dict, modules [(id, base, end, path)], blocks [(offset, size, module id)]): drcov v2."""
    data = open(path, "rb").read()
    lines, position = [], 0
    while True:
        end = data.index(b"\n", position)
        line = data[position:end].decode()
        position = end + 1
        lines.append(line)
        if line.startswith("BB Table:"):
            break
    assert lines[0] == "DRCOV VERSION: 2", lines[0]
    assert lines[1].startswith("DRCOV FLAVOR: ")
    count = int(re.fullmatch(r"Module Table: version 2, count (\d+)", lines[2]).group(1))
    assert lines[3] == "Columns: id, base, end, entry, checksum, timestamp, path"
    modules = []
    for line in lines[4:4 + count]:
        ident, base, end, _entry, _sum, _time, path = [part.strip() for part in line.split(",", 6)]
        assert base.startswith("0x") and end.startswith("0x")
        modules.append((int(ident), int(base, 16), int(end, 16), path))
    blocks_count = int(re.fullmatch(r"BB Table: (\d+) bbs", lines[4 + count]).group(1))
    body = data[position:]
    assert len(body) == 8 * blocks_count
    blocks = [struct.unpack_from("<IHH", body, 8 * i) for i in range(blocks_count)]
    return {"count": count}, modules, blocks


TENET_LINE = re.compile(r"^([a-z0-9_]+=0x[0-9a-f]+)(,([a-z0-9_]+=0x[0-9a-f]+|m[rw]=0x[0-9a-f]+:[0-9a-f]*))*$")


def elf64(code: bytes, base: int = 0x400000, machine: int = 62) -> bytes:
    """A minimal static ET_EXEC: ELF header, one PT_LOAD (R+X) mapping the whole file, code after."""
    entry_offset = 64 + 56
    total = entry_offset + len(code)
    header = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, 2, machine, 1,
                         base + entry_offset, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, total, total, 0x1000)
    return header + phdr + code
