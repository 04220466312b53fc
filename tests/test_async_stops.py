"""Stops requested from another thread (the host-signal watcher, a thread's time slice) land at any
instruction; the guest must never notice them. A syscall in flight when one lands still runs its
handler and returns its real result: Unicorn skips every UC_HOOK_INSN hook after the first one in
its list once a stop is pending, so the syscall trap must come before the backdoor's CPUID hook."""
from __future__ import annotations

import threading
import time

import pytest

from bdemu import Emulator
from elfgen import write_elf

ROUNDS = 60_000

#: getpid once, then ROUNDS more times: each must return the same pid; exit status 1 if one does not.
GETPID_LOOP = {
    "x86_64": f"""
        mov eax, 39
        syscall
        mov r13, rax
        mov r12, {ROUNDS}
    again:
        mov eax, 39
        syscall
        cmp rax, r13
        jne bad
        dec r12
        jnz again
        xor edi, edi
        mov eax, 60
        syscall
    bad:
        mov edi, 1
        mov eax, 60
        syscall
    """,
    "i386": f"""
        mov eax, 20
        int 0x80
        mov esi, eax
        mov edi, {ROUNDS}
    again:
        mov eax, 20
        int 0x80
        cmp eax, esi
        jne bad
        dec edi
        jnz again
        xor ebx, ebx
        mov eax, 1
        int 0x80
    bad:
        mov ebx, 1
        mov eax, 1
        int 0x80
    """,
    "aarch64": f"""
        mov x8, #172
        svc #0
        mov x19, x0
        ldr x20, ={ROUNDS}
    again:
        mov x8, #172
        svc #0
        cmp x0, x19
        b.ne bad
        subs x20, x20, #1
        b.ne again
        mov x0, #0
        mov x8, #93
        svc #0
    bad:
        mov x0, #1
        mov x8, #93
        svc #0
    """,
}


@pytest.mark.parametrize("isa", sorted(GETPID_LOOP))
def test_syscalls_keep_their_results_under_stops_from_another_thread(tmp_path, isa):
    emu = Emulator(write_elf(tmp_path, isa, GETPID_LOOP[isa]))
    finished = threading.Event()
    stops = 0

    def keep_stopping() -> None:  # what the host-signal watcher does, far more often
        nonlocal stops
        while not finished.is_set():
            emu.uc.emu_stop()
            stops += 1
            time.sleep(0.00005)

    stopper = threading.Thread(target=keep_stopping)
    stopper.start()
    try:
        result = emu.run(timeout=120)
    finally:
        finished.set()
        stopper.join()
    assert stops > 100
    assert (result.exit_code, result.reason) == (0, "exit"), result
