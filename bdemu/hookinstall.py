"""Install the Unicorn hooks that the loaded plugins need, and only those."""
from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE

if TYPE_CHECKING:
    from .emulator import Emulator


def install_plugin_hooks(emu: "Emulator") -> list[int]:
    """One Unicorn hook per event kind that some plugin overrides, fanning out to all of them."""
    bus, uc, handles = emu.hooks, emu.uc, []

    def fan_out(hook: str):
        methods = bus.methods(hook)
        if not methods:
            return None
        guarded = bus.guarded
        if len(methods) == 1:
            method = methods[0]

            def single(*args):
                guarded(method, hook, emu, *args)
            return single

        def many(*args):
            for method in methods:
                guarded(method, hook, emu, *args)
        return many

    block = fan_out("on_block")
    if block is not None:
        handles.append(uc.hook_add(UC_HOOK_BLOCK, lambda _uc, address, size, _u: block(address, size)))
    insn = fan_out("on_insn")
    if insn is not None:
        handles.append(uc.hook_add(UC_HOOK_CODE, lambda _uc, address, size, _u: insn(address, size)))
    read = fan_out("on_mem_read")
    if read is not None:
        handles.append(uc.hook_add(UC_HOOK_MEM_READ,
                                   lambda _uc, _access, address, size, _value, _u: read(address, size)))
    write = fan_out("on_mem_write")
    if write is not None:
        handles.append(uc.hook_add(UC_HOOK_MEM_WRITE,
                                   lambda _uc, _access, address, size, value, _u: write(address, size, value)))
    return handles


def remove_plugin_hooks(emu: "Emulator") -> None:
    for handle in getattr(emu, "_plugin_hook_handles", []):
        emu.uc.hook_del(handle)
    emu._plugin_hook_handles = []
