"""The per-block decode cache behind instruction-level views of block streams.

Plugins such as `trace`, `insncount` and `hotblocks` see blocks, not
instructions; they expand each distinct block into instructions once, here,
with Capstone (imported on first use), and reuse the result for every later
execution. Keyed by (address, size): a block the guest rewrites in place
keeps its first decoding.
"""
from __future__ import annotations

from typing import NamedTuple


class Insn(NamedTuple):
    address: int
    size: int
    bytes: bytes
    mnemonic: str
    op_str: str


class BlockDecoder:
    def __init__(self, arch, uc) -> None:
        self._arch = arch
        self._uc = uc
        self._cache: dict[tuple[int, int], tuple[Insn, ...]] = {}
        self._cs = None

    def _capstone(self):
        if self._cs is None:
            import capstone
            self._cs = capstone.Cs(self._arch.cs_arch, self._arch.cs_mode)
        return self._cs

    def block(self, address: int, size: int) -> tuple[Insn, ...]:
        key = (address, size)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._decode(address, size)
        return found

    def _decode(self, address: int, size: int) -> tuple[Insn, ...]:
        try:
            code = bytes(self._uc.mem_read(address, size))
        except Exception:
            return ()
        insns, offset = [], 0
        for addr, length, mnemonic, op_str in self._capstone().disasm_lite(code, address):
            insns.append(Insn(addr, length, code[offset:offset + length], mnemonic, op_str))
            offset += length
        if offset < size:  # bytes Capstone cannot decode: keep the count honest, one per remaining unit
            insns.append(Insn(address + offset, size - offset, code[offset:], "(bad)", ""))
        return tuple(insns)
