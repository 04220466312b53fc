"""GDB's host I/O packets (`vFile:...`), read-only: gdb fetches the program and its libraries
through the stub ("target:" sysroot, its default), so it reads them as the guest sees them,
inside `--rootfs`, without `set sysroot`. Paths resolve like the guest's own (confined)."""
from __future__ import annotations

import errno
import os
import stat
import struct

from ..linux.errors import SyscallError
from .packets import escape

#: Host errno -> the File-I/O protocol's own numbers (gdb/gdbsupport fileio.h); others: EUNKNOWN.
_ERRNOS = {errno.EPERM: 1, errno.ENOENT: 2, errno.EINTR: 4, errno.EBADF: 9, errno.EACCES: 13,
           errno.EFAULT: 14, errno.EBUSY: 16, errno.EEXIST: 17, errno.ENODEV: 19, errno.ENOTDIR: 20,
           errno.EISDIR: 21, errno.EINVAL: 22, errno.ENFILE: 23, errno.EMFILE: 24, errno.EFBIG: 27,
           errno.ENOSPC: 28, errno.ESPIPE: 29, errno.EROFS: 30, errno.ENAMETOOLONG: 91}


def _error(number: int) -> bytes:
    return b"F-1,%x" % _ERRNOS.get(number, 9999)


class HostFiles:
    """The files one client opened with vFile:open, by its numbers."""

    def __init__(self, vfs) -> None:
        self.vfs = vfs
        self.files: dict[int, int] = {}  # client's number -> host fd

    def packet(self, body: str) -> bytes:
        """The reply to `vFile:<body>`."""
        operation, _, arguments = body.partition(":")
        fields = arguments.split(",")
        try:
            if operation == "setfs":
                return b"F0"
            if operation == "open":
                return self._open(bytes.fromhex(fields[0]).decode("utf-8", "surrogateescape"), int(fields[1], 16))
            if operation == "pread":
                fd, count, offset = (int(x, 16) for x in fields)
                data = os.pread(self._fd(fd), min(count, 0x8000), offset)
                return b"F%x;" % len(data) + escape(data)
            if operation == "fstat":
                return self._fstat(os.fstat(self._fd(int(fields[0], 16))))
            if operation == "close":
                os.close(self.files.pop(int(fields[0], 16)))
                return b"F0"
        except KeyError:
            return _error(errno.EBADF)
        except (ValueError, IndexError):
            return _error(errno.EINVAL)
        except SyscallError as error:
            return _error(error.code)
        except OSError as error:
            return _error(error.errno or 0)
        return b""  # pwrite, unlink, readlink...: not offered

    def _open(self, path: str, flags: int) -> bytes:
        if flags & 3:  # O_WRONLY / O_RDWR: the client only reads
            return _error(errno.EACCES)
        host = self.vfs.host_path(path)
        fd = self.vfs.open_confined(host, os.O_RDONLY | os.O_CLOEXEC, 0)
        number = max(self.files, default=-1) + 1
        self.files[number] = fd
        return b"F%x" % number

    def _fd(self, number: int) -> int:
        return self.files[number]

    @staticmethod
    def _fstat(info: os.stat_result) -> bytes:
        """struct fio_stat: big-endian, 32-bit fields but for the 64-bit sizes."""
        data = struct.pack(">IIIIIIIQQQIII", info.st_dev & 0xFFFFFFFF, info.st_ino & 0xFFFFFFFF,
                           stat.S_IMODE(info.st_mode) | stat.S_IFMT(info.st_mode), info.st_nlink & 0xFFFFFFFF,
                           info.st_uid & 0xFFFFFFFF, info.st_gid & 0xFFFFFFFF, info.st_rdev & 0xFFFFFFFF,
                           info.st_size, info.st_blksize, info.st_blocks, int(info.st_atime) & 0xFFFFFFFF,
                           int(info.st_mtime) & 0xFFFFFFFF, int(info.st_ctime) & 0xFFFFFFFF)
        return b"F%x;" % len(data) + escape(data)

    def close_all(self) -> None:
        for fd in self.files.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.files.clear()
