"""MAP_SHARED file mappings: the guest's stores reach the file on msync, munmap, exec and exit.

Unicorn owns guest memory, so a shared mapping starts as a copy of the file
like a private one. A snapshot taken at mmap time tells which bytes the
guest changed; only those runs are written back (so a `write(2)` to the file
after mmap is not clobbered by stale mapping bytes), and never past the end
of the file, which a mapping cannot extend. Reads do not see later changes
made to the file by others: the mapping is coherent in one direction only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from unicorn import UcError


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
