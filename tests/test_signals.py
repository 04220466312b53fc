"""Signal delivery to guest handlers (samples/src/signals.c); the full sample's output is
compared with native/qemu runs in test_samples.py (case "signals")."""
from __future__ import annotations

import json

import pytest

from bdemu.cpu import by_name
from conftest import ISAS, ROOT, run_bdemu, sample
from elfgen import BASE, write_elf

WITH_FRAME = [name for name in ISAS if by_name(name).signal_frame is not None]


def test_signals_case_covers_every_isa_with_a_frame():
    """The differential case runs wherever delivery is implemented, and only there."""
    cases = json.loads((ROOT / "samples" / "cases.json").read_text())
    case = next(c for c in cases if c["name"] == "signals")
    assert sorted(case["isas"]) == sorted(WITH_FRAME)


@pytest.mark.parametrize("isa_name", WITH_FRAME)
def test_fault_handler_that_returns_reruns_the_instruction_until_the_timeout(isa_name):
    """Linux re-runs the faulting store after the handler returns, forever; --timeout ends it."""
    done = run_bdemu("run", "--timeout", "1", sample(isa_name, "signals"), "segv-loop")
    assert done.returncode == 124, done.stderr.decode()
    assert done.stdout == b"segv handler returned\n"
    assert "timeout reached" in done.stderr.decode()


#: A MIPS guest whose SA_SIGINFO handler (at CODE + 8) checks what the kernel hands it and
#: reports one bit per check through the interrupted s1, which it edits in the frame's sc_regs.
MIPS_HANDLER_PROBE = """
    b main
    nop
handler:
    li $t1, {handler:#x}
    xor $t1, $t9, $t1
    sltiu $t0, $t1, 1
    xori $t1, $a0, 16
    sltiu $t1, $t1, 1
    sll $t1, $t1, 1
    or $t0, $t0, $t1
    lw $t2, 0($a1)
    xori $t1, $t2, 16
    sltiu $t1, $t1, 1
    sll $t1, $t1, 2
    or $t0, $t0, $t1
    lw $t2, 4($a1)
    addiu $t1, $t2, 6
    sltiu $t1, $t1, 1
    sll $t1, $t1, 3
    or $t0, $t0, $t1
    lw $t2, 168($a2)
    xori $t1, $t2, 0x1234
    sltiu $t1, $t1, 1
    sll $t1, $t1, 4
    or $t0, $t0, $t1
    xori $t1, $ra, 0x8000
    sltiu $t1, $t1, 1
    sll $t1, $t1, 5
    or $t0, $t0, $t1
    addiu $t2, $sp, 24
    xor $t1, $t2, $a1
    sltiu $t1, $t1, 1
    sll $t1, $t1, 6
    or $t0, $t0, $t1
    sw $t0, 176($a2)
    jr $ra
    nop
main:
    addiu $sp, $sp, -32
    addiu $t0, $zero, 8
    sw $t0, 0($sp)
    li $t0, {handler:#x}
    sw $t0, 4($sp)
    sw $zero, 8($sp)
    sw $zero, 12($sp)
    sw $zero, 16($sp)
    sw $zero, 20($sp)
    addiu $a0, $zero, 16
    move $a1, $sp
    move $a2, $zero
    addiu $a3, $zero, 16
    addiu $v0, $zero, {rt_sigaction}
    syscall
    addiu $v0, $zero, {getpid}
    syscall
    move $a0, $v0
    li $s0, 0x1234
    move $s1, $zero
    addiu $a1, $zero, 16
    addiu $v0, $zero, {tkill}
    syscall
    move $a0, $s1
    addiu $v0, $zero, {exit_group}
    syscall
"""


def test_mips_handler_gets_the_o32_frame(tmp_path):
    """MIPS o32: t9 = the handler (PIC code derives gp from it), a0 = SIGUSR1 (16), siginfo
    with si_code before si_errno, sc_regs as 64-bit slots, ra = the rt_sigreturn trampoline,
    sp = the frame (siginfo 24 bytes in); the handler's edit of sc_regs[17] survives."""
    numbers = by_name("mipsel").syscall_by_name
    guest = write_elf(tmp_path, "mipsel", MIPS_HANDLER_PROBE.format(handler=BASE + 0x1008, **numbers))
    done = run_bdemu("run", "--timeout", "20", guest)
    assert done.returncode == 0x7F, done.stderr.decode()
