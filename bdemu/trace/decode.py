"""Instructions from blocks: Capstone decodes each distinct block once, numpy expands the stream.

A block stream (pc, size per executed block) plus, per distinct block, the
offsets and sizes of its instructions gives the instruction stream without a
per-instruction hook: index the per-block tables by block id, `np.repeat`
the block pcs by instruction count, add the offsets. Blocks are identified
by (pc, size): the same pc can start blocks of different lengths.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


class DecodeCache:
    """Per-block instruction layout for one ISA; `expand` turns block arrays into insn arrays."""

    def __init__(self, cs_arch: int, cs_mode: int, read: Callable[[int, int], bytes]) -> None:
        import capstone
        self._cs = capstone.Cs(cs_arch, cs_mode)
        self._read = read
        self._ids: dict[tuple[int, int], int] = {}
        self.code: list[tuple[int, int, bytes]] = []
        self._starts: list[int] = []
        self._counts: list[int] = []
        self._offsets: list[int] = []
        self._sizes: list[int] = []
        self._arrays: tuple[np.ndarray, ...] | None = None

    def block_id(self, pc: int, size: int) -> int:
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
        for address, length, _, _ in self._cs.disasm_lite(code, pc):
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
        self._arrays = None
        return ident

    def ids(self, pcs: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Block ids of every (pc, size) pair, decoding new blocks; vectorised over repeats."""
        unique, first, inverse = np.unique(pcs, return_index=True, return_inverse=True)
        unique_sizes = sizes[first]
        ids = np.fromiter((self.block_id(int(p), int(s)) for p, s in zip(unique, unique_sizes)),
                          dtype=np.int64, count=len(unique))[inverse]
        odd = np.flatnonzero(sizes != unique_sizes[inverse])
        for index in odd:  # the same pc with another size in this batch: rare
            ids[index] = self.block_id(int(pcs[index]), int(sizes[index]))
        return ids

    def expand(self, pcs: np.ndarray, sizes: np.ndarray):
        """-> (insn pcs, insn sizes, instruction count per block, position of each insn in its block)."""
        ids = self.ids(pcs, sizes)
        if self._arrays is None:
            self._arrays = (np.asarray(self._starts, dtype=np.int64), np.asarray(self._counts, dtype=np.int64),
                            np.asarray(self._offsets, dtype=np.uint64), np.asarray(self._sizes, dtype=np.uint8))
        starts, counts_table, offsets, insn_sizes = self._arrays
        counts = counts_table[ids]
        total = int(counts.sum())
        block_first = np.cumsum(counts) - counts
        position = np.arange(total, dtype=np.int64) - np.repeat(block_first, counts)
        flat = np.repeat(starts[ids], counts) + position
        insn_pcs = np.repeat(pcs.astype(np.uint64), counts) + offsets[flat]
        return insn_pcs, insn_sizes[flat], counts, position
