"""The most executed basic blocks, with their disassembly."""
from __future__ import annotations

from bdemu import Plugin


class HotBlocks(Plugin):
    """The most executed basic blocks, with their disassembly."""

    name = "hotblocks"
    options = {"top": (int, 10, "how many blocks to list"),
               "disasm": (bool, True, "print each block's instructions")}

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.blocks: list[tuple[int, int, int]] = []

    def on_block_counts(self, emu, pcs, sizes, counts) -> None:
        order = (-counts.astype("int64")).argsort(kind="stable")[: self.top]
        self.blocks = [(int(pcs[i]), int(sizes[i]), int(counts[i])) for i in order]
        self.distinct, self.executions = len(pcs), int(counts.sum())

    def on_exit(self, emu, result) -> None:
        out = self.open_output(emu)
        if not self.blocks:
            print("hotblocks: no blocks executed", file=out, flush=True)
            return
        print(f"hotblocks: {self.distinct} distinct blocks, {self.executions} executions; top {len(self.blocks)}:",
              file=out)
        for pc, size, count in self.blocks:
            insns = emu.disassemble(pc, size)
            where = emu.symbolize(pc)
            print(f"{pc:#x}  executions={count}  insns={len(insns)}  bytes={size}" + (f"  {where}" if where else ""),
                  file=out)
            if self.disasm:
                for insn in insns:
                    print(f"    {insn.address:#x}  {insn.mnemonic} {insn.op_str}".rstrip(), file=out)
        out.flush()
