"""timerfd: a host timerfd behind the guest's fd.

As with eventfd, the host kernel keeps the timer: expirations are counted,
and read, poll, epoll, blocking and fork behave as on Linux. Only the
`struct itimerspec` is translated (a 32-bit ISA's timerfd_settime takes
32-bit fields, its *_time64 form 64-bit ones). Python's os.timerfd_* came in
3.13, so libc is called directly.
"""
from __future__ import annotations

import ctypes
import errno

from . import clock
from .errors import SyscallError
from .fds import OpenFile
from .files import new_fd_flags
from .hostlibc import LIBC, checked
from .registry import syscall

CLOCKS = (0, 1, 7, 8, 9)  # REALTIME, MONOTONIC, BOOTTIME, REALTIME_ALARM, BOOTTIME_ALARM
TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET = 1, 2


class _Timespec(ctypes.Structure):
    _fields_ = [("seconds", ctypes.c_long), ("nanoseconds", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("interval", _Timespec), ("value", _Timespec)]




@syscall("int", "hex")
def sys_timerfd_create(k, clock_id, flags):
    cloexec, host_flags = new_fd_flags(k, flags)
    if clock_id not in CLOCKS:
        raise SyscallError(errno.EINVAL)
    host_fd = checked(LIBC.timerfd_create(clock_id, host_flags))
    return k.fds.install(OpenFile(host_fd, "anon_inode:[timerfd]", cloexec, records="u64"))


def _spec(k, address: int, size: int) -> _Itimerspec:
    nanos = [clock.read_timespec_ns(k, address + offset, size) for offset in (0, 2 * size)]
    spec = _Itimerspec()
    for field, value in zip((spec.interval, spec.value), nanos):
        field.seconds, field.nanoseconds = divmod(value, 10**9)
    return spec


def _write_spec(k, address: int, size: int, spec: _Itimerspec) -> None:
    k.write(address, b"".join(clock.timespec_bytes(k, field.seconds * 10**9 + field.nanoseconds, size)
                              for field in (spec.interval, spec.value)))


def _settime(k, fd: int, flags: int, new: int, old: int, size: int) -> int:
    file = k.fds.get(k.signed32(fd))
    if flags & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET):
        raise SyscallError(errno.EINVAL)
    spec, previous = _spec(k, new, size), _Itimerspec()
    checked(LIBC.timerfd_settime(file.host_fd, flags, ctypes.byref(spec), ctypes.byref(previous)))
    if old:
        _write_spec(k, old, size, previous)
    return 0


def _gettime(k, fd: int, address: int, size: int) -> int:
    current = _Itimerspec()
    checked(LIBC.timerfd_gettime(k.fds.get(k.signed32(fd)).host_fd, ctypes.byref(current)))
    _write_spec(k, address, size, current)
    return 0


@syscall("fd", "hex", "ptr", "ptr")
def sys_timerfd_settime(k, fd, flags, new, old):
    return _settime(k, fd, flags, new, old, k.word)


@syscall("fd", "hex", "ptr", "ptr")
def sys_timerfd_settime64(k, fd, flags, new, old):
    return _settime(k, fd, flags, new, old, 8)


@syscall("fd", "ptr")
def sys_timerfd_gettime(k, fd, address):
    return _gettime(k, fd, address, k.word)


@syscall("fd", "ptr")
def sys_timerfd_gettime64(k, fd, address):
    return _gettime(k, fd, address, 8)
