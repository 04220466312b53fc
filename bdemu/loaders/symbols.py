"""ELF symbols (.symtab, .dynsym): names for addresses in fault reports, and addresses for names
(function hooks, bdemu/funchooks.py).

Read only when asked, straight from the section headers with bounded reads
(the file is untrusted), so neither LIEF's import time nor a hostile section
table can hurt a run.
"""
from __future__ import annotations

import bisect
import os
import struct
from typing import NamedTuple

SHT_SYMTAB, SHT_DYNSYM = 2, 11
STT_OBJECT, STT_FUNC, STT_GNU_IFUNC = 1, 2, 10
SHN_LORESERVE = 0xFF00  # section indexes from here on are special (SHN_ABS: not an address)
MAX_TABLE = 64 << 20  # bytes of one symbol or string table read at most
MAX_SECTIONS = 4096
MAX_SYMBOLS = 1 << 20  # kept per table at most (a hostile file could list millions)


EM_ARM = 40


class Symbol(NamedTuple):
    name: str
    value: int  # link-time address (ARM: without the Thumb bit)
    size: int
    function: bool
    ifunc: bool = False  # value is the resolver's address, which returns the implementation's


class SymbolTable:
    """One ELF file's defined function and object symbols: .symtab first, then .dynsym."""

    def __init__(self, tables: list[list[Symbol]]) -> None:
        # Aliases share an address: the plainest name comes first (`free` before `__libc_free`).
        self._tables = [sorted(table, key=lambda symbol: (symbol.value, len(symbol.name) - len(symbol.name.lstrip("_")),
                                                          len(symbol.name)))
                        for table in tables if table]
        self._values = [[symbol.value for symbol in table] for table in self._tables]
        self._named: dict[str, Symbol] = {}
        for table in self._tables:
            for symbol in table:
                known = self._named.get(symbol.name)
                if known is None or (symbol.function and not known.function):
                    self._named[symbol.name] = symbol

    def nearest(self, address: int) -> tuple[str, int] | None:
        """(name, offset) of the closest symbol at or below `address` that does not end before it."""
        for table, values in zip(self._tables, self._values):
            index = bisect.bisect_right(values, address)
            while index:
                index -= 1
                symbol = table[index]
                if not symbol.size or address < symbol.value + symbol.size:
                    first = bisect.bisect_left(values, symbol.value)  # the first of equal values wins
                    symbol = next(s for s in table[first:index + 1]
                                  if not s.size or address < s.value + s.size)
                    return symbol.name, address - symbol.value
        return None

    def named(self, name: str) -> Symbol | None:
        return self._named.get(name)

    def functions(self) -> list[Symbol]:
        """Every function symbol, once per name."""
        return [symbol for symbol in self._named.values() if symbol.function]


def read_symbols(path: str) -> SymbolTable:
    """The file's symbols; an empty table if it has none or they cannot be read."""
    try:
        with open(path, "rb") as handle:
            return SymbolTable(_read(handle.fileno()))
    except (OSError, OverflowError, struct.error, ValueError):
        return SymbolTable([])


def nearest_symbol(path: str, address: int) -> tuple[str, int] | None:
    """(name, offset) of the function or object symbol at or below `address` (a link-time
    address, before any load bias), or None if the file has no usable symbols."""
    return read_symbols(path).nearest(address)


def _read(fd: int) -> list[list[Symbol]]:
    ident = os.pread(fd, 64, 0)
    if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        return []
    wide = ident[4] == 2
    end = "<" if ident[5] == 1 else ">"
    machine, = struct.unpack_from(end + "H", ident, 18)
    if wide:
        shoff, = struct.unpack_from(end + "Q", ident, 40)
        shentsize, shnum = struct.unpack_from(end + "HH", ident, 58)
    else:
        shoff, = struct.unpack_from(end + "I", ident, 32)
        shentsize, shnum = struct.unpack_from(end + "HH", ident, 46)
    if not shoff or not 0 < shnum <= MAX_SECTIONS or shentsize < (64 if wide else 40):
        return []
    raw = os.pread(fd, shentsize * shnum, shoff)
    sections = []
    for index in range(len(raw) // shentsize):
        layout = end + ("IIQQQQIIQQ" if wide else "IIIIIIIIII")
        _, kind, _, _, offset, size, link, _, _, entsize = struct.unpack_from(layout, raw, index * shentsize)
        sections.append((kind, offset, size, link, entsize))
    tables = []
    for wanted in (SHT_SYMTAB, SHT_DYNSYM):
        for kind, offset, size, link, entsize in sections:
            if kind != wanted or link >= len(sections) or entsize < (24 if wide else 16):
                continue
            strings_offset, strings_size = sections[link][1], min(sections[link][2], MAX_TABLE)
            table = os.pread(fd, min(size, MAX_TABLE), offset)
            strings = os.pread(fd, strings_size, strings_offset)
            tables.append(_symbols(table, strings, entsize, wide, end, thumb_bit=machine == EM_ARM))
    return tables


def _symbols(table: bytes, strings: bytes, entsize: int, wide: bool, end: str, thumb_bit: bool) -> list[Symbol]:
    found = []
    layout = struct.Struct(end + ("IBBHQQ" if wide else "IIIBBH"))
    for start in range(0, len(table) - entsize + 1, entsize):
        if wide:
            name_at, info, _, shndx, value, size = layout.unpack_from(table, start)
        else:
            name_at, value, size, info, _, shndx = layout.unpack_from(table, start)
        kind = info & 0xF
        if kind not in (STT_FUNC, STT_OBJECT, STT_GNU_IFUNC) or shndx == 0 or shndx >= SHN_LORESERVE:
            continue
        terminator = strings.find(b"\0", name_at)
        name = strings[name_at:terminator if terminator >= 0 else None].decode(errors="replace")
        if name:
            if kind != STT_OBJECT and thumb_bit:
                value &= ~1
            found.append(Symbol(name, value, size, kind != STT_OBJECT, kind == STT_GNU_IFUNC))
            if len(found) >= MAX_SYMBOLS:
                break
    return found
