"""Syscall-layer rules checked with tiny assembled guests."""
from __future__ import annotations

from bdemu import Emulator

from conftest import run_bdemu
from elfgen import write_elf

UNKNOWN_THEN_EXIT = """
    mov eax, 999; syscall
    mov eax, 999; syscall
    mov rdi, rax; neg rdi
    mov eax, 60; syscall
"""


def test_unknown_syscall_is_enosys_and_warns_once(tmp_path):
    """STYLE habit 3: an unknown syscall warns once per number and returns -ENOSYS (38)."""
    guest = write_elf(tmp_path, "x86_64", UNKNOWN_THEN_EXIT)
    done = run_bdemu("run", guest)
    assert done.returncode == 38
    warnings = [l for l in done.stderr.decode().splitlines() if "999" in l]
    assert len(warnings) == 1 and warnings[0].startswith("bdemu: ")


def test_strict_mode_stops_with_125(tmp_path):
    guest = write_elf(tmp_path, "x86_64", UNKNOWN_THEN_EXIT)
    done = run_bdemu("run", "--strict", guest)
    assert done.returncode == 125
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and "999" in lines[0] and lines[0].startswith("bdemu: ")


def test_aarch64_svc_result_lands_in_x0(tmp_path):
    guest = write_elf(tmp_path, "aarch64", """
        mov x8, #172        // getpid
        svc #0
        mov x19, x0
        mov x8, #173        // getppid
        svc #0
        mov x0, #7
        mov x8, #93         // exit
        svc #0
    """)
    emu = Emulator(guest)
    result = emu.run()
    assert result.exit_code == 7 and result.reason == "exit"
    import os
    assert emu.reg("x19") == os.getpid()


def test_mmap_munmap_and_maps_view(tmp_path):
    """Anonymous mmap hands out fresh zeroed pages that /proc/self/maps lists; munmap removes them."""
    guest = write_elf(tmp_path, "x86_64", """
        mov edi, 0; mov esi, 0x3000; mov edx, 3; mov r10d, 0x22; mov r8, -1; mov r9d, 0
        mov eax, 9; syscall          // mmap
        mov r12, rax
        mov rbx, [rax + 0x2ff8]      // zero-filled
        mov qword ptr [rax], 0x55
        mov rdi, rbx
        mov eax, 60; syscall
    """)
    emu = Emulator(guest)
    result = emu.run()
    assert result.exit_code == 0
    address = emu.reg("r12")
    assert emu.read_memory(address, 1) == b"\x55"
    assert f"{address:08x}-{address + 0x3000:08x} rw-p" in emu.memory.maps_text()
