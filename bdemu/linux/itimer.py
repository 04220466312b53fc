"""ITIMER_REAL: alarm, setitimer and getitimer arm SIGALRM (the virtual and profiling timers
are not emulated).

The expiry is a time.monotonic() deadline on SignalState (`alarm_at`, `alarm_interval`), which
`SignalState.check_alarm` fires, like the POSIX timers of timers.py.
"""
from __future__ import annotations

import errno
import struct
import time

from .errors import SyscallError
from .registry import syscall
from .signals import SignalState


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
