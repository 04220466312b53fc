"""The guest address space: regions, mmap placement, brk, protections, reserved windows.

Unicorn holds the bytes; this module keeps the bookkeeping Unicorn lacks:
names and file offsets for `/proc/self/maps`, where the next anonymous
mapping goes (top-down from the ISA's `mmap_top`, as Linux does), the
program break, and address ranges that must never be handed out (the
backdoor device's fixed windows).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

from unicorn import UcError

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
PAGE = 4096


def page_down(value: int) -> int:
    return value & ~(PAGE - 1)


def page_up(value: int) -> int:
    return (value + PAGE - 1) & ~(PAGE - 1)


class OutOfMemory(Exception):
    """No room for a mapping (the guest sees ENOMEM)."""


@dataclass
class Region:
    start: int
    end: int
    perms: int
    name: str = ""
    offset: int = 0
    #: True when Unicorn does not own the backing store (mmio or mem_map_ptr windows).
    device: bool = False
    #: The host mapping a MAP_SHARED region lives in (Unicorn maps it with mem_map_ptr), so
    #: forked guest processes see each other's stores; held here as long as a piece of it is mapped.
    host: object | None = None

    def maps_line(self) -> str:
        flags = "".join(c if self.perms & bit else "-" for c, bit in
                        (("r", PROT_READ), ("w", PROT_WRITE), ("x", PROT_EXEC)))
        flags += "s" if self.host is not None else "p"
        return f"{self.start:08x}-{self.end:08x} {flags} {self.offset:08x} 00:00 0{' ' * 10}{self.name}".rstrip()


class AddressSpace:
    """Mapped regions of one guest, kept sorted and in step with Unicorn."""

    def __init__(self, uc, mmap_top: int, limit: int | None = None) -> None:
        self._uc = uc
        self._regions: list[Region] = []
        self._reserved: list[tuple[int, int]] = []
        self.mmap_top = mmap_top
        self.brk_start = 0
        self.brk_current = 0
        #: Bytes the guest may map in total (`--max-memory`), None for no limit.
        self.limit = limit
        self.mapped_bytes = 0

    # -- queries ---------------------------------------------------------------
    @property
    def regions(self) -> list[Region]:
        return list(self._regions)

    def find(self, address: int) -> Region | None:
        index = bisect.bisect_right([r.start for r in self._regions], address) - 1
        if index >= 0 and self._regions[index].end > address:
            return self._regions[index]
        return None

    def is_free(self, start: int, end: int) -> bool:
        if any(s < end and start < e for s, e in self._reserved):
            return False
        return not any(r.start < end and start < r.end for r in self._regions)

    def is_mapped(self, start: int, end: int) -> bool:
        """True if every page of [start, end) is mapped."""
        cursor = start
        for region in self._regions:
            if region.end <= cursor:
                continue
            if region.start > cursor:
                return False
            cursor = region.end
            if cursor >= end:
                return True
        return cursor >= end

    def maps_text(self) -> str:
        return "".join(r.maps_line() + "\n" for r in self._regions)

    # -- placement -----------------------------------------------------------------
    def reserve(self, start: int, end: int) -> None:
        """Keep [start, end) out of reach of mmap/brk placement (device windows)."""
        self._reserved.append((start, end))

    def find_free(self, size: int, hint: int = 0) -> int:
        """A free, page-aligned range of `size` bytes: at `hint` if free, else top-down."""
        size = page_up(size)
        if hint and self.is_free(page_down(hint), page_down(hint) + size) and hint + size <= self.mmap_top:
            return page_down(hint)
        candidate = self.mmap_top - size
        blockers = sorted([(r.start, r.end) for r in self._regions] + self._reserved, reverse=True)
        for start, end in blockers:
            if end <= candidate:
                continue
            if start >= candidate + size:
                continue
            candidate = page_down(start - size)
            if candidate < PAGE * 16:
                raise OutOfMemory()
        if candidate < PAGE * 16:
            raise OutOfMemory()
        return candidate

    # -- changes ---------------------------------------------------------------------
    def map(self, start: int, size: int, perms: int, name: str = "", offset: int = 0) -> None:
        """Map fresh zeroed memory at [start, start+size), replacing anything there."""
        start, end = page_down(start), page_up(start + size)
        if self.limit is not None and self.mapped_bytes + (end - start) > self.limit:
            raise OutOfMemory()
        self.unmap(start, end - start)
        try:
            self._uc.mem_map(start, end - start, perms)
        except UcError as error:
            raise OutOfMemory() from error
        self.mapped_bytes += end - start
        self._insert(Region(start, end, perms, name, offset))

    def map_host(self, start: int, size: int, perms: int, host: object, pointer: int, name: str = "",
                 offset: int = 0) -> None:
        """Map [start, start+size) onto host memory at `pointer`, which `host` (an mmap) owns."""
        start, end = page_down(start), page_up(start + size)
        if self.limit is not None and self.mapped_bytes + (end - start) > self.limit:
            raise OutOfMemory()
        self.unmap(start, end - start)
        try:
            self._uc.mem_map_ptr(start, end - start, perms, pointer)
        except UcError as error:
            raise OutOfMemory() from error
        self.mapped_bytes += end - start
        self._insert(Region(start, end, perms, name, offset, host=host))

    def add_device(self, start: int, end: int, perms: int, name: str) -> None:
        """Record a window that the device mapped into Unicorn itself."""
        self._insert(Region(start, end, perms, name, device=True))

    def unmap(self, start: int, size: int) -> None:
        start, end = page_down(start), page_up(start + size)
        for region in [r for r in self._regions if r.start < end and start < r.end]:
            lo, hi = max(start, region.start), min(end, region.end)
            self._uc.mem_unmap(lo, hi - lo)
            if not region.device:
                self.mapped_bytes -= hi - lo
            self._regions.remove(region)
            if region.start < lo:
                self._insert(replace(region, end=lo))
            if hi < region.end:
                self._insert(replace(region, start=hi, offset=region.offset + (hi - region.start)))

    def protect(self, start: int, size: int, perms: int) -> bool:
        start, end = page_down(start), page_up(start + size)
        if not self.is_mapped(start, end):
            return False
        for region in [r for r in self._regions if r.start < end and start < r.end]:
            lo, hi = max(start, region.start), min(end, region.end)
            if region.device:
                continue
            self._uc.mem_protect(lo, hi - lo, perms)
            self._regions.remove(region)
            pieces = [(region.start, lo, region.perms), (lo, hi, perms), (hi, region.end, region.perms)]
            for piece_start, piece_end, piece_perms in pieces:
                if piece_start < piece_end:
                    self._insert(replace(region, start=piece_start, end=piece_end, perms=piece_perms,
                                         offset=region.offset + piece_start - region.start))
        return True

    def clear(self) -> None:
        """Unmap everything (execve)."""
        for region in list(self._regions):
            self._uc.mem_unmap(region.start, region.end - region.start)
        self._regions.clear()
        self._reserved.clear()
        self.mapped_bytes = 0

    def _insert(self, region: Region) -> None:
        bisect.insort(self._regions, region, key=lambda r: r.start)

    # -- brk ---------------------------------------------------------------------------
    def set_brk_start(self, address: int) -> None:
        self.brk_start = self.brk_current = page_up(address)

    def brk(self, requested: int) -> int:
        """Move the program break; returns the new break (unchanged on failure), as Linux does."""
        if requested < self.brk_start:
            return self.brk_current
        old_top, new_top = page_up(self.brk_current), page_up(requested)
        if new_top > old_top:
            if not self.is_free(old_top, new_top):
                return self.brk_current
            try:
                self.map(old_top, new_top - old_top, PROT_READ | PROT_WRITE, "[heap]")
            except OutOfMemory:
                return self.brk_current
        elif new_top < old_top:
            self.unmap(new_top, old_top - new_top)
        self.brk_current = requested
        return requested
