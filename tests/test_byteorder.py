"""Byte order: what a big-endian guest (mips) reads and writes where the host kernel keeps binary
data in its own byte order, each test run on both MIPS byte orders with keystone-assembled guests."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from bdemu import Emulator
from bdemu.cpu import by_name
from elfgen import write_elf

MIPS = ["mipsel", "mips"]


def _numbers(isa: str) -> dict[str, int]:
    return by_name(isa).syscall_by_name


def _run(path: str, cwd: str | None = None):
    return Emulator(path, argv=[path], env={}, cwd=cwd).run(capture_output=True, timeout=30)


def _word(text: bytes, isa: str) -> tuple[int, int]:
    """Up to 4 bytes as the (high, low) halves of the word that stores them in the ISA's order."""
    word = int.from_bytes(text.ljust(4, b"\0"), by_name(isa).byteorder)
    return word >> 16, word & 0xFFFF


@pytest.mark.parametrize("isa", MIPS)
def test_eventfd_counter_in_guest_byte_order(isa, tmp_path):
    """eventfd's 8-byte counter is read and written in the guest's byte order (the host kernel
    uses its own): eventfd2(5), write 3, read 8. The exit status is the low word read plus 64 if
    the high word is not 0."""
    numbers = _numbers(isa)
    low, high = (0, 4) if by_name(isa).byteorder == "little" else (4, 0)
    guest = write_elf(tmp_path, isa, f"""
        addiu $sp, $sp, -32
        addiu $a0, $zero, 5
        move $a1, $zero
        addiu $v0, $zero, {numbers['eventfd2']}
        syscall
        move $s0, $v0
        addiu $t0, $zero, 3
        sw $t0, {low}($sp)
        sw $zero, {high}($sp)
        move $a0, $s0
        move $a1, $sp
        addiu $a2, $zero, 8
        addiu $v0, $zero, {numbers['write']}
        syscall
        sw $zero, 8($sp)
        sw $zero, 12($sp)
        move $a0, $s0
        addiu $a1, $sp, 8
        addiu $a2, $zero, 8
        addiu $v0, $zero, {numbers['read']}
        syscall
        lw $a0, {8 + low}($sp)
        lw $t0, {8 + high}($sp)
        sltu $t0, $zero, $t0
        sll $t0, $t0, 6
        addu $a0, $a0, $t0
        addiu $v0, $zero, {numbers['exit_group']}
        syscall
    """)
    result = _run(guest)
    assert (result.exit_code, result.reason) == (8, "exit"), result.message


@pytest.mark.parametrize("isa", MIPS)
def test_inotify_event_fields_in_guest_byte_order(isa, tmp_path):
    """struct inotify_event's 32-bit fields reach the guest in its byte order: watch "." for
    IN_CREATE, create "x", read the event. Bit 0: wd is 1, bit 1: mask is IN_CREATE, bit 2: the
    name's length is 4 to 16 (padded)."""
    numbers = _numbers(isa)
    dot, name = _word(b".", isa), _word(b"x", isa)
    guest = write_elf(tmp_path, isa, f"""
        addiu $sp, $sp, -128
        lui $t0, {dot[0]}
        ori $t0, $t0, {dot[1]}
        sw $t0, 0($sp)
        lui $t0, {name[0]}
        ori $t0, $t0, {name[1]}
        sw $t0, 4($sp)
        move $a0, $zero
        addiu $v0, $zero, {numbers['inotify_init1']}
        syscall
        move $s0, $v0
        move $a0, $s0
        move $a1, $sp
        addiu $a2, $zero, 0x100
        addiu $v0, $zero, {numbers['inotify_add_watch']}
        syscall
        addiu $a0, $zero, -100
        addiu $a1, $sp, 4
        addiu $a2, $zero, 0x101
        addiu $a3, $zero, 0x1a4
        addiu $v0, $zero, {numbers['openat']}
        syscall
        move $a0, $s0
        addiu $a1, $sp, 16
        addiu $a2, $zero, 64
        addiu $v0, $zero, {numbers['read']}
        syscall
        lw $t0, 16($sp)
        xori $t0, $t0, 1
        sltiu $s1, $t0, 1
        lw $t0, 20($sp)
        xori $t0, $t0, 0x100
        sltiu $t0, $t0, 1
        sll $t0, $t0, 1
        or $s1, $s1, $t0
        lw $t0, 28($sp)
        addiu $t0, $t0, -4
        sltiu $t0, $t0, 13
        sll $t0, $t0, 2
        or $a0, $s1, $t0
        addiu $v0, $zero, {numbers['exit_group']}
        syscall
    """)
    result = _run(guest, cwd=str(tmp_path))
    assert (result.exit_code, result.reason) == (7, "exit"), result.message


@pytest.mark.parametrize("isa", MIPS)
def test_terminal_window_size_in_guest_byte_order(isa, tmp_path):
    """TIOCGWINSZ's struct winsize (four unsigned shorts) on a terminal of 40 rows and 100
    columns: the guest reads ws_row = 40 and ws_col = 100 as halfwords. Exit status: rows + 100 *
    (columns == 100)."""
    numbers = _numbers(isa)
    guest = write_elf(tmp_path, isa, f"""
        addiu $sp, $sp, -32
        move $a0, $zero
        lui $a1, 0x4008
        ori $a1, $a1, 0x7468
        move $a2, $sp
        addiu $v0, $zero, {numbers['ioctl']}
        syscall
        lhu $s0, 0($sp)
        lhu $t0, 2($sp)
        xori $t0, $t0, 100
        sltiu $t0, $t0, 1
        addiu $t1, $zero, 100
        mul $t0, $t0, $t1
        addu $a0, $s0, $t0
        addiu $v0, $zero, {numbers['exit_group']}
        syscall
    """)
    controller, terminal = pty.openpty()
    try:
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("@4H", 40, 100, 0, 0))
        done = subprocess.run([sys.executable, "-P", "-m", "bdemu", "run", guest], stdin=terminal,
                              capture_output=True, timeout=60, env={**os.environ})
    finally:
        os.close(controller)
        os.close(terminal)
    assert done.returncode == 140, done.stderr
