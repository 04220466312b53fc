"""Waiting on file descriptors: poll, ppoll, select, pselect6, answered by the host's poll(2).

Guest fds map to host fds through the fd table, so a pipe shared with a forked
child is waited on by the host kernel itself. Signal masks passed to ppoll and
pselect6 are ignored, since signals are not delivered to guest handlers yet.
"""
from __future__ import annotations

import errno
import select
import struct
import time

from .errors import SyscallError
from .registry import syscall

POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 1, 2, 4, 8, 16, 32
MAX_POLL_FDS = 4096
MAX_WAIT_MS = 24 * 3600 * 1000


def _wait_fds(k, requests: list[tuple[int, int]], timeout_ms: int | None) -> list[int]:
    """Host-poll guest (fd, events); returns revents per request (POLLNVAL for a bad fd)."""
    poller = select.poll()
    revents = [0] * len(requests)
    by_host: dict[int, list[int]] = {}
    watched = []
    for index, (fd, events) in enumerate(requests):
        if fd < 0:
            continue
        if fd not in k.fds:
            revents[index] = POLLNVAL
            continue
        host = k.fds.get(fd).host_fd
        by_host.setdefault(host, []).append(index)
        poller.register(host, events | POLLERR | POLLHUP)
        watched.append((host, events | POLLERR | POLLHUP))
    if any(revents):
        timeout_ms = 0
    end = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
    if not k.threads.alone:  # the other threads run until an fd is ready or the timeout passes
        k.threads.wait(tuple(watched), end)
        end = time.monotonic()  # ready or timed out: one look without waiting
    while True:  # in slices, so a stop request or --timeout ends a long wait
        left = None if end is None else end - time.monotonic()
        wait = k.wait_slice(left)
        ready = poller.poll(wait * 1000)
        if ready or (left is not None and left <= wait):
            break
        if k.signals.has_work():  # a signal to deliver (SIGALRM) interrupts the wait
            k.emu.request_signal_work()
            raise SyscallError(errno.EINTR)
    for host, events in ready:
        for index in by_host.get(host, ()):
            revents[index] = events & (requests[index][1] | POLLERR | POLLHUP | POLLNVAL)
    return revents


def _poll(k, address: int, count: int, timeout_ms: int | None) -> int:
    if count > MAX_POLL_FDS:
        raise SyscallError(errno.EINVAL)
    end = "<" if k.byteorder == "little" else ">"
    raw = k.read(address, 8 * count)
    entries = [struct.unpack_from(end + "ihh", raw, 8 * i) for i in range(count)]
    revents = _wait_fds(k, [(fd, events & 0xFFFF) for fd, events, _ in entries], timeout_ms)
    k.write(address, b"".join(struct.pack(end + "ihH", fd, events, r)
                              for (fd, events, _), r in zip(entries, revents)))
    return sum(1 for r in revents if r)


def _timeout_ms(k, address: int, size: int, unit: int) -> int | None:
    """A guest timespec (unit 1e9) or timeval (unit 1e6) of `size`-byte fields -> ms, None for NULL."""
    if not address:
        return None
    raw = k.read(address, 2 * size)
    seconds = int.from_bytes(raw[:size], k.byteorder, signed=True)
    fraction = int.from_bytes(raw[size:], k.byteorder, signed=True)
    if seconds < 0 or not 0 <= fraction < unit:
        raise SyscallError(errno.EINVAL)
    return min(seconds * 1000 + (fraction * 1000 + unit - 1) // unit, MAX_WAIT_MS)


@syscall("ptr", "uint", "int")
def sys_poll(k, address, count, timeout):
    timeout = k.signed32(timeout)
    return _poll(k, address, count, None if timeout < 0 else min(timeout, MAX_WAIT_MS))


@syscall("ptr", "uint", "ptr", "ptr", "size")
def sys_ppoll(k, address, count, timespec, sigmask, sigsetsize):
    return _poll(k, address, count, _timeout_ms(k, timespec, k.word, 10**9))


@syscall("ptr", "uint", "ptr", "ptr", "size")
def sys_ppoll_time64(k, address, count, timespec, sigmask, sigsetsize):
    return _poll(k, address, count, _timeout_ms(k, timespec, 8, 10**9))


def _select(k, count: int, sets: tuple[int, int, int], timeout_ms: int | None) -> int:
    if not 0 <= count <= 1024:
        raise SyscallError(errno.EINVAL)
    size = (count + 8 * k.word - 1) // (8 * k.word) * k.word
    bits = [k.bitmap(k.read(a, size)) if a else 0 for a in sets]
    masks = (POLLIN, POLLOUT, POLLPRI)
    requests = []
    for fd in range(count):
        events = sum(mask for mask, value in zip(masks, bits) if value >> fd & 1)
        if events:
            requests.append((fd, events))
    revents = _wait_fds(k, requests, timeout_ms)
    if any(r & POLLNVAL for r in revents):
        raise SyscallError(errno.EBADF)
    ready = [0, 0, 0]
    for (fd, events), got in zip(requests, revents):
        for index, mask in enumerate(masks):
            hit = mask | (POLLHUP | POLLERR if mask != POLLPRI else 0)
            if events & mask and got & hit:
                ready[index] |= 1 << fd
    for address, value in zip(sets, ready):
        if address:
            k.write(address, k.bitmap_bytes(value, size))
    return sum(bin(value).count("1") for value in ready)


@syscall("int", "ptr", "ptr", "ptr", "ptr", names=("_newselect",))
def sys_select(k, count, readfds, writefds, exceptfds, timeval):
    timeout = _timeout_ms(k, timeval, k.word, 10**6)
    return _select(k, k.signed32(count), (readfds, writefds, exceptfds), timeout)


@syscall("ptr")
def sys_old_select(k, address):
    """i386's `select` (82): one pointer to its five arguments."""
    words = k.read(address, 5 * k.word)
    return sys_select(k, *(int.from_bytes(words[i:i + k.word], k.byteorder)
                           for i in range(0, 5 * k.word, k.word)))


@syscall("int", "ptr", "ptr", "ptr", "ptr", "ptr")
def sys_pselect6(k, count, readfds, writefds, exceptfds, timespec, sigmask):
    timeout = _timeout_ms(k, timespec, k.word, 10**9)
    return _select(k, k.signed32(count), (readfds, writefds, exceptfds), timeout)


@syscall("int", "ptr", "ptr", "ptr", "ptr", "ptr")
def sys_pselect6_time64(k, count, readfds, writefds, exceptfds, timespec, sigmask):
    timeout = _timeout_ms(k, timespec, 8, 10**9)
    return _select(k, k.signed32(count), (readfds, writefds, exceptfds), timeout)
