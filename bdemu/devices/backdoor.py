"""The backdoor device (SPEC 2): a guest calls host-side Python synchronously and cheaply.

Identity: PCI vendor 0x1af4, device 0x1004, class 0x050000; BAR0 the control
window (control.py), BAR1 the data window (data.py). The guest finds it
through sysfs, through the seed's user-mode files, or at the ISA's fixed
address (`Arch.backdoor_control_addr`, data window right after it), which
`reserve` keeps away from mmap/brk. The instruction interface lives in
insn.py. Every path ends in one of the `call*` methods, which fan out to the
plugins' `on_backdoor*` hooks over tuples of bound methods fetched at start.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .control import PAGE, ControlRegisters
from .data import DataWindow
from .insn import InstructionInterface
from .nodes import device_nodes

if TYPE_CHECKING:
    from ..emulator import Emulator

PROT_RW = 3


class BackdoorDevice:
    """One device per emulator; its windows may be mapped at several guest addresses."""

    def __init__(self, emu: "Emulator", pages: int, user_base: str | None = None) -> None:
        self.emu = emu
        self.pages = pages
        self.user_base = user_base
        self.control_address = emu.arch.backdoor_control_addr
        self.data_address = self.control_address + PAGE
        self.data_size = pages * PAGE
        self.data = DataWindow(self.data_size)
        self.registers = ControlRegisters(emu.uc, self.data_size, emu.arch.byteorder, self.call)
        self._on_backdoor: tuple = ()
        self._on_i8: tuple = ()
        self._on_i8_v32: tuple = ()
        spec = emu.arch.backdoor_insn
        self.insn = InstructionInterface(self, spec) if spec is not None else None

    # -- the emulator's interface -----------------------------------------------------------
    def nodes(self):
        """(guest path, content, mappable) of every virtual file that exposes the device."""
        return device_nodes(self, self.user_base)

    def reserve(self, space) -> None:
        space.reserve(self.control_address, self.data_address + self.data_size)

    def attach(self, space) -> None:
        """Map the windows at their fixed address (after every load: execve clears memory)."""
        self.map_control(self.control_address, PAGE, "[bdemu-control]")
        self.map_data(self.data_address, self.data_size, PROT_RW, "[bdemu-data]")

    def start(self) -> None:
        hooks = self.emu.hooks
        self._on_backdoor = hooks.methods("on_backdoor")
        self._on_i8 = hooks.methods("on_backdoor_i8")
        self._on_i8_v32 = hooks.methods("on_backdoor_i8_v32")
        self.registers.invoke = self.call
        hooks.call("on_backdoor_init", self.emu, self.data_size)

    def on_interrupt(self, intno: int) -> bool:
        return self.insn is not None and self.insn.on_interrupt(intno)

    # -- mappings -----------------------------------------------------------------------------
    def map_control(self, address: int, size: int, name: str, two_pages: bool = False) -> None:
        self.registers.map(self.emu.uc, address, size, two_pages)
        self.emu.memory.add_device(address, address + size, PROT_RW, name)

    def map_data(self, address: int, size: int, perms: int, name: str, offset: int = 0) -> None:
        self.data.map(self.emu.uc, address, size, perms, offset)
        self.emu.memory.add_device(address, address + size, perms, name)

    def control_file_bytes(self) -> bytes:
        """What `read` of the user-mode control file shows: DATA_SIZE, then CMD, in page 0."""
        head = self.data_size.to_bytes(8, self.emu.arch.byteorder) + self.registers.cmd_bytes()
        return head + bytes(2 * PAGE - len(head))

    # -- calls into the plugins -----------------------------------------------------------------
    def call(self, cmd: int) -> None:
        """The guest completed the command register: every `on_backdoor` runs, in order."""
        emu = self.emu
        hooks = emu.hooks
        if hooks.detached:
            return
        view = self.data.view
        for method in self._on_backdoor:
            hooks.guarded(method, "on_backdoor", emu, cmd, view, detail=lambda: f"cmd {cmd:#x}")

    def call_i8(self, i8: int) -> int:
        """Type 0 of the instruction interface; the last plugin returning a value decides (0 if none)."""
        return self._ask(self._on_i8, "on_backdoor_i8", lambda: f"i8 {i8:#x}", i8)

    def call_i8_v32(self, i8: int, v32: int) -> int:
        """Type 1 of the instruction interface; the last plugin returning a value decides (0 if none)."""
        return self._ask(self._on_i8_v32, "on_backdoor_i8_v32", lambda: f"i8 {i8:#x} v32 {v32:#x}", i8, v32)

    def _ask(self, methods, hook: str, detail, *args: int) -> int:
        emu, result = self.emu, 0
        hooks = emu.hooks
        if hooks.detached:
            return result
        for method in methods:
            value = hooks.guarded(method, hook, emu, *args, detail=detail)
            if value is not None:
                result = int(value)
        return result
