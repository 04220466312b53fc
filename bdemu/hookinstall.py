"""Install the Unicorn hooks that the loaded plugins need, and only those.

One Unicorn hook per event kind, fanning out over a prebuilt tuple of bound
methods. Hot events that plugins take in bulk (`on_block_batch`,
`on_block_counts`, `on_mem_batch`) are gathered by C hooks from
`bdemu._native` into numpy arrays; the Python-per-event hooks (`on_block`,
`on_insn`, `on_mem_read`, `on_mem_write`) stay for plugins that need live
registers. `drain_plugin_hooks` delivers what is still buffered at the end of
a run, before `on_exit`.

Every hook installed here is kept as an `InstalledHook`, so that the block
hooks can be registered again behind the stop gate when the run loop
installs it (`register_block_hooks_again`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_READ_AFTER, UC_HOOK_MEM_WRITE

if TYPE_CHECKING:
    from .emulator import Emulator


@dataclass
class InstalledHook:
    """One hook in Unicorn: its handle, the native state it writes into (if any), and how to
    remove it; a block hook also says how to register it again."""

    handle: int
    remove: Callable[[int], None]
    state: Any = None  # the native hook's owner (a stream, a counter): what `drain` empties
    register: Callable[[], int] | None = None


def python_hook(uc, kind: int, callback) -> InstalledHook:
    def register() -> int:
        return uc.hook_add(kind, callback)
    return InstalledHook(register(), uc.hook_del, None, register if kind == UC_HOOK_BLOCK else None)


def native_hook(uc, kind: int, function: int, owner) -> InstalledHook:
    """A C hook of bdemu._native; `owner.state` is its user data (the record keeps it alive)."""
    from . import _native

    def register() -> int:
        return _native.add_hook(uc, kind, function, owner.state)
    return InstalledHook(register(), lambda handle: _native.remove_hook(uc, handle), owner,
                         register if kind == UC_HOOK_BLOCK else None)


def register_block_hooks_again(emu: "Emulator") -> None:
    """Put the plugins' block hooks behind the stop gate, which the run loop just installed.

    Unicorn calls a block's hooks in the order they were added and, once one of them
    stops the engine, skips the rest. The gate stops at a block start; a hook added
    before it would see that block now and again when the run goes on."""
    for hook in (*getattr(emu, "_plugin_hooks", ()), *getattr(emu, "_native_hooks", ())):
        if hook.register is not None:
            hook.remove(hook.handle)
            hook.handle = hook.register()


def install_plugin_hooks(emu: "Emulator") -> list[InstalledHook]:
    """One Unicorn hook per event kind that some plugin overrides, fanning out to all of them."""
    bus, uc, handles = emu.hooks, emu.uc, []
    emu._native_hooks = []
    emu._native_drains = []
    emu._mode_table = None

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
        handles.append(python_hook(uc, UC_HOOK_BLOCK, lambda _uc, address, size, _u: block(address, size)))
    insn = fan_out("on_insn")
    if insn is not None:
        handles.append(python_hook(uc, UC_HOOK_CODE, lambda _uc, address, size, _u: insn(address, size)))
    read = fan_out("on_mem_read")
    if read is not None:
        handles.append(python_hook(uc, UC_HOOK_MEM_READ,
                                   lambda _uc, _access, address, size, _value, _u: read(address, size)))
    write = fan_out("on_mem_write")
    if write is not None:
        handles.append(python_hook(uc, UC_HOOK_MEM_WRITE,
                                   lambda _uc, _access, address, size, value, _u: write(address, size, value)))
    _install_native(emu, fan_out)
    functions = emu.__dict__.get("functions")
    if functions is not None:
        functions.install()
    return handles


def _install_native(emu: "Emulator", fan_out) -> None:
    """The C hooks behind the batch hooks; their state objects are kept on `emu` for the run."""
    wants = {hook: fan_out(hook) for hook in ("on_block_batch", "on_block_counts", "on_mem_batch")}
    if not any(wants.values()):
        return
    from . import _native
    uc = emu.uc
    batch = wants["on_block_batch"]
    if batch is not None:
        stream = _native.BlockStream(uc, batch)
        emu._native_hooks.append(native_hook(uc, UC_HOOK_BLOCK, _native.BLOCK_BUFFER, stream))
        emu._native_drains.append(stream.drain)
    counts = wants["on_block_counts"]
    # Plugins given blocks may decode them (emu.disassemble): on ISAs with two instruction sets
    # the block table also notes which one each block ran in.
    modes = emu.arch.code_modes if counts is not None or batch is not None else None
    if counts is not None or modes is not None:
        mode_reg = emu.arch.registers[modes.register] if modes is not None else None
        counter = _native.BlockCounter(uc, mode_reg=mode_reg)
        emu._native_hooks.append(native_hook(uc, UC_HOOK_BLOCK, _native.BLOCK_COUNT, counter))
        if modes is not None:
            emu._mode_table = counter
        if counts is not None:
            emu._native_drains.append(lambda: counts(*counter.snapshot()))
    memory = wants["on_mem_batch"]
    if memory is not None:
        pc_reg = emu.arch.registers[emu.arch.pc]
        stream = _native.MemStream(uc, memory, _native.reg_read_address(), pc_reg)
        kinds = UC_HOOK_MEM_READ_AFTER | UC_HOOK_MEM_WRITE
        emu._native_hooks.append(native_hook(uc, kinds, _native.MEM_BUFFER, stream))
        emu._native_drains.append(stream.drain)


def drain_streams(emu: "Emulator") -> None:
    """Deliver the blocks and memory accesses buffered so far, mid-run (repeatable).

    For plugins that must order a live event (a syscall, a backdoor call) after
    the blocks that ran before it: the trace recorder calls this first.
    """
    for hook in getattr(emu, "_native_hooks", ()):
        drain = getattr(hook.state, "drain", None)
        if drain is not None:
            drain()


def before_exec(emu: "Emulator") -> None:
    """The old image is about to go: deliver its buffered events while its code is still mapped."""
    for hook in getattr(emu, "_native_hooks", []):
        if hasattr(hook.state, "drain"):
            hook.state.drain()
    emu.__dict__.pop("decoder", None)


def drain_plugin_hooks(emu: "Emulator") -> None:
    """Deliver every batch still buffered (end of run, before `on_exit`); each is delivered once."""
    drains, emu._native_drains = getattr(emu, "_native_drains", []), []
    for drain in drains:
        drain()


def remove_plugin_hooks(emu: "Emulator") -> None:
    """Remove every plugin hook and drop buffered events (a forked child reports nothing)."""
    for hook in (*getattr(emu, "_plugin_hooks", ()), *getattr(emu, "_native_hooks", ())):
        hook.remove(hook.handle)
    emu._plugin_hooks = []
    emu._native_hooks = []
    emu._native_drains = []
    emu._mode_table = None
