"""eventfd: a host eventfd behind the guest's fd.

The host kernel keeps the counter, so read, write, poll, epoll, EFD_SEMAPHORE,
blocking and sharing across fork behave as on Linux with no code here beyond
creating it. (libuv, and so node, GLib and tokio wake their event loops with
one.)
"""
from __future__ import annotations

import errno
import os

from .errors import SyscallError
from .fds import OpenFile
from .files import open_flags
from .registry import syscall

EFD_SEMAPHORE = 1


def _eventfd(k, initial: int, flags: int) -> int:
    table = open_flags(k)
    cloexec, nonblock = table["O_CLOEXEC"], table["O_NONBLOCK"]
    if flags & ~(EFD_SEMAPHORE | cloexec | nonblock):
        raise SyscallError(errno.EINVAL)
    host_flags = os.EFD_CLOEXEC | (os.EFD_NONBLOCK if flags & nonblock else 0)
    host_flags |= os.EFD_SEMAPHORE if flags & EFD_SEMAPHORE else 0
    host_fd = os.eventfd(initial & 0xFFFFFFFF, host_flags)
    return k.fds.install(OpenFile(host_fd, "anon_inode:[eventfd]", bool(flags & cloexec)))


@syscall("uint", "hex")
def sys_eventfd2(k, initial, flags):
    return _eventfd(k, initial, flags)


@syscall("uint")
def sys_eventfd(k, initial):
    return _eventfd(k, initial, 0)
