"""Basic-block coverage as a drcov v2 file (Lighthouse, bncov, Cartographer read it)."""
from __future__ import annotations

import os
import struct

from bdemu import Plugin


class Coverage(Plugin):
    """Basic-block coverage as a drcov v2 file (Lighthouse, bncov, Cartographer read it)."""

    name = "coverage"
    options = {"out": (str, "coverage.drcov", "the drcov file to write")}

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.blocks: list[tuple[int, int]] = []

    def on_block_counts(self, emu, pcs, sizes, counts) -> None:
        self.blocks = list(zip(pcs.tolist(), sizes.tolist()))

    def on_exit(self, emu, result) -> None:
        modules = [(os.path.abspath(m.image.path), m.start, m.end) for m in emu.modules]
        table, outside = [], 0
        for pc, size in self.blocks:
            for index, (_, start, end) in enumerate(modules):
                if start <= pc < end:
                    table.append(struct.pack("<IHH", pc - start, min(size, 0xFFFF), index))
                    break
            else:
                outside += 1
        header = ["DRCOV VERSION: 2", "DRCOV FLAVOR: bdemu",
                  f"Module Table: version 2, count {len(modules)}",
                  "Columns: id, base, end, entry, checksum, timestamp, path"]
        header += [f"{i}, {start:#018x}, {end:#018x}, 0x0000000000000000, 0x00000000, 0x00000000, {path}"
                   for i, (path, start, end) in enumerate(modules)]
        header.append(f"BB Table: {len(table)} bbs")
        try:
            with open(self.out, "wb") as handle:
                handle.write("\n".join(header).encode() + b"\n" + b"".join(table))
        except OSError as error:
            raise RuntimeError(f"cannot write {self.out!r}: {error.strerror}") from None
        note = f", {outside} outside every module" if outside else ""
        print(f"coverage: {len(table)} blocks in {len(modules)} modules -> {self.out}{note}",
              file=self.open_output(emu), flush=True)
