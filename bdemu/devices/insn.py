"""The instruction interface: (type, i8, v32) through one instruction per ISA (SPEC 2).

x86 uses CPUID: Unicorn's CPUID hook runs before the instruction and its
return value decides whether the real CPUID still runs (non-zero: skip), so
only leaves 0x40000000 and 0x40001xxx are answered here and every other leaf
reaches Unicorn's own CPUID untouched. Other ISAs use a reserved,
permanently undefined encoding (`Arch.backdoor_insn.encoding`): it raises
the CPU's undefined-instruction exception, which arrives through the
emulator's interrupt hook that exists anyway (32-bit ARM: Unicorn's
invalid-instruction hook), so no per-instruction hook is installed. Any other
undefined instruction still ends in SIGILL. MIPS uses `syscall` with a code
(see bdemu/cpu/mips.py): Unicorn reports no pc for its other exceptions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn import UC_HOOK_INSN_INVALID

from ..cpu.base import BackdoorInsn
from ..errors import RunStopped
from . import _raw

if TYPE_CHECKING:
    from .backdoor import BackdoorDevice

SIGNATURE_LEAF = 0x40000000
BASE_LEAF = 0x40001000
SIGNATURE = b"bdemu-bdoor1"


class InvalidBackdoorRequest(RunStopped):
    """The guest asked for an instruction-interface type that does not exist (exit 125)."""


class InstructionInterface:
    def __init__(self, device: "BackdoorDevice", spec: BackdoorInsn) -> None:
        emu = device.emu
        self.device, self.spec, self.emu = device, spec, emu
        regs = emu.regs
        self._pc_id = regs.id_of(emu.arch.pc)
        self._encodings = (spec.encoding, *spec.other_encodings)
        #: The signature's three words as the guest stores them to memory to read the string.
        self._signature = tuple(int.from_bytes(SIGNATURE[i:i + 4], emu.arch.byteorder) for i in (0, 4, 8))
        self._mode_bits = emu.arch.pc_mode_bits
        # leaf, v32, pc in one batch read
        self._inputs = regs.batch_reader([spec.leaf, spec.value, emu.arch.pc])
        self._results = regs.batch_writer(spec.results)
        kind, number = spec.trap
        self.intno = number if kind == "intr" else None
        if kind == "insn":
            self._cpuid_cb = _raw.CPUID_HOOK(self._on_cpuid)
            _raw.add_cpuid_hook(emu.uc, self._cpuid_cb, number)
        else:
            self._code = _raw.CodeReader(emu.uc, len(spec.encoding))
        if kind == "invalid":
            self._invalid_cb = _raw.INSN_INVALID_HOOK(self._on_invalid)
            _raw.add_hook(emu.uc, UC_HOOK_INSN_INVALID, self._invalid_cb)

    def _on_cpuid(self, _uc, _user) -> int:
        """Non-zero: the leaf was answered here and Unicorn's CPUID does not run."""
        try:
            self._inputs.read()
            leaf = self._inputs.values[0] & 0xFFFFFFFF
            if leaf & 0xFFFFF000 == BASE_LEAF or leaf == SIGNATURE_LEAF:
                self._answer(leaf)
                return 1
            return 0
        except BaseException as error:  # noqa: B036 - the binding's policy, see _raw.fail
            _raw.fail(self.emu.uc, error)
            return 1

    def _on_invalid(self, _uc, _user) -> bool:
        """Unicorn's undefined-instruction stop (32-bit ARM): True if it was the backdoor's."""
        try:
            return self._at_pc()
        except BaseException as error:  # noqa: B036 - the binding's policy, see _raw.fail
            _raw.fail(self.emu.uc, error)
            return True

    def on_interrupt(self, intno: int) -> bool:
        """The reserved encoding's exception: answer it and resume after the instruction."""
        if intno != self.intno:
            return False
        return self._at_pc()

    def _at_pc(self) -> bool:
        self._inputs.read()
        pc = self._inputs.values[2] - self.spec.pc_past
        if self._code(pc) not in self._encodings:
            return False
        self._answer(self._inputs.values[0] & 0xFFFFFFFF)
        resume = pc + len(self.spec.encoding)
        if self._mode_bits is not None:
            resume |= self._mode_bits(self.emu.regs)
        self.emu.regs.write_id(self._pc_id, resume)
        return True

    def on_syscall(self) -> bool:
        """The syscall trap with a leaf-sized number: answer it if the instruction before pc is
        the backdoor's form of `syscall` (pc already points after it); else it is a syscall."""
        self._inputs.read()
        pc = self._inputs.values[2]
        if self._code(pc - len(self.spec.encoding)) not in self._encodings:
            return False
        self._answer(self._inputs.values[0] & 0xFFFFFFFF)
        return True

    def _answer(self, leaf: int) -> None:
        values = self._results.values
        kind = (leaf >> 8) & 0xF
        if leaf & 0xFFFFF000 == BASE_LEAF and kind <= 1:
            if kind:
                result = self.device.call_i8_v32(leaf & 0xFF, self._inputs.values[1] & 0xFFFFFFFF)
            else:
                result = self.device.call_i8(leaf & 0xFF)
            values[0] = result & 0xFFFFFFFF
            if values[1]:
                values[1] = values[2] = values[3] = 0
        elif leaf == SIGNATURE_LEAF:
            values[0] = BASE_LEAF
            values[1], values[2], values[3] = self._signature
        else:
            what = f"type {kind}" if leaf & 0xFFFFF000 == BASE_LEAF else f"not {BASE_LEAF:#x} | type << 8 | i8"
            raise InvalidBackdoorRequest(
                f"invalid backdoor request: {self.spec.name or 'instruction'} leaf {leaf:#x} "
                f"({what}) at pc {self._inputs.values[2] - self.spec.pc_past:#x}")
        self._results.write()
