"""The syscall registry: one handler per syscall *name*, shared by every ISA.

Handlers are plain functions `sys_<name>(kernel, *args)` registered with
`@syscall(...)`; the argument kinds given there are what `strace` decodes.
Per-ISA number tables (bdemu/linux/tables/) map numbers to these names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

#: Argument kinds understood by the strace printer.
ARG_KINDS = frozenset({
    "int", "uint", "hex", "fd", "dirfd", "path", "str", "ptr", "size", "buf_in", "buf_out",
    "oflags", "mode", "prot", "mflags", "signal", "clock", "iov", "off",
    "off64",  # a 64-bit value (loff_t): two argument slots on 32-bit ABIs
})


@dataclass(frozen=True)
class Handler:
    name: str
    function: Callable[..., int]
    args: tuple[str, ...]


HANDLERS: dict[str, Handler] = {}


def syscall(*args: str, names: tuple[str, ...] = ()):
    """Register `sys_<name>` (and any aliases in `names`) with argument kinds `args`."""
    for kind in args:
        if kind not in ARG_KINDS:
            raise ValueError(f"unknown argument kind {kind!r}")

    def register(function: Callable[..., int]) -> Callable[..., int]:
        primary = function.__name__.removeprefix("sys_")
        for name in (primary, *names):
            if name in HANDLERS:  # two implementations of one syscall: the later would win silently
                raise ValueError(f"syscall {name!r} registered twice")
            HANDLERS[name] = Handler(name, function, args)
        return function

    return register
