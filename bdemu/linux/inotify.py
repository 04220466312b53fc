"""inotify: a host inotify instance behind the guest's fd.

A watch is added on the host path the guest's path resolves to (inside
`--rootfs`), so the host kernel reports the events, and read, poll and epoll
work on the fd unchanged (`tail -f` waits on it). `struct inotify_event` has
only 32-bit fields, the same on every ISA. The virtual files (/proc/self/maps,
the device's sysfs nodes) cannot be watched.
"""
from __future__ import annotations

import ctypes
import errno
import os

from .errors import SyscallError
from .fds import OpenFile
from .files import open_flags
from .registry import syscall

IN_DONT_FOLLOW = 0x02000000
_LIBC = ctypes.CDLL(None, use_errno=True)


def _host(result: int) -> int:
    if result < 0:
        raise SyscallError(ctypes.get_errno() or errno.EINVAL)
    return result


@syscall("oflags")
def sys_inotify_init1(k, flags):
    table = open_flags(k)
    cloexec, nonblock = table["O_CLOEXEC"], table["O_NONBLOCK"]
    if flags & ~(cloexec | nonblock):
        raise SyscallError(errno.EINVAL)
    host_fd = _host(_LIBC.inotify_init1(os.O_CLOEXEC | (os.O_NONBLOCK if flags & nonblock else 0)))
    return k.fds.install(OpenFile(host_fd, "anon_inode:inotify", bool(flags & cloexec)))


@syscall()
def sys_inotify_init(k):
    return sys_inotify_init1(k, 0)


@syscall("fd", "path", "hex")
def sys_inotify_add_watch(k, fd, path, mask):
    file = k.fds.get(k.signed32(fd))
    host = k.vfs.host_path(k.read_path(path), None, not mask & IN_DONT_FOLLOW)
    return _host(_LIBC.inotify_add_watch(file.host_fd, os.fsencode(host), ctypes.c_uint32(mask)))


@syscall("fd", "int")
def sys_inotify_rm_watch(k, fd, watch):
    return _host(_LIBC.inotify_rm_watch(k.fds.get(k.signed32(fd)).host_fd, ctypes.c_int(k.signed32(watch))))
