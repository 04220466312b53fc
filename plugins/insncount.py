"""Count executed instructions (total; per block with blocks=on)."""
from __future__ import annotations

from bdemu import Plugin


class InsnCount(Plugin):
    """Count executed instructions (total; per block with blocks=on)."""

    name = "insncount"
    options = {"blocks": (bool, False, "also list every block: address, instructions, executions")}

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.total = 0
        self.per_block: list[tuple[int, int, int]] = []

    def on_block_counts(self, emu, pcs, sizes, counts) -> None:
        for pc, size, count in zip(pcs.tolist(), sizes.tolist(), counts.tolist()):
            length = emu.decoder.count(pc, size)
            self.total += length * count
            self.per_block.append((pc, length, count))

    def on_exit(self, emu, result) -> None:
        out = self.open_output(emu)
        if self.blocks:
            for pc, length, count in self.per_block:
                print(f"block {pc:#x}: {length} insns x {count}", file=out)
        print(f"insns: {self.total}", file=out, flush=True)
