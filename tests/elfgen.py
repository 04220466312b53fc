"""Build tiny static ELF executables from keystone-assembled snippets, for unit tests."""
from __future__ import annotations

import struct

import keystone

from bdemu.cpu import by_name

BASE = 0x400000


#: keystone KS_MODE_THUMB, for ARM snippets entered in Thumb state.
KS_MODE_THUMB = 16


def assemble(isa: str, source: str, thumb: bool = False) -> bytes:
    arch = by_name(isa)
    encoding, _ = keystone.Ks(arch.ks_arch, KS_MODE_THUMB if thumb else arch.ks_mode).asm(source, BASE + 0x1000)
    return bytes(encoding)


def make_elf(isa: str, source: str, thumb: bool = False) -> bytes:
    """An ET_EXEC of the ISA's class and byte order whose code (at BASE+0x1000) is `source`.

    `thumb` assembles ARM Thumb code and sets bit 0 of the entry point, as a linker does.
    """
    return elf_with_code(isa, assemble(isa, source, thumb), thumb)


def elf_with_code(isa: str, code: bytes, thumb: bool = False) -> bytes:
    """The same ELF around machine code given as bytes (for ISAs keystone cannot assemble)."""
    arch = by_name(isa)
    entry = BASE + 0x1000 + int(thumb)
    size = 0x1000 + len(code)
    end, data = ("<", 1) if arch.byteorder == "little" else (">", 2)
    if arch.bits == 64:
        header = struct.pack(end + "4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, data, 1, 0, 0, bytes(7), 2,
                             arch.elf_machine, 1, entry, 64, 0, 0, 64, 56, 1, 0, 0, 0)
        segment = struct.pack(end + "IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x1000)
    else:
        header = struct.pack(end + "4sBBBBB7sHHIIIIIHHHHHH", b"\x7fELF", 1, data, 1, 0, 0, bytes(7), 2,
                             arch.elf_machine, 1, entry, 52, 0, 0, 52, 32, 1, 0, 0, 0)
        segment = struct.pack(end + "IIIIIIII", 1, 0, BASE, BASE, size, size, 5, 0x1000)
    return (header + segment).ljust(0x1000, b"\0") + code


def write_elf(tmp_path, isa: str, source: str, name: str = "snippet", thumb: bool = False) -> str:
    path = tmp_path / name
    path.write_bytes(make_elf(isa, source, thumb))
    path.chmod(0o755)
    return str(path)


def with_symbols(image: bytes, isa: str, symbols: dict[str, tuple[int, int]]) -> bytes:
    """`image` (from elf_with_code/make_elf) plus .symtab/.strtab section headers: name -> (address,
    size) function symbols (ARM Thumb functions: address | 1, as linkers write them)."""
    arch = by_name(isa)
    wide, end = arch.bits == 64, "<" if arch.byteorder == "little" else ">"
    strtab, symtab = bytearray(b"\0"), bytearray(24 if wide else 16)
    for name, (address, size) in symbols.items():
        if wide:
            symtab += struct.pack(end + "IBBHQQ", len(strtab), 0x12, 0, 1, address, size)
        else:
            symtab += struct.pack(end + "IIIBBH", len(strtab), address, size, 0x12, 0, 1)
        strtab += name.encode() + b"\0"
    data = bytearray(image)
    symtab_at = len(data)
    data += symtab
    strtab_at = len(data)
    data += strtab
    shoff = (len(data) + 7) & ~7
    data = data.ljust(shoff, b"\0")
    if wide:
        data += bytes(64)
        data += struct.pack(end + "IIQQQQIIQQ", 0, 2, 0, 0, symtab_at, len(symtab), 2, 1, 8, 24)
        data += struct.pack(end + "IIQQQQIIQQ", 0, 3, 0, 0, strtab_at, len(strtab), 0, 0, 1, 0)
        struct.pack_into(end + "Q", data, 40, shoff)
        struct.pack_into(end + "HHH", data, 58, 64, 3, 0)
    else:
        data += bytes(40)
        data += struct.pack(end + "IIIIIIIIII", 0, 2, 0, 0, symtab_at, len(symtab), 2, 1, 4, 16)
        data += struct.pack(end + "IIIIIIIIII", 0, 3, 0, 0, strtab_at, len(strtab), 0, 0, 1, 0)
        struct.pack_into(end + "I", data, 32, shoff)
        struct.pack_into(end + "HHH", data, 46, 40, 3, 0)
    return bytes(data)
