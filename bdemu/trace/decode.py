"""Instructions from blocks: Capstone decodes each distinct block once.

A block stream plus, per distinct block, the offsets and sizes of its
instructions gives the instruction stream without a per-instruction hook
(the trace's `insns` view joins the two). Blocks are identified by
(pc, size): the same pc can start blocks of different lengths.
"""
from __future__ import annotations

from typing import Callable

from ..decode import Disassemblers


class DecodeCache:
    """Per-block instruction layout for one ISA, ids in order of first decode."""

    def __init__(self, cs_arch: int, cs_mode: int, read: Callable[[int, int], bytes]) -> None:
        self._capstone = Disassemblers(cs_arch, cs_mode)
        self._read = read
        self._ids: dict[tuple[int, int], int] = {}
        self.code: list[tuple[int, int, bytes]] = []
        self._starts: list[int] = []
        self._counts: list[int] = []
        self._offsets: list[int] = []
        self._sizes: list[int] = []

    def block_id(self, pc: int, size: int, cs_mode: int | None = None) -> int:
        """The id of block (pc, size), decoded in `cs_mode` (the ISA's own if None) when first seen."""
        key = (pc, size)
        found = self._ids.get(key)
        if found is not None:
            return found
        try:
            code = bytes(self._read(pc, size))
        except Exception:
            code = b""
        offsets, sizes = [], []
        position = 0
        for address, length, _, _ in self._capstone(cs_mode).disasm_lite(code, pc):
            offsets.append(address - pc)
            sizes.append(length)
            position = address - pc + length
        if position < size:  # undecodable tail (or unreadable block): one pseudo-instruction
            offsets.append(position)
            sizes.append(min(size - position, 255))
        ident = len(self.code)
        self._ids[key] = ident
        self.code.append((pc, size, code))
        self._starts.append(len(self._offsets))
        self._counts.append(len(offsets))
        self._offsets.extend(offsets)
        self._sizes.extend(sizes)
        return ident

    def layout(self, ident: int) -> tuple[list[int], list[int]]:
        """(offsets, sizes) of the instructions of block `ident`."""
        start, count = self._starts[ident], self._counts[ident]
        return self._offsets[start:start + count], self._sizes[start:start + count]

