"""POSIX per-process timers: timer_create, timer_settime, timer_gettime, timer_getoverrun,
timer_delete (and the time64 variants of 32-bit ABIs).

A timer is a deadline on time.monotonic() like ITIMER_REAL's (`SignalState.alarm_at`): the
run loop's emu_start timeout and every blocking call's wait slice end at the earliest of all
of them (`SignalState.next_deadline`), and `SignalState.check_alarm` fires those that passed,
so timers cost nothing per instruction. An expiry queues the timer's signal with si_code
SI_TIMER; the siginfo the handler sees carries the timer id, its overrun count and sigev_value.
Clocks: REALTIME, MONOTONIC, BOOTTIME (and their _ALARM forms) run on monotonic time once
armed (an absolute REALTIME expiry is converted when set, so a later clock change is not
followed); the CPU-time clocks of the calling process or thread are approximated by wall time.
"""
from __future__ import annotations

import errno
import time
from dataclasses import dataclass

from . import clock
from .errors import SyscallError
from .registry import syscall

SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID = 0, 1, 2, 4
TIMER_ABSTIME = 1
#: Host clocks to read an absolute expiry against, by guest clock id (the CPU-time clocks
#: of the calling process and thread, also in their negative "pid 0" encodings).
CLOCKS = {0: 0, 1: 1, 2: 2, 3: 3, 7: 7, 8: 0, 9: 7, -6: 2, -2: 3}
#: Clocks Linux has but cannot arm a timer on (MONOTONIC_RAW, the COARSE ones).
NO_TIMERS = frozenset({4, 5, 6})
#: Linux's per-process cap is RLIMIT_SIGPENDING; bdemu keeps a plain bound.
MAX_TIMERS = 1 << 15


@dataclass
class PosixTimer:
    """One timer_create'd timer: how it notifies, and when it next expires."""
    clock: int
    signal: int  # 0 with SIGEV_NONE
    value: int  # sigev_value, as a word
    thread: int | None  # SIGEV_THREAD_ID's tid
    deadline: float | None = None  # time.monotonic() of the next expiry; None: disarmed
    interval: float = 0.0
    #: Expiries while its signal was still pending, and the count the last delivery reported.
    overrun: int = 0
    reported_overrun: int = 0


def _signed(k, value: int) -> int:
    return k.signed32(value & 0xFFFFFFFF)


def _timer(k, timer_id: int) -> PosixTimer:
    found = k.signals.timers.get(_signed(k, timer_id))
    if found is None:
        raise SyscallError(errno.EINVAL)
    return found


def _notification(k, clock_id: int, event: int, timer_id: int) -> PosixTimer:
    """The timer a struct sigevent asks for: sigev_value (a word), sigev_signo, sigev_notify,
    then the union whose first int is SIGEV_THREAD_ID's tid (the layout of every ISA)."""
    state = k.signals
    if not event:  # as Linux: SIGALRM, with the timer id as sigev_value
        return PosixTimer(clock_id, state.alarm_signal, timer_id, None)
    word, end = k.word, k.byteorder
    raw = k.read(event, word + 12)
    value = int.from_bytes(raw[:word], end)
    signo, notify, tid = (int.from_bytes(raw[at:at + 4], end, signed=True) for at in (word, word + 4, word + 8))
    if notify == SIGEV_NONE:
        return PosixTimer(clock_id, 0, value, None)
    if notify not in (SIGEV_SIGNAL, SIGEV_THREAD, SIGEV_SIGNAL | SIGEV_THREAD_ID) or not 0 < signo <= state.count:
        raise SyscallError(errno.EINVAL)
    if notify & SIGEV_THREAD_ID and tid not in k.threads.threads:
        raise SyscallError(errno.EINVAL)
    return PosixTimer(clock_id, signo, value, tid if notify & SIGEV_THREAD_ID else None)


@syscall("clock", "ptr", "ptr")
def sys_timer_create(k, clock_id, event, created):
    clock_id = _signed(k, clock_id)
    if clock_id in NO_TIMERS:
        raise SyscallError(errno.EOPNOTSUPP)
    if clock_id not in CLOCKS:
        raise SyscallError(errno.EINVAL)
    timers = k.signals.timers
    timer_id = next(n for n in range(len(timers) + 1) if n not in timers)  # the lowest free id
    if timer_id >= MAX_TIMERS:
        raise SyscallError(errno.EAGAIN)
    timer = _notification(k, clock_id, event, timer_id)
    k.write(created, timer_id.to_bytes(4, k.byteorder))
    timers[timer_id] = timer
    return 0


def _write_itimerspec(k, address: int, size: int, timer: PosixTimer) -> None:
    """it_interval, then it_value: the time left (0: disarmed)."""
    left = 0 if timer.deadline is None else max(1, int((timer.deadline - time.monotonic()) * 1e9))
    interval = int(round(timer.interval * 1e9))
    k.write(address, clock.timespec_bytes(k, interval, size) + clock.timespec_bytes(k, left, size))


def _settime(k, timer_id: int, flags: int, new: int, old: int, size: int) -> int:
    timer = _timer(k, timer_id)
    interval = clock.read_timespec_ns(k, new, size)
    value = clock.read_timespec_ns(k, new + 2 * size, size)
    if old:
        _write_itimerspec(k, old, size, timer)
    timer.overrun = 0
    if value == 0:
        timer.deadline, timer.interval = None, 0.0
        return 0
    if flags & TIMER_ABSTIME:
        value -= time.clock_gettime_ns(CLOCKS[timer.clock])
    timer.deadline = time.monotonic() + max(value, 0) / 1e9
    timer.interval = interval / 1e9
    k.emu.request_signal_work()  # the run loop's emu_start timeout must follow the new expiry
    return 0


@syscall("int", "hex", "ptr", "ptr")
def sys_timer_settime(k, timer_id, flags, new, old):
    return _settime(k, timer_id, flags, new, old, k.word)


@syscall("int", "hex", "ptr", "ptr")
def sys_timer_settime64(k, timer_id, flags, new, old):
    return _settime(k, timer_id, flags, new, old, 8)


@syscall("int", "ptr")
def sys_timer_gettime(k, timer_id, current):
    k.signals.check_alarm()  # a timer past its expiry reads as re-armed (or disarmed)
    _write_itimerspec(k, current, k.word, _timer(k, timer_id))
    return 0


@syscall("int", "ptr")
def sys_timer_gettime64(k, timer_id, current):
    k.signals.check_alarm()
    _write_itimerspec(k, current, 8, _timer(k, timer_id))
    return 0


@syscall("int")
def sys_timer_getoverrun(k, timer_id):
    return _timer(k, timer_id).reported_overrun


@syscall("int")
def sys_timer_delete(k, timer_id):
    _timer(k, timer_id)
    del k.signals.timers[_signed(k, timer_id)]
    return 0


def expire(timer: PosixTimer, now: float) -> bool:
    """Advance a timer whose deadline passed (periodic: to its next one past `now`, counting
    the expiries skipped as overruns); True: it expired."""
    if timer.deadline is None or now < timer.deadline:
        return False
    if timer.interval:
        missed = int((now - timer.deadline) / timer.interval)
        timer.overrun += missed
        timer.deadline += (missed + 1) * timer.interval
    else:
        timer.deadline = None
    return True
