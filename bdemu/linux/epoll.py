"""epoll, answered by a host epoll instance over the guest fds' host fds.

The guest's 64-bit `data` travels through the host kernel unchanged (the host
event carries it), so no table is kept here. Only the layout of `struct
epoll_event` differs per ISA: packed (12 bytes) on x86, naturally aligned (16
bytes) elsewhere, named by `Arch.variants["epoll_event"]`.
"""
from __future__ import annotations

import ctypes
import errno
import math
import os
import select
import struct
import time

from .errors import SyscallError
from .hostlibc import LIBC, checked
from .registry import syscall

EPOLL_CLOEXEC = 0o2000000
EPOLL_CTL_DEL = 2
MAX_EVENTS = 4096
MAX_WAIT_MS = 24 * 3600 * 1000


class _HostEvent(ctypes.Structure):
    """The x86-64 host's `struct epoll_event` (packed)."""

    _pack_ = 1
    _fields_ = [("events", ctypes.c_uint32), ("data", ctypes.c_uint64)]


def _layout(k) -> str:
    end = "<" if k.byteorder == "little" else ">"
    return end + ("IQ" if k.arch.variants.get("epoll_event") == "packed" else "I4xQ")


@syscall("hex")
def sys_epoll_create1(k, flags):
    if flags & ~EPOLL_CLOEXEC:
        raise SyscallError(errno.EINVAL)
    from .fds import OpenFile
    host = checked(LIBC.epoll_create1(os.O_CLOEXEC))
    return k.fds.install(OpenFile(host, "anon_inode:[eventpoll]", bool(flags & EPOLL_CLOEXEC)))


@syscall("int")
def sys_epoll_create(k, size):
    if k.signed32(size) <= 0:
        raise SyscallError(errno.EINVAL)
    return sys_epoll_create1(k, 0)


@syscall("fd", "int", "fd", "ptr")
def sys_epoll_ctl(k, epfd, op, fd, address):
    host_epoll = k.fds.get(k.signed32(epfd)).host_fd
    host_fd = k.fds.get(k.signed32(fd)).host_fd
    event = _HostEvent()
    if op != EPOLL_CTL_DEL:
        layout = _layout(k)
        event.events, event.data = struct.unpack(layout, k.read(address, struct.calcsize(layout)))
    checked(LIBC.epoll_ctl(host_epoll, k.signed32(op), host_fd, ctypes.byref(event)))
    return 0


@syscall("fd", "ptr", "int", "int")
def sys_epoll_wait(k, epfd, address, count, timeout):
    count, timeout = k.signed32(count), k.signed32(timeout)
    if not 0 < count <= MAX_EVENTS:
        raise SyscallError(errno.EINVAL)
    host_epoll = k.fds.get(k.signed32(epfd)).host_fd
    events = (_HostEvent * count)()
    end = None if timeout < 0 else time.monotonic() + min(timeout, MAX_WAIT_MS) / 1000
    if not k.threads.alone:  # the other threads run until an event is ready or the timeout passes
        k.threads.wait(((host_epoll, select.POLLIN),), end)
        end = time.monotonic()
    while True:  # in slices, so a stop request or --timeout ends a long wait
        left = None if end is None else end - time.monotonic()
        wait_ms = math.ceil(k.wait_slice(left) * 1000)
        ready = LIBC.epoll_wait(host_epoll, events, count, wait_ms)
        if ready < 0 and ctypes.get_errno() == errno.EINTR:  # a host signal: the next slice looks at it
            continue
        checked(ready)
        if ready or (left is not None and left * 1000 <= wait_ms):
            break
    layout = _layout(k)
    k.write(address, b"".join(struct.pack(layout, e.events, e.data) for e in events[:ready]))
    return ready


@syscall("fd", "ptr", "int", "int", "ptr", "size")
def sys_epoll_pwait(k, epfd, address, count, timeout, sigmask, size):
    """Signals are not delivered to guest handlers yet, so the mask changes nothing."""
    return sys_epoll_wait(k, epfd, address, count, timeout)
