"""A guest may signal and regroup only its own processes, never other host processes."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from bdemu import Emulator
from guestasm import parse_output, write_program

ESRCH, EPERM = 3, 1
KILL, TKILL, TGKILL, SETPGID = 62, 200, 234, 109


@pytest.fixture
def bystander():
    """A host process that is not the guest's: it must survive every attempt."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def test_guest_cannot_signal_host_processes(tmp_path, bystander):
    pid = bystander.pid
    steps = [(KILL, pid, signal.SIGKILL), (KILL, -pid, signal.SIGKILL), (TKILL, pid, signal.SIGKILL),
             (TGKILL, pid, pid, signal.SIGKILL), (KILL, os.getppid(), 0), (KILL, 1, 0),
             (SETPGID, pid, 0), (KILL, pid, 0)]
    guest = write_program(tmp_path / "killer", steps)
    result = Emulator(guest).run(capture_output=True)
    assert result.exit_code == 0, result
    results, _ = parse_output(result.stdout, len(steps))
    assert results == [-ESRCH] * len(steps)
    time.sleep(0.1)
    assert bystander.poll() is None  # still running


def test_guest_can_still_signal_itself(tmp_path):
    guest = write_program(tmp_path / "self", [(39, ), (KILL, 0, 0), (KILL, 0, signal.SIGTERM)])  # getpid
    result = Emulator(guest).run(capture_output=True)
    assert result.exit_code == 128 + signal.SIGTERM


FORK_AND_KILL = """
    mov eax, 57
    syscall
    test rax, rax
    jnz parent
    lea rdi, [rip + span]
    xor esi, esi
    mov eax, 35
    syscall
    mov eax, 60
    mov edi, 50
    syscall
parent:
    mov r12, rax
    mov rdi, rax
    mov esi, SIGNAL
    mov eax, 62
    syscall
    mov r13, rax
    sub rsp, 16
    mov rdi, r12
    mov rsi, rsp
    xor edx, edx
    xor r10, r10
    mov eax, 61
    syscall
    test r13, r13
    jnz bad
    mov edi, dword ptr [rsp]
    and edi, 0x7f
    mov eax, 60
    syscall
bad:
    mov edi, 99
    mov eax, 60
    syscall
span:
    .quad 30
    .quad 0
"""


def test_guest_signals_its_own_children(tmp_path):
    """fork; the parent SIGKILLs its sleeping child and reaps it: exit status 9 (the child's signal)."""
    from conftest import run_bdemu
    from elfgen import write_elf
    guest = write_elf(tmp_path, "x86_64", FORK_AND_KILL.replace("SIGNAL", "9"), name="forker")
    started = time.monotonic()
    done = run_bdemu("run", guest, timeout=60)
    assert done.returncode == 9, done.stderr
    assert time.monotonic() - started < 20


def test_a_signal_sent_to_a_child_at_once_is_the_childs():
    """SIGTERM to a child the instant it was forked: the child (a bdemu process that catches
    SIGTERM) must take it, not write it into its parent's wakeup pipe, which stopped the parent."""
    import tempfile
    from pathlib import Path

    from conftest import run_bdemu
    from elfgen import write_elf
    with tempfile.TemporaryDirectory() as folder:
        guest = write_elf(Path(folder), "x86_64", FORK_AND_KILL.replace("SIGNAL", "15"), name="forker")
        for _ in range(3):
            done = run_bdemu("run", guest, timeout=60)
            assert done.returncode == 15 and done.stderr == b"", done.stderr


IGNORE_THEN_FORK = """
    sub rsp, 64
    mov qword ptr [rsp], 1             // sa_handler = SIG_IGN
    mov qword ptr [rsp + 8], 0
    mov qword ptr [rsp + 16], 0
    mov qword ptr [rsp + 24], 0
    mov edi, SIGNAL
    mov rsi, rsp
    xor edx, edx
    mov r10d, 8
    mov eax, 13                        // rt_sigaction
    syscall
    mov eax, 57                        // fork
    syscall
    test rax, rax
    jnz parent
    lea rdi, [rip + child_nap]
    xor esi, esi
    mov eax, 35                        // nanosleep(1.5 s): the signal comes meanwhile
    syscall
    mov eax, 60
    mov edi, 50
    syscall
parent:
    mov r12, rax
    lea rdi, [rip + parent_nap]
    xor esi, esi
    mov eax, 35                        // nanosleep(0.5 s): the child is set up
    syscall
    mov rdi, r12
    mov esi, SIGNAL
    mov eax, 62                        // kill(child, SIGNAL)
    syscall
    mov rdi, r12
    lea rsi, [rsp + 32]
    xor edx, edx
    xor r10, r10
    mov eax, 61                        // wait4
    syscall
    mov edi, dword ptr [rsp + 32]      // the child's wait status: 50 << 8 when it exited
    shr edi, 8
    mov eax, 60
    syscall
child_nap:
    .quad 1
    .quad 500000000
parent_nap:
    .quad 0
    .quad 500000000
"""


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_child_ignoring_sigint_or_sigterm_survives_them(tmp_path, number):
    """bdemu stops on SIGINT/SIGTERM even when the guest ignores them, so Ctrl-C always ends a run;
    a forked child is wholly the guest's and ignores them as the guest does: a shell's background
    jobs ignore SIGINT (`sleep 5 & kill -INT $!` left the sleep running natively, killed it here)."""
    from conftest import run_bdemu
    from elfgen import write_elf
    guest = write_elf(tmp_path, "x86_64", IGNORE_THEN_FORK.replace("SIGNAL", str(int(number))), name="ignorer")
    done = run_bdemu("run", guest, timeout=60)
    assert done.returncode == 50, done.stderr
