"""Time syscalls: clock_gettime, gettimeofday, time, nanosleep, clock_nanosleep, getrandom."""
from __future__ import annotations

import errno
import os
import time

from .errors import SyscallError
from .registry import syscall

TIMER_ABSTIME = 1
MAX_SLEEP = 24 * 3600


def _timespec(k, nanoseconds: int, size: int) -> bytes:
    seconds, rest = divmod(nanoseconds, 10**9)
    return seconds.to_bytes(size, k.byteorder, signed=True) + rest.to_bytes(size, k.byteorder)


def _read_timespec(k, address: int, size: int) -> int:
    raw = k.read(address, 2 * size)
    seconds = int.from_bytes(raw[:size], k.byteorder, signed=True)
    nanos = int.from_bytes(raw[size:], k.byteorder, signed=True)
    if size > k.word:  # a 32-bit ABI's timespec64: tv_nsec is a long, the rest is padding
        nanos = k.signed32(nanos)
    if seconds < 0 or not 0 <= nanos < 10**9:
        raise SyscallError(errno.EINVAL)
    return seconds * 10**9 + nanos


def _clock_ns(clock: int) -> int:
    try:
        return time.clock_gettime_ns(clock & 0xFFFFFFFF if clock < 16 else clock)
    except OSError:
        raise SyscallError(errno.EINVAL) from None


@syscall("clock", "ptr")
def sys_clock_gettime(k, clock, address):
    k.write(address, _timespec(k, _clock_ns(clock), k.word))
    return 0


@syscall("clock", "ptr")
def sys_clock_gettime64(k, clock, address):
    k.write(address, _timespec(k, _clock_ns(clock), 8))
    return 0


@syscall("clock", "ptr", names=("clock_getres_time64",))
def sys_clock_getres(k, clock, address):
    if address:
        k.write(address, _timespec(k, 1, k.word))
    return 0


@syscall("ptr", "ptr")
def sys_gettimeofday(k, tv, tz):
    if tv:
        seconds, nanos = divmod(time.time_ns(), 10**9)
        k.write(tv, seconds.to_bytes(k.word, k.byteorder) + (nanos // 1000).to_bytes(k.word, k.byteorder))
    if tz:
        k.write(tz, bytes(8))
    return 0


@syscall("ptr")
def sys_time(k, address):
    now = int(time.time())
    if address:
        k.write_word(address, now)
    return now


def _sleep(k, nanoseconds: int, remain: int = 0, size: int = 0) -> int:
    """Sleep `nanoseconds`; a signal handler due meanwhile ends it with EINTR (Linux never
    restarts a sleep, not even under SA_RESTART), writing the time left to `remain` (a
    timespec of `size`-byte fields; 0: a relative sleep's caller wants none, or an absolute sleep)."""
    end = time.monotonic() + min(nanoseconds / 1e9, MAX_SLEEP)

    def interrupted(k, deadline: float | None) -> None:
        left = int(((deadline if deadline is not None else end) - time.monotonic()) * 1e9)
        if remain and left > 0:
            k.write(remain, _timespec(k, left, size))

    if not k.threads.alone:  # the other threads run meanwhile
        k.threads.wait(deadline=end, on_signal=interrupted)
        return 0
    try:
        while (left := end - time.monotonic()) > 0:
            time.sleep(k.wait_slice(left))
    except SyscallError as error:
        if error.code == errno.EINTR:
            interrupted(k, end)
        raise
    return 0


read_timespec_ns, sleep_ns, timespec_bytes = _read_timespec, _sleep, _timespec


@syscall("ptr", "ptr")
def sys_nanosleep(k, request, remain):
    return _sleep(k, _read_timespec(k, request, k.word), remain, k.word)


def _clock_nanosleep(k, clock: int, flags: int, request: int, remain: int, size: int) -> int:
    wanted = _read_timespec(k, request, size)
    if flags & TIMER_ABSTIME:
        return _sleep(k, max(0, wanted - _clock_ns(clock)))
    return _sleep(k, wanted, remain, size)


@syscall("clock", "hex", "ptr", "ptr")
def sys_clock_nanosleep(k, clock, flags, request, remain):
    return _clock_nanosleep(k, clock, flags, request, remain, k.word)


@syscall("clock", "hex", "ptr", "ptr")
def sys_clock_nanosleep_time64(k, clock, flags, request, remain):
    return _clock_nanosleep(k, clock, flags, request, remain, 8)


@syscall("ptr")
def sys_times(k, address):
    if address:
        ticks = [int(v * 100) for v in os.times()[:4]]
        k.write(address, b"".join(t.to_bytes(k.word, k.byteorder) for t in ticks))
    return int(time.monotonic() * 100) & k.arch.word_mask


@syscall("buf_out", "size", "hex")
def sys_getrandom(k, address, length, flags):
    length = k.io_size(address, length, 1 << 25)
    k.write(address, os.urandom(length))
    return length
