"""Signal delivery to guest handlers (samples/src/signals.c); the full sample's output is
compared with native/qemu runs in test_samples.py (case "signals")."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bdemu.cpu import by_name
from conftest import ISAS, ROOT, run_bdemu, sample
from elfgen import BASE, write_elf

WITH_FRAME = [name for name in ISAS if by_name(name).signal_frame is not None]
MIPS = ["mipsel", "mips"]


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
    lw $t2, {s0_slot}($a2)
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
    sw $t0, {s1_slot}($a2)
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


@pytest.mark.parametrize("isa_name", MIPS)
def test_mips_handler_gets_the_o32_frame(isa_name, tmp_path):
    """MIPS o32: t9 = the handler (PIC code derives gp from it), a0 = SIGUSR1 (16), siginfo
    with si_code before si_errno, sc_regs as 64-bit slots (a register in the slot's low half: its
    second word on big endian), ra = the rt_sigreturn trampoline, sp = the frame (siginfo 24
    bytes in); the handler's edit of sc_regs[17] survives."""
    numbers = by_name(isa_name).syscall_by_name
    low = 4 if by_name(isa_name).byteorder == "big" else 0
    guest = write_elf(tmp_path, isa_name, MIPS_HANDLER_PROBE.format(
        handler=BASE + 0x1008, s0_slot=24 + 16 + 8 * 16 + low, s1_slot=24 + 16 + 8 * 17 + low, **numbers))
    done = run_bdemu("run", "--timeout", "20", guest)
    assert done.returncode == 0x7F, done.stderr.decode()


def _run_and_signal(isa_name: str, mode: str, host_signal: int) -> tuple[bytes, bytes, int]:
    """Start `bdemu run sigproc MODE`, wait for its "ready", send the bdemu process a host signal."""
    process = subprocess.Popen([sys.executable, "-P", "-m", "bdemu", "run", "--timeout", "60",
                                sample(isa_name, "sigproc"), mode], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin",
                                                            "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    try:
        ready = process.stdout.readline()
        assert ready == b"ready\n", process.stderr.read().decode()
        time.sleep(0.2)  # into pause(), the spin loop or the usleep loop
        process.send_signal(host_signal)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    return out, err, process.returncode


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("mode", ["wait", "spin"])
def test_host_sigusr1_runs_the_guest_handler(isa_name, mode):
    """`kill -USR1 <bdemu>` runs the guest's SIGUSR1 handler, whether the guest waits in pause()
    or spins without a syscall; the guest then exits normally."""
    out, err, status = _run_and_signal(isa_name, mode, signal.SIGUSR1)
    assert (out, status) == (b"handled: usr1=1 term=0\n", 3), err.decode()


@pytest.mark.parametrize("isa_name", ["x86_64", *MIPS])
def test_host_signal_blocked_by_the_guest_stays_pending(isa_name):
    """A host SIGUSR1 the guest blocks shows in sigpending and runs the handler once unblocked."""
    out, err, status = _run_and_signal(isa_name, "blocked", signal.SIGUSR1)
    assert out == b"pending while blocked: handled=0\nhandled: usr1=1 term=0\n", err.decode()
    assert status == 3


@pytest.mark.parametrize("isa_name", ["x86_64", *MIPS])
def test_host_sigterm_goes_to_a_guest_handler(isa_name):
    """With a guest SIGTERM handler, SIGTERM is the guest's, not a stop of the run (143)."""
    out, err, status = _run_and_signal(isa_name, "wait", signal.SIGTERM)
    assert (out, status) == (b"handled: usr1=0 term=1\n", 3), err.decode()


@pytest.mark.parametrize("isa_name", ["x86_64", *MIPS])
def test_host_signals_without_guest_handler_take_their_default_action(isa_name):
    """No handler: SIGUSR1 kills the guest (128 + the guest's number: 16 on MIPS) with a
    one-line report; SIGTERM still stops the run with 143."""
    usr1 = by_name(isa_name).signal_overrides.get("SIGUSR1", 10)
    out, err, status = _run_and_signal(isa_name, "default", signal.SIGUSR1)
    assert (out, status) == (b"", 128 + usr1)
    assert err.decode().startswith("bdemu: guest killed by signal") and err.count(b"\n") == 1, err.decode()
    out, err, status = _run_and_signal(isa_name, "default", signal.SIGTERM)
    assert (out, status) == (b"", 143), err.decode()


#: rt_sigprocmask on MIPS: o32's sigset_t is 16 bytes (128 signals). The guest blocks signal 100
#: (bit 3 of the last word) and SIGSTOP (23 on MIPS: it cannot be blocked), getting the old,
#: empty mask into a buffer of 0xff bytes: all 16 bytes must be 0; the mask read back must be
#: signal 100 alone; a size of 8 is EINVAL.
MIPS_SIGSET_PROBE = """
    addiu $sp, $sp, -64
    sw $zero, 32($sp)
    sw $zero, 36($sp)
    sw $zero, 40($sp)
    addiu $t0, $zero, 8
    sw $t0, 44($sp)
    lui $t1, 0x40
    sw $t1, 32($sp)
    li $t0, -1
    sw $t0, 0($sp)
    sw $t0, 4($sp)
    sw $t0, 8($sp)
    sw $t0, 12($sp)
    addiu $a0, $zero, 1
    addiu $a1, $sp, 32
    move $a2, $sp
    addiu $a3, $zero, 16
    addiu $v0, $zero, {rt_sigprocmask}
    syscall
    lw $t0, 0($sp)
    lw $t1, 4($sp)
    or $t0, $t0, $t1
    lw $t1, 8($sp)
    or $t0, $t0, $t1
    lw $t1, 12($sp)
    or $t0, $t0, $t1
    sltiu $s0, $t0, 1
    addiu $a0, $zero, 1
    move $a1, $zero
    move $a2, $sp
    addiu $a3, $zero, 16
    addiu $v0, $zero, {rt_sigprocmask}
    syscall
    lw $t0, 12($sp)
    xori $t0, $t0, 8
    lw $t1, 0($sp)
    or $t0, $t0, $t1
    lw $t1, 4($sp)
    or $t0, $t0, $t1
    lw $t1, 8($sp)
    or $t0, $t0, $t1
    sltiu $t0, $t0, 1
    sll $t0, $t0, 1
    or $s0, $s0, $t0
    addiu $a0, $zero, 1
    move $a1, $zero
    move $a2, $sp
    addiu $a3, $zero, 8
    addiu $v0, $zero, {rt_sigprocmask}
    syscall
    xori $t0, $v0, 22
    sltiu $t0, $t0, 1
    sll $t0, $t0, 2
    or $s0, $s0, $t0
    move $a0, $s0
    addiu $v0, $zero, {exit_group}
    syscall
"""


@pytest.mark.parametrize("isa_name", MIPS)
def test_mips_sigprocmask_uses_the_16_byte_sigset(isa_name, tmp_path):
    """The sigset is an array of four 32-bit words, each in the guest's byte order."""
    numbers = by_name(isa_name).syscall_by_name
    guest = write_elf(tmp_path, isa_name, MIPS_SIGSET_PROBE.format(**numbers))
    done = run_bdemu("run", "--timeout", "20", guest)
    assert done.returncode == 0b111, done.stderr.decode()


#: x86-64: the main thread clones a thread (its own stack in an mmap'd block at r15) that waits
#: in rt_sigsuspend (empty mask) or pause, sleeps 50 ms, tkill()s it SIGUSR1, sleeps 200 ms and
#: exits with the handler's flag (1) + 10 if the waiter's call returned EINTR.
THREAD_WAIT = """
    mov rax, 9
    xor rdi, rdi
    mov rsi, 0x10000
    mov rdx, 3
    mov r10, 0x22
    mov r8, -1
    xor r9, r9
    syscall
    mov r15, rax
    lea rax, [rip + handler]
    mov [r15 + 0x100], rax
    mov qword ptr [r15 + 0x108], 0x04000000
    lea rax, [rip + restorer]
    mov [r15 + 0x110], rax
    mov qword ptr [r15 + 0x118], 0
    mov rax, 13
    mov rdi, 10
    lea rsi, [r15 + 0x100]
    xor rdx, rdx
    mov r10, 8
    syscall
    mov rax, 56
    mov rdi, 0x10900
    lea rsi, [r15 + 0x10000]
    xor rdx, rdx
    xor r10, r10
    xor r8, r8
    syscall
    test rax, rax
    jz waiter
    mov r14, rax
    mov qword ptr [r15 + 0x200], 0
    mov qword ptr [r15 + 0x208], 50000000
    mov rax, 35
    lea rdi, [r15 + 0x200]
    xor rsi, rsi
    syscall
    mov rax, 200
    mov rdi, r14
    mov rsi, 10
    syscall
    mov qword ptr [r15 + 0x208], 200000000
    mov rax, 35
    lea rdi, [r15 + 0x200]
    xor rsi, rsi
    syscall
    mov rdi, [r15]
    add rdi, [r15 + 8]
    mov rax, 231
    syscall
waiter:
    mov qword ptr [r15 + 0x300], 0
    WAIT
    cmp rax, -4
    jne done
    mov qword ptr [r15 + 8], 10
done:
    mov rax, 60
    xor rdi, rdi
    syscall
handler:
    mov qword ptr [r15], 1
    ret
restorer:
    mov rax, 15
    syscall
"""
WAITS = {"rt_sigsuspend": "mov rax, 130\nlea rdi, [r15 + 0x300]\nmov rsi, 8\nsyscall",
         "pause": "mov rax, 34\nsyscall"}


@pytest.mark.parametrize("wait", sorted(WAITS))
def test_tkill_wakes_another_thread_waiting_for_a_signal(tmp_path, wait):
    """A thread parked in rt_sigsuspend or pause (not the main thread) wakes for a signal sent
    to it alone (tkill): its handler runs, then the call returns EINTR (signal(7))."""
    from bdemu import Emulator
    guest = write_elf(tmp_path, "x86_64", THREAD_WAIT.replace("WAIT", WAITS[wait]))
    result = Emulator(guest).run(timeout=20)
    assert (result.reason, result.exit_code) == ("exit", 11), result.message


def test_sigqueue_queues_real_time_instances_with_their_values(tmp_path):
    """Two rt_sigqueueinfo calls of a blocked SIGRTMIN+2 stay two pending instances, taken in
    order by rt_sigtimedwait with the sender's si_code (SI_QUEUE) and si_value."""
    import struct

    from bdemu import Emulator
    from guestasm import BufferAt, Result, parse_output, write_program
    steps = [("store", BufferAt(0), 34), ("store", BufferAt(8), 0xFFFFFFFF), ("store", BufferAt(24), 111),
             ("store", BufferAt(512), 1 << 33),
             (14, 0, BufferAt(512), 0, 8),  # rt_sigprocmask(SIG_BLOCK)
             (39,),  # getpid
             (129, Result(5), 34, BufferAt(0)),  # rt_sigqueueinfo
             ("store", BufferAt(24), 222), (129, Result(5), 34, BufferAt(0)),
             (128, BufferAt(512), BufferAt(1024), 0, 8),  # rt_sigtimedwait
             (128, BufferAt(512), BufferAt(2048), 0, 8)]
    result = Emulator(write_program(tmp_path / "guest", steps)).run(capture_output=True)
    assert result.exit_code == 0, result
    results, buffer = parse_output(result.stdout, len(steps))
    assert results[6] == results[8] == 0 and results[9:] == [34, 34]
    for at, value in ((1024, 111), (2048, 222)):
        signo, _errno, code = struct.unpack_from("<iii", buffer, at)
        assert (signo, code, struct.unpack_from("<q", buffer, at + 24)[0]) == (34, -1, value)


#: Thumb: a SIGALRM handler (SA_RESTART, at CODE + 2) writes its signal number into a pipe
#: whose read the signal interrupted; the restarted read gets it: exit(1 + 14).
THUMB_RESTARTED_READ = """
    b start
handler:
    push {r0, lr}
    mov r0, r8
    mov r1, sp
    movs r2, #1
    movs r7, #4
    svc #0
    pop {r0, pc}
restorer:
    movs r7, #173
    svc #0
start:
    sub sp, #64
    mov r0, sp
    movs r7, #42
    svc #0
    ldr r0, [sp, #4]
    mov r8, r0
    movw r0, #0x1003
    movt r0, #0x40
    str r0, [sp, #16]
    movs r0, #0x14
    lsls r0, r0, #24
    str r0, [sp, #20]
    movw r0, #0x1011
    movt r0, #0x40
    str r0, [sp, #24]
    movs r0, #0
    str r0, [sp, #28]
    str r0, [sp, #32]
    str r0, [sp, #40]
    str r0, [sp, #44]
    str r0, [sp, #48]
    movw r0, #50000
    str r0, [sp, #52]
    movs r0, #14
    add r1, sp, #16
    movs r2, #0
    movs r3, #8
    movs r7, #174
    svc #0
    movs r0, #0
    add r1, sp, #40
    movs r2, #0
    movs r7, #104
    svc #0
    ldr r0, [sp]
    add r1, sp, #8
    movs r2, #1
    movs r7, #3
    svc #0
    ldrb r1, [sp, #8]
    adds r0, r0, r1
    movs r7, #1
    svc #0
"""


def test_a_restarted_syscall_in_thumb_code_runs_again_in_thumb(tmp_path):
    """SA_RESTART returns into the 2-byte Thumb `svc`, in Thumb state (Unicorn reads the state
    from bit 0 of a pc write: moving the pc back must keep it)."""
    from bdemu import Emulator
    assert BASE + 0x1000 == 0x401000  # the handler and restorer addresses above
    result = Emulator(write_elf(tmp_path, "arm", THUMB_RESTARTED_READ, thumb=True)).run(timeout=20)
    assert (result.reason, result.exit_code) == ("exit", 15), result.message
