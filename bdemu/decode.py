"""The per-block decode cache behind instruction-level views of block streams.

Plugins such as `trace`, `insncount` and `hotblocks` see blocks, not
instructions; they expand each distinct block into instructions once, here,
with Capstone (imported on first use), and reuse the result for every later
execution. Keyed by (address, size): a block the guest rewrites in place
keeps its first decoding.
"""
from __future__ import annotations

from typing import Callable, NamedTuple


def count_instructions(cs, code: bytes, address: int) -> int:
    """How many instructions Capstone instance `cs` decodes from `code` at `address` (then stops:
    bytes it cannot decode are not counted)."""
    return decoded_span(cs, code, address)[0]


def decoded_span(cs, code: bytes, address: int) -> tuple[int, int]:
    """(instructions, bytes they cover) of what `cs` decodes from `code` at `address`. Through
    Capstone's C call when the binding exposes it (`_cs`, as Capstone 4 and 5 do): the decode
    then runs without the GIL and builds no Python objects, ~3x cheaper than going through
    `disasm_lite`, which other threads (the trace writer) feel."""
    import capstone
    native = getattr(capstone, "_cs", None)
    if native is None or not hasattr(capstone, "_cs_insn") or not hasattr(cs, "csh"):
        sizes = [size for _, size, _, _ in cs.disasm_lite(code, address)]
        return len(sizes), sum(sizes)
    import ctypes
    insns = ctypes.POINTER(capstone._cs_insn)()
    count = native.cs_disasm(cs.csh, code, len(code), address, 0, ctypes.byref(insns))
    if not count:
        return 0, 0
    last = insns[count - 1]
    covered = last.address + last.size - address
    native.cs_free(insns, count)
    return count, covered


class Insn(NamedTuple):
    address: int
    size: int
    bytes: bytes
    mnemonic: str
    op_str: str


class Disassemblers:
    """One Capstone instance per mode of an ISA (ARM and Thumb...), each made on first use."""

    def __init__(self, cs_arch: int, default_mode: int) -> None:
        self._cs_arch, self._default = cs_arch, default_mode
        self._made: dict[int, object] = {}

    def __call__(self, mode: int | None = None):
        """The instance for `mode` (the ISA's own if None)."""
        mode = self._default if mode is None else mode
        cs = self._made.get(mode)
        if cs is None:
            import capstone
            cs = self._made[mode] = capstone.Cs(self._cs_arch, mode)
        return cs


class BlockDecoder:
    """`mode_of(address, size)`: the Capstone mode block (address, size) ran in, for ISAs with
    two instruction sets (see `bdemu.cpu.base.CodeModes`); None: the ISA's one mode."""

    def __init__(self, arch, uc, mode_of: Callable[[int, int], int | None] | None = None) -> None:
        self._arch = arch
        self._uc = uc
        self._mode_of = mode_of
        self._cache: dict[tuple[int, int, int | None], tuple[Insn, ...]] = {}
        self._capstone = Disassemblers(arch.cs_arch, arch.cs_mode)

    def block(self, address: int, size: int) -> tuple[Insn, ...]:
        mode = self._mode_of(address, size) if self._mode_of is not None else None
        key = (address, size, mode)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._decode(address, size, mode)
        return found

    def count(self, address: int, size: int) -> int:
        """len(block(address, size)), without making the instructions (unless made already)."""
        mode = self._mode_of(address, size) if self._mode_of is not None else None
        found = self._cache.get((address, size, mode))
        if found is not None:
            return len(found)
        try:
            code = bytes(self._uc.mem_read(address, size))
        except Exception:
            return 0
        count, covered = decoded_span(self._capstone(mode), code, address)
        return count + (covered < size)  # undecodable bytes: one "(bad)" instruction, as in block()

    def _decode(self, address: int, size: int, mode: int | None) -> tuple[Insn, ...]:
        try:
            code = bytes(self._uc.mem_read(address, size))
        except Exception:
            return ()
        insns, offset = [], 0
        for addr, length, mnemonic, op_str in self._capstone(mode).disasm_lite(code, address):
            insns.append(Insn(addr, length, code[offset:offset + length], mnemonic, op_str))
            offset += length
        if offset < size:  # bytes Capstone cannot decode: keep the count honest, one per remaining unit
            insns.append(Insn(address + offset, size - offset, code[offset:], "(bad)", ""))
        return tuple(insns)
