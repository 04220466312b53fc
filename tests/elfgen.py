"""Build tiny static ELF executables from keystone-assembled snippets, for unit tests."""
from __future__ import annotations

import struct

import keystone

from bdemu.cpu import by_name

BASE = 0x400000


def assemble(isa: str, source: str) -> bytes:
    arch = by_name(isa)
    encoding, _ = keystone.Ks(arch.ks_arch, arch.ks_mode).asm(source, BASE + 0x1000)
    return bytes(encoding)


def make_elf(isa: str, source: str) -> bytes:
    """A 64-bit little-endian ET_EXEC whose code (at BASE+0x1000) is `source`."""
    return elf_with_code(isa, assemble(isa, source))


def elf_with_code(isa: str, code: bytes) -> bytes:
    """The same ELF around machine code given as bytes (for ISAs keystone cannot assemble)."""
    arch = by_name(isa)
    header = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, bytes(7), 2,
                         arch.elf_machine, 1, BASE + 0x1000, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, 0x1000 + len(code), 0x1000 + len(code), 0x1000)
    return (header + segment).ljust(0x1000, b"\0") + code


def write_elf(tmp_path, isa: str, source: str, name: str = "snippet") -> str:
    path = tmp_path / name
    path.write_bytes(make_elf(isa, source))
    path.chmod(0o755)
    return str(path)
