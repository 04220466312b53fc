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
import os

from . import clock
from .errors import SyscallError
from .fds import OpenFile
from .files import open_flags
from .registry import syscall

CLOCKS = (0, 1, 7, 8, 9)  # REALTIME, MONOTONIC, BOOTTIME, REALTIME_ALARM, BOOTTIME_ALARM
TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET = 1, 2
HOST_CLOEXEC, HOST_NONBLOCK = os.O_CLOEXEC, os.O_NONBLOCK


class _Timespec(ctypes.Structure):
    _fields_ = [("seconds", ctypes.c_long), ("nanoseconds", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("interval", _Timespec), ("value", _Timespec)]


_LIBC = ctypes.CDLL(None, use_errno=True)


def _host(result: int) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise SyscallError(code or errno.EINVAL)
    return result


@syscall("int", "hex")
def sys_timerfd_create(k, clock_id, flags):
    table = open_flags(k)
    cloexec, nonblock = table["O_CLOEXEC"], table["O_NONBLOCK"]
    if clock_id not in CLOCKS or flags & ~(cloexec | nonblock):
        raise SyscallError(errno.EINVAL)
    host_fd = _host(_LIBC.timerfd_create(clock_id, HOST_CLOEXEC | (HOST_NONBLOCK if flags & nonblock else 0)))
    return k.fds.install(OpenFile(host_fd, "anon_inode:[timerfd]", bool(flags & cloexec)))


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
    _host(_LIBC.timerfd_settime(file.host_fd, flags, ctypes.byref(spec), ctypes.byref(previous)))
    if old:
        _write_spec(k, old, size, previous)
    return 0


def _gettime(k, fd: int, address: int, size: int) -> int:
    current = _Itimerspec()
    _host(_LIBC.timerfd_gettime(k.fds.get(k.signed32(fd)).host_fd, ctypes.byref(current)))
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
