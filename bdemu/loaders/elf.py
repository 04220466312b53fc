"""Describe an ELF file: class, machine, program headers, entry, interpreter.

Only the ELF header and program headers are read (never the whole file), and
every field is checked before use, because the file is untrusted input. The
description is all the loader needs; LIEF is used lazily elsewhere for
symbols, since importing it costs half a second that `bdemu run hello` cannot
afford.
"""
from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass

from ..cpu import Arch, for_elf

PT_LOAD, PT_INTERP, PT_PHDR, PT_GNU_STACK = 1, 3, 6, 0x6474E551
ET_EXEC, ET_DYN = 2, 3
MAX_PHNUM = 512
MAX_SEGMENT = 1 << 36  # 64 GiB: more than any real image, far less than the address space


class NotExecutable(Exception):
    """The file is not a runnable ELF for a supported ISA (exit status 126)."""


@dataclass(frozen=True)
class Segment:
    vaddr: int
    memsz: int
    offset: int
    filesz: int
    flags: int  # PF_X=1, PF_W=2, PF_R=4


@dataclass(frozen=True)
class ElfImage:
    path: str
    arch: Arch
    elf_type: int
    entry: int
    phoff: int
    phentsize: int
    phnum: int
    segments: tuple[Segment, ...]
    interpreter: str | None
    file_size: int

    @property
    def is_pie(self) -> bool:
        return self.elf_type == ET_DYN

    @property
    def span(self) -> tuple[int, int]:
        """Lowest and highest virtual address covered by PT_LOAD segments."""
        return (min(s.vaddr for s in self.segments), max(s.vaddr + s.memsz for s in self.segments))


def read_elf(path: str) -> ElfImage:
    """Parse and validate the headers of `path`, raising NotExecutable with a reason."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except IsADirectoryError:
        raise NotExecutable("is a directory") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise NotExecutable("is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise NotExecutable("not a regular file")
        return _parse(path, fd, info.st_size)
    finally:
        os.close(fd)


def _parse(path: str, fd: int, size: int) -> ElfImage:
    ident = os.pread(fd, 64, 0)
    if len(ident) < 16 or ident[:4] != b"\x7fELF":
        if ident[:2] == b"#!":
            raise NotExecutable("a script, not an ELF file")
        raise NotExecutable("not an ELF file" if ident else "empty file")
    bits = {1: 32, 2: 64}.get(ident[4])
    byteorder = {1: "little", 2: "big"}.get(ident[5])
    if bits is None or byteorder is None:
        raise NotExecutable("invalid ELF class or data encoding")
    end = "<" if byteorder == "little" else ">"
    header_size = 64 if bits == 64 else 52
    if len(ident) < header_size:
        raise NotExecutable("truncated ELF header")
    if bits == 64:
        e_type, machine, _, entry, phoff, _, _, _, phentsize, phnum = struct.unpack_from(
            end + "HHIQQQIHHH", ident, 16)
    else:
        e_type, machine, _, entry, phoff, _, _, _, phentsize, phnum = struct.unpack_from(
            end + "HHIIIIIHHH", ident, 16)
    arch = for_elf(machine, bits, byteorder)
    if arch is None:
        raise NotExecutable(f"unsupported architecture (ELF machine {machine}, {bits}-bit {byteorder} endian)")
    if e_type not in (ET_EXEC, ET_DYN):
        raise NotExecutable(f"not an executable (ELF type {e_type})")
    want_phentsize = 56 if bits == 64 else 32
    if phentsize != want_phentsize or not 0 < phnum <= MAX_PHNUM:
        raise NotExecutable("invalid program header table")
    if phoff + phnum * phentsize > size:
        raise NotExecutable("program headers past the end of the file")
    table = os.pread(fd, phnum * phentsize, phoff)
    segments: list[Segment] = []
    interpreter = None
    for index in range(phnum):
        if bits == 64:
            p_type, flags, offset, vaddr, _, filesz, memsz, _ = struct.unpack_from(
                end + "IIQQQQQQ", table, index * phentsize)
        else:
            p_type, offset, vaddr, _, filesz, memsz, flags, _ = struct.unpack_from(
                end + "IIIIIIII", table, index * phentsize)
        if p_type == PT_LOAD:
            if memsz == 0:
                continue
            if filesz > memsz or memsz > MAX_SEGMENT or offset + filesz > size:
                raise NotExecutable(f"invalid PT_LOAD segment {index}")
            if vaddr + memsz > arch.word_mask:
                raise NotExecutable(f"PT_LOAD segment {index} outside the address space")
            segments.append(Segment(vaddr, memsz, offset, filesz, flags))
        elif p_type == PT_INTERP:
            if filesz > 4096 or offset + filesz > size:
                raise NotExecutable("invalid PT_INTERP")
            interpreter = os.pread(fd, filesz, offset).split(b"\0")[0].decode(errors="replace")
    if not segments:
        raise NotExecutable("no loadable segments")
    segments.sort(key=lambda s: s.vaddr)
    for first, second in zip(segments, segments[1:]):
        if (first.vaddr + first.memsz + 4095) & ~4095 > second.vaddr & ~4095 and \
                first.vaddr + first.memsz > second.vaddr:
            raise NotExecutable("overlapping PT_LOAD segments")
    low, high = segments[0].vaddr, max(s.vaddr + s.memsz for s in segments)
    if high - low > MAX_SEGMENT:
        raise NotExecutable("image too large")
    if not any(s.vaddr <= entry < s.vaddr + s.memsz for s in segments):
        raise NotExecutable("entry point outside every segment")
    return ElfImage(path, arch, e_type, entry, phoff, phentsize, phnum, tuple(segments),
                    interpreter, size)
