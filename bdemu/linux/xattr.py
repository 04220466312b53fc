"""Extended-attribute syscalls: reads pass through to the host file, writes are refused.

`ls -l` asks for `security.selinux` and the POSIX ACLs of every file it
lists; a guest must see the host's answer (usually ENODATA) for its output
to match a native run.
"""
from __future__ import annotations

import errno
import os

from .errors import SyscallError
from .files import AT_FDCWD, dir_base
from .registry import syscall


def _target(k, path_address: int, follow: bool) -> str | int:
    host, node = k.vfs.resolve(k.read_path(path_address), dir_base(k, AT_FDCWD), follow)
    if node is not None:
        raise SyscallError(errno.ENODATA if follow else errno.EOPNOTSUPP)
    return host


def _answer(k, data: bytes, buffer: int, size: int) -> int:
    """Linux's contract: size 0 asks for the length; a short buffer is ERANGE."""
    if size == 0:
        return len(data)
    if len(data) > size:
        raise SyscallError(errno.ERANGE)
    k.write(buffer, data)
    return len(data)


def _get(k, target: str | int, name_address: int, buffer: int, size: int, follow: bool = True) -> int:
    name = k.read_path(name_address)
    return _answer(k, os.getxattr(target, name, follow_symlinks=follow), buffer, size)


def _list(k, target: str | int, buffer: int, size: int, follow: bool = True) -> int:
    names = os.listxattr(target, follow_symlinks=follow)
    return _answer(k, b"".join(os.fsencode(n) + b"\0" for n in names), buffer, size)


@syscall("path", "str", "buf_out", "size")
def sys_getxattr(k, path, name, buffer, size):
    return _get(k, _target(k, path, True), name, buffer, size)


@syscall("path", "str", "buf_out", "size")
def sys_lgetxattr(k, path, name, buffer, size):
    return _get(k, _target(k, path, False), name, buffer, size, follow=False)


@syscall("fd", "str", "buf_out", "size")
def sys_fgetxattr(k, fd, name, buffer, size):
    return _get(k, k.fds.get(k.signed32(fd)).host_fd, name, buffer, size)


@syscall("path", "buf_out", "size")
def sys_listxattr(k, path, buffer, size):
    return _list(k, _target(k, path, True), buffer, size)


@syscall("path", "buf_out", "size")
def sys_llistxattr(k, path, buffer, size):
    return _list(k, _target(k, path, False), buffer, size, follow=False)


@syscall("fd", "buf_out", "size")
def sys_flistxattr(k, fd, buffer, size):
    return _list(k, k.fds.get(k.signed32(fd)).host_fd, buffer, size)


@syscall("path", "str", "ptr", "size", "int",
         names=("lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr"))
def sys_setxattr(k, *args):
    """Changing attributes is not offered to guests."""
    raise SyscallError(errno.EOPNOTSUPP)
