"""Signal syscalls and delivery to guest handlers.

A signal the guest sends itself, or one from another process (hostsignals.py), is queued
for a thread that does not block it (each GuestThread has its mask and pending signals); at
the next safe point (the run loop, between two `emu_start`s, right after the syscall that
raised or unblocked it; a blocking syscall gives way with EINTR) the emulator calls
`deliver_pending`, which builds the ISA's rt_sigframe (`Arch.signal_frame`) on the guest stack
and enters the handler. `rt_sigreturn` restores the interrupted state: Unicorn's saved context
(FP/SIMD included), then the frame's registers and mask, so a handler's edits take effect.
A syscall interrupted under a SA_RESTART handler resumes at its own instruction instead.
"""
from __future__ import annotations

import collections
import errno
import os
import signal as host_signal
import struct
import time
from typing import Mapping

from . import clock, timers
from .errors import SyscallError
from .registry import syscall

SIG_DFL, SIG_IGN = 0, 1
#: Signals whose default action is to be ignored, by name and generic number.
DEFAULT_IGNORED_NAMES = {"SIGCHLD": 17, "SIGCONT": 18, "SIGURG": 23, "SIGWINCH": 28}
DEFAULT_IGNORED = frozenset(DEFAULT_IGNORED_NAMES.values())
SIGKILL, SIGSTOP = 9, 19
#: Syscalls a handled signal makes fail with EINTR even under SA_RESTART (signal(7)).
NEVER_RESTARTED = frozenset({
    "nanosleep", "clock_nanosleep", "clock_nanosleep_time64", "poll", "ppoll", "ppoll_time64",
    "select", "_newselect", "pselect6", "pselect6_time64", "epoll_wait", "epoll_pwait",
    "epoll_pwait2", "rt_sigsuspend", "sigsuspend", "pause", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "msgrcv", "msgsnd", "semop", "semtimedop", "io_getevents"})


def default_ignored(overrides) -> frozenset[int]:
    """The default-ignored signal numbers of an ISA whose numbers differ by name (MIPS)."""
    return frozenset(overrides.get(name, number) for name, number in DEFAULT_IGNORED_NAMES.items())


def host_numbers(overrides, count: int) -> dict[int, int]:
    """Guest signal number -> the host's number for the same signal (they differ on MIPS);
    a guest signal the host lacks (SIGEMT, MIPS's real-time signals above 64) has none."""
    by_number = {number: name for name, number in overrides.items()}
    numbers = {}
    for guest in range(1, count + 1):
        name = by_number.get(guest)
        if name is None:
            try:
                name = host_signal.Signals(guest).name
            except ValueError:  # a real-time signal: the same number on every Linux up to 64
                name = None
            if name in overrides:  # the guest gives this number to another signal
                continue
        host = getattr(host_signal, name, None) if name else (guest if 32 <= guest <= 64 else None)
        if host is not None:
            numbers[guest] = int(host)
    return numbers


SA_SIGINFO, SA_ONSTACK, SA_NODEFER, SA_RESETHAND = 0x4, 0x08000000, 0x40000000, 0x80000000
SA_RESTORER, SA_RESTART = 0x04000000, 0x10000000
SI_USER, SI_KERNEL, SI_TKILL, SI_TIMER = 0, 0x80, -6, -2
SIGALRM = 14


def bit(signal: int) -> int:
    return 1 << (signal - 1)


class Interrupted(SyscallError):
    """A blocking syscall gives way to a signal: EINTR, or a restart after a SA_RESTART handler."""

    def __init__(self) -> None:
        super().__init__(errno.EINTR)


class SignalState:
    """Per-process signal bookkeeping: raw sigaction records, the alternate stack, process-directed
    signals waiting for delivery and the saved contexts of the handlers running. Masks and
    thread-directed signals belong to each thread (GuestThread); `mask` is the running one's."""

    def __init__(self, ignored: frozenset[int] = DEFAULT_IGNORED, overrides: Mapping[str, int] | None = None,
                 sigset_size: int = 8) -> None:
        overrides = overrides or {}
        self.ignored = ignored
        self.sigset_size = sigset_size
        #: Valid signal numbers are 1..count (_NSIG).
        self.count = 8 * sigset_size
        self.kill_number = overrides.get("SIGKILL", SIGKILL)
        self.stop_number = overrides.get("SIGSTOP", SIGSTOP)
        #: Signals a mask can never block (SIGKILL, SIGSTOP).
        self.unblockable = bit(self.kill_number) | bit(self.stop_number)
        self.to_host = host_numbers(overrides, self.count)
        self.from_host = {host: guest for guest, host in self.to_host.items()}
        self.actions: dict[int, bytes] = {}
        self.handlers: dict[int, int] = {}
        self.altstack = b""
        #: Process-directed signal -> its (si_code, si_addr), raised but not delivered yet.
        self.pending: dict[int, tuple[int, int]] = {}
        #: ITIMER_REAL: when it next raises SIGALRM (time.monotonic()), and its interval.
        self.alarm_at: float | None = None
        self.alarm_interval = 0.0
        self.alarm_signal = SIGALRM
        #: POSIX timers (timer_create) by id, and the si_code their signals carry (MIPS's differs).
        self.timers: dict[int, timers.PosixTimer] = {}
        self.timer_code = SI_TIMER
        #: The mask rt_sigsuspend replaced: the handler's frame saves it, so sigreturn restores it.
        self.suspended_mask: int | None = None
        #: frame address -> (Unicorn context of the code the handler interrupted, the frame as
        #: written: rt_sigreturn takes from the frame only what the handler changed).
        self.frames: dict[int, tuple[object, bytes]] = {}
        #: Set by (rt_)sigreturn: how far below sp the frame to restore starts.
        self.sigreturn: int | None = None
        #: The syscall a signal interrupted, until the handler is entered: (its thread, or False
        #: when it is never restarted; the values of the registers its result overwrote).
        self.interrupted: tuple[object, dict[str, int]] | None = None
        #: Host signal numbers that arrived (HostSignals' watcher adds them from its thread);
        #: the run loop turns them into guest signals at its next safe point.
        self.arrived: collections.deque[int] = collections.deque()
        #: Set with `arrived`: the engine stopped for a host signal, not for a limit.
        self.woken = False
        self.threads = None  # the ThreadTable, bound by the kernel

    # -- the running thread's mask and pending set -------------------------------------------------
    @property
    def mask(self) -> int:
        return self.threads.current.signal_mask

    @mask.setter
    def mask(self, value: int) -> None:
        self.threads.current.signal_mask = value & ~self.unblockable

    def deliverable(self) -> int | None:
        """The lowest signal pending for the running thread that its mask lets through (Linux
        delivers low numbers first)."""
        own = self.threads.current.signal_pending
        if not own and not self.pending:
            return None
        mask = self.mask
        for signal in sorted(own.keys() | self.pending.keys()):
            if not mask & bit(signal):
                return signal
        return None

    def has_work(self) -> bool:
        self.check_alarm()
        if self.arrived:
            self.take_arrivals()
        return self.sigreturn is not None or self.deliverable() is not None

    def check_interrupt(self) -> None:
        """From a blocking syscall's wait: give way (Interrupted) to a signal the running thread
        takes now."""
        self.check_alarm()
        if self.arrived:
            self.take_arrivals()
        if self.deliverable() is not None:
            raise Interrupted()

    def check_alarm(self) -> None:
        """Raise SIGALRM once ITIMER_REAL expired, and the signal of each POSIX timer that
        expired (checked at syscalls and in the run loop)."""
        if self.alarm_at is not None and time.monotonic() >= self.alarm_at:
            self.alarm_at = self.alarm_at + self.alarm_interval if self.alarm_interval else None
            self.send_process(SIGALRM, SI_KERNEL)
        if self.timers:
            now = time.monotonic()
            for timer_id, timer in self.timers.items():
                if timers.expire(timer, now) and timer.signal:
                    self.send_timer(timer_id, timer)

    def send_timer(self, timer_id: int, timer: timers.PosixTimer) -> None:
        """Queue an expired timer's signal, for its thread (SIGEV_THREAD_ID, while that thread
        lives) or the process; one still pending from it counts an overrun instead."""
        thread = self.threads.threads.get(timer.thread) if timer.thread is not None else None
        queued = (self.timer_code, timer_id)
        owners = (self.pending, *(t.signal_pending for t in self.threads.threads.values()))
        if any(owner.get(timer.signal) == queued for owner in owners):
            timer.overrun += 1
        elif thread is not None:
            self.send_thread(thread, timer.signal, self.timer_code, timer_id)
        else:
            self.send_process(timer.signal, self.timer_code, timer_id)

    def next_deadline(self) -> float | None:
        """The earliest time.monotonic() at which ITIMER_REAL or a POSIX timer expires."""
        deadlines = [timer.deadline for timer in self.timers.values()
                     if timer.deadline is not None and timer.signal] if self.timers else []
        if self.alarm_at is not None:
            deadlines.append(self.alarm_at)
        return min(deadlines) if deadlines else None

    def take_arrivals(self) -> None:
        """Host signals (from another process or a shell) become process-directed guest signals."""
        while self.arrived:  # a deque: the watcher may append meanwhile
            guest = self.from_host.get(self.arrived.popleft())
            if guest is not None:
                self.send_process(guest, SI_USER)

    def send_process(self, signal: int, code: int, value: int = 0) -> None:
        """Queue a process-directed signal (unless ignored) for a thread that does not block it,
        the main thread first as on Linux, then the running one (its wait, if any, ends), or
        else for whichever thread unblocks it first."""
        flag, threads = bit(signal), self.threads
        blocked_by_all = all(thread.signal_mask & flag for thread in threads.threads.values())
        if self.disposition(signal) == "ignore" and not blocked_by_all:
            return  # ignored, unless blocked (sigwait may take it)
        current = threads.current
        leader = threads.threads.get(os.getpid(), current)
        for thread in (leader, current, *threads.threads.values()):
            if not thread.signal_mask & flag:
                if thread is current:
                    self.pending.setdefault(signal, (code, value))
                else:
                    thread.signal_pending.setdefault(signal, (code, value))
                    threads.interrupt(thread)
                return
        self.pending.setdefault(signal, (code, value))

    def send_thread(self, thread, signal: int, code: int, value: int = 0) -> None:
        """Queue a signal for one thread (tkill, a fault, a timer), unless ignored; its wait ends.
        `value`: the fault address, or the timer id."""
        if self.disposition(signal) == "ignore":
            return
        thread.signal_pending.setdefault(signal, (code, value))
        if not thread.signal_mask & bit(signal):
            self.threads.interrupt(thread)

    def pending_set(self) -> int:
        """The running thread's pending signals, its own and the process's (rt_sigpending)."""
        return sum(bit(signal) for signal in self.pending.keys() | self.threads.current.signal_pending.keys())

    def alarm_remaining_us(self) -> int | None:
        """Microseconds until SIGALRM or a timer's signal (at least 1): the run loop's emu_start
        timeout."""
        deadline = self.next_deadline()
        if deadline is None:
            return None
        return max(1, int((deadline - time.monotonic()) * 1e6))

    def disposition(self, signal: int) -> str:
        handler = self.handlers.get(signal, SIG_DFL)
        if handler == SIG_IGN or (handler == SIG_DFL and signal in self.ignored):
            return "ignore"
        return "default" if handler == SIG_DFL else "handler"

    def reset_for_exec(self) -> None:
        """execve keeps ignored signals ignored and resets handled ones to default."""
        for signal, handler in list(self.handlers.items()):
            if handler not in (SIG_DFL, SIG_IGN):
                del self.handlers[signal]
                self.actions.pop(signal, None)
        self.frames.clear()  # the handlers' stacks are gone with the old image
        self.timers.clear()  # execve deletes the POSIX timers (ITIMER_REAL survives it)

    def reset_for_fork(self) -> None:
        """A forked child starts with no pending signal and no timer (its mask is kept)."""
        self.pending.clear()
        self.threads.current.signal_pending.clear()
        self.arrived.clear()
        self.alarm_at, self.alarm_interval = None, 0.0
        self.timers.clear()

    def read_set(self, k, address: int) -> int:
        return int.from_bytes(k.read(address, self.sigset_size), k.byteorder)

    def write_set(self, k, address: int, value: int) -> None:
        k.write(address, value.to_bytes(self.sigset_size, k.byteorder))


@syscall("signal", "ptr", "ptr", "size")
def sys_rt_sigaction(k, signal, action, old_action, size):
    state = k.signals
    if size != state.sigset_size or not 0 < signal <= state.count:
        raise SyscallError(errno.EINVAL)
    if signal in (state.kill_number, state.stop_number) and action:
        raise SyscallError(errno.EINVAL)
    record_size = k.arch.sigaction_size
    if old_action:
        k.write(old_action, state.actions.get(signal, bytes(record_size)))
    if action:
        record = k.read(action, record_size)
        state.actions[signal] = record
        offset = k.arch.sigaction_handler_offset
        state.handlers[signal] = int.from_bytes(record[offset:offset + k.word], k.byteorder)
        k.host_signals.follow(signal)
    return 0


@syscall("int", "ptr", "ptr", "size")
def sys_rt_sigprocmask(k, how, new, old, size):
    """Acts on the calling thread's mask."""
    state = k.signals
    if size != state.sigset_size:
        raise SyscallError(errno.EINVAL)
    value = state.read_set(k, new) if new else 0
    if old:
        state.write_set(k, old, state.mask)
    if new:
        how -= k.arch.variants.get("sigprocmask_how_base", 0)  # MIPS: SIG_BLOCK is 1
        if how == 0:
            state.mask |= value
        elif how == 1:
            state.mask &= ~value
        elif how == 2:
            state.mask = value
        else:
            raise SyscallError(errno.EINVAL)
        if state.deliverable() is not None:
            k.emu.request_signal_work()
    return 0


@syscall("ptr", "size")
def sys_rt_sigpending(k, pending, size):
    state = k.signals
    if size > state.sigset_size:
        raise SyscallError(errno.EINVAL)
    k.write(pending, (state.pending_set() & state.mask).to_bytes(state.sigset_size, k.byteorder)[:size])
    return 0


@syscall()
def sys_rt_sigreturn(k):
    """Undone in `deliver_pending` once the syscall is over: the frame's registers win."""
    if k.arch.signal_frame is None:
        raise SyscallError(errno.ENOSYS)
    k.signals.sigreturn = k.arch.signal_frame.sigreturn_sp_offset
    k.emu.request_signal_work()
    return 0


@syscall()
def sys_sigreturn(k):
    """The old sigreturn: bdemu builds one frame layout for both, found a word further on."""
    layout = k.arch.signal_frame
    if layout is None or layout.old_sigreturn_sp_offset is None:
        raise SyscallError(errno.ENOSYS)
    k.signals.sigreturn = layout.old_sigreturn_sp_offset
    k.emu.request_signal_work()
    return 0


@syscall("ptr", "ptr")
def sys_sigaltstack(k, new, old):
    size = 3 * k.word if k.word == 4 else 24
    if old:
        k.write(old, k.signals.altstack or (2).to_bytes(4, k.byteorder).rjust(size, b"\0")[:size])
    if new:
        k.signals.altstack = k.read(new, size)
    return 0


def _wait_for_signal(k) -> None:
    """Sleep (interruptibly, in slices) until a signal can be delivered."""
    state = k.signals
    if not k.threads.alone and not state.has_work():  # other threads run until a signal is due
        k.threads.wait()
    try:
        while not state.has_work():
            deadline = state.next_deadline()
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            time.sleep(k.wait_slice(remaining))
    except Interrupted:
        pass
    k.emu.request_signal_work()


@syscall("ptr", "size")
def sys_rt_sigsuspend(k, mask, size):
    state = k.signals
    if size != state.sigset_size:
        raise SyscallError(errno.EINVAL)
    if k.arch.signal_frame is None:
        raise SyscallError(errno.EINTR)
    new = state.read_set(k, mask)
    state.suspended_mask, state.mask = state.mask, new
    try:
        _wait_for_signal(k)
    except BaseException:
        state.mask, state.suspended_mask = state.suspended_mask, None
        raise
    raise SyscallError(errno.EINTR)


@syscall()
def sys_pause(k):
    if k.arch.signal_frame is None:
        raise SyscallError(errno.EINTR)
    _wait_for_signal(k)
    raise SyscallError(errno.EINTR)


def _take_waited(state: SignalState, wanted: int) -> tuple[int, tuple[int, int]] | None:
    """The lowest pending signal of the running thread in `wanted`, taken off its queue."""
    own = state.threads.current.signal_pending
    for signal in sorted(own.keys() | state.pending.keys()):
        if wanted & bit(signal):
            return signal, (own if signal in own else state.pending).pop(signal)
    return None


def _sigtimedwait(k, wanted_at: int, info: int, timeout: int, size: int, field: int) -> int:
    """Take a pending signal of the set (normally blocked ones) without running a handler;
    EAGAIN once the timeout passes, EINTR if an unblocked signal is delivered meanwhile."""
    state = k.signals
    if size != state.sigset_size:
        raise SyscallError(errno.EINVAL)
    wanted = state.read_set(k, wanted_at) & ~state.unblockable
    deadline = None if not timeout else time.monotonic() + clock.read_timespec_ns(k, timeout, field) / 1e9
    while True:
        state.check_alarm()
        if state.arrived:
            state.take_arrivals()
        found = _take_waited(state, wanted)
        if found is not None:
            break
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise SyscallError(errno.EAGAIN)
        time.sleep(k.wait_slice(left))
    signal, (code, address) = found
    if info:
        k.write(info, _siginfo(k, signal, code, address))
    return signal


@syscall("ptr", "ptr", "ptr", "size")
def sys_rt_sigtimedwait(k, wanted, info, timeout, size):
    return _sigtimedwait(k, wanted, info, timeout, size, k.word)


@syscall("ptr", "ptr", "ptr", "size")
def sys_rt_sigtimedwait_time64(k, wanted, info, timeout, size):
    return _sigtimedwait(k, wanted, info, timeout, size, 8)


def _set_alarm(state: SignalState, value: float, interval: float) -> tuple[float, float]:
    """Arm (value > 0) or disarm ITIMER_REAL; returns the old (remaining, interval)."""
    now = time.monotonic()
    old = (max(0.0, state.alarm_at - now) if state.alarm_at is not None else 0.0, state.alarm_interval)
    state.alarm_at = now + value if value > 0 else None
    state.alarm_interval = interval if value > 0 else 0.0
    return old


def _rearm(k, value: float, interval: float) -> tuple[float, float]:
    old = _set_alarm(k.signals, value, interval)
    k.emu.request_signal_work()  # the run loop's emu_start timeout must follow the new expiry
    return old


@syscall("int")
def sys_alarm(k, seconds):
    remaining, _ = _rearm(k, float(seconds & 0xFFFFFFFF), 0.0)
    return int(remaining + 0.999999) if remaining else 0


def _timeval_format(k) -> str:
    return ("<" if k.byteorder == "little" else ">") + ("qq" if k.word == 8 else "ii")


def _timeval(k, address: int) -> float:
    seconds, micros = struct.unpack(_timeval_format(k), k.read(address, 2 * k.word))
    if seconds < 0 or not 0 <= micros < 1_000_000:
        raise SyscallError(errno.EINVAL)
    return seconds + micros / 1e6


def _write_timeval(k, address: int, value: float) -> None:
    seconds = int(value)
    micros = int(round((value - seconds) * 1e6))
    k.write(address, struct.pack(_timeval_format(k), seconds, micros))


@syscall("int", "ptr", "ptr")
def sys_setitimer(k, which, new, old):
    """ITIMER_REAL only (SIGALRM); the virtual and profiling timers are not emulated."""
    if which != 0:
        raise SyscallError(errno.EINVAL)
    interval = _timeval(k, new) if new else 0.0
    value = _timeval(k, new + 2 * k.word) if new else 0.0
    remaining, old_interval = _rearm(k, value, interval)
    if old:
        _write_timeval(k, old, old_interval)
        _write_timeval(k, old + 2 * k.word, remaining)
    return 0


@syscall("int", "ptr")
def sys_getitimer(k, which, current):
    if which != 0:
        raise SyscallError(errno.EINVAL)
    state = k.signals
    remaining = max(0.0, state.alarm_at - time.monotonic()) if state.alarm_at is not None else 0.0
    _write_timeval(k, current, state.alarm_interval)
    _write_timeval(k, current + 2 * k.word, remaining)
    return 0


def catch_fault(k, signal: int, address: int, code: int) -> bool:
    """A CPU fault: queue it for the guest's handler if one is installed and unblocked (the
    handler returning re-runs the faulting instruction, as on Linux); False: it is fatal."""
    state = k.signals
    if k.arch.signal_frame is None or state.disposition(signal) != "handler" or state.mask & bit(signal):
        return False
    state.threads.current.signal_pending[signal] = (code, address)
    return True


def note_interrupted(k, name: str) -> int:
    """A blocking syscall gave way to a signal (Interrupted): remember what a SA_RESTART handler
    needs to run it again (the registers its result overwrites), and fail it with EINTR."""
    abi, emu = k.arch.syscall, k.emu
    saved = {name: emu.regs.reg(name) for name in (abi.result, abi.error_flag) if name}
    k.signals.interrupted = (name not in NEVER_RESTARTED and k.threads.current, saved)
    emu.request_signal_work()
    return -errno.EINTR


def _restart(k, flags: int) -> None:
    """The handler about to run interrupted a syscall: with SA_RESTART (and a syscall Linux
    restarts) the handler returns to the syscall instruction, its registers as they were."""
    interrupted, k.signals.interrupted = k.signals.interrupted, None
    if interrupted is None or interrupted[0] is not k.threads.current or not flags & SA_RESTART:
        return
    emu, abi = k.emu, k.arch.syscall
    for name, value in interrupted[1].items():
        emu.regs.set_reg(name, value)
    size = abi.insn_size if isinstance(abi.insn_size, int) else abi.insn_size(emu.regs)
    emu.regs.set_reg(k.arch.pc, emu.regs.reg(k.arch.pc) - size)


def deliver_pending(k) -> None:
    """At a safe point: finish an rt_sigreturn, then enter the handler of a deliverable signal
    (or apply its default action: GuestSignal ends the run)."""
    state = k.signals
    if state.sigreturn is not None:
        offset, state.sigreturn = state.sigreturn, None
        _sigreturn(k, offset)
    signal = state.deliverable()
    if signal is None:
        state.interrupted = None
        return
    own = state.threads.current.signal_pending
    code, address = (own if signal in own else state.pending).pop(signal)
    action = state.disposition(signal)
    if action == "ignore":
        state.interrupted = None
        return
    if action == "default":
        from .errors import GuestSignal
        raise GuestSignal(signal, "sent by the guest to itself" if code != SI_USER or address
                          else "a signal with no guest handler")
    _enter_handler(k, signal, code, address)


SIGINFO_SIZE = 128


def _siginfo(k, signal: int, code: int, address: int) -> bytes:
    """A siginfo_t: si_signo, si_code, then si_addr (a fault) or si_pid/si_uid (sent by kill:
    bdemu knows no sender, so they name the guest itself)."""
    layout, end = k.arch.signal_frame, k.byteorder
    code_at = layout.siginfo_code if layout is not None else 8
    info = bytearray(SIGINFO_SIZE)
    info[0:4] = signal.to_bytes(4, end)
    info[code_at:code_at + 4] = (code & 0xFFFFFFFF).to_bytes(4, end)
    fields_at = 16 if k.word == 8 else 12
    if code == k.signals.timer_code:  # _timer: si_tid (the timer id), si_overrun, si_value
        timer = k.signals.timers.get(address)
        overrun, value = (timer.overrun, timer.value) if timer is not None else (0, 0)
        if timer is not None:
            timer.reported_overrun, timer.overrun = overrun, 0
        info[fields_at:fields_at + 4] = address.to_bytes(4, end)
        info[fields_at + 4:fields_at + 8] = overrun.to_bytes(4, end)
        info[fields_at + 8:fields_at + 8 + k.word] = (value & k.arch.word_mask).to_bytes(k.word, end)
    elif address:
        info[fields_at:fields_at + k.word] = address.to_bytes(k.word, end)
    elif code in (SI_USER, SI_TKILL):
        info[fields_at:fields_at + 4] = os.getpid().to_bytes(4, end)
        info[fields_at + 4:fields_at + 8] = os.getuid().to_bytes(4, end)
    return bytes(info)


def _field(record: bytes, offset: int, size: int, byteorder: str) -> int:
    return int.from_bytes(record[offset:offset + size], byteorder)


def _enter_handler(k, signal: int, code: int, address: int) -> None:
    layout, state, emu = k.arch.signal_frame, k.signals, k.emu
    record = state.actions[signal]
    flags = _field(record, layout.sigaction_flags, k.word, k.byteorder)
    _restart(k, flags)
    sp = emu.reg(k.arch.sp)
    if flags & SA_ONSTACK and state.altstack:
        slot = {name: index * k.word for index, name in enumerate(layout.stack_fields)}
        base = _field(state.altstack, slot["sp"], k.word, k.byteorder)
        stack_flags = _field(state.altstack, slot["flags"], 4, k.byteorder)
        size = _field(state.altstack, slot["size"], k.word, k.byteorder)
        if not stack_flags & 2 and not base <= sp < base + size:  # not SS_DISABLE, not on it already
            sp = base + size
    frame = ((sp - layout.red_zone - layout.size) & ~15) - layout.entry_misalign
    context = bytearray(layout.size)
    info = layout.siginfo
    end = k.byteorder
    context[info:info + SIGINFO_SIZE] = _siginfo(k, signal, code, address)
    ucontext = layout.ucontext
    saved_mask = state.mask if state.suspended_mask is None else state.suspended_mask
    state.suspended_mask = None
    size = state.sigset_size
    context[ucontext + layout.sigmask:ucontext + layout.sigmask + size] = saved_mask.to_bytes(size, end)
    mcontext = ucontext + layout.mcontext
    for name, offset in layout.mcontext_registers:
        at = mcontext + offset
        context[at:at + k.word] = (emu.reg(name) & k.arch.word_mask).to_bytes(k.word, end)
    restorer = layout.trampoline
    if layout.sigaction_restorer is not None and flags & SA_RESTORER:
        restorer = _field(record, layout.sigaction_restorer, k.word, k.byteorder)
    if layout.return_register is None:
        context[0:k.word] = restorer.to_bytes(k.word, end)
    for where, value in zip(layout.arguments, (signal, frame + info, frame + ucontext)):
        if isinstance(where, int):  # an argument on the stack
            context[where:where + k.word] = value.to_bytes(k.word, end)
    for name, offset in layout.frame_registers:  # AArch64: the {fp, lr} record
        context[offset:offset + 2 * k.word] = (emu.reg(name).to_bytes(k.word, end)
                                                + emu.reg(k.arch.pc).to_bytes(k.word, end))
    k.write(frame, bytes(context))
    state.frames[frame] = (emu.uc.context_save(), bytes(context))
    state.mask |= _field(record, layout.sigaction_mask, size, k.byteorder)
    if not flags & SA_NODEFER:
        state.mask |= bit(signal)
    handler = state.handlers[signal]
    if flags & SA_RESETHAND:
        state.handlers.pop(signal, None)
        state.actions.pop(signal, None)
        k.host_signals.follow(signal)
    for where, value in zip(layout.arguments, (signal, frame + info, frame + ucontext)):
        if isinstance(where, str):
            emu.set_reg(where, value)
    if layout.return_register is not None:
        emu.set_reg(layout.return_register, restorer)
    for name, offset in layout.frame_registers:
        emu.set_reg(name, frame + offset)
    if layout.handler_register is not None:
        emu.set_reg(layout.handler_register, handler)
    emu.set_reg(k.arch.sp, frame)
    emu.set_reg(k.arch.pc, handler)


def _sigreturn(k, sp_offset: int) -> None:
    """Restore what the handler interrupted; a frame bdemu did not build is fatal (SIGSEGV)."""
    layout, state, emu = k.arch.signal_frame, k.signals, k.emu
    frame = emu.reg(k.arch.sp) - sp_offset
    saved = state.frames.pop(frame, None)
    if saved is None:
        from .errors import GuestSignal
        raise GuestSignal(11, "rt_sigreturn without a signal frame")
    for stale in [address for address in state.frames if address < frame]:  # left by siglongjmp
        del state.frames[stale]
    cpu, written = saved
    context = k.read(frame, layout.size)
    emu.uc.context_restore(cpu)
    mcontext = layout.ucontext + layout.mcontext
    for name, offset in layout.mcontext_registers:  # what the handler changed in uc_mcontext
        value = _field(context, mcontext + offset, k.word, k.byteorder)
        if value != _field(written, mcontext + offset, k.word, k.byteorder):
            emu.set_reg(name, value)
    mask_at = layout.ucontext + layout.sigmask
    state.mask = _field(context, mask_at, state.sigset_size, k.byteorder)
