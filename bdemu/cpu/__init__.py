"""Architecture descriptions, one module per ISA, selected by ELF header fields."""
from __future__ import annotations

import ctypes
import functools
import importlib
import os
import sys

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


@functools.cache
def host_arch() -> Arch | None:
    """The ISA of the machine bdemu itself runs on (the one its host programs are built for), or
    None when bdemu has no description of it: found by each Arch's `host_machines`, byte order
    and word size, so an x86-64 kernel running a 32-bit Python counts as i386 only if it says so."""
    machine, bits = os.uname().machine, 8 * ctypes.sizeof(ctypes.c_void_p)
    for name in NAMES:
        arch = by_name(name)
        if machine in arch.host_machines and arch.byteorder == sys.byteorder and arch.bits == bits:
            return arch
    return None


__all__ = ["Arch", "SyscallABI", "NAMES", "by_name", "for_elf", "host_arch"]
