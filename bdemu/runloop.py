"""The run loop: run the guest with `emu_start` until it ends, and say how (a RunResult).

Hook exceptions stop Unicorn and come back out of `emu_start` (the binding's policy), where
the loop turns them into a RunResult: one central place for every way a run can end. Between
two `emu_start`s (the only safe points) it switches guest threads, delivers signals and
replaces the image after execve.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import unicorn
from unicorn import UC_QUERY_TIMEOUT, UcError

from .errors import RunStopped
from .linux import sigdelivery
from .linux.errors import ExecRequest, GuestExit, GuestSignal, StopRun
from .linux.signals import siginfo

if TYPE_CHECKING:
    from .emulator import Emulator

SIGNAL_NAMES = {2: "SIGINT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL",
                11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM"}
_FAULT_ERRORS = {
    unicorn.UC_ERR_READ_UNMAPPED: (11, "read of unmapped memory"),
    unicorn.UC_ERR_WRITE_UNMAPPED: (11, "write to unmapped memory"),
    unicorn.UC_ERR_FETCH_UNMAPPED: (11, "execution of unmapped memory"),
    unicorn.UC_ERR_READ_PROT: (11, "read of protected memory"),
    unicorn.UC_ERR_WRITE_PROT: (11, "write to protected memory"),
    unicorn.UC_ERR_FETCH_PROT: (11, "execution of non-executable memory"),
    unicorn.UC_ERR_INSN_INVALID: (4, "invalid instruction"),
    unicorn.UC_ERR_READ_UNALIGNED: (7, "unaligned read"),
    unicorn.UC_ERR_WRITE_UNALIGNED: (7, "unaligned write"),
    unicorn.UC_ERR_FETCH_UNALIGNED: (7, "unaligned fetch"),
    unicorn.UC_ERR_EXCEPTION: (4, "unhandled CPU exception"),
}
_PROT_ERRORS = (unicorn.UC_ERR_READ_PROT, unicorn.UC_ERR_WRITE_PROT, unicorn.UC_ERR_FETCH_PROT)


@dataclass
class RunResult:
    """How a run ended. `exit_code` follows the exit-status table of `bdemu run`."""

    exit_code: int
    reason: str  # "exit", "signal", "limit", "error", "host-exec" (extra["host_exec"] execs it)
    signal: int | None = None
    message: str = ""
    pc: int = 0
    stdout: bytes | None = None
    stderr: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def safe_pc(emu: "Emulator") -> int:
    try:
        return emu.regs.reg(emu.arch.pc)
    except Exception:
        return 0


def run_loop(emu: "Emulator", max_insns: int | None, timeout: float | None) -> RunResult:
    """Run the guest until it exits, is killed, or reaches a limit."""
    stops = emu._stops
    deadline = stops.deadline = None if timeout is None else time.monotonic() + timeout
    until = emu.arch.word_mask if emu.arch.run_until is None else emu.arch.run_until
    unlimited_count = 1 << 62 if emu.arch.always_count_insns else 0
    kernel = emu.kernel
    debugger = emu.debugger  # bdemu/gdb/server.py: served between two emu_starts
    switch_threads = False
    while True:
        if stops.host_signal:
            return _stopped_by_host(emu)
        stops.requests.clear()
        stops.fault = None
        timeout_us = 0
        if deadline is not None:
            timeout_us = max(1, int((deadline - time.monotonic()) * 1e6))
        # Threads take turns by time (0 while the guest has one thread), unless an instruction
        # limit is set: a slice could not tell Unicorn's count running out from the slice ending.
        time_slice = kernel.threads.time_slice_us()
        sliced = bool(time_slice) and not max_insns and (not timeout_us or time_slice < timeout_us)
        started = time.monotonic()
        alarm_us = kernel.signals.alarm_remaining_us()  # SIGALRM ends the slice on time
        # A slice or a timer ends with the run going on, so through the stop gate: emu_start's
        # own timeout may stop in the middle of a block (see bdemu/stopgate.py). Only --timeout,
        # which ends the run, stays emu_start's.
        expiries = [us for us in (time_slice if sliced else None, alarm_us) if us is not None]
        gate_us = min(expiries) if expiries else None
        if stops.gate is None and (gate_us is not None or kernel.signals.has_handlers() or debugger is not None):
            from .hookinstall import register_block_hooks_again
            from .stopgate import StopGate
            stops.gate = StopGate(emu.uc)
            register_block_hooks_again(emu)
        if stops.gate is not None:
            stops.gate.arm(None if gate_us is None else gate_us / 1e6)
        try:
            if switch_threads:  # in the try: waiting for a parked thread may end the run
                switch_threads = False
                kernel.threads.reschedule()
                continue  # the slice and timeout are measured from now
            if kernel.signals.has_work():
                sigdelivery.deliver_pending(kernel)
            wakeups = stops.wakeups()
            if kernel.signals.arrived:  # noted since has_work: emu_start would drop its stop
                continue
            count = max_insns or unlimited_count
            if debugger is not None:
                if debugger.serve_pending():  # the client's turn: slices and timers start after it
                    continue
                count = debugger.resume(count)
            _emu_start(emu, _resume_pc(emu), until, timeout_us, count)
            if debugger is not None and debugger.stopped():  # a breakpoint, a step, an interrupt
                continue
        except GuestExit as done:
            return RunResult(done.status, "exit", pc=safe_pc(emu))
        except GuestSignal as killed:
            if killed.fault and sigdelivery.catch_fault(kernel, killed.signal, 0, 1):
                if _past(deadline):  # a handler that fixes nothing faults again and again
                    return RunResult(124, "limit", message="timeout reached", pc=safe_pc(emu))
                continue
            if not killed.fault:
                return _signal_result(emu, killed.signal, killed.detail)
            result = _fault_result(emu, killed.signal, killed.detail, siginfo(kernel, killed.signal, 1, 0))
            if result is None:  # a debugger let the run go on
                continue
            return result
        except ExecRequest as request:
            if request.native is not None:  # the host runs it: this run is over
                return RunResult(0, "host-exec", message=f"the guest exec'd the host program {request.host_path}",
                                 pc=safe_pc(emu), extra={"host_exec": request.native})
            emu._exec(request)
            if debugger is not None:
                debugger.exec_done()
            continue
        except StopRun:  # a blocking syscall or the wait for a parked thread: stopped or timed out
            if not stops.host_signal:
                return RunResult(124, "limit", message="timeout reached", pc=safe_pc(emu))
        except RunStopped as error:
            return RunResult(125, "error", message=str(error), pc=safe_pc(emu))
        except UcError as error:
            signal, what = _FAULT_ERRORS.get(error.errno, (11, str(error)))
            detail = what
            address = stops.fault[1] if stops.fault is not None else 0
            code = 2 if error.errno in _PROT_ERRORS else 1  # SEGV_ACCERR, else SEGV_MAPERR / ILL_ILLOPC
            if sigdelivery.catch_fault(kernel, signal, address, code):
                if _past(deadline):
                    return RunResult(124, "limit", message="timeout reached", pc=safe_pc(emu))
                continue
            if stops.fault is not None:
                access, address = stops.fault
                detail = f"{what} at {address:#x} ({access})"
            result = _fault_result(emu, signal, detail, siginfo(kernel, signal, code, address))
            if result is None:
                continue
            return result
        except KeyboardInterrupt:
            return RunResult(130, "signal", signal=2, message="interrupted", pc=safe_pc(emu))
        if stops.host_signal:
            return _stopped_by_host(emu)
        if "detach" in stops.requests:  # in a forked child
            from .hookinstall import remove_plugin_hooks
            remove_plugin_hooks(emu)
            kernel.host_signals.after_fork()  # only now: emu_start has joined its timer
        elapsed_us = (time.monotonic() - started) * 1e6
        action = after_stop(Stop(
            requested=frozenset(stops.requests), woken=stops.wakeups() != wakeups,
            timed_out=(bool(timeout_us) and bool(emu.uc.query(UC_QUERY_TIMEOUT))
                       or (stops.gate is not None and stops.gate.deadline_fired)),
            deadline_passed=_past(deadline), slice_used=sliced and elapsed_us >= time_slice,
            counting=bool(max_insns)))
        if action == "preempt":
            kernel.threads.preempt()  # the running thread used up its time slice
        if action in ("switch", "preempt"):
            switch_threads = True
        elif action != "continue":
            return RunResult(124, "limit", message=f"{action} reached", pc=safe_pc(emu))


@dataclass(frozen=True)
class Stop:
    """What the run loop knows once `emu_start` returned without an exception."""

    requested: frozenset[str]  # StopRecord.requests of this run: "threads", "resume", "detach"
    woken: bool  # a host-signal watcher asked for a stop during (or just before) this emu_start
    timed_out: bool  # Unicorn's timeout budget ran out (UC_QUERY_TIMEOUT)
    deadline_passed: bool  # --timeout's deadline
    slice_used: bool  # the running thread's time slice is over
    counting: bool  # emu_start was given --max-insns as its instruction count


def after_stop(stop: Stop) -> str:
    """Why emu_start returned, hence what the loop does next: "switch" threads, "preempt" the
    running thread (then switch), "continue", or end the run at the "timeout" or the
    "instruction limit".

    A stop bdemu asked for is always recorded before its `emu_stop` (StopRecord), and Unicorn
    records its own timeout, so a stop with neither came from the instruction count running
    out: Unicorn does not say so, and the only other ways (the unmapped `until` address, a
    plugin calling `uc.emu_stop()` itself) are not worth a per-instruction count of ours. So
    the limit is reported only then, and the timeout only once its deadline has passed: a
    budget that ran out a hair early (the microseconds round down) or for a signal's expiry
    just goes round again. A requested stop always goes round (a watcher's stop that landed
    before emu_start began was dropped by Unicorn, so its record may stand for a stop that
    came from the count: going round restarts the count, which README documents)."""
    if "threads" in stop.requested:
        return "switch"
    if stop.requested or stop.woken:
        return "continue"
    if stop.timed_out:
        if stop.deadline_passed:
            return "timeout"
        return "preempt" if stop.slice_used else "continue"
    return "instruction limit" if stop.counting else "continue"


class StopRecord:
    """Why the engine was asked to stop, and when the run must end: `emu_start` does not say
    why it returned, so every `uc.emu_stop()` bdemu makes is preceded by a note here.

    Syscall hooks note `requests` on the run loop's own thread; the host-signal watchers note
    `host_signal` (end the run) or a wake-up (take the host signals that arrived) from theirs.
    A wake-up and its emu_stop happen under one lock, which the loop takes to read the count
    before emu_start: so a wake-up the loop did not count stopped this emu_start, or was
    dropped by it (emu_start clears Unicorn's stop flag as it begins), never a previous one."""

    def __init__(self, uc) -> None:
        self._uc = uc
        self.requests: set[str] = set()
        self.host_signal: int | None = None
        #: time.monotonic() value of --timeout.
        self.deadline: float | None = None
        #: The last invalid memory access (kind, address), for a fault's message.
        self.fault: tuple[str, int] | None = None
        self._wakeups = 0
        #: The native stop gate (bdemu/stopgate.py), installed once the guest needs stops that let
        #: the run go on: threads' time slices, timers, host signals for its handlers.
        self.gate = None
        self._lock = threading.RLock()  # reentrant: a Python signal handler may run in the loop's thread

    def request(self, reason: str) -> None:
        self.requests.add(reason)
        self._uc.emu_stop()

    def stop_run(self, signal: int) -> None:
        self.host_signal = signal
        self._uc.emu_stop()

    def wake(self, ends_run: bool = True) -> None:
        """From a watcher thread. Through the stop gate once the guest has one; else a plain
        emu_stop, which may leave the pc before instructions that already ran (see
        bdemu/stopgate.py): only for a signal that ends the run, where that cannot matter."""
        with self._lock:
            self._wakeups += 1
            if self.gate is not None:
                self.gate.request()
            elif ends_run:
                self._uc.emu_stop()

    def wakeups(self) -> int:
        with self._lock:
            return self._wakeups


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _emu_start(emu: "Emulator", begin: int, until: int, timeout_us: int, count: int) -> None:
    """emu_start, where a hook's exception wins over a fault the CPU hit before it stopped
    (Unicorn may run on a few instructions after a stop requested in an interrupt hook)."""
    try:
        emu.uc.emu_start(begin, until, timeout_us, count)
    except UcError:
        pending = emu.uc._hook_exception
        if pending is None:
            raise
        raise pending from None


def _fault_result(emu: "Emulator", signal: int, detail: str, info: bytes) -> RunResult | None:
    """A fault no guest handler takes ends the run, but a debugger sees it first (bdemu/gdb), with
    its siginfo `info`: None if it lets the run go on (it discarded the signal, or sends another)."""
    if emu.debugger is not None:
        try:
            if emu.debugger.fault(signal, info):
                return None
        except GuestSignal as killed:  # the debugger's kill
            signal, detail = killed.signal, killed.detail
        except StopRun:  # Ctrl-C or SIGTERM to bdemu while stopped there
            return _stopped_by_host(emu)
    return _signal_result(emu, signal, detail)


def _stopped_by_host(emu: "Emulator") -> RunResult:
    number = emu._stops.host_signal
    name = SIGNAL_NAMES.get(number, f"signal {number}")
    return RunResult(128 + number, "signal", signal=number, message=f"stopped by {name}", pc=safe_pc(emu))


def _resume_pc(emu: "Emulator") -> int:
    pc = emu.regs.reg(emu.arch.pc)
    mode_bits = emu.arch.pc_mode_bits
    return pc | mode_bits(emu.regs) if mode_bits is not None else pc


def _signal_result(emu: "Emulator", signal: int, detail: str) -> RunResult:
    name = SIGNAL_NAMES.get(signal, f"signal {signal}")
    pc = safe_pc(emu)
    return RunResult(128 + signal, "signal", signal=signal,
                     message=f"guest killed by {name} at pc {pc:#x}{_symbol_of(emu, pc)}: {detail}", pc=pc)


def _symbol_of(emu: "Emulator", address: int) -> str:
    """` (name+0x12)` for an address inside a loaded module with symbols, else ""."""
    from .loaders.symbols import nearest_symbol
    for module in emu.modules:
        if module.start <= address < module.end:
            found = nearest_symbol(module.image.path, address - module.base)
            if found:
                return f" ({found[0]}+{found[1]:#x})"
    return ""
