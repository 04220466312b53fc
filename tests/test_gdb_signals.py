"""`bdemu run --gdb` and signals, as gdbserver on ptrace does them: a signal stops in the debugger
before it is delivered (whether the guest handles it, ignores it or takes the default action);
the client's resume decides what is delivered (`c` discards it, `C sig` delivers sig, maybe
another one); QPassSignals lets signals through without a stop. Signal numbers on the wire are
GDB's own (SIGUSR1 is 0x1e), whatever the guest ISA numbers them (MIPS: 16)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, sample
from elfgen import BASE, assemble, write_elf
from gdbclient import Session
from test_gdb import READ_STDIN_THEN_EXIT  # read(0, buf, 64), then exit with its result
from test_gdb_events import HANDLER_EXITS_9, SIGACTION_USR1_THEN_RAISE, SIGNAL_TO_A_HANDLER

from bdemu.cpu import by_name
from bdemu.gdb.signals import SignalNumbers

#: GDB's numbers (gdb's include/gdb/signals.def), in hex as on the wire.
HUP, SEGV, ALRM, TERM, USR1, USR2 = "01", "0b", "0e", "0f", "1e", "1f"


def expected_stdout(isa: str, name: str) -> str:
    return json.loads((ROOT / "tests" / "expected" / isa / f"{name}.json").read_text())["stdout"]


def stop_signal(reply: bytes, session: Session) -> str:
    """The signal of a `T` stop reply, which names the stopped thread (the guest's only one)."""
    assert reply[:1] == b"T" and f"thread:{session.process.pid:x};".encode() in reply, reply
    return reply[1:3].decode()


@pytest.mark.parametrize("isa", ["x86_64", "aarch64", "mips"])
def test_signals_stop_before_delivery_and_resuming_with_one_delivers_it(isa):
    """samples/src/signals.c: every signal stops first, but SIGALRM, passed (QPassSignals). Each
    is resumed with itself (its handler runs), except SIGUSR2, resumed with SIGUSR1: SIGUSR1's
    handler runs instead of SIGUSR2's. The last SIGHUP has no handler: the guest dies of it."""
    session = Session(sample(isa, "signals"), acks=False)
    assert "QPassSignals+" in session.features
    assert session.ask(f"QPassSignals:{ALRM}") == b"OK"
    stops = []
    reply = session.ask("c")
    while reply[:1] == b"T":
        stops.append(stop_signal(reply, session))
        reply = session.ask(f"C{USR1 if stops[-1] == USR2 and len(stops) == 2 else stops[-1]}")
    assert stops == [USR1, USR2, USR1, USR1, SEGV, SEGV, SEGV, USR2, HUP, HUP]
    assert reply == b"X01"
    status, out, _ = session.close()
    assert status == 129
    assert out.decode() == expected_stdout(isa, "signals").replace(
        "siginfo: count=2 signo_is_usr2=1 code_is_user=1 blocked_inside=1",
        "siginfo: count=2 signo_is_usr2=0 code_is_user=1 blocked_inside=0")


def test_continuing_without_the_signal_discards_it():
    """`c` at SIGUSR1's stop: its handler never runs (count stays 0); everything after passes."""
    session = Session(sample("x86_64", "signals"), acks=False)
    assert stop_signal(session.ask("c"), session) == USR1
    assert session.ask(f"QPassSignals:{';'.join([HUP, SEGV, ALRM, USR1, USR2])}") == b"OK"
    assert session.ask("c") == b"X01"
    status, out, _ = session.close()
    assert status == 129
    assert out.decode().splitlines()[0] == "raise: count=0 signo_is_usr1=0"


@pytest.mark.parametrize("isa", ["x86_64", "arm", "mips"])
def test_a_signal_with_its_default_action_kills_only_once_the_client_delivers_it(isa):
    """crash kill: kill(getpid(), SIGTERM) with no handler. `C0f` delivers it: the guest dies of
    SIGTERM (status 143, `X0f`); `c` discards it: the guest goes on."""
    session = Session(sample(isa, "crash"), "kill", acks=False)
    assert stop_signal(session.ask("c"), session) == TERM
    assert session.ask(f"C{TERM}") == b"X0f"
    status, out, _ = session.close()
    assert (status, out) == (143, b"crash: mode=kill\n")
    session = Session(sample(isa, "crash"), "kill", acks=False)
    assert stop_signal(session.ask("c"), session) == TERM
    assert session.ask("c") == b"W01"
    status, out, _ = session.close()
    assert (status, out) == (1, b"crash: mode=kill\ncrash: still alive after mode=kill\n")


@pytest.mark.parametrize("isa, status", [("x86_64", 128 + 10), ("mips", 128 + 16)])
def test_the_client_sends_a_signal_from_any_stop_in_gdbs_numbering(isa, status):
    """gdb's `signal SIGUSR1` at the entry stop: `C1e` is the guest's SIGUSR1 (16 on MIPS)."""
    session = Session(sample(isa, "crash"), "exit", "3", acks=False)
    assert session.ask(f"C{USR1}") == b"X1e"
    assert session.close()[0] == status


def test_a_passed_signal_does_not_stop_and_program_signals_may_discard_it():
    session = Session(sample("x86_64", "crash"), "raise", acks=False)  # raise(SIGUSR1), no handler
    assert session.ask(f"QPassSignals:{USR1}") == b"OK"
    assert session.ask("QProgramSignals:") == b"OK"  # no signal may reach the guest
    assert session.ask("c") == b"W01"
    status, out, _ = session.close()
    assert status == 1 and b"still alive" in out
    session = Session(sample("x86_64", "crash"), "raise", acks=False)
    assert session.ask(f"QPassSignals:{USR1}") == b"OK"
    assert session.ask("c") == b"X1e"  # passed without a stop
    assert session.close()[0] == 138


def test_a_step_with_a_signal_stops_on_its_handlers_first_instruction(tmp_path):
    guest = write_elf(tmp_path, "x86_64", SIGNAL_TO_A_HANDLER)
    code = (tmp_path / "snippet").read_bytes()[0x1000:]
    handler = BASE + 0x1000 + code.index(assemble("x86_64", HANDLER_EXITS_9))
    session = Session(guest, acks=False)
    assert stop_signal(session.ask("c"), session) == USR1
    assert session.read_registers("little")["rip"] != handler  # not delivered yet
    assert session.ask(f"S{USR1}")[:3] == b"T05"
    registers = session.read_registers("little")
    assert (registers["rip"], registers["rdi"]) == (handler, 10)  # in the handler, nothing run yet
    assert session.ask("c") == b"W09"
    assert session.close()[0] == 9
    session = Session(guest, acks=False)  # a plain step discards it; a step sending it from there
    assert stop_signal(session.ask("c"), session) == USR1
    assert session.ask("s")[:3] == b"T05"
    assert session.read_registers("little")["rip"] != handler
    assert session.ask(f"S{USR1}")[:3] == b"T05"
    assert session.read_registers("little")["rip"] == handler
    assert session.ask("c") == b"W09"
    assert session.close()[0] == 9


def test_a_host_signal_to_bdemu_stops_as_the_guests_signal():
    """samples/src/sigproc.c wait: handlers for SIGUSR1 and SIGTERM, `pause()` until one ran. A
    SIGTERM to bdemu stops the guest; discarded, pause goes on; a SIGUSR1 then is delivered."""
    session = Session(sample("x86_64", "sigproc"), "wait", acks=False)
    session.send("c")
    assert session.process.stdout.readline() == b"ready\n"
    os.kill(session.process.pid, signal.SIGTERM)
    assert stop_signal(session.receive(), session) == TERM
    session.send("c")
    os.kill(session.process.pid, signal.SIGUSR1)
    assert stop_signal(session.receive(), session) == USR1
    assert session.ask(f"C{USR1}") == b"W03"
    status, out, _ = session.close()
    assert (status, out) == (3, b"handled: usr1=1 term=0\n")


GDB = {isa: shutil.which("gdb-multiarch") or (shutil.which("gdb") if isa == "x86_64" else None)
       for isa in ("x86_64", "mips")}


@pytest.mark.parametrize("isa", ["x86_64", "mips"])
def test_the_real_gdb_shows_a_signal_and_passes_it_to_the_handler(isa):
    if GDB[isa] is None:
        pytest.skip("no gdb for this ISA on this machine (the protocol client above covers the stub)")
    server = subprocess.Popen([sys.executable, "-P", "-m", "bdemu", "run", "--gdb", "127.0.0.1:0",
                               sample(isa, "signals")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = server.stderr.readline().decode()
    assert "waiting for a connection on 127.0.0.1:" in line, line
    port = line.rsplit(":", 1)[1].strip()
    done = subprocess.run([GDB[isa], "-nx", "-q", "-batch", "-ex", f"target remote 127.0.0.1:{port}",
                           "-ex", "handle all nostop noprint pass", "-ex", "handle SIGUSR1 stop print pass",
                           *["-ex", "continue"] * 4], capture_output=True, timeout=60)
    out, _ = server.communicate(timeout=60)
    text = done.stdout.decode()
    assert text.count("Program received signal SIGUSR1") == 3, text
    assert "Program terminated with signal SIGHUP" in text, text
    assert server.returncode == 129 and out.decode() == expected_stdout(isa, "signals")


#: SIGUSR1 ignored (SIG_IGN), sent to itself, then SIGCHLD (ignored by default); exit(3).
IGNORED_SIGNALS = f"""
    mov qword ptr [rsp - 32], 1
    mov qword ptr [rsp - 24], 0
    mov qword ptr [rsp - 16], 0
    mov qword ptr [rsp - 8], 0
    {SIGACTION_USR1_THEN_RAISE}
    mov rdi, r12
    mov esi, 17
    mov eax, 62
    syscall
    mov edi, 3
    mov eax, 60
    syscall
"""


def test_ignored_signals_stop_too_and_stay_ignored(tmp_path):
    """As ptrace does, for the guest's SIG_IGN and a signal ignored by default (SIGCHLD, GDB's
    0x14) alike; delivered, they are ignored still."""
    session = Session(write_elf(tmp_path, "x86_64", IGNORED_SIGNALS), acks=False)
    assert stop_signal(session.ask("c"), session) == USR1
    assert stop_signal(session.ask(f"C{USR1}"), session) == "14"
    assert session.ask("C14") == b"W03"
    assert session.close()[0] == 3




def test_a_discarded_signal_restarts_the_syscall_it_interrupted(tmp_path):
    """A SIGUSR1 from outside (no handler) interrupts a blocking read; discarded by the client,
    the read runs again, as Linux restarts it when no handler ran, and gets the input."""
    session = Session(write_elf(tmp_path, "x86_64", READ_STDIN_THEN_EXIT), stdin=subprocess.PIPE, acks=False)
    session.send("c")
    time.sleep(0.5)  # blocked in read(0, ...)
    os.kill(session.process.pid, signal.SIGUSR1)
    assert stop_signal(session.receive(), session) == USR1
    session.process.stdin.write(b"seven!\n")
    session.process.stdin.flush()
    assert session.ask("c") == b"W07"
    assert session.close()[0] == 7


def test_gdb_numbers_follow_each_isas_own_signal_numbers():
    """By name, as gdbserver translates its host's numbers: MIPS's SIGUSR1 is 16, SIGCHLD 18;
    real-time signals in GDB's three runs; SIGSTKFLT has no GDB number (GDB_SIGNAL_UNKNOWN)."""
    mips = SignalNumbers(by_name("mips").signal_overrides, 128)
    x86 = SignalNumbers(by_name("x86_64").signal_overrides, 64)
    assert [mips.gdb(n) for n in (16, 17, 18, 10, 7, 15, 23)] == [30, 31, 20, 10, 7, 15, 17]
    assert [x86.gdb(n) for n in (10, 12, 17, 7, 16, 29, 31)] == [30, 31, 20, 10, 143, 23, 12]
    assert [x86.gdb(n) for n in (32, 33, 63, 64)] == [77, 45, 75, 78]
    assert mips.gdb(127) == 141 and mips.guest(141) == 127
    assert (x86.guest(30), mips.guest(30), x86.guest(0), x86.guest(7)) == (10, 16, 0, None)


@pytest.mark.parametrize("isa", ["x86_64", "mips"])
def test_the_siginfo_of_a_signal_stop_reads_as_the_guest_would_get_it(isa):
    """gdb's `$_siginfo` (qXfer:siginfo:read) at a stop: a NULL store gives SIGSEGV, SEGV_MAPERR,
    si_addr 0 (the fault); kill(getpid(), SIGTERM) gives SI_USER with the sender's pid (the
    guest's own). Laid out as the guest's kernel would (MIPS: si_code before si_errno, its own
    signal numbers); no siginfo (an error) where no signal stopped the guest."""
    arch = by_name(isa)
    order, code_at = arch.byteorder, arch.signal_frame.siginfo_code
    number = lambda data, at: int.from_bytes(data[at:at + 4], order)
    for mode, gdb_signal, signal_number, code in (("segv", SEGV, 11, 1), ("kill", TERM, 15, 0)):
        session = Session(sample(isa, "crash"), mode, acks=False)
        assert "qXfer:siginfo:read+" in session.features
        assert session.ask("qXfer:siginfo:read::0,80")[:1] == b"E"  # stopped before the first instruction
        assert stop_signal(session.ask("c"), session) == gdb_signal
        reply = session.ask("qXfer:siginfo:read::0,200")
        assert reply[:1] == b"l", reply
        info = Session.unescape(reply[1:])
        assert len(info) == 128 and number(info, 0) == signal_number and number(info, code_at) == code
        fields = 16 if arch.bits == 64 else 12
        if mode == "kill":
            assert number(info, fields) == session.process.pid
        else:
            assert info[fields:fields + arch.bits // 8] == bytes(arch.bits // 8)
        session.send("k")
        session.close()
