"""`bdemu run --gdb`: a GDB remote stub. Checked with an independent protocol client
(tests/gdbclient.py) on every ISA, and with the real gdb where the machine has one."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from bdemu import Emulator
from conftest import ISAS, ROOT, run_bdemu, sample
from elfgen import assemble, write_elf
from gdbclient import Session


def code_pointer(session: Session) -> str:
    """The register the target description types as the pc."""
    return next(reg.get("name") for reg in session.xml.iter("reg") if reg.get("type") == "code_ptr")


@pytest.mark.parametrize("isa", ISAS)
def test_step_and_breakpoint_on_every_isa(isa):
    guest = sample(isa, "hello")
    loaded = Emulator(str(ROOT / guest))
    entry, order = loaded.pc, loaded.arch.byteorder
    session = Session(guest)
    pc = code_pointer(session)
    assert session.ask("?")[:3] == b"T05"
    assert session.read_registers(order)[pc] == entry
    assert session.read_memory(entry, 8) == loaded.read_memory(entry, 8)
    stepped = []
    for _ in range(4):
        assert session.ask("s")[:3] == b"T05"
        stepped.append(session.read_registers(order)[pc])
    assert stepped[0] != entry and len(set(stepped)) > 1
    session.send("k")  # no reply: the guest is gone
    assert session.close()[0] == 137

    # A fresh run stops at a breakpoint on the third stepped instruction, then runs to its end.
    session = Session(guest, acks=False)
    target = stepped[2]
    assert session.ask(f"Z0,{target:x},4") == b"OK"
    reply = session.ask("c")
    assert reply.startswith(b"T05") and b"swbreak" in reply
    assert session.read_registers(order)[pc] == target
    assert session.ask(f"z0,{target:x},4") == b"OK"
    assert session.ask("c") == b"W00"
    status, out, _ = session.close()
    assert status == 0 and b"Hello from bdemu!" in out


EXIT_WITH_MESSAGE = """
    lea rsi, [rip + message]
    mov edi, 1
    mov edx, 5
    mov eax, 1
    syscall
    mov edi, 7
    mov eax, 60
    syscall
message:
    .ascii "hello"
"""


def test_the_client_writes_registers_and_memory(tmp_path):
    session = Session(write_elf(tmp_path, "x86_64", EXIT_WITH_MESSAGE))
    assert session.ask("s")[:3] == b"T05"  # past the lea: rsi is the message
    message = session.read_registers("little")["rsi"]
    assert session.read_memory(message, 5) == b"hello"
    assert session.ask(f"M{message:x},5:{b'HELLO'.hex()}") == b"OK"
    assert session.ask(f"X{message:x},2:" .encode() + b"J}\x03") == b"OK"  # binary, '#' escaped
    for _ in range(5):  # up to the exit syscall, then its status 7 becomes 3
        session.ask("s")
    assert session.read_registers("little")["rdi"] == 7
    assert session.ask(f"P{session.regnum('rdi'):x}={(3).to_bytes(8, 'little').hex()}") == b"OK"
    assert session.ask("c") == b"W03"
    status, out, _ = session.close()
    assert (status, out) == (3, b"J#LLO")


STORE_THEN_EXIT = """
    lea rbx, [rsp - 64]
    nop
    mov qword ptr [rbx], 5
    jmp next
next:
    add qword ptr [rbx], 1
    mov rdi, [rbx]
    mov eax, 60
    syscall
"""


def test_a_watchpoint_stops_after_the_store_and_the_store_runs_once(tmp_path):
    session = Session(write_elf(tmp_path, "x86_64", STORE_THEN_EXIT))
    session.ask("s")
    data = session.read_registers("little")["rbx"]
    assert session.ask(f"Z2,{data:x},8") == b"OK"
    reply = session.ask("c")
    assert reply.startswith(b"T05") and f"watch:{data:x};".encode() in reply
    assert session.read_memory(data, 8) == (5).to_bytes(8, "little")
    assert b";watch:" in session.ask("c")  # the add, in the block that exits: shown before the end
    assert session.read_memory(data, 8) == (6).to_bytes(8, "little")
    assert session.ask(f"z2,{data:x},8") == b"OK"
    assert session.ask("c") == b"W06"  # each store ran once: 5, then 6
    assert session.close()[0] == 6


def test_an_interrupt_stops_a_running_guest_and_kill_ends_it():
    guest = sample("x86_64", "compute")
    session = Session(guest, "2000000000")
    session.send("c")
    time.sleep(0.5)
    session.sock.sendall(b"\x03")
    assert session.receive()[:3] == b"T02"
    pc = session.read_registers("little")["rip"]
    module = Emulator(str(ROOT / guest)).modules[0]
    assert module.start <= pc < module.end
    session.send("k")
    status, _, err = session.close()
    assert status == 137 and b"killed by the debugger" in err


A_ONE_BLOCK_LOOP = """
loop:
    add rax, 1
    add rbx, 2
    add rcx, 3
    jmp loop
"""


def test_a_step_after_an_interrupt_runs_one_instruction(tmp_path):
    """The interrupted run counted no instructions, and Unicorn adds its counting hook back for
    a step without retranslating the blocks translated meanwhile: they are flushed first."""
    session = Session(write_elf(tmp_path, "x86_64", A_ONE_BLOCK_LOOP))
    loop = session.read_registers("little")["rip"]
    session.send("c")
    time.sleep(0.3)
    session.sock.sendall(b"\x03")
    assert session.receive()[:3] == b"T02"
    before = session.read_registers("little")
    assert before["rip"] == loop  # the stop gate stops at a block's start
    assert session.ask("s")[:3] == b"T05"
    after = session.read_registers("little")
    assert after["rip"] == loop + len(assemble("x86_64", "add rax, 1"))
    assert (after["rax"], after["rbx"]) == (before["rax"] + 1, before["rbx"])
    session.send("k")
    assert session.close()[0] == 137


def test_gdb_reads_files_as_the_guest_sees_them(tmp_path):
    """vFile host I/O: gdb fetches the program and its libraries through the stub, inside --rootfs."""
    rootfs = tmp_path / "root"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy(ROOT / sample("x86_64", "hello"), rootfs / "bin" / "hello")
    (rootfs / "secret").write_bytes(b"inside the rootfs")
    session = Session("--rootfs", str(rootfs), str(rootfs / "bin" / "hello"))
    program = session.ask("qXfer:exec-file:read::0,1000")
    assert program == b"l/bin/hello"
    assert session.ask("vFile:setfs:0") == b"F0"
    assert session.ask(f"vFile:open:{b'/bin/hello'.hex()},0,0") == b"F0"
    assert session.ask("vFile:pread:0,4,0") == b"F4;\x7fELF"
    size = (rootfs / "bin" / "hello").stat().st_size
    stat = session.ask("vFile:fstat:0")
    assert stat.startswith(b"F40;")
    assert int.from_bytes(Session.unescape(stat[4:])[28:36], "big") == size  # st_size
    assert session.ask("vFile:close:0") == b"F0"
    assert session.ask("vFile:pread:0,4,0") == b"F-1,9"  # closed: EBADF
    assert session.ask(f"vFile:open:{b'/../../secret'.hex()},0,0") == b"F0"  # .. stops at the rootfs's /
    assert session.ask("vFile:pread:0,100,0") == b"F11;inside the rootfs"
    assert session.ask(f"vFile:open:{b'/nowhere'.hex()},0,0") == b"F-1,2"
    assert session.ask(f"vFile:open:{b'/secret'.hex()},1,0") == b"F-1,d"  # only reading
    assert session.ask("c") == b"W00"
    assert session.close()[0] == 0


READ_STDIN_THEN_EXIT = """
    sub rsp, 64
    xor edi, edi
    mov rsi, rsp
    mov edx, 64
    xor eax, eax
    syscall
    mov rdi, rax
    mov eax, 60
    syscall
"""


def test_an_interrupt_stops_a_guest_blocked_in_a_syscall_which_then_runs_again(tmp_path):
    session = Session(write_elf(tmp_path, "x86_64", READ_STDIN_THEN_EXIT), stdin=subprocess.PIPE)
    session.send("c")
    time.sleep(0.5)  # blocked in read(0, ...)
    session.sock.sendall(b"\x03")
    assert session.receive()[:3] == b"T02"
    registers = session.read_registers("little")
    assert session.read_memory(registers["rip"], 2) == b"\x0f\x05"  # back on the syscall instruction
    assert registers["rax"] == 0 and registers["rdx"] == 64  # read's number and arguments, as they were
    session.process.stdin.write(b"seven!\n")
    session.process.stdin.flush()
    assert session.ask("c") == b"W07"  # the read ran again and got the 7 bytes
    assert session.close()[0] == 7


THUMB_READ_STDIN_THEN_EXIT = """
    sub sp, #64
    movs r0, #0
    mov r1, sp
    movs r2, #64
    movs r7, #3
    svc #0
    movs r7, #1
    svc #0
"""


def test_a_thumb_guest_interrupted_in_a_syscall_resumes_in_thumb(tmp_path):
    """The syscall instruction is run again in the state it was in: Unicorn takes Thumb state
    from bit 0 of a pc write, so moving the pc back to a Thumb `svc` must keep that bit."""
    session = Session(write_elf(tmp_path, "arm", THUMB_READ_STDIN_THEN_EXIT, thumb=True), stdin=subprocess.PIPE)
    session.send("c")
    time.sleep(0.5)  # blocked in read(0, ...)
    session.sock.sendall(b"\x03")
    assert session.receive()[:3] == b"T02"
    registers = session.read_registers("little")
    assert registers["cpsr"] & 0x20  # CPSR.T
    assert session.read_memory(registers["pc"], 2) == b"\x00\xdf"  # svc #0
    session.process.stdin.write(b"seven!\n")
    session.process.stdin.flush()
    assert session.ask("c") == b"W07"
    assert session.close()[0] == 7


THUMB_EXIT_1_OR_2 = """
    movs r0, #1
    movs r0, #2
    movs r7, #1
    svc #0
"""


def test_the_client_moves_the_pc_of_a_thumb_guest_which_stays_in_thumb(tmp_path):
    """gdb's `set $pc` and `jump` write the pc alone (a `P` packet), with bit 0 clear."""
    session = Session(write_elf(tmp_path, "arm", THUMB_EXIT_1_OR_2, thumb=True))
    pc = session.read_registers("little")["pc"]
    assert session.ask(f"P{session.regnum('pc'):x}={(pc + 2).to_bytes(4, 'little').hex()}") == b"OK"
    assert session.read_registers("little")["cpsr"] & 0x20  # CPSR.T
    assert session.ask("c") == b"W02"
    assert session.close()[0] == 2


LOOP_FIVE_TIMES = """
    mov ecx, 5
    xor edi, edi
loop:
    add edi, 2
    dec ecx
    jnz loop
    mov eax, 60
    syscall
"""


def test_a_breakpoint_in_a_loop_is_hit_every_time_and_stops_a_resume_onto_it(tmp_path):
    """Like a trap instruction, a breakpoint stops even the first instruction of a resume:
    resuming onto one (gdb's `jump`) stops there at once; gdb's step-over (remove it, step,
    insert it, continue) runs its instruction once. Five turns: five hits, exit(10)."""
    session = Session(write_elf(tmp_path, "x86_64", LOOP_FIVE_TIMES))
    loop = session.read_registers("little")["rip"] + len(assemble("x86_64", "mov ecx, 5; xor edi, edi"))
    assert session.ask(f"Z0,{loop:x},1") == b"OK"
    hits = 0
    while (reply := session.ask("c")).startswith(b"T05"):
        hits += 1
        registers = session.read_registers("little")
        assert registers["rip"] == loop and registers["rdi"] == 2 * (hits - 1)
        assert session.ask("c").startswith(b"T05")  # resumed onto the breakpoint: not run
        assert session.read_registers("little")["rdi"] == 2 * (hits - 1)
        assert session.ask(f"z0,{loop:x},1") == b"OK"
        assert session.ask("s").startswith(b"T05")
        assert session.ask(f"Z0,{loop:x},1") == b"OK"
    assert (hits, reply) == (5, b"W0a")
    assert session.close()[0] == 10


def test_a_fault_is_shown_before_the_guest_dies():
    """As under ptrace: continuing without the signal (`c`) runs the faulting instruction again,
    which faults again; continuing with it (`C`, what gdb sends for SIGSEGV) kills the guest."""
    session = Session(sample("x86_64", "crash"), "segv")
    assert session.ask("c")[:3] == b"T0b"  # GDB's SIGSEGV
    pc = session.read_registers("little")["rip"]
    assert pc != 0
    assert session.ask("c")[:3] == b"T0b"
    assert session.read_registers("little")["rip"] == pc
    assert session.ask("C0b") == b"X0b"
    status, _, err = session.close()
    assert status == 139 and b"SIGSEGV" in err


def test_detaching_or_leaving_lets_the_guest_run_on():
    session = Session(sample("x86_64", "hello"))
    assert session.ask(f"Z0,{session.read_registers('little')['rip'] + 0x10:x},1") == b"OK"
    assert session.ask("D") == b"OK"
    status, out, _ = session.close()
    assert status == 0 and b"Hello from bdemu!" in out
    session = Session(sample("x86_64", "hello"))
    status, out, _ = session.close()  # the client just goes away
    assert status == 0 and b"Hello from bdemu!" in out


def test_malformed_packets_get_error_replies_and_the_guest_still_runs():
    session = Session(sample("x86_64", "hello"))
    for packet in ["mzz,4", "m1", "M1,2:zz", "Pzz=00", "p9999", "G00", "Z0,nothex,1", "Z7,1000,1",
                   "Hgzz", "Tzz", "qXfer:features:read:target.xml:zz", "qXfer:nope:read::0,10",
                   "vFile:open:zz,0,0", "vFile:pread:99,10,0", "vCont;x", "QCatchSyscalls:1;zz",
                   "m0,10", "M0,1:00", "\x7f\x01", "c0"[:1] + "zz"]:
        reply = session.ask(packet)
        assert reply == b"" or reply.startswith((b"E", b"F-1", b"OK", b"l", b"W"))
        if reply.startswith(b"W"):
            break
    status, out, _ = session.close()
    assert status == 0 and b"Hello from bdemu!" in out


@pytest.mark.parametrize("address", ["nonsense", "127.0.0.1:99999", "256.1.1.1:1"])
def test_a_bad_gdb_address_is_one_line(address):
    done = run_bdemu("run", "--gdb", address, sample("x86_64", "hello"))
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("bdemu: --gdb")


#: The real gdb for an ISA: gdb-multiarch for all, else the host's gdb for x86 (None: none here).
REAL_GDB = {isa: shutil.which("gdb-multiarch") or (shutil.which("gdb") if isa in ("x86_64", "i386") else None)
            for isa in ISAS}


@pytest.mark.parametrize("isa", ISAS)
def test_the_real_gdb_steps_and_runs_the_guest(isa):
    if REAL_GDB[isa] is None:
        pytest.skip("no gdb for this ISA on this machine (the protocol client above covers the stub)")
    guest = sample(isa, "hello")
    entry = Emulator(str(ROOT / guest)).pc
    server = subprocess.Popen([sys.executable, "-P", "-m", "bdemu", "run", "--gdb", "127.0.0.1:0", guest], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # -P: the installed bdemu
    line = server.stderr.readline().decode()
    assert "waiting for a connection on 127.0.0.1:" in line, line
    port = line.rsplit(":", 1)[1].strip()
    done = subprocess.run([REAL_GDB[isa], "-nx", "-q", "-batch", "-ex", f"target remote 127.0.0.1:{port}",
                           "-ex", "p/x $pc", "-ex", "stepi", "-ex", "x/2xb $pc", "-ex", "continue"],
                          capture_output=True, timeout=60)
    out, _ = server.communicate(timeout=60)
    text = done.stdout.decode()
    assert f"$1 = {entry:#x}" in text
    assert "exited normally" in text
    assert server.returncode == 0 and b"Hello from bdemu!" in out
