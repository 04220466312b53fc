"""The host's libc, for the calls Python's os module lacks (statfs, epoll_pwait, inotify, timerfd...)."""
from __future__ import annotations

import ctypes
import errno

from .errors import SyscallError

#: One handle for the whole Linux layer; errno is kept per thread (ctypes.get_errno).
LIBC = ctypes.CDLL(None, use_errno=True)


def checked(result: int) -> int:
    """A libc call's result, or SyscallError with its errno when it failed (negative)."""
    if result < 0:
        raise SyscallError(ctypes.get_errno() or errno.EINVAL)
    return result
