"""Signal state and the signal syscalls: actions, masks, pending signals and waits.

A signal the guest sends itself, or one from another process (hostsignals.py), is queued
for a thread that does not block it (each GuestThread has its mask and pending signals); at
the next safe point (the run loop, between two `emu_start`s, right after the syscall that
raised or unblocked it; a blocking syscall gives way with EINTR) the run loop delivers it
(sigdelivery.py: the handler's frame on the guest stack, and rt_sigreturn).
"""
from __future__ import annotations

import collections
import errno
import os
import signal as host_signal
import time
from typing import Mapping

from . import clock, timers
from .errors import SyscallError, WouldBlock
from .registry import syscall

SIG_DFL, SIG_IGN = 0, 1
#: Signals whose default action is to be ignored, by name and generic number.
DEFAULT_IGNORED_NAMES = {"SIGCHLD": 17, "SIGCONT": 18, "SIGURG": 23, "SIGWINCH": 28}
DEFAULT_IGNORED = frozenset(DEFAULT_IGNORED_NAMES.values())
SIGKILL, SIGSTOP = 9, 19


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


SI_USER, SI_KERNEL, SI_TKILL, SI_TIMER = 0, 0x80, -6, -2
#: The first real-time signal (the kernel's; glibc keeps two for itself), the same on every ISA.
SIGRTMIN = 32


class PendingSignals(dict):
    """Signals pending for a thread or the process: signal -> (si_code, value) of the next one to
    deliver (value: a fault address, a timer id, or the siginfo bytes rt_sigqueueinfo gave). A
    real-time signal queues every instance, in order, as on Linux; a standard one is pending
    once however often it is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: dict[int, collections.deque] = {}

    def add(self, signal: int, info: tuple) -> None:
        if signal not in self:
            self[signal] = info
        elif signal >= SIGRTMIN:
            self.queued.setdefault(signal, collections.deque()).append(info)

    def take(self, signal: int) -> tuple:
        info = self.pop(signal)
        queue = self.queued.get(signal)
        if queue:
            self[signal] = queue.popleft()
            if not queue:
                del self.queued[signal]
        return info

    def clear(self) -> None:
        super().clear()
        self.queued.clear()
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
        self.pending = PendingSignals()
        #: ITIMER_REAL: when it next raises SIGALRM (time.monotonic()), and its interval.
        self.alarm_at: float | None = None
        self.alarm_interval = 0.0
        self.alarm_signal = SIGALRM
        #: POSIX timers (timer_create) by id, and the si_code their signals carry (MIPS's differs).
        self.timers: dict[int, timers.PosixTimer] = {}
        self.timer_code = SI_TIMER
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
        self.threads = None  # the ThreadTable, bound by the kernel
        #: A debugger is attached (bdemu/gdb): as a ptrace tracer, it sees every signal but SIGKILL
        self.traced = False  # before its action is taken (ignored ones too): none is dropped early

    # -- the running thread's mask and pending set -------------------------------------------------
    @property
    def mask(self) -> int:
        return self.threads.current.signal_mask

    @mask.setter
    def mask(self, value: int) -> None:
        self.threads.current.signal_mask = value & ~self.unblockable

    @property
    def suspended_mask(self) -> int | None:
        """The running thread's mask before its rt_sigsuspend (None outside one)."""
        return self.threads.current.suspended_mask

    @suspended_mask.setter
    def suspended_mask(self, value: int | None) -> None:
        self.threads.current.suspended_mask = value

    def takes_signal(self, thread) -> bool:
        """A signal pending for `thread` (its own or the process's) that its mask lets through."""
        mask = thread.signal_mask
        return any(not mask & bit(signal) for signal in thread.signal_pending.keys() | self.pending.keys())

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
        if self.disposition(signal) == "ignore" and not self.traced and not self.blocked_by_all(signal):
            return  # ignored, unless blocked (sigwait may take it)
        current = threads.current
        leader = threads.threads.get(os.getpid(), current)
        for thread in (leader, current, *threads.threads.values()):
            if not thread.signal_mask & flag:
                if thread is current:
                    self.pending.add(signal, (code, value))
                else:
                    thread.signal_pending.add(signal, (code, value))
                    threads.interrupt(thread)
                return
        self.pending.add(signal, (code, value))

    def send_thread(self, thread, signal: int, code: int, value: int = 0) -> None:
        """Queue a signal for one thread (tkill, a fault, a timer), unless ignored; its wait ends.
        `value`: the fault address, or the timer id."""
        if self.disposition(signal) == "ignore" and not self.traced:
            return
        thread.signal_pending.add(signal, (code, value))
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

    def blocked_by_all(self, signal: int) -> bool:
        """Does every thread block `signal` (so it stays pending)? `list` copies the threads: the
        host-signal watcher asks from its own thread."""
        return all(thread.signal_mask & bit(signal) for thread in list(self.threads.threads.values()))

    def has_handlers(self) -> bool:
        """Does the guest handle any signal (so host signals must reach it while it runs)?"""
        return any(handler > 1 for handler in self.handlers.values())

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
        return k.bitmap(k.read(address, self.sigset_size))

    def write_set(self, k, address: int, value: int) -> None:
        k.write(address, k.bitmap_bytes(value, self.sigset_size))


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
        if state.handlers[signal] > 1 and k.emu._stops.gate is None:
            k.emu.request_signal_work()  # the run loop installs the stop gate (host signals must reach it)
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
        if state.arrived:  # host signals the watcher noted without stopping the guest (blocked ones)
            state.take_arrivals()
        if state.deliverable() is not None:
            k.emu.request_signal_work()
    return 0


@syscall("ptr", "size")
def sys_rt_sigpending(k, pending, size):
    state = k.signals
    if size > state.sigset_size:
        raise SyscallError(errno.EINVAL)
    k.write(pending, k.bitmap_bytes(state.pending_set() & state.mask, state.sigset_size)[:size])
    return 0


@syscall("ptr", "ptr")
def sys_sigaltstack(k, new, old):
    size = 3 * k.word if k.word == 4 else 24
    if old:  # none set: only ss_flags = SS_DISABLE (2)
        at = k.arch.signal_frame.stack_offset("flags", k.word) if k.arch.signal_frame else k.word
        k.write(old, k.signals.altstack or bytes(at) + (2).to_bytes(4, k.byteorder) + bytes(size - at - 4))
    if new:
        k.signals.altstack = k.read(new, size)
    return 0


def _wait_for_signal(k) -> None:
    """Sleep (interruptibly, in slices) until a signal can be delivered."""
    state = k.signals
    if not k.threads.alone and not state.has_work():  # other threads run until one is due for it
        k.threads.wait(resume=_interrupted, for_signal=True)
    try:
        while not state.has_work():
            deadline = state.next_deadline()
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            time.sleep(k.wait_slice(remaining))
    except Interrupted:
        pass
    k.emu.request_signal_work()


def _interrupted(k) -> int:
    """A parked pause or rt_sigsuspend ends: EINTR, and the handler runs as its thread resumes."""
    raise SyscallError(errno.EINTR)


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
    except WouldBlock:  # parked: the thread keeps waiting with the mask it asked for
        raise
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


def take_waited(state: SignalState, wanted: int) -> tuple[int, tuple[int, int]] | None:
    """The lowest pending signal of the running thread in `wanted`, taken off its queue."""
    own = state.threads.current.signal_pending
    for signal in sorted(own.keys() | state.pending.keys()):
        if wanted & bit(signal):
            return signal, (own if signal in own else state.pending).take(signal)
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
        found = take_waited(state, wanted)
        if found is not None:
            break
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise SyscallError(errno.EAGAIN)
        time.sleep(k.wait_slice(left))
    signal, (code, address) = found
    if info:
        k.write(info, siginfo(k, signal, code, address))
    return signal


@syscall("ptr", "ptr", "ptr", "size")
def sys_rt_sigtimedwait(k, wanted, info, timeout, size):
    return _sigtimedwait(k, wanted, info, timeout, size, k.word)


@syscall("ptr", "ptr", "ptr", "size")
def sys_rt_sigtimedwait_time64(k, wanted, info, timeout, size):
    return _sigtimedwait(k, wanted, info, timeout, size, 8)


SIGINFO_SIZE = 128


def siginfo(k, signal: int, code: int, address: int, consume: bool = True) -> bytes:
    """A siginfo_t: si_signo, si_code, then si_addr (a fault) or si_pid/si_uid (sent by kill: bdemu
    knows no sender, so the guest itself). `consume=False`: a timer's overrun is not reset (gdb's look)."""
    layout, end = k.arch.signal_frame, k.byteorder
    if isinstance(address, bytes):  # queued by rt_sigqueueinfo: the sender's siginfo as given
        return signal.to_bytes(4, end) + address[4:SIGINFO_SIZE]
    code_at = layout.siginfo_code if layout is not None else 8
    info = bytearray(SIGINFO_SIZE)
    info[0:4] = signal.to_bytes(4, end)
    info[code_at:code_at + 4] = (code & 0xFFFFFFFF).to_bytes(4, end)
    fields_at = 16 if k.word == 8 else 12
    if code == k.signals.timer_code:  # _timer: si_tid (the timer id), si_overrun, si_value
        timer = k.signals.timers.get(address)
        overrun, value = (timer.overrun, timer.value) if timer is not None else (0, 0)
        if timer is not None and consume:
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
