"""MAP_SHARED mappings: host memory shared with forked guest processes, or a written-back copy.

A shared anonymous mapping, and the pages of a regular file opened for
reading and writing, are host MAP_SHARED mappings that Unicorn maps with
`mem_map_ptr` (`host_mapping`): a guest process and the children it forks
(host forks of bdemu) see each other's stores at once, and a file's pages are
its page cache, as on Linux. Pages past the end of the file are private zero
pages: Linux raises SIGBUS there, and a host mapping would raise it in bdemu.
Emulated atomic instructions are not atomic across processes (Unicorn runs one
CPU): two processes storing to the same word at the same instant can lose a
store; locks that hand over (semaphores, pipes) are fine.

What cannot be mapped that way (files opened read-only, files on a file
system without mmap) starts as a copy of the file like a private mapping
(`SharedFiles`). A snapshot taken at mmap time tells which bytes the guest
changed; only those runs are written back on msync, munmap, exec and exit (so
a `write(2)` to the file after mmap is not clobbered by stale mapping bytes),
and never past the end of the file, which a mapping cannot extend. Reads do
not see later changes made to the file by others.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import stat
from dataclasses import dataclass

from unicorn import UcError

from ..memory import page_up
from .hostlibc import LIBC

LIBC.mmap.restype = ctypes.c_void_p
LIBC.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
LIBC.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MAP_FAILED = ctypes.c_void_p(-1).value


class HostMapping:
    """A host MAP_SHARED mapping (libc mmap: Python's mmap refuses the page past a file's end),
    unmapped when the last region using it goes."""

    def __init__(self, size: int, host_fd: int, offset: int) -> None:
        flags = mmap.MAP_SHARED | (mmap.MAP_ANONYMOUS if host_fd < 0 else 0)
        address = LIBC.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, flags, host_fd, offset)
        if address in (None, MAP_FAILED):
            raise OSError(ctypes.get_errno(), "mmap")
        self.address, self.size = address, size

    def __del__(self) -> None:
        LIBC.munmap(self.address, self.size)


def host_mapping(size: int, host_fd: int | None = None, offset: int = 0) -> tuple[HostMapping, int] | None:
    """(host mapping, bytes of it to map) for a MAP_SHARED mapping of `size` bytes: anonymous, or of
    regular file `host_fd` from `offset` (only its pages that hold file bytes, perhaps fewer than
    `size`). None when the host cannot share it."""
    if host_fd is not None:
        try:
            info = os.fstat(host_fd)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        size = min(size, page_up(max(0, info.st_size - offset)))
        if not size:
            return None
    try:
        return HostMapping(size, -1 if host_fd is None else host_fd, 0 if host_fd is None else offset), size
    except OSError:
        return None


@dataclass
class SharedMapping:
    start: int
    end: int
    host_fd: int  # our own dup of the guest's fd: the mapping outlives a close()
    offset: int
    snapshot: bytearray


class SharedFiles:
    """The shared file mappings of one guest, by address range."""

    def __init__(self, uc) -> None:
        self._uc = uc
        self._mappings: list[SharedMapping] = []

    def add(self, start: int, end: int, host_fd: int, offset: int) -> None:
        snapshot = bytearray(self._uc.mem_read(start, end - start))
        self._mappings.append(SharedMapping(start, end, os.dup(host_fd), offset, snapshot))

    def write_back(self, start: int, end: int) -> None:
        """msync: store the changed bytes of [start, end) into their files."""
        for mapping in self._mappings:
            lo, hi = max(start, mapping.start), min(end, mapping.end)
            if lo < hi:
                self._store(mapping, lo, hi)

    def release(self, start: int, end: int) -> None:
        """[start, end) is about to be unmapped or replaced: write it back and forget it."""
        kept: list[SharedMapping] = []
        for mapping in self._mappings:
            lo, hi = max(start, mapping.start), min(end, mapping.end)
            if lo >= hi:
                kept.append(mapping)
                continue
            self._store(mapping, lo, hi)
            if mapping.start < lo:
                kept.append(SharedMapping(mapping.start, lo, os.dup(mapping.host_fd), mapping.offset,
                                          mapping.snapshot[:lo - mapping.start]))
            if hi < mapping.end:
                kept.append(SharedMapping(hi, mapping.end, os.dup(mapping.host_fd),
                                          mapping.offset + hi - mapping.start,
                                          mapping.snapshot[hi - mapping.start:]))
            os.close(mapping.host_fd)
        self._mappings = kept

    def release_all(self) -> None:
        """Exit or exec: everything goes back to its file."""
        for mapping in self._mappings:
            self._store(mapping, mapping.start, mapping.end)
            os.close(mapping.host_fd)
        self._mappings = []

    def _store(self, mapping: SharedMapping, lo: int, hi: int) -> None:
        try:
            file_end = os.fstat(mapping.host_fd).st_size
            current = self._uc.mem_read(lo, hi - lo)
        except (OSError, UcError):
            return
        skip = lo - mapping.start
        limit = max(0, min(hi - lo, file_end - (mapping.offset + skip)))
        if limit == 0:
            return
        import numpy as np  # only when a shared mapping is written back: it costs 65 ms to import
        now = np.frombuffer(bytes(current[:limit]), np.uint8)
        before = np.frombuffer(bytes(mapping.snapshot[skip:skip + limit]), np.uint8)
        changed = np.flatnonzero(now != before)
        if not len(changed):
            return
        # Runs of consecutive changed bytes: each becomes one pwrite.
        breaks = np.flatnonzero(np.diff(changed) > 1)
        firsts = np.concatenate(([changed[0]], changed[breaks + 1]))
        lasts = np.concatenate((changed[breaks], [changed[-1]]))
        for first, last in zip(firsts.tolist(), lasts.tolist()):
            os.pwrite(mapping.host_fd, now[first:last + 1].tobytes(), mapping.offset + skip + first)
        mapping.snapshot[skip:skip + limit] = now.tobytes()
