"""eventfd: a host eventfd behind the guest's fd.

The host kernel keeps the counter, so read, write, poll, epoll, EFD_SEMAPHORE,
blocking and sharing across fork behave as on Linux with no code here beyond
creating it. (libuv, and so node, GLib and tokio wake their event loops with
one.)
"""
from __future__ import annotations

import os

from .fds import OpenFile
from .files import new_fd_flags
from .registry import syscall

EFD_SEMAPHORE = 1


def _eventfd(k, initial: int, flags: int) -> int:
    cloexec, host_flags = new_fd_flags(k, flags, EFD_SEMAPHORE)  # EFD_CLOEXEC/NONBLOCK are O_*'s
    host_fd = os.eventfd(initial & 0xFFFFFFFF, host_flags | (os.EFD_SEMAPHORE if flags & EFD_SEMAPHORE else 0))
    return k.fds.install(OpenFile(host_fd, "anon_inode:[eventfd]", cloexec, records="u64"))


@syscall("uint", "hex")
def sys_eventfd2(k, initial, flags):
    return _eventfd(k, initial, flags)


@syscall("uint")
def sys_eventfd(k, initial):
    return _eventfd(k, initial, 0)
