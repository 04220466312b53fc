"""Every guest memory access: pc, r/w, address, size, value (address-range filter)."""
from __future__ import annotations

from bdemu import Plugin


class MemTrace(Plugin):
    """Every guest memory access: pc, r/w, address, size, value (address-range filter)."""

    name = "memtrace"
    options = {
        "start": (int, 0, "only accesses at addresses >= start"),
        "stop": (int, 0, "only accesses at addresses < stop (0: no bound)"),
        "limit": (int, 0, "stop after this many lines (0: no limit)"),
        "out": (str, "", "write to this file instead of the plugin output"),
    }

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.lines = 0
        self._stream = None

    def on_start(self, emu) -> None:
        self._stream = self.open_output(emu, self.out, binary=True)

    def on_mem_batch(self, emu, accesses) -> None:
        if self.start or self.stop:
            address = accesses["address"]
            keep = address >= self.start
            if self.stop:
                keep &= address < self.stop
            accesses = accesses[keep]
        if self.limit:
            accesses = accesses[: max(0, self.limit - self.lines)]
        self.lines += len(accesses)
        kinds = ("r", "w")
        text = "".join(f"{pc:#x} {kinds[write]} {address:#x} {size} {value:#x}\n" for pc, address, value, size, write
                       in zip(*(accesses[f].tolist() for f in ("pc", "address", "value", "size", "write"))))
        self._stream.write(text.encode())

    def on_exit(self, emu, result) -> None:
        if self.out:
            self._stream.close()
        else:
            self._stream.flush()
