"""inotify: a host inotify instance behind the guest's fd.

A watch is added on the host path the guest's path resolves to (inside
`--rootfs`), so the host kernel reports the events, and read, poll and epoll
work on the fd unchanged (`tail -f` waits on it). `struct inotify_event` has
the same layout on every ISA; its 32-bit fields are turned into the guest's
byte order as they are read (OpenFile.records). The virtual files (/proc/self/maps,
the device's sysfs nodes) cannot be watched.
"""
from __future__ import annotations

import ctypes
import os

from .fds import OpenFile
from .files import new_fd_flags
from .hostlibc import LIBC, checked
from .registry import syscall

IN_DONT_FOLLOW = 0x02000000


@syscall("oflags")
def sys_inotify_init1(k, flags):
    cloexec, host_flags = new_fd_flags(k, flags)
    return k.fds.install(OpenFile(checked(LIBC.inotify_init1(host_flags)), "anon_inode:inotify", cloexec,
                                     records="inotify"))


@syscall()
def sys_inotify_init(k):
    return sys_inotify_init1(k, 0)


@syscall("fd", "path", "hex")
def sys_inotify_add_watch(k, fd, path, mask):
    file = k.fds.get(k.signed32(fd))
    host = k.vfs.host_path(k.read_path(path), None, not mask & IN_DONT_FOLLOW)
    return checked(LIBC.inotify_add_watch(file.host_fd, os.fsencode(host), ctypes.c_uint32(mask)))


@syscall("fd", "int")
def sys_inotify_rm_watch(k, fd, watch):
    return checked(LIBC.inotify_rm_watch(k.fds.get(k.signed32(fd)).host_fd, ctypes.c_int(k.signed32(watch))))
