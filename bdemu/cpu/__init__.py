"""Architecture descriptions, one module per ISA, selected by ELF header fields."""
from __future__ import annotations

import importlib

from .base import Arch, SyscallABI

#: (ELF machine, ELF class bits, byte order) -> module holding that ISA's `ARCH`.
_MODULES: dict[tuple[int, int, str], str] = {
    (62, 64, "little"): "x86_64",
    (183, 64, "little"): "aarch64",
    (3, 32, "little"): "i386",
    (40, 32, "little"): "arm",
    (8, 32, "little"): "mipsel",
    (8, 32, "big"): "mips",
    (243, 64, "little"): "riscv64",
}

#: Every ISA name bdemu knows, for tests and `--help`.
NAMES: tuple[str, ...] = tuple(_MODULES.values())


def by_name(name: str) -> Arch:
    """The description of ISA `name` (as in `samples/bin/<name>`)."""
    if name not in NAMES:
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}").ARCH


def for_elf(machine: int, bits: int, byteorder: str) -> Arch | None:
    """The description matching an ELF header, or None if bdemu does not run it."""
    module = _MODULES.get((machine, bits, byteorder))
    return None if module is None else by_name(module)


__all__ = ["Arch", "SyscallABI", "NAMES", "by_name", "for_elf"]
