"""The backdoor device (SPEC section 2). Placeholder interface until the device lands."""
from __future__ import annotations


class BackdoorDevice:
    """Reserves the fixed windows so that mmap/brk never hand them out."""

    def __init__(self, emu, pages: int) -> None:
        self.emu = emu
        self.pages = pages
        self.control_address = emu.arch.backdoor_control_addr
        self.data_size = pages * 4096

    def reserve(self, space) -> None:
        space.reserve(self.control_address, self.control_address + 4096 + self.data_size)

    def attach(self, space) -> None:
        """Map the windows at their fixed address (after every load)."""

    def start(self) -> None:
        self.emu.hooks.call("on_backdoor_init", self.emu, self.data_size)

    def on_interrupt(self, intno: int) -> bool:
        return False
