"""Function hooks: Python called at a function's entry (and on its return), by symbol or address.

`Emulator.hook_function("malloc", on_entry, on_return)` watches the function's first
instruction. One native block hook serves every function hook (C `bd_block_watch`): each block
start is tested against a hash set of addresses, and only a hit runs Python, so hooking a
thousand functions costs what hooking one does. A function is entered through a call or a
jump, which starts a block, so its entry is always seen.

Names are resolved in every module as it appears: a library that ld.so maps later gets its
hooks then, and an exec resolves them again in the new program. A glob (`str*`,
`libc.so.6!*`) hooks every matching function.

A return is caught where it lands: the return address (from the ABI's link register, or the
stack on x86) joins the watched set, and the call returns when a block starts there with the
stack pointer where the return leaves it, in the same thread; so recursion and threads pair
each return with its own call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .hooks import PluginError, RunStopped

if TYPE_CHECKING:
    from .emulator import Emulator

OnEntry = Callable[["Emulator"], None]
OnReturn = Callable[["Emulator", int], None]
#: Calls awaiting their return, per return address, at most (older ones were longjmp'd over).
MAX_PENDING = 256


@dataclass(frozen=True, eq=False)
class _Hook:
    target: str | int
    on_entry: OnEntry | None
    on_return: OnReturn | None


@dataclass(frozen=True)
class _Pending:
    sp: int
    tid: int
    hook: _Hook


class FunctionHooks:
    def __init__(self, emu: "Emulator") -> None:
        self._emu = emu
        self._hooks: list[_Hook] = []
        self._entries: dict[int, list[_Hook]] = {}
        self._returns: dict[int, list[_Pending]] = {}
        #: IFUNC resolvers' hooks, and the implementations they returned, per hook (see _resolver).
        self._resolvers: dict[tuple[_Hook, int], _Hook] = {}
        self._implementations: dict[_Hook, set[int]] = {}
        self._watch = None

    def add(self, target: str | int, on_entry: OnEntry | None, on_return: OnReturn | None) -> None:
        if self._emu.arch.call_abi is None:
            raise PluginError(f"function hooks are not supported on {self._emu.arch.name}")
        self._hooks.append(_Hook(target, on_entry, on_return))
        self.resolve()
        if self._watch is None and hasattr(self._emu, "_native_hooks"):  # added while running
            self.install()
            self._emu.uc.ctl_flush_tb()  # code translated without the block hook gets it

    def install(self) -> None:
        """Put the block hook in Unicorn (hookinstall.install_plugin_hooks: each run's hooks)."""
        from unicorn import UC_HOOK_BLOCK

        from . import _native
        from .hookinstall import native_hook
        if not self._hooks:
            return
        self._watch = _native.AddressWatch(self._emu.uc, self._hit)
        self._emu._native_hooks.append(native_hook(self._emu.uc, UC_HOOK_BLOCK, _native.BLOCK_WATCH, self._watch))
        self._watch.watch([*self._entries, *self._returns])

    def resolve(self) -> None:
        """Find every hooked function in the modules loaded now (after a library appeared or an exec)."""
        entries: dict[int, list[_Hook]] = {}
        for hook in self._hooks:
            for address, name, ifunc in self._targets(hook):
                entries.setdefault(address, []).append(self._resolver(hook, name, address) if ifunc else hook)
            for address in self._implementations.get(hook, ()):
                entries.setdefault(address, []).append(hook)
        self._entries = entries
        if self._watch is not None:
            self._watch.watch([*entries, *self._returns])

    def _targets(self, hook: _Hook) -> list[tuple[int, str | None, bool]]:
        """(address, symbol name, is an IFUNC) of each function the hook's target names now."""
        if isinstance(hook.target, int):
            return [(hook.target, None, False)]
        symbols = self._emu.symbols
        if any(char in hook.target for char in "*?["):
            found = {}  # aliases share an address: hooked once
            for module, symbol in symbols.matching(hook.target):
                found.setdefault(module.base + symbol.value, (symbol.name, symbol.ifunc))
            return [(address, name, ifunc) for address, (name, ifunc) in found.items()]
        for module, symbol in symbols.lookup(hook.target):
            return [(module.base + symbol.value, symbol.name, symbol.ifunc)]
        return []

    def _resolver(self, hook: _Hook, name: str, address: int) -> _Hook:
        """An IFUNC symbol is the address of a resolver that picks the implementation (glibc's
        strlen for this CPU...) when ld.so binds it: hooked on return, its result is where the
        function really starts, which `hook` then watches too."""
        key = (hook, address)
        resolver = self._resolvers.get(key)
        if resolver is None:
            def found(emu: "Emulator", implementation: int) -> None:
                if emu.arch.pc_mode_bits is not None:
                    implementation &= ~1
                known = self._implementations.setdefault(hook, set())
                if implementation and implementation not in known:
                    known.add(implementation)
                    emu.symbols.name_address(implementation, name)
                    self.resolve()
            resolver = self._resolvers[key] = _Hook(name, None, found)
        return resolver

    def after_exec(self) -> None:
        """A new program: calls of the old one never return; names are looked up again."""
        self._returns.clear()
        self._resolvers.clear()
        self._implementations.clear()
        self.resolve()

    def _hit(self, address: int) -> None:
        emu = self._emu
        pending = self._returns.get(address)
        if pending:
            sp, tid = emu.reg(emu.arch.sp), emu.tid
            for call in [call for call in pending if call.sp == sp and call.tid == tid]:
                pending.remove(call)
                self._call(call.hook, call.hook.on_return, emu, self.result())
        for hook in self._entries.get(address, ()):
            if hook.on_return is not None:
                self._expect_return(hook)
            if hook.on_entry is not None:
                self._call(hook, hook.on_entry, emu)

    def _expect_return(self, hook: _Hook) -> None:
        emu, abi = self._emu, self._emu.arch.call_abi
        sp = emu.reg(emu.arch.sp)
        after = sp if abi.return_register is not None else sp + emu.arch.word_size  # x86: ret pops it
        where = self.return_address()
        if emu.arch.pc_mode_bits is not None:
            where &= ~1  # ARM: bit 0 says Thumb; the block starts at the even address
        waiting = self._returns.setdefault(where, [])
        if len(waiting) >= MAX_PENDING:
            del waiting[0]
        waiting.append(_Pending(after, emu.tid, hook))
        if self._watch is not None and len(waiting) == 1:
            self._watch.watch([*self._entries, *self._returns])

    def _call(self, hook: _Hook, function, *args) -> None:
        try:
            function(*args)
        except RunStopped:
            raise
        except Exception as error:
            name = hook.target if isinstance(hook.target, str) else f"{hook.target:#x}"
            raise PluginError(f"function hook on {name} raised at pc {self._emu.pc:#x}: "
                              f"{type(error).__name__}: {error}") from error

    # -- the calling convention, at a function's entry -------------------------------------------
    def argument(self, index: int) -> int:
        emu, abi = self._emu, self._emu.arch.call_abi
        if index < len(abi.args):
            return emu.reg(abi.args[index])
        word = emu.arch.word_size
        address = emu.reg(emu.arch.sp) + abi.stack_args_offset + word * (index - len(abi.args))
        return int.from_bytes(emu.read_memory(address, word), emu.arch.byteorder)

    def return_address(self) -> int:
        emu, abi = self._emu, self._emu.arch.call_abi
        if abi.return_register is not None:
            return emu.reg(abi.return_register)
        word = emu.arch.word_size
        return int.from_bytes(emu.read_memory(emu.reg(emu.arch.sp), word), emu.arch.byteorder)

    def result(self) -> int:
        return self._emu.reg(self._emu.arch.call_abi.result)

    def return_now(self, value: int) -> None:
        """Return from the function at its entry with `value`, without running it."""
        emu, abi = self._emu, self._emu.arch.call_abi
        target = self.return_address()
        if abi.return_register is None:
            emu.set_reg(emu.arch.sp, emu.reg(emu.arch.sp) + emu.arch.word_size)
        emu.set_reg(abi.result, value & emu.arch.word_mask)
        emu.regs.set_reg(emu.arch.pc, target)  # raw: ARM takes Thumb state from bit 0 of lr

