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


def _sleep(k, nanoseconds: int) -> None:
    end = time.monotonic() + min(nanoseconds / 1e9, MAX_SLEEP)
    if not k.threads.alone:  # the other threads run meanwhile
        k.threads.wait(deadline=end)
        return
    while (left := end - time.monotonic()) > 0:
        time.sleep(k.wait_slice(left))


read_timespec_ns, sleep_ns, timespec_bytes = _read_timespec, _sleep, _timespec


@syscall("ptr", "ptr")
def sys_nanosleep(k, request, remain):
    _sleep(k, _read_timespec(k, request, k.word))
    return 0


@syscall("clock", "hex", "ptr", "ptr")
def sys_clock_nanosleep(k, clock, flags, request, remain):
    wanted = _read_timespec(k, request, k.word)
    if flags & TIMER_ABSTIME:
        wanted = max(0, wanted - _clock_ns(clock))
    _sleep(k, wanted)
    return 0


@syscall("clock", "hex", "ptr", "ptr")
def sys_clock_nanosleep_time64(k, clock, flags, request, remain):
    wanted = _read_timespec(k, request, 8)
    if flags & TIMER_ABSTIME:
        wanted = max(0, wanted - _clock_ns(clock))
    _sleep(k, wanted)
    return 0


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
