"""Names of guest code: the symbols of every loaded module (program, ld.so, libraries), by address
and by name, with each module's load bias applied.

A module's ELF symbols are read the first time they are needed (bdemu/loaders/symbols.py: bounded
reads of an untrusted file). Names may be qualified with a module's file name, as
`libc.so.6!puts`; an unqualified name is looked up in the program first, then in the other
modules in the order they were loaded.
"""
from __future__ import annotations

import fnmatch
import os
from typing import TYPE_CHECKING, Iterator

from .loaders.symbols import Symbol, SymbolTable, read_symbols

if TYPE_CHECKING:
    from .emulator import Emulator
    from .loaders import LoadedImage


class GuestSymbols:
    def __init__(self, emu: "Emulator") -> None:
        self._emu = emu
        self._tables: dict[str, SymbolTable] = {}
        self._names: dict[int, str | None] = {}
        #: Names of code that has no symbol of its own (an IFUNC's implementation: funchooks.py).
        self._extra: dict[int, str] = {}

    def table(self, module: "LoadedImage") -> SymbolTable:
        path = module.image.path
        table = self._tables.get(path)
        if table is None:
            table = self._tables[path] = read_symbols(path)
        return table

    def module_at(self, address: int) -> "LoadedImage | None":
        for module in self._emu.modules:
            if module.start <= address < module.end:
                return module
        return None

    def symbolize(self, address: int) -> str | None:
        """`module!symbol+0x12` (`module!symbol` at its first byte), `module+0x1234` where the
        module has no symbol for it, None outside every module."""
        if address in self._names:
            return self._names[address]
        module = self.module_at(address)
        name = None
        if address in self._extra:
            name = self._extra[address]
        elif module is not None:
            label = os.path.basename(module.image.path)
            found = self.table(module).nearest(address - module.base)
            if found is None:
                name = f"{label}+{address - module.start:#x}"
            else:
                name = f"{label}!{found[0]}" + (f"+{found[1]:#x}" if found[1] else "")
        if len(self._names) < 1 << 16:
            self._names[address] = name
        return name

    def address_of(self, name: str) -> int | None:
        """The run-time address of symbol `name` or `module!name`; None if no loaded module has it."""
        for module, symbol in self.lookup(name):
            return symbol.value + module.base
        return None

    def lookup(self, name: str) -> Iterator[tuple["LoadedImage", Symbol]]:
        """(module, symbol) for every loaded module that defines `name` (or `module!name`)."""
        wanted_module, _, symbol_name = name.rpartition("!")
        for module in self.modules_in_lookup_order():
            if wanted_module and os.path.basename(module.image.path) != wanted_module:
                continue
            symbol = self.table(module).named(symbol_name)
            if symbol is not None:
                yield module, symbol

    def matching(self, pattern: str) -> Iterator[tuple["LoadedImage", Symbol]]:
        """(module, symbol) of every function whose name matches the glob (`module!glob`: in
        the modules whose file name matches that glob)."""
        wanted_module, _, name_pattern = pattern.rpartition("!")
        for module in self.modules_in_lookup_order():
            if wanted_module and not fnmatch.fnmatchcase(os.path.basename(module.image.path), wanted_module):
                continue
            for symbol in self.table(module).functions():
                if fnmatch.fnmatchcase(symbol.name, name_pattern):
                    yield module, symbol

    def modules_in_lookup_order(self) -> list["LoadedImage"]:
        """The program, the libraries in load order, then ld.so (roughly the dynamic linker's scope)."""
        modules = self._emu.modules
        if len(modules) > 1 and modules[0].image.interpreter:
            return [modules[0], *modules[2:], modules[1]]
        return list(modules)

    def name_address(self, address: int, name: str) -> None:
        """Call the code at `address` `name` (in its module: `module!name`) from now on."""
        module = self.module_at(address)
        self._extra[address] = f"{os.path.basename(module.image.path)}!{name}" if module is not None else name
        self._names.pop(address, None)

    def forget_addresses(self) -> None:
        """The address space changed (exec): names of addresses are stale."""
        self._names.clear()
        self._extra.clear()
