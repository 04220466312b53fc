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
    """The register file behind every control mapping of one device.

    CMD is kept as an integer; each (offset % 8, size) write that stays inside
    the register is a precomputed shift and mask, so the common case (two
    aligned 4-byte halves) costs two small integer operations.
    """

    def __init__(self, uc, data_size: int, byteorder: str, invoke: Callable[[int], None]) -> None:
        self.byteorder = byteorder
        self.cmd = 0
        self.invoke = invoke
        self._uc = uc
        folded = data_size.to_bytes(8, byteorder) * 2
        #: ((offset % 8) << 4 | size) -> value: every read the guest can make, precomputed.
        self._reads = {(o << 4) | n: int.from_bytes(folded[o:o + n], byteorder)
                       for o in range(8) for n in range(1, 9)}
        #: ((offset % 8) << 4 | size) -> (shift, mask of the bytes kept, value mask) for writes inside CMD.
        self._slots = {}
        for o in range(8):
            for n in range(1, 9 - o):
                shift = 8 * o if byteorder == "little" else 8 * (8 - o - n)
                ones = (1 << (8 * n)) - 1
                self._slots[(o << 4) | n] = (shift, ~(ones << shift) & 0xFFFFFFFFFFFFFFFF, ones)
        # One set of C callbacks serves every mapping; kept alive for the engine's life.
        self.read_cb = _raw.MMIO_READ(self._read)
        self.write_cb = _raw.MMIO_WRITE(self._writer(0))
        self.staged_write_cb = _raw.MMIO_WRITE(self._writer(PAGE))

    def cmd_bytes(self) -> bytes:
        return self.cmd.to_bytes(8, self.byteorder)

    def _read(self, _uc, offset: int, size: int, _user) -> int:
        try:
            return self._reads[((offset & 7) << 4) | size]
        except BaseException as error:  # noqa: B036 - the binding's policy, see _raw.fail
            _raw.fail(self._uc, error)
            return 0

    def _store_wrapping(self, offset: int, size: int, value: int) -> None:
        data = bytearray(self.cmd_bytes())
        for index, byte in enumerate((value & ((1 << (8 * size)) - 1)).to_bytes(size, self.byteorder)):
            data[(offset + index) & 7] = byte
        self.cmd = int.from_bytes(data, self.byteorder)

    def _writer(self, invoking_from: int):
        """The MMIO write callback. A write that completes CMD calls the host if it lands at or past
        `invoking_from`: 0 for the device window, PAGE for the seed's 2-page file (page 0 only stages)."""
        slots, store_wrapping = self._slots, self._store_wrapping

        def write(_uc, offset: int, size: int, value: int, _user) -> None:
            try:
                slot = slots.get(((offset & 7) << 4) | size)
                if slot is None:
                    store_wrapping(offset, size, value)
                else:
                    self.cmd = (self.cmd & slot[1]) | ((value & slot[2]) << slot[0])
                if not (offset + size) & 7 and offset >= invoking_from:
                    self.invoke(self.cmd)
            except BaseException as error:  # noqa: B036 - the binding's policy, see _raw.fail
                _raw.fail(self._uc, error)
        return write

    def map(self, uc, address: int, size: int, two_pages: bool = False) -> None:
        """Map a control window at `address` (page 0 and, for the user-mode file, page 1)."""
        _raw.mmio_map(uc, address, size, self.read_cb, self.staged_write_cb if two_pages else self.write_cb)
