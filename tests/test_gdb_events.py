"""`bdemu run --gdb`: what the guest does besides running code, as the client sees it: threads,
syscall stops (`catch syscall`), execve, signal handlers, forked children. Checked with the
independent protocol client (tests/gdbclient.py)."""
from __future__ import annotations

import time

from bdemu import Emulator
from conftest import ROOT, sample
from elfgen import BASE, assemble, write_elf
from gdbclient import Session


#: clone() a thread (CLONE_VM | CLONE_THREAD ...) onto a stack 4 KiB below this one; the new
#: thread goes on at the snippet's `child` label.
START_A_THREAD = """
    mov edi, 0x50f00
    lea rsi, [rsp - 4096]
    xor edx, edx
    xor r10d, r10d
    xor r8d, r8d
    mov eax, 56
    syscall
    test rax, rax
    jz child
"""

TWO_SPINNING_THREADS = START_A_THREAD + """
    mov r12, 0x2222
parent:
    jmp parent
child:
    mov r12, 0x1111
spin:
    jmp spin
"""


def test_every_guest_thread_is_listed_with_its_own_registers(tmp_path):
    session = Session(write_elf(tmp_path, "x86_64", TWO_SPINNING_THREADS))
    session.send("c")
    time.sleep(0.5)
    session.sock.sendall(b"\x03")
    reply = session.receive()
    assert reply[:3] == b"T02"
    stopped = int(reply.split(b"thread:")[1].split(b";")[0], 16)
    tids = [int(t, 16) for t in session.ask("qfThreadInfo")[1:].split(b",")]
    assert session.ask("qsThreadInfo") == b"l" and len(tids) == 2 and tids[0] == stopped
    seen = {}
    for tid in tids:
        assert session.ask(f"T{tid:x}") == b"OK"
        assert session.ask(f"Hg{tid:x}") == b"OK"
        registers = session.read_registers("little")
        seen[registers["r12"]] = registers["rip"]
    assert sorted(seen) == [0x1111, 0x2222] and seen[0x1111] != seen[0x2222]
    assert session.ask("Hg12345678") == b"E01"
    assert b"<thread id=" in session.ask("qXfer:threads:read::0,1000")
    session.send("k")
    assert session.close()[0] == 137


def test_catch_syscall_stops_at_entry_and_return():
    session = Session(sample("x86_64", "hello"))
    assert "QCatchSyscalls+" in session.features
    assert session.ask("QCatchSyscalls:1;1;14") == b"OK"  # write, writev (musl's stdout)
    entry = session.ask("c")
    assert entry.startswith(b"T05") and b"syscall_entry:14;" in entry
    registers = session.read_registers("little")
    first = int.from_bytes(session.read_memory(registers["rsi"], 8), "little")  # iov[0].iov_base
    assert registers["rdi"] == 1 and session.read_memory(first, 5) == b"Hello"
    returned = session.ask("c")
    assert b"syscall_return:14;" in returned
    assert session.read_registers("little")["rax"] == len(b"Hello from bdemu!\n")
    assert session.ask("QCatchSyscalls:0") == b"OK"
    assert session.ask("c") == b"W00"
    status, out, _ = session.close()
    assert status == 0 and out.startswith(b"Hello from bdemu!")


ARM_GETPID_THEN_EXIT_5 = """
    mov r7, #20
    svc #0
    mov r0, #5
    mov r7, #1
    svc #0
"""


def test_a_step_from_a_syscall_stop_runs_an_instruction_where_the_syscall_ends_its_block(tmp_path):
    """ARM's svc is an interrupt, the last instruction of its block: the stop gate's "next
    block" is the very next instruction, which a step must still run."""
    session = Session(write_elf(tmp_path, "arm", ARM_GETPID_THEN_EXIT_5))
    entry = session.read_registers("little")["pc"]
    assert session.ask("QCatchSyscalls:1;14") == b"OK"
    assert b"syscall_entry:14;" in session.ask("c")
    assert b"syscall_return:14;" in session.ask("c")
    assert session.read_registers("little")["pc"] == entry + 8
    assert session.ask("s")[:3] == b"T05"
    registers = session.read_registers("little")
    assert (registers["pc"], registers["r0"]) == (entry + 12, 5)
    assert session.ask("QCatchSyscalls:0") == b"OK"
    assert session.ask("c") == b"W05"
    assert session.close()[0] == 5


#: The main thread reads a pipe that a second thread writes "1234567" to after a nanosleep
#: (then spins): the read waits, the guest exits with its result.
READ_WHAT_A_THREAD_WRITES = """
    lea rdi, [rsp - 64]
    mov eax, 22
    syscall
    mov r12d, dword ptr [rsp - 64]
    mov r13d, dword ptr [rsp - 60]
""" + START_A_THREAD + """
    mov edi, r12d
    lea rsi, [rsp - 256]
    mov edx, 64
    xor eax, eax
    syscall
    nop
    mov rdi, rax
    mov eax, 231
    syscall
child:
    push 200000000
    push 0
    mov rdi, rsp
    xor esi, esi
    mov eax, 35
    syscall
    mov edi, r13d
    lea rsi, [rip + message]
    mov edx, 7
    mov eax, 1
    syscall
spin:
    jmp spin
message:
    .ascii "1234567"
"""


def test_a_waiting_syscall_stops_at_its_real_return_and_a_step_from_there_runs(tmp_path):
    """A read that waits for another thread returns when its data came, with its result (not
    the placeholder its thread parks with); the time the client takes there is not the time
    slice's, so a step from that stop runs an instruction."""
    session = Session(write_elf(tmp_path, "x86_64", READ_WHAT_A_THREAD_WRITES))
    main = int(session.ask("qC")[2:], 16)
    assert session.ask("QCatchSyscalls:1;0") == b"OK"
    assert session.ask("c") == f"T05thread:{main:x};syscall_entry:0;".encode()
    assert session.ask("c") == f"T05thread:{main:x};syscall_return:0;".encode()
    registers = session.read_registers("little")
    assert registers["rax"] == 7 and session.read_memory(registers["rip"], 1) == b"\x90"  # the nop
    time.sleep(0.1)  # longer than a time slice
    assert session.ask("s").startswith(f"T05thread:{main:x};".encode())
    assert session.read_registers("little")["rip"] == registers["rip"] + 1
    assert session.ask("QCatchSyscalls:0") == b"OK"
    assert session.ask("c") == b"W07"
    assert session.close()[0] == 7


EXEC_HELLO = """
    lea rdi, [rip + path]
    push 0
    push rdi
    mov rsi, rsp
    xor edx, edx
    mov eax, 59
    syscall
    mov edi, 1
    mov eax, 60
    syscall
path:
    .asciz "samples/bin/x86_64/hello"
"""


def test_an_exec_is_reported_to_a_client_that_asks(tmp_path):
    session = Session(write_elf(tmp_path, "x86_64", EXEC_HELLO))
    assert "exec-events+" in session.ask("qSupported:exec-events+").decode()
    reply = session.ask("c")
    assert reply.startswith(b"T05") and f"exec:{(ROOT / sample('x86_64', 'hello')).as_posix().encode().hex()};" \
        .encode() in reply
    assert session.read_registers("little")["rip"] == Emulator(str(ROOT / sample("x86_64", "hello"))).pc
    assert session.ask("qXfer:exec-file:read::0,1000") == b"l" + str(ROOT / sample("x86_64", "hello")).encode()
    assert session.ask("c") == b"W00"
    status, out, _ = session.close()
    assert status == 0 and b"Hello from bdemu!" in out


HANDLER_EXITS_9 = """
    mov edi, 9
    mov eax, 60
    syscall
"""
#: rt_sigaction(SIGUSR1, the struct sigaction at [rsp - 32]), then kill(getpid(), SIGUSR1); the
#: pid stays in r12.
SIGACTION_USR1_THEN_RAISE = """
    mov edi, 10
    lea rsi, [rsp - 32]
    xor edx, edx
    mov r10d, 8
    mov eax, 13
    syscall
    mov eax, 39
    syscall
    mov r12, rax
    mov rdi, r12
    mov esi, 10
    mov eax, 62
    syscall
"""
#: SIGUSR1's handler (HANDLER_EXITS_9) is installed, then the guest sends itself SIGUSR1.
SIGNAL_TO_A_HANDLER = f"""
    jmp start
handler:
    {HANDLER_EXITS_9}
restorer:
    mov eax, 15
    syscall
start:
    lea rax, [rip + handler]
    mov [rsp - 32], rax
    mov qword ptr [rsp - 24], 0x04000000
    lea rax, [rip + restorer]
    mov [rsp - 16], rax
    mov qword ptr [rsp - 8], 0
    {SIGACTION_USR1_THEN_RAISE}
    mov edi, 3
    mov eax, 60
    syscall
"""


def test_a_breakpoint_on_a_signal_handlers_first_instruction_is_hit(tmp_path):
    """Entering the handler moves the pc onto the breakpoint between two emu_starts: it is hit
    like any other, not taken for the instruction the client resumed from."""
    guest = write_elf(tmp_path, "x86_64", SIGNAL_TO_A_HANDLER)
    code = (tmp_path / "snippet").read_bytes()[0x1000:]
    handler = BASE + 0x1000 + code.index(assemble("x86_64", HANDLER_EXITS_9))
    session = Session(guest)
    assert session.ask(f"Z0,{handler:x},1") == b"OK"
    assert session.ask("c").startswith(b"T1e")  # SIGUSR1, about to be delivered
    reply = session.ask("C1e")
    assert reply.startswith(b"T05") and b"swbreak" in reply
    assert session.read_registers("little")["rip"] == handler
    assert session.ask(f"z0,{handler:x},1") == b"OK"
    assert session.ask("c") == b"W09"
    assert session.close()[0] == 9


def test_forked_children_run_free_of_the_debugger():
    session = Session(sample("x86_64", "spawn"))
    assert session.ask("c") == b"W00"
    status, out, _ = session.close()
    assert status == 0 and out
