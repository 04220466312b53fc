"""The host's libc, for the calls Python's os module lacks (statfs, epoll_pwait, inotify, timerfd...)."""
from __future__ import annotations

import ctypes
import errno
import functools

from .errors import SyscallError

#: One handle for the whole Linux layer; errno is kept per thread (ctypes.get_errno).
LIBC = ctypes.CDLL(None, use_errno=True)


def checked(result: int) -> int:
    """A libc call's result, or SyscallError with its errno when it failed (negative)."""
    if result < 0:
        raise SyscallError(ctypes.get_errno() or errno.EINVAL)
    return result


@functools.cache
def host_syscall_number(name: str) -> int | None:
    """The host's number for syscall `name`, for the few that neither os nor libc wraps (ioprio_get):
    from the table of the ISA bdemu itself runs on; None on a host ISA bdemu has no table for."""
    from ..cpu import host_arch
    arch = host_arch()
    if arch is None:
        return None
    return next((number for number, known in arch.syscall_numbers.items() if known == name), None)


def host_syscall(name: str, *args: int) -> int:
    """Syscall `name` on the host (SyscallError with its errno on failure; ENOSYS if unknown)."""
    number = host_syscall_number(name)
    if number is None:
        raise SyscallError(errno.ENOSYS)
    return checked(LIBC.syscall(number, *args))
