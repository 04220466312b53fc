"""Log every backdoor call: kind, cmd or i8/v32, pc and the first bytes of the data window."""
from __future__ import annotations

from bdemu import Plugin


class Backdoor(Plugin):
    """Log every backdoor call (kind, cmd or i8/v32, pc, first bytes of the data window)."""

    name = "backdoor"
    options = {
        "bytes": (int, 16, "how many leading bytes of the data window to show"),
        "summary": (bool, True, "print the number of calls at exit"),
    }

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.counts = {"mmio": 0, "i8": 0, "i8_v32": 0}
        self._window = b""

    def _log(self, emu, text: str) -> None:
        print(f"backdoor: {text} pc={emu.pc:#x}", file=emu.output)

    def on_backdoor_init(self, emu, data_size: int) -> None:
        print(f"backdoor: init data_size={data_size}", file=emu.output)

    def on_backdoor(self, emu, cmd: int, data: memoryview) -> None:
        self.counts["mmio"] += 1
        self._log(emu, f"mmio cmd={cmd:#x} data={bytes(data[:self.bytes]).hex()}")

    def on_backdoor_i8(self, emu, i8: int) -> None:
        self.counts["i8"] += 1
        self._log(emu, f"i8 i8={i8:#x}")

    def on_backdoor_i8_v32(self, emu, i8: int, v32: int) -> None:
        self.counts["i8_v32"] += 1
        self._log(emu, f"i8_v32 i8={i8:#x} v32={v32:#x}")

    def on_exit(self, emu, result) -> None:
        if self.summary:
            parts = " ".join(f"{kind}={count}" for kind, count in self.counts.items())
            print(f"backdoor: {sum(self.counts.values())} calls ({parts})", file=emu.output)
