"""pidfd_open and pidfd_send_signal, for the guest's own processes only.

Each guest process is a host process, so the fd is a host pidfd: it polls
readable once the process exits (asyncio's and systemd's child watchers wait
on it). A signal sent through it goes the way `kill` sends one.
"""
from __future__ import annotations

import errno
import os

from .errors import SyscallError
from .fds import OpenFile
from .files import open_flags
from .process import is_guest_process, sys_kill
from .registry import syscall


@syscall("int", "hex")
def sys_pidfd_open(k, pid, flags):
    pid, nonblock = k.signed32(pid), open_flags(k)["O_NONBLOCK"]
    if pid <= 0 or flags & ~nonblock:
        raise SyscallError(errno.EINVAL)
    if not is_guest_process(k, pid):
        raise SyscallError(errno.ESRCH)
    host_fd = os.pidfd_open(pid, os.O_NONBLOCK if flags & nonblock else 0)
    return k.fds.install(OpenFile(host_fd, "anon_inode:[pidfd]", True))


@syscall("fd", "signal", "ptr", "hex")
def sys_pidfd_send_signal(k, fd, signal, info, flags):
    if flags:
        raise SyscallError(errno.EINVAL)
    host_fd = k.fds.get(k.signed32(fd)).host_fd
    try:
        with open(f"/proc/self/fdinfo/{host_fd}") as fdinfo:
            pid = next(int(line.split()[1]) for line in fdinfo if line.startswith("Pid:"))
    except (OSError, StopIteration, ValueError):
        raise SyscallError(errno.EBADF) from None
    if pid <= 0:
        raise SyscallError(errno.ESRCH)  # it exited
    return sys_kill(k, pid, signal)
