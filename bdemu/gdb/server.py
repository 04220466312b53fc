"""A GDB remote stub: `bdemu run --gdb PORT` lets gdb (or any RSP client) debug the guest.

The stub lives in the run loop's thread and talks to the client only while
the guest is stopped, between two `emu_start`s (the only safe points, as for
signals and thread switches): before the first instruction, when a
breakpoint's code hook stops the engine at that instruction (before it runs),
after a single step (`emu_start` with a count of 1), when the client
interrupts (its 0x03 byte, noticed by a watcher thread while the guest runs,
stops the engine through the stop gate), before a signal (a fault's too) is
delivered, as ptrace stops (signals.py: numbers, QPassSignals), and at the end.
All-stop: gdb sees every guest thread (`Hg` reads a waiting one's saved
context), and stops name the thread that was running.

Registers come from the ISA's `GdbTarget` (bdemu/cpu/gdb.py), sent to the
client as its target description (`qXfer:features:read`); `qXfer:auxv:read`
and `qXfer:exec-file:read` let gdb find the program and its load address by
itself (PIE, ld.so's libraries through its own `r_debug` reading).
"""
from __future__ import annotations

import os
import select
import socket
import sys
import threading
from typing import TYPE_CHECKING

from ..cpu.gdb import TARGETS
from ..errors import UsageError
from ..linux.errors import GuestSignal, StopRun
from .breakpoints import Breakpoints
from .documents import program_path, target_xml, threads_xml, xfer
from .hostio import HostFiles
from .packets import INTERRUPT, TICK, Connection, Disconnected, unescape
from .signals import SIGINT, SIGTRAP, SignalChoices
from .target import GuestView

if TYPE_CHECKING:
    from ..emulator import Emulator
    from ..runloop import RunResult

#: A command that sent its own reply.
ANSWERED = object()


class GdbServer:
    """The stub of one emulator. The run loop calls `serve_pending` and `resume` before each
    `emu_start`, `stopped` after it, `exec_done` after an execve and `finish` at the end; the
    syscall trap calls `syscall_stop` and `syscall_returned` while `catching` is set."""

    def __init__(self, emu: "Emulator", host: str = "127.0.0.1", port: int = 0) -> None:
        self.emu = emu
        if emu.arch.name not in TARGETS:
            raise UsageError(f"--gdb: no GDB register description for {emu.arch.name} yet")
        self.view = GuestView(emu)
        try:
            self.listener = socket.create_server((host, port))
        except OSError as error:
            raise UsageError(f"--gdb {host}:{port}: {error.strerror or error}") from None
        #: (host, port) the stub listens on (port 0 picks a free one).
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self.conn: Connection | None = None
        self._breakpoints = Breakpoints(emu.uc, self._hit, self._watched)
        self._stepping = False
        self._stop: tuple[int, bytes] | None = None  # the stop owed to the client: (signal, reply's extras)
        self._watcher: threading.Thread | None = None
        self._quiet = os.pipe()
        self._auxv = b""
        self._exec_events = False  # the client wants exec stops (qSupported exec-events+)
        self._siginfo: bytes | None = None  # the siginfo of the signal stopped at
        self._rewind: dict[str, int] | None = None  # a syscall to run again (restart_syscall)
        self._step_from: tuple[int, int] | None = None  # (thread, pc) of a step out of a syscall stop
        self._step_signal: tuple[int, int] | None = None  # (thread, pc) of a step that sends a signal
        self.signals = SignalChoices(emu.arch.signal_overrides, emu.kernel.signals.count)
        #: The last emu_start counted instructions. Unicorn drops its counting hook for an uncounted
        #: run and adds it back for a counted one without retranslating: blocks translated in
        #: between would not count, and a step would run a whole block.
        self._counted = False
        self._files = HostFiles(emu.vfs)
        #: Syscall numbers `catch syscall` stops at ("all": every one; empty: none).
        self.catching: frozenset[int] | str = frozenset()

    # -- the run loop's side -----------------------------------------------------------------------
    @property
    def listening(self) -> bool:
        """No client came yet."""
        return self.listener.fileno() != -1 and self.conn is None

    def _accept(self) -> None:
        """Wait for the client, then serve it until it resumes the guest (stopped at its entry)."""
        print(f"bdemu: gdb: waiting for a connection on {self.address[0]}:{self.address[1]}",
              file=sys.stderr, flush=True)
        self.listener.settimeout(TICK)
        while True:
            try:
                sock, _ = self.listener.accept()
                break
            except (TimeoutError, socket.timeout):
                self._check_host_stop()
        self.listener.close()
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = Connection(sock, self._check_host_stop)
        self.emu.kernel.signals.traced = True  # the client sees every signal first
        self._auxv = self.view.read_auxv()
        self._serve(self._reply(SIGTRAP), announce=False)

    def serve_pending(self) -> bool:
        """At a safe point before `emu_start`: wait for the client if none came yet, or tell it of
        a stop owed since the last `emu_start` (an exec, a waiting syscall's return). True if the
        client was served: time has passed, so the run loop measures slices and timers anew."""
        if self.listening:
            self._accept()
            return True
        if self._step_signal is not None:
            self._stepped_into_handler()
        if self.conn is None or self._stop is None:
            return False
        self._quieten()
        stop, self._stop = self._stop, None
        self._serve(self._reply(*stop))
        return True

    def resume(self, count: int) -> int:
        """Just before `emu_start`: the instruction count to give it (1 for a step)."""
        if self.conn is None:
            return count
        self.signals.delivered = 0
        if self._stepping:
            if not self._counted:  # see `_counted`
                self.emu.uc.ctl_flush_tb()
                self._counted = True
            return 1
        self._counted = bool(count)
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="bdemu-gdb-interrupts", daemon=True)
            self._watcher.start()
        return count

    @property
    def interrupted(self) -> bool:
        """The client asked to stop (Ctrl-C) and the guest has not stopped yet."""
        return self._stop is not None and self._stop[0] == SIGINT

    def restart_syscall(self, saved: dict[str, int]) -> None:
        """From the syscall trap: the blocking syscall gave way to the client's stop (DebuggerStop);
        once the engine has stopped past it, `stopped` puts the guest back on its instruction."""
        self._rewind = saved
        self.emu._stops.request("debugger")

    def exec_done(self) -> None:
        """The guest replaced its program (execve): breakpoints meant the old one; a client that
        takes exec events is told at the next safe point (`serve_pending`) and reloads symbols."""
        self._breakpoints.clear()
        self._auxv = self.view.read_auxv()
        if self.conn is not None and self._exec_events:
            self._stop = (SIGTRAP, b"exec:%s;" % os.fsencode(program_path(self.emu)).hex().encode())

    def stopped(self) -> bool:
        """After `emu_start` returned: serve the client if the guest stopped for it (then True)."""
        if self.conn is None:
            return False
        self._quieten()
        if self._rewind is not None:
            from ..linux.sigdelivery import rewind_to_syscall
            saved, self._rewind = self._rewind, None
            rewind_to_syscall(self.emu.kernel, saved)
        if self._stepping:
            step_from, self._step_from = self._step_from, None
            if self._stop is None and step_from == self._position():
                return False  # the syscall ended its block, nothing ran yet: step one instruction
            self._stepping = False
            self._stop = self._stop or (SIGTRAP, b"")
        if self._stop is None:
            return False
        stop, self._stop = self._stop, None
        self._serve(self._reply(*stop))
        return True

    def finish(self, result: "RunResult") -> None:
        """The run ended: show a fault to the client first, then say how the guest ended."""
        if self.conn is None:
            return
        self._quieten()
        try:
            if self._stop is not None:  # a watchpoint hit in the block that ended the run
                stop, self._stop = self._stop, None
                self._serve(self._reply(*stop))
            shown = (self.signals.delivered, self.emu.kernel.signals.kill_number)  # (ptrace shows no SIGKILL)
            if result.reason == "signal" and "killed by" in result.message and result.signal not in shown:
                self._serve(self._reply(self.signals.numbers.gdb(result.signal)))
            if self.conn is not None:
                if result.reason == "signal" and result.signal:
                    self.conn.send(b"X%02x" % self.signals.numbers.gdb(result.signal))
                else:
                    self.conn.send(b"W%02x" % (result.exit_code & 0xFF))
        except (Disconnected, OSError, GuestSignal, StopRun):
            pass
        self._close()

    def syscall_stop(self, number: int, returning: bool) -> None:
        """From the syscall trap, if `catching` has the number: stop at its entry or its return.
        The guest is inside a hook here, so a step goes on to the next block's start (and one
        instruction further where the syscall ended its block: a step runs something)."""
        if self.conn is None or (self.catching != "all" and number not in self.catching):
            return
        self._quieten()
        self._serve(self._reply(SIGTRAP, b"%s:%x;" % (b"syscall_return" if returning else b"syscall_entry", number)))
        if self._stepping:
            self._step_from = self._position()
            self._stop_at_next_block()
        elif self.conn is not None:
            self.resume(0)  # the watcher again

    def syscall_returned(self, number: int) -> None:
        """A waiting syscall's real return (its thread runs again, between two `emu_start`s): the
        client is told at the next safe point (`serve_pending`)."""
        if self.conn is not None and (self.catching == "all" or number in self.catching):
            self._stop = (SIGTRAP, b"syscall_return:%x;" % number)

    def signal_stop(self, signal: int, info: bytes | None = None) -> int:
        """From signal delivery (linux/sigdelivery.py): stop before `signal` reaches the running
        thread, as ptrace's signal-delivery-stop, unless the client passes it (QPassSignals);
        `info`: its siginfo, which the client reads (`$_siginfo`) while stopped there.
        The signal to deliver instead: the client's choice (`c`: none, 0; `C sig`: sig)."""
        if self.conn is None:
            return signal
        chosen = self.signals.passed(signal)
        if chosen is None:
            self._quieten()
            self._siginfo = info
            try:
                self._serve(self._reply(self.signals.numbers.gdb(signal)), at_signal=True)
            finally:
                self._siginfo = None
            if self.conn is None:  # detached: delivered as it would have been without the client
                return signal
            chosen = self.signals.chosen()
        if chosen and self._stepping:
            self._step_signal = self._position()
        return chosen

    def fault(self, signal: int, info: bytes | None = None) -> bool:
        """A fault no guest handler takes: the client sees it first. True if it discards it (the
        instruction runs again, as under ptrace) or sends another signal (delivered next)."""
        chosen = self.signal_stop(signal, info)
        if chosen == signal:
            return False
        if chosen:
            self.signals.grant(self.emu.kernel.signals, chosen)
        return True

    def _stepped_into_handler(self) -> None:
        """A step that sent a signal into a handler (the pc moved, nothing ran) ends on the
        handler's first instruction, as on Linux."""
        before, self._step_signal = self._step_signal, None
        if self._stepping and self.conn is not None and self._position() != before:
            self._stepping = False
            self._stop = (SIGTRAP, b"")

    def forget(self) -> None:
        """In a forked child: the client debugs the parent; drop breakpoints and sockets unsaid."""
        self._breakpoints.clear()
        self._watcher = None
        self._close()

    def _threads(self):
        return self.emu.kernel.threads

    def _tids(self) -> list[int]:
        """The guest's threads, the running one first."""
        threads = self._threads()
        return [threads.current.tid] + [tid for tid in threads.threads if tid != threads.current.tid]

    def _position(self) -> tuple[int, int]:
        return self._threads().current.tid, self.emu.pc

    def _reply(self, signal: int, extra: bytes = b"") -> bytes:
        """A stop reply, naming the running thread (gdb selects it)."""
        self.view.selected = None
        return b"T%02xthread:%x;%s" % (signal, self._threads().current.tid, extra)

    def _check_host_stop(self) -> None:
        """Ctrl-C or SIGTERM while waiting for the client ends the run as it would a running guest."""
        if self.emu._stops.host_signal is not None:
            raise StopRun()

    # -- serving -----------------------------------------------------------------------------------
    def _serve(self, reply: bytes, announce: bool = True, at_signal: bool = False) -> None:
        """Answer packets until one resumes the guest. A closed connection detaches the stub. A
        signal the client resumes with from a stop that is not a signal's goes to the thread."""
        self._serve_packets(reply, announce)
        if not at_signal and self.signals.resume_with and self.conn is not None:
            self.signals.grant(self.emu.kernel.signals, self.signals.chosen())
            self.emu.request_signal_work()  # (from a syscall stop: delivered once the syscall is over)

    def _serve_packets(self, reply: bytes, announce: bool) -> None:
        try:
            if announce:
                self.conn.send(reply)
            self._last_stop = reply
            while True:
                packet = self.conn.receive()
                if packet == INTERRUPT:
                    continue  # already stopped
                try:
                    answer = self._command(packet)
                except (ValueError, IndexError, KeyError, OverflowError):  # a malformed packet
                    answer = b"E01"
                if answer is None:  # resumed
                    return
                if answer is not ANSWERED:
                    self.conn.send(answer)
        except (Disconnected, OSError):
            self._detach()

    def _command(self, packet: bytes):
        """The reply to one packet; None once the guest is to run (or the client left)."""
        kind, body = packet[:1], packet[1:].decode("latin-1")
        if kind == b"?":
            return self._last_stop
        if kind in (b"c", b"s"):
            return self._resume(kind == b"s", body)
        if kind in (b"C", b"S"):
            signal, _, address = body.partition(";")
            return self._resume(kind == b"S", address, signal)
        if kind == b"g":
            return self.view.registers()
        if kind == b"G":
            return self.view.write_registers(bytes.fromhex(body))
        if kind == b"p":
            register = self.view.numbered.get(int(body, 16))
            return b"E00" if register is None else self.view.read_register(register)
        if kind == b"P":
            number, _, value = body.partition("=")
            register = self.view.numbered.get(int(number, 16))
            if register is None:
                return b"E00"
            self.view.write_register(register, bytes.fromhex(value))
            return b"OK"
        if kind == b"m":
            address, length = (int(x, 16) for x in body.split(","))
            return self.view.read_memory(address, length)
        if kind in (b"M", b"X"):
            where, _, data = packet[1:].partition(b":")
            address = int(where.split(b",")[0], 16)
            return self.view.write_memory(address, unescape(data) if kind == b"X" else bytes.fromhex(data.decode()))
        if kind in (b"Z", b"z"):
            return self._breakpoints.packet(kind == b"Z", body)
        if kind == b"k":
            self._close()
            raise GuestSignal(9, "killed by the debugger")
        if kind == b"D":
            self.conn.send(b"OK")
            self._detach()
            return None
        if kind == b"H":
            if body[:1] == "g":  # the thread whose registers g/G/p/P read and write
                tid = int(body[1:], 16) if body[1:] not in ("0", "-1", "") else None
                if tid is not None and tid not in self._threads().threads:
                    return b"E01"
                self.view.selected = tid
            return b"OK"
        if kind == b"T":
            return b"OK" if int(body, 16) in self._threads().threads else b"E01"
        if kind == b"v":
            return self._v_packet(body)
        if kind == b"q" or kind == b"Q":
            return self._query(kind + packet[1:])
        return b""  # unsupported: an empty reply says so

    def _v_packet(self, body: str) -> bytes | None:
        if body == "Cont?":
            return b"vCont;c;C;s;S"
        if body.startswith("File:"):
            return self._files.packet(body[5:])
        if body.startswith("Cont;"):
            action = body[5:].split(";")[0].split(":")[0]
            if action[:1] in ("c", "C", "s", "S"):
                return self._resume(action[:1] in ("s", "S"), "", action[1:] if action[:1] in ("C", "S") else "")
            return b"E01"
        return b""  # vMustReplyEmpty, vFile, vKill...: not supported

    def _query(self, packet: bytes):
        text = packet.decode("latin-1")
        if text.startswith("qSupported"):
            self._exec_events = "exec-events+" in text
            return (b"PacketSize=20000;QStartNoAckMode+;qXfer:features:read+;qXfer:auxv:read+;"
                    b"qXfer:exec-file:read+;qXfer:threads:read+;qXfer:siginfo:read+;"
                    b"QCatchSyscalls+;QPassSignals+;QProgramSignals+;swbreak+;vContSupported+"
                    + (b";exec-events+" if self._exec_events else b""))
        if text.startswith(("QPassSignals:", "QProgramSignals:")):
            return self.signals.packet(text)
        if text.startswith("QCatchSyscalls:"):  # catch syscall: 0, 1 (all) or 1;NR;NR...
            fields = text.split(":", 1)[1].split(";")
            self.catching = (frozenset() if fields[0] == "0" else "all" if len(fields) == 1
                             else frozenset(int(number, 16) for number in fields[1:]))
            return b"OK"
        if text == "QStartNoAckMode":
            self.conn.send(b"OK")
            self.conn.acks = False
            return ANSWERED
        if text.startswith("qXfer:"):
            return xfer(text, self._document)
        answers = {"qC": b"QC%x" % self._threads().current.tid, "qsThreadInfo": b"l", "qAttached": b"0",
                   "qSymbol::": b"OK",
                   "qfThreadInfo": b"m" + ",".join(f"{tid:x}" for tid in self._tids()).encode()}
        return answers.get(text, b"")

    def _document(self, obj: str, annex: str) -> bytes | None:
        """A `qXfer` document (documents.py)."""
        if obj == "features" and annex == "target.xml":
            return target_xml(self.view.target)
        if obj == "threads":
            return threads_xml(self.emu, self._tids())
        if obj == "exec-file":
            return os.fsencode(program_path(self.emu))
        if obj == "siginfo":  # None (an error) unless stopped at a signal
            return self._siginfo
        return self._auxv if obj == "auxv" else None

    # -- resuming ----------------------------------------------------------------------------------
    def _resume(self, step: bool, address: str, signal: str = "") -> None:
        self.signals.resume(signal)
        if address:
            self.emu.set_pc(int(address, 16))
        self._stepping = step
        return None

    def _watch(self) -> None:
        """While the guest runs: a 0x03 from the client stops it (through the stop gate)."""
        quiet, conn = self._quiet[0], self.conn
        watched = [conn.sock.fileno(), quiet]
        while True:
            readable, _, _ = select.select(watched, [], [])
            if quiet in readable:
                os.read(quiet, 1)
                return
            try:
                interrupted = conn.take_interrupt()
            except (Disconnected, OSError):
                interrupted = False
            if interrupted:
                self._stop = (SIGINT, b"")
                self.emu._stops.wake(ends_run=False)
            watched = [quiet]  # until told to stop watching: nothing more is expected

    def _quieten(self) -> None:
        if self._watcher is not None:
            os.write(self._quiet[1], b"q")
            self._watcher.join()
            self._watcher = None

    def _detach(self) -> None:
        """The client left (or detached): breakpoints go, the guest runs on undebugged."""
        self._breakpoints.clear()
        self._stepping = False
        self._close()

    def _close(self) -> None:
        for closable in (self.conn.sock if self.conn else None, self.listener):
            try:
                if closable is not None:
                    closable.close()
            except OSError:
                pass
        self.conn = None
        self.emu.kernel.signals.traced = False
        self._files.close_all()
        for fd in self._quiet:
            try:
                os.close(fd)
            except OSError:
                pass
        self._quiet = (-1, -1)

    # -- breakpoints -------------------------------------------------------------------------------
    def _hit(self) -> None:
        """A breakpoint: stop before its instruction runs, even the first one of a resume (as a
        trap instruction would). gdb itself steps a resumed thread past a breakpoint at its stop
        pc (it removes it, steps, inserts it again); `jump` onto one stops there."""
        self._stop = (SIGTRAP, b"swbreak:;")
        self.emu._stops.request("debugger")

    def _watched(self, extra: bytes) -> None:
        """A watchpoint's access. Stopping inside it would leave the pc on an instruction whose
        store already happened (run again on resume), so the guest stops at the next block: gdb
        sees it a few instructions after the access, in the same block."""
        if self._stop is None:
            self._stop = (SIGTRAP, extra)
            self._stop_at_next_block()

    def _stop_at_next_block(self) -> None:
        """From inside a hook: stop the engine before the next block, through the stop gate."""
        self.emu._stops.requests.add("debugger")
        self.emu._stops.gate.request()
