"""The bare-Unicorn baseline shared by the benchmarks: same image, same stack, same process.

`bare_unicorn_seconds` loads the guest with bdemu (so memory, stack and
the whole CPU state are identical), then replaces every hook with one minimal
inline syscall handler and times `emu_start` alone. The handler answers 0 to
everything but does what libc start-up cannot do without: the thread-pointer
calls (through the ISA's own `Arch` functions) and exit.
"""
from __future__ import annotations

import os
import time

from unicorn import UC_HOOK_INSN, UC_HOOK_INTR, Uc
from unicorn.x86_const import UC_X86_INS_SYSCALL

from bdemu import Emulator


class _Exit(Exception):
    pass


def _fresh_copy(emu: Emulator) -> Uc:
    """A new engine holding a copy of the loaded guest's memory and CPU state, and no hooks."""
    arch = emu.arch
    uc = Uc(arch.uc_arch, arch.uc_mode)
    if arch.cpu_model is not None:
        uc.ctl_set_cpu_model(arch.cpu_model)
    for start, end, perms in emu.uc.mem_regions():
        uc.mem_map(start, end - start + 1, perms)
        uc.mem_write(start, bytes(emu.uc.mem_read(start, end - start + 1)))
    uc.context_restore(emu.uc.context_save())  # every register, also GDTR, CP15, CP0
    return uc


class _BareGuest:
    """Just enough of the Emulator and Kernel interfaces for an Arch's TLS functions."""

    def __init__(self, uc: Uc, arch) -> None:
        self.uc, self.arch = uc, arch

    def reg(self, name: str) -> int:
        return self.uc.reg_read(self.arch.registers[name])

    def set_reg(self, name: str, value: int) -> None:
        self.uc.reg_write(self.arch.registers[name], value)

    def read(self, address: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(address, size))

    def write(self, address: int, data: bytes) -> None:
        self.uc.mem_write(address, bytes(data))

    def write_int(self, address: int, value: int, size: int = 4) -> None:
        self.write(address, (value & ((1 << 8 * size) - 1)).to_bytes(size, self.arch.byteorder))


def bare_unicorn_seconds(path: str, argv: list[str] | None = None, clock=time.perf_counter) -> float:
    """Seconds of `emu_start` alone, by `clock` (time.process_time: CPU seconds)."""
    emu = Emulator(path, argv=argv or [path], env={})
    arch = emu.arch
    uc = _fresh_copy(emu)
    abi = arch.syscall
    ids = {name: arch.registers[name] for name in (abi.number, abi.result, *abi.args)}
    devnull = os.open(os.devnull, os.O_WRONLY)
    names = arch.syscall_numbers

    guest = _BareGuest(uc, arch)

    def syscall(uc, *_):
        name = names.get(uc.reg_read(ids[abi.number]), "")
        if abi.error_flag:
            uc.reg_write(arch.registers[abi.error_flag], 0)
        if name in ("exit", "exit_group"):
            raise _Exit()
        if name in ("set_thread_area", "set_tls", "ARM_set_tls"):
            address = uc.reg_read(ids[abi.args[0]])
            if arch.thread_area is not None:
                arch.thread_area(guest, address)
            else:
                arch.set_tls(guest, address)
            uc.reg_write(ids[abi.result], 0)
        elif name == "write":
            uc.reg_write(ids[abi.result], uc.reg_read(ids[abi.args[2]]))
        elif name == "writev":
            uc.reg_write(ids[abi.result], 1)
        else:
            uc.reg_write(ids[abi.result], 0)

    kind, number = abi.trap
    if kind == "insn":
        uc.hook_add(UC_HOOK_INSN, syscall, None, 1, 0, UC_X86_INS_SYSCALL)
    else:
        uc.hook_add(UC_HOOK_INTR, lambda uc, intno, _u: syscall(uc) if intno == number else uc.emu_stop())
    start = clock()
    try:
        until = arch.word_mask if arch.run_until is None else arch.run_until
        uc.emu_start(emu.reg(arch.pc), until, 0, 1 << 62 if arch.always_count_insns else 0)
    except _Exit:
        pass
    elapsed = clock() - start
    os.close(devnull)
    return elapsed


def bdemu_seconds(path: str, argv: list[str] | None = None, plugins=(), clock=time.perf_counter) -> float:
    """Seconds of Emulator.run() by `clock` (output captured), plugins added by name or instance."""
    emu = Emulator(path, argv=argv or [path], env={})
    for plugin in plugins:
        if isinstance(plugin, tuple):
            emu.add_plugin(plugin[0], **plugin[1])
        else:
            emu.add_plugin(plugin)
    start = clock()
    result = emu.run(capture_output=True)
    elapsed = clock() - start
    if result.exit_code != 0:
        raise RuntimeError(f"guest failed: {result}")
    return elapsed
