"""Stops requested from another thread (the host-signal watcher, a thread's time slice) land at any
instruction; the guest must never notice them. A syscall in flight when one lands still runs its
handler and returns its real result: Unicorn skips every UC_HOOK_INSN hook after the first one in
its list once a stop is pending, so the syscall trap must come before the backdoor's CPUID hook."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from bdemu import Emulator, Plugin, open_trace
from bdemu.trace.recorder import RecordOptions, make_recorder
from elfgen import write_elf

ROUNDS = 60_000


def _run_while_calling(emu: Emulator, stop) -> tuple:
    """Run the guest while another thread calls `stop()` every ~50 us: (RunResult, calls)."""
    finished = threading.Event()
    calls = 0

    def keep_calling() -> None:
        nonlocal calls
        while not finished.is_set():
            stop()
            calls += 1
            time.sleep(0.00005)

    caller = threading.Thread(target=keep_calling)
    caller.start()
    try:
        result = emu.run(timeout=120)
    finally:
        finished.set()
        caller.join()
    return result, calls

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
    result, stops = _run_while_calling(emu, emu.uc.emu_stop)  # the watcher's stop, far more often
    assert stops > 100
    assert (result.exit_code, result.reason) == (0, "exit"), result


#: A guest with a SIGUSR1 handler (so host signals must reach it while it runs) counting in
#: memory and in a register at once: an instruction run twice after a stop breaks the tie.
COUNT_IN_MEMORY = f"""
    sub rsp, 64
    lea rax, [rip + handler]
    mov [rsp], rax
    mov qword ptr [rsp + 8], 0
    mov qword ptr [rsp + 16], 0
    mov qword ptr [rsp + 24], 0
    mov rsi, rsp
    mov edi, 10
    xor edx, edx
    mov r10d, 8
    mov eax, 13
    syscall
    test rax, rax
    jnz bad
    lea r15, [rsp + 32]
    mov qword ptr [r15], 0
    xor r13, r13
    mov r12, {ROUNDS * 300}
again:
    inc qword ptr [r15]
    inc r13
    cmp qword ptr [r15], r13
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
handler:
    ret
"""


def test_stops_from_another_thread_never_run_an_instruction_twice(tmp_path):
    """Unicorn's own emu_stop from another thread can leave the pc at the start of a block part
    of which ran (its memory access then re-runs it): the watcher goes through the stop gate."""
    emu = Emulator(write_elf(tmp_path, "x86_64", COUNT_IN_MEMORY))
    # What the host-signal watcher does for a signal the guest handles, far more often.
    result, wakes = _run_while_calling(emu, lambda: emu.wake_for_host_signals(ends_run=False))
    assert (result.exit_code, result.reason) == (0, "exit"), result
    assert wakes > 20
    assert emu._stops.gate is not None


class BlockTally(Plugin):
    """How often each block ran, seen live (a Python hook) and counted natively."""

    def __init__(self) -> None:
        super().__init__()
        self.live: Counter = Counter()
        self.counted: dict[int, int] = {}

    def on_block(self, emu, address, size) -> None:
        self.live[address] += 1

    def on_block_counts(self, emu, pcs, sizes, counts) -> None:
        self.counted = dict(zip(pcs.tolist(), counts.tolist()))


def test_block_hooks_see_each_block_once_under_gate_stops(tmp_path):
    """The gate stops at a block start, before that block runs; Unicorn skips the hooks after
    a stopping one, so the plugins' block hooks (added first) go behind the gate when it is
    installed: a block the gate stopped at is seen once, when it runs."""
    rounds = ROUNDS * 5
    guest = write_elf(tmp_path, "x86_64", COUNT_IN_MEMORY.replace(str(ROUNDS * 300), str(rounds)))
    emu = Emulator(guest)
    tally = emu.add_plugin(BlockTally())
    emu.add_plugin(make_recorder(str(tmp_path / "t.duckdb"), RecordOptions(status=False)))
    result, wakes = _run_while_calling(emu, lambda: emu.wake_for_host_signals(ends_run=False))
    assert (result.exit_code, result.reason) == (0, "exit"), result
    assert wakes > 20 and emu._stops.gate is not None
    # The loop's two blocks: its first pass runs in the block that sets it up.
    body = [address for address, _ in tally.live.most_common(2)]
    assert [tally.live[a] for a in body] == [rounds, rounds - 1]
    assert [tally.counted[a] for a in body] == [rounds, rounds - 1]
    with open_trace(str(tmp_path / "t.duckdb")) as trace:
        recorded = dict(trace.con.execute("SELECT pc, count(*) FROM blocks GROUP BY pc").fetchall())
    assert [recorded[a] for a in body] == [rounds, rounds - 1]
