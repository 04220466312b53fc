"""The guest's file descriptor table: guest fd numbers -> host fds (plus virtual nodes).

Guest fds are our own numbers, so bdemu's own files (plugin output, trace
databases) never collide with the guest's, and a guest that closes fd 2
cannot take bdemu's error channel with it. Host fds are real, so pipes and
forked children share them through the host kernel.
"""
from __future__ import annotations

import errno
import os
import resource
import sys
from dataclasses import dataclass, field

from .errors import SyscallError

#: Linux's default fs.nr_open: no RLIMIT_NOFILE goes higher.
NR_OPEN = 1 << 20


def host_fd_limit() -> int:
    """RLIMIT_NOFILE's soft limit of this process: the guest's until it sets its own."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return NR_OPEN if soft == resource.RLIM_INFINITY else min(soft, NR_OPEN)


@dataclass
class OpenFile:
    host_fd: int
    guest_path: str
    cloexec: bool = False
    #: A virtual node behind this fd (for mmap of device windows), or None.
    node: object | None = None
    dir_entries: list | None = field(default=None, repr=False)
    dir_position: int = 0
    #: Binary records the host kernel reads and writes on this fd in the host's byte order:
    #: "u64" (eventfd and timerfd counters), "inotify" (struct inotify_event); None: plain bytes.
    records: str | None = None

    def swapped(self, data: bytes, byteorder: str) -> bytes:
        """`data` read from (or to be written to) the host fd, in the other byte order when the
        guest's is not the host's: a big-endian guest reads its eventfd counter as it wrote it."""
        if self.records is None or byteorder == sys.byteorder:
            return data
        if self.records == "u64":
            return b"".join(data[i:i + 8][::-1] for i in range(0, len(data), 8))
        out, at = bytearray(data), 0
        while at + 16 <= len(data):  # wd, mask, cookie, len (host order), then len bytes of name
            length = int.from_bytes(data[at + 12:at + 16], sys.byteorder)
            for word in range(at, at + 16, 4):
                out[word:word + 4] = data[word:word + 4][::-1]
            at += 16 + length
        return bytes(out)


class FdTable:
    def __init__(self) -> None:
        self._files: dict[int, OpenFile] = {}
        #: The guest's RLIMIT_NOFILE (soft): new fds are below it (EMFILE, EBADF for dup2, EINVAL
        #: for F_DUPFD); fds above a lowered limit stay open, as on Linux.
        self.limit = host_fd_limit()

    def __contains__(self, fd: int) -> bool:
        return fd in self._files

    def items(self):
        return list(self._files.items())

    def find(self, fd: int) -> OpenFile | None:
        return self._files.get(fd)

    def get(self, fd: int) -> OpenFile:
        try:
            return self._files[fd]
        except KeyError:
            raise SyscallError(errno.EBADF) from None

    def lowest_free(self, minimum: int = 0) -> int:
        fd = max(minimum, 0)
        while fd in self._files:
            fd += 1
        if fd >= self.limit:
            raise SyscallError(errno.EMFILE)
        return fd

    def install(self, file: OpenFile, minimum: int = 0) -> int:
        fd = self.lowest_free(minimum)
        self._files[fd] = file
        return fd

    def place(self, fd: int, file: OpenFile) -> None:
        """Put `file` at exactly `fd`, closing what was there (dup2 semantics)."""
        if not 0 <= fd < self.limit:
            raise SyscallError(errno.EBADF)
        old = self._files.pop(fd, None)
        self._files[fd] = file
        if old is not None:
            _close_quietly(old.host_fd)

    def close(self, fd: int) -> None:
        file = self._files.pop(fd, None)
        if file is None:
            raise SyscallError(errno.EBADF)
        _close_quietly(file.host_fd)

    def duplicate(self, fd: int, minimum: int = 0, cloexec: bool = False) -> int:
        source = self.get(fd)
        copy = OpenFile(os.dup(source.host_fd), source.guest_path, cloexec, source.node, records=source.records)
        return self.install(copy, minimum)

    def close_on_exec(self) -> None:
        for fd, file in list(self._files.items()):
            if file.cloexec:
                self.close(fd)

    def close_all(self) -> None:
        for fd in list(self._files):
            self.close(fd)


def _close_quietly(host_fd: int) -> None:
    try:
        os.close(host_fd)
    except OSError:
        pass
