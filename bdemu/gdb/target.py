"""The guest as the GDB protocol reads and writes it: registers of any thread (as the ISA's
`GdbTarget` lays them out, in the target's byte order, hex-encoded), memory, the auxiliary vector."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..cpu.gdb import TARGETS, GdbRegister

if TYPE_CHECKING:
    from ..emulator import Emulator


class GuestView:
    """What `g`, `G`, `p`, `P`, `m`, `M` and `X` see of one emulator."""

    def __init__(self, emu: "Emulator") -> None:
        self.emu = emu
        self.target = TARGETS[emu.arch.name]
        #: GDB's register numbers, in `g` packet order.
        self.numbered: dict[int, GdbRegister] = self.target.numbered()
        #: The thread `Hg` chose (its tid); None: the running one.
        self.selected: int | None = None

    def registers(self) -> bytes:
        return b"".join(self.read_register(r) for r in self.numbered.values())

    def saved_context(self):
        """The Unicorn context holding the `Hg`-selected thread's registers; None: the CPU's."""
        threads = self.emu.kernel.threads
        thread = threads.threads.get(self.selected) if self.selected is not None else None
        return None if thread is None or thread is threads.current else thread.context

    def read_register(self, register: GdbRegister) -> bytes:
        size = register.bits // 8
        if register.source is None:
            return b"00" * size
        reg_id, context = self.emu.arch.registers[register.source], self.saved_context()
        if context is not None:
            value = context.reg_read(reg_id)
        elif register.bits > 64:
            value = self.emu.uc.reg_read(reg_id)
        else:
            value = self.emu.regs.read_id(reg_id)
        value = value if isinstance(value, int) else 0  # (x87 registers may come as tuples)
        return (value & ((1 << register.bits) - 1)).to_bytes(size, self.emu.arch.byteorder).hex().encode()

    def write_register(self, register: GdbRegister, data: bytes) -> None:
        if register.source is None or len(data) != register.bits // 8:
            return
        value = int.from_bytes(data, self.emu.arch.byteorder)
        arch, context = self.emu.arch, self.saved_context()
        reg_id = arch.registers[register.source]
        if context is not None:
            if register.source == arch.pc and arch.pc_mode_bits is not None:  # as Emulator.set_pc
                value |= arch.pc_mode_bits(_SavedRegisters(context, arch.registers))
            context.reg_write(reg_id, value)
        elif register.source == arch.pc:
            self.emu.set_pc(value)
        elif register.bits > 64:
            self.emu.uc.reg_write(reg_id, value)
        else:
            self.emu.regs.write_id(reg_id, value)

    def write_registers(self, data: bytes) -> bytes:
        offset = 0
        for register in self.numbered.values():
            size = register.bits // 8
            if offset + size > len(data):
                return b"E01"
            self.write_register(register, data[offset:offset + size])
            offset += size
        return b"OK"

    def read_memory(self, address: int, length: int) -> bytes:
        length = min(length, 0x8000)
        while length:
            try:
                return self.emu.read_memory(address, length).hex().encode()
            except Exception:  # part of the range is unmapped: what lies before the next page
                shorter = min(length, 0x1000 - (address & 0xFFF))
                length = shorter if shorter < length else 0
        return b"E0e"  # EFAULT

    def write_memory(self, address: int, data: bytes) -> bytes:
        try:
            self.emu.write_memory(address, data)
        except Exception:
            return b"E0e"
        if data:
            self.emu.uc.ctl_remove_cache(address, address + len(data))  # code patched by the client
        return b"OK"

    def read_auxv(self) -> bytes:
        """The auxiliary vector as the guest's start-up stack holds it (argc, argv, envp, auxv)."""
        word, order = self.emu.arch.word_size, self.emu.arch.byteorder
        try:
            sp = self.emu.regs.reg(self.emu.arch.sp)
            cursor = sp + word * (int.from_bytes(self.emu.read_memory(sp, word), order) + 2)
            while int.from_bytes(self.emu.read_memory(cursor, word), order):  # envp
                cursor += word
            start = cursor = cursor + word
            while int.from_bytes(self.emu.read_memory(cursor, word), order):  # up to AT_NULL
                cursor += 2 * word
            return self.emu.read_memory(start, cursor + 2 * word - start)
        except Exception:
            return b""


class _SavedRegisters:
    """A waiting thread's saved context read by register name, as `Arch.pc_mode_bits` reads."""

    def __init__(self, context, registers: dict[str, int]) -> None:
        self.context, self.registers = context, registers

    def reg(self, name: str) -> int:
        return self.context.reg_read(self.registers[name])
