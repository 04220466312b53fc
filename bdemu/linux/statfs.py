"""statfs and fstatfs (and the 32-bit ABIs' *64 forms): the host's numbers in the ISA's layout."""
from __future__ import annotations

import ctypes
import errno
import os
import struct

from .errors import SyscallError
from .hostlibc import LIBC
from .registry import syscall

_HOST_STATFS = struct.Struct("@2l5Q2i3l4l")


def _host_statfs(function, argument) -> tuple:
    """statfs(2)/fstatfs(2) of the host (os.statvfs lacks f_type, which df and find need)."""
    buffer = ctypes.create_string_buffer(_HOST_STATFS.size)
    if function(argument, buffer) != 0:
        raise SyscallError(ctypes.get_errno())
    return _HOST_STATFS.unpack(buffer.raw)


def _write_statfs(k, address: int, values: tuple) -> int:
    """`struct statfs` of the generic ABIs: every field a long except f_fsid's two ints
    (MIPS orders the fields f_type, f_bsize, f_frsize, f_blocks, f_bfree, f_files, f_ffree,
    f_bavail, f_fsid, f_namelen, f_flags)."""
    mask = k.arch.word_mask
    words = [v & mask if i < 2 else min(v, mask) for i, v in enumerate(values[:7])]
    tail = [min(v, mask) for v in values[9:]]
    end = "<" if k.byteorder == "little" else ">"
    kind = "Q" if k.word == 8 else "I"
    if k.arch.variants.get("statfs") == "mips":
        kind_type, bsize, blocks, bfree, bavail, files, ffree = words
        namelen, frsize, flags = tail[:3]
        k.write(address, struct.pack(f"{end}8{kind}2i8{kind}", kind_type, bsize, frsize, blocks, bfree,
                                     files, ffree, bavail, *values[7:9], namelen, flags, 0, 0, 0, 0, 0))
        return 0
    k.write(address, struct.pack(f"{end}7{kind}2i7{kind}", *words, *values[7:9], *tail))
    return 0


def _write_statfs64(k, address: int, size: int, values: tuple) -> int:
    """`struct statfs64` of 32-bit ABIs (84 bytes on i386 and ARM, MIPS has its own order)."""
    kind_type, bsize, blocks, bfree, bavail, files, ffree, fsid0, fsid1, namelen, frsize, flags = values[:12]
    end = "<" if k.byteorder == "little" else ">"
    if k.arch.variants.get("statfs") == "mips":
        data = struct.pack(f"{end}4I5Q2i7I", kind_type, bsize, frsize, 0, blocks, bfree, files, ffree,
                           bavail, fsid0, fsid1, namelen, flags, 0, 0, 0, 0, 0)
    else:
        data = struct.pack(f"{end}2I5Q2i7I", kind_type, bsize, blocks, bfree, bavail, files, ffree,
                           fsid0, fsid1, namelen, frsize, flags, 0, 0, 0, 0)
    if size < len(data):
        raise SyscallError(errno.EINVAL)
    k.write(address, data)
    return 0


@syscall("path", "size", "ptr")
def sys_statfs64(k, path, size, address):
    host, node = k.vfs.resolve(k.read_path(path))
    if node is not None:
        host = "/" + host.split("/")[1] if os.path.isdir("/" + host.split("/")[1]) else "/"
    return _write_statfs64(k, address, size, _host_statfs(LIBC.statfs, os.fsencode(host)))


@syscall("fd", "size", "ptr")
def sys_fstatfs64(k, fd, size, address):
    return _write_statfs64(k, address, size,
                           _host_statfs(LIBC.fstatfs, k.fds.get(k.signed32(fd)).host_fd))


@syscall("path", "ptr")
def sys_statfs(k, path, address):
    host, node = k.vfs.resolve(k.read_path(path))
    if node is not None:  # bdemu's own /proc and /sys nodes: report the host's filesystem there
        host = "/" + host.split("/")[1] if os.path.isdir("/" + host.split("/")[1]) else "/"
    return _write_statfs(k, address, _host_statfs(LIBC.statfs, os.fsencode(host)))


@syscall("fd", "ptr")
def sys_fstatfs(k, fd, address):
    return _write_statfs(k, address, _host_statfs(LIBC.fstatfs, k.fds.get(k.signed32(fd)).host_fd))
