"""The control window: DATA_SIZE and CMD, folded modulo 8 over every page that maps it (SPEC 2).

Reads return the bytes of DATA_SIZE from `offset % 8` on, wrapping; writes
store into CMD bytes `offset % 8 ...`, and the write that ends on an 8-byte
boundary runs the host callback. Unicorn hands an aligned 8-byte access to
the callbacks as two 4-byte ones (the second completes CMD, so one call) and
an unaligned one byte by byte; reads are reassembled from aligned pieces,
which the folding rule answers correctly.

The seed's user-mode control file has two pages: a write completing CMD in
page 0 only stages the command, the same write in page 1 invokes it.
"""
from __future__ import annotations

from typing import Callable

from . import _raw

PAGE = 4096


class ControlRegisters:
    """The register file behind every control mapping of one device."""

    def __init__(self, uc, data_size: int, byteorder: str, invoke: Callable[[int], None]) -> None:
        self.byteorder = byteorder
        self.cmd = bytearray(8)
        self.invoke = invoke
        folded = data_size.to_bytes(8, byteorder) * 2
        #: ((offset % 8) << 4 | size) -> value: every read the guest can make, precomputed.
        self._reads = {(o << 4) | n: int.from_bytes(folded[o:o + n], byteorder)
                       for o in range(8) for n in range(1, 9)}
        # One set of C callbacks serves every mapping; kept alive for the engine's life.
        self.read_cb = _raw.MMIO_READ(_raw.guard(uc, self._read, 0))
        self.write_cb = _raw.MMIO_WRITE(_raw.guard(uc, self._write))
        self.staged_write_cb = _raw.MMIO_WRITE(_raw.guard(uc, self._write_two_pages))

    def value(self) -> int:
        return int.from_bytes(self.cmd, self.byteorder)

    def _read(self, _uc, offset: int, size: int, _user) -> int:
        return self._reads[((offset & 7) << 4) | size]

    def _store(self, offset: int, size: int, value: int) -> bool:
        """Fold the write into CMD; True when it completes the register."""
        start = offset & 7
        data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, self.byteorder)
        end = start + size
        if end <= 8:
            self.cmd[start:end] = data
        else:
            for index, byte in enumerate(data):
                self.cmd[(start + index) & 7] = byte
        return (offset + size) & 7 == 0

    def _write(self, _uc, offset: int, size: int, value: int, _user) -> None:
        if self._store(offset, size, value):
            self.invoke(int.from_bytes(self.cmd, self.byteorder))

    def _write_two_pages(self, _uc, offset: int, size: int, value: int, _user) -> None:
        if self._store(offset, size, value) and offset >= PAGE:
            self.invoke(int.from_bytes(self.cmd, self.byteorder))

    def map(self, uc, address: int, size: int, two_pages: bool = False) -> None:
        """Map a control window at `address` (page 0 and, for the user-mode file, page 1)."""
        _raw.mmio_map(uc, address, size, self.read_cb, self.staged_write_cb if two_pages else self.write_cb)
        _raw.sync_pc_on_writes(uc, address, address + size - 1)
