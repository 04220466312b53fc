"""Nearest symbol of an address, from an ELF's .symtab or .dynsym, for fault reports.

Read only on the fault path, straight from the section headers with bounded
reads (the file is untrusted), so neither LIEF's import time nor a hostile
section table can hurt a run.
"""
from __future__ import annotations

import os
import struct

SHT_SYMTAB, SHT_DYNSYM = 2, 11
STT_OBJECT, STT_FUNC = 1, 2
MAX_TABLE = 64 << 20  # bytes of one symbol or string table read at most
MAX_SECTIONS = 4096


def nearest_symbol(path: str, address: int) -> tuple[str, int] | None:
    """(name, offset) of the function or object symbol at or below `address` (a link-time
    address, before any load bias), or None if the file has no usable symbols."""
    try:
        with open(path, "rb") as handle:
            return _lookup(handle.fileno(), address)
    except (OSError, OverflowError, struct.error, ValueError):
        return None


def _lookup(fd: int, address: int) -> tuple[str, int] | None:
    ident = os.pread(fd, 64, 0)
    if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        return None
    wide = ident[4] == 2
    end = "<" if ident[5] == 1 else ">"
    if wide:
        shoff, = struct.unpack_from(end + "Q", ident, 40)
        shentsize, shnum = struct.unpack_from(end + "HH", ident, 58)
    else:
        shoff, = struct.unpack_from(end + "I", ident, 32)
        shentsize, shnum = struct.unpack_from(end + "HH", ident, 46)
    if not shoff or not 0 < shnum <= MAX_SECTIONS or shentsize < (64 if wide else 40):
        return None
    raw = os.pread(fd, shentsize * shnum, shoff)
    sections = []
    for index in range(len(raw) // shentsize):
        layout = end + ("IIQQQQIIQQ" if wide else "IIIIIIIIII")
        _, kind, _, _, offset, size, link, _, _, entsize = struct.unpack_from(layout, raw, index * shentsize)
        sections.append((kind, offset, size, link, entsize))
    best: tuple[int, str] | None = None
    for wanted in (SHT_SYMTAB, SHT_DYNSYM):
        for kind, offset, size, link, entsize in sections:
            if kind != wanted or link >= len(sections) or entsize < (24 if wide else 16):
                continue
            strings_offset, strings_size = sections[link][1], min(sections[link][2], MAX_TABLE)
            table = os.pread(fd, min(size, MAX_TABLE), offset)
            strings = os.pread(fd, strings_size, strings_offset)
            best = _best(table, strings, entsize, wide, end, address, best)
        if best is not None:
            break
    if best is None:
        return None
    value, name = best
    return name, address - value


def _best(table: bytes, strings: bytes, entsize: int, wide: bool, end: str, address: int, best):
    for start in range(0, len(table) - entsize + 1, entsize):
        if wide:
            name_at, info, _, shndx, value, size = struct.unpack_from(end + "IBBHQQ", table, start)
        else:
            name_at, value, size, info, _, shndx = struct.unpack_from(end + "IIIBBH", table, start)
        if info & 0xF not in (STT_FUNC, STT_OBJECT) or shndx == 0 or value > address:
            continue
        if size and address >= value + size:
            continue
        if best is None or value > best[0]:
            terminator = strings.find(b"\0", name_at)
            name = strings[name_at:terminator if terminator >= 0 else None].decode(errors="replace")
            if name:
                best = (value, name)
    return best
