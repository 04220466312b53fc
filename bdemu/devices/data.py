"""The data window: plain RAM shared zero-copy between the guest and host-side Python.

One anonymous host mapping backs the window; Unicorn maps it into the guest
with `mem_map_ptr` (at the fixed address and at every `mmap` of the data
resource, all aliasing the same bytes) and plugins get a writable
`memoryview` over it: no copies in either direction.
"""
from __future__ import annotations

import ctypes
import mmap


class DataWindow:
    def __init__(self, size: int) -> None:
        self.size = size
        self._buffer = mmap.mmap(-1, size)
        self.view = memoryview(self._buffer)
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self._buffer))

    def map(self, uc, address: int, size: int, perms: int, offset: int = 0) -> None:
        uc.mem_map_ptr(address, size, perms, self.address + offset)

    def snapshot(self, limit: int | None = None) -> bytes:
        return bytes(self.view[:limit])
