"""The loader and the start-up state: what a Linux process sees at its first instruction."""
from __future__ import annotations

import pytest
from unicorn import Uc

from bdemu import Emulator
from bdemu.cpu import by_name
from bdemu.loaders.stack import AT_ENTRY, AT_EXECFN, AT_PAGESZ, AT_PHDR, AT_PHNUM, AT_RANDOM
from bdemu.memory import AddressSpace, OutOfMemory

from conftest import ROOT, sample


def _auxv(emu: Emulator) -> tuple[list[bytes], list[bytes], dict[int, int]]:
    word, order = emu.arch.word_size, emu.arch.byteorder
    sp = emu.reg("sp")

    def at(address):
        return int.from_bytes(emu.read_memory(address, word), order)

    def cstring(address):
        data = emu.read_memory(address, min(256, emu.arch.stack_top - address))
        return data[:data.index(b"\0")]

    argc = at(sp)
    argv = [cstring(at(sp + word * (1 + i))) for i in range(argc)]
    cursor = sp + word * (argc + 2)
    envp = []
    while at(cursor):
        envp.append(cstring(at(cursor)))
        cursor += word
    cursor += word
    auxv = {}
    while True:
        key, value = at(cursor), at(cursor + word)
        cursor += 2 * word
        if key == 0:
            break
        auxv[key] = value
    return argv, envp, auxv


def test_initial_stack_has_argv_envp_and_auxv(isa):
    emu = Emulator(str(ROOT / sample(isa, "hello")), argv=["hello", "x y"], env={"A": "1", "B": "2"})
    argv, envp, auxv = _auxv(emu)
    assert argv == [b"hello", b"x y"]
    assert envp == [b"A=1", b"B=2"]
    assert emu.reg("sp") % 16 == 0
    assert auxv[AT_PAGESZ] == 4096
    assert auxv[AT_ENTRY] == emu.pc
    assert len(emu.read_memory(auxv[AT_RANDOM], 16)) == 16
    assert int.from_bytes(emu.read_memory(auxv[AT_PHDR], 4), emu.arch.byteorder) in (6, 1)  # PT_PHDR, PT_LOAD
    assert auxv[AT_PHNUM] > 0
    execfn = emu.read_memory(auxv[AT_EXECFN], emu.arch.stack_top - auxv[AT_EXECFN])
    assert execfn.split(b"\0")[0].endswith(b"hello")


def test_x86_64_starts_with_linux_fpu_state():
    emu = Emulator(str(ROOT / sample("x86_64", "hello")))
    assert emu.reg("mxcsr") == 0x1F80
    assert emu.reg("fpcw") & 0xFFFF == 0x37F
    assert emu.reg("rdx") == 0


def test_address_space_bookkeeping():
    arch = by_name("x86_64")
    uc = Uc(arch.uc_arch, arch.uc_mode)
    space = AddressSpace(uc, 0x7F0000000000, limit=1 << 20)
    space.reserve(0x7EFFFFFF0000, 0x7F0000000000)
    first = space.find_free(0x3000)
    assert first + 0x3000 <= 0x7EFFFFFF0000  # never inside a reserved window
    space.map(first, 0x3000, 3, "anon")
    assert space.is_mapped(first, first + 0x3000)
    space.protect(first + 0x1000, 0x1000, 1)
    assert [r.perms for r in space.regions] == [3, 1, 3]
    space.unmap(first + 0x1000, 0x1000)
    assert not space.is_mapped(first, first + 0x3000)
    assert "anon" in space.maps_text()
    with pytest.raises(OutOfMemory):
        space.map(0x10000000, 2 << 20, 3)  # over the 1 MiB limit


def test_brk_grows_and_shrinks():
    arch = by_name("aarch64")
    uc = Uc(arch.uc_arch, arch.uc_mode)
    space = AddressSpace(uc, 0x7F0000000000)
    space.set_brk_start(0x600123)
    start = space.brk(0)
    assert start == 0x601000
    assert space.brk(start + 0x5000) == start + 0x5000
    uc.mem_write(start + 0x4FF0, b"x" * 16)
    assert space.brk(start + 0x1000) == start + 0x1000
    assert not space.is_mapped(start + 0x2000, start + 0x3000)
