"""Putting a program into an Emulator: reading its ELF, its interpreter, memory, stack and
registers at start-up and at every execve, and what an execve of a path actually runs.

Kept apart from the Emulator and its run loop (bdemu/runloop.py): these functions run once
per image, the loop runs all the time.
"""
from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from . import loaders
from .cpu import Arch, host_arch
from .errors import NotExecutable
from .linux.errors import HostProgram, SyscallError
from .memory import PROT_READ, PROT_WRITE, OutOfMemory, page_down

if TYPE_CHECKING:
    from .emulator import Emulator
    from .linux.fs import VirtualFS


def describe(host_path: str) -> loaders.ElfImage:
    """The ELF at `host_path`, or NotExecutable with one line saying why."""
    try:
        return loaders.read_elf(host_path)
    except loaders.NotExecutable as error:
        raise NotExecutable(f"{host_path}: {error}") from None
    except PermissionError:
        raise NotExecutable(f"{host_path}: permission denied") from None
    except OSError as error:
        raise NotExecutable(f"{host_path}: {error.strerror}") from None


def interpreter_of(vfs: "VirtualFS", host_path: str, image: loaders.ElfImage) -> loaders.ElfImage:
    """The image's PT_INTERP (ld.so), looked up in the guest's root: the host's / or --rootfs."""
    where = f"in {vfs.rootfs}" if vfs.rootfs else "on the host (a foreign guest needs --rootfs)"
    try:
        interp = loaders.read_elf(vfs.host_path(image.interpreter))
    except (loaders.NotExecutable, SyscallError, OSError) as error:
        reason = (os.strerror(error.code) if isinstance(error, SyscallError)
                  else error.strerror if isinstance(error, OSError) else str(error))
        raise NotExecutable(f"{host_path}: interpreter {image.interpreter} {where}: {reason}") from None
    if interp.arch is not image.arch:
        raise NotExecutable(f"{host_path}: interpreter {image.interpreter} {where} is for {interp.arch.name}")
    return interp


def module_of_mapping(host_fd: int, address: int, offset: int, arch: Arch):
    """The module an executable file mapping places (ld.so loading a library), or None."""
    try:
        host_path = os.readlink(f"/proc/self/fd/{host_fd}")
        image = loaders.read_elf(host_path)
    except (OSError, loaders.NotExecutable):
        return None
    placed = loaders.mapped_image(image, address, offset)
    return None if placed is None or image.arch is not arch else placed


def exe_path(vfs: "VirtualFS", host_path: str, guest_path: str) -> str:
    """What /proc/self/exe names: the file itself, links resolved, as on Linux. Never the path
    execve was given, which may be /proc/self/exe (busybox runs applets so) and would then
    name itself. A GUEST outside --rootfs keeps the path as given (docs/security.md)."""
    real = os.path.realpath(host_path)
    guest = vfs.guest_path_of_host(real)
    return guest if vfs.rootfs is None or guest != real else guest_path


def load(emu: "Emulator", host_path: str, argv: list[bytes], envp: list[bytes], guest_path: str) -> None:
    """Map the program (and its interpreter), the fixed pages, the stack, and set the registers."""
    arch = emu.arch
    image = describe(host_path)
    emu.device.reserve(emu.memory)
    write = emu.uc.mem_write
    for page in arch.fixed_pages:
        emu.memory.reserve(page.address, page.address + page.size)
        emu.memory.map(page.address, page.size, page.perms, page.name)
        write(page.address, page.content)
    base = arch.pie_base - page_down(image.span[0]) if image.is_pie else None
    try:
        main = loaders.load_image(emu.memory, write, image, base)
        emu.modules = [main]
        entry, interp_base = main.entry, 0
        if image.interpreter:
            interp = loaders.load_image(emu.memory, write, interpreter_of(emu.vfs, host_path, image))
            emu.modules.append(interp)
            entry, interp_base = interp.entry, interp.base
    except (SyscallError, OSError) as error:
        raise NotExecutable(f"{host_path}: cannot load: {error}") from None
    except OutOfMemory:
        raise NotExecutable(f"{host_path}: cannot load: not enough memory for its segments") from None
    emu.memory.set_brk_start(main.end)
    stack_low = arch.stack_top - arch.stack_size
    emu.memory.map(stack_low, arch.stack_size, PROT_READ | PROT_WRITE, "[stack]")
    layout = loaders.StackLayout(
        argv=argv, envp=envp, execfn=os.fsencode(guest_path), platform=arch.platform,
        phdr=main.phdr, phent=image.phentsize, phnum=image.phnum, entry=main.entry,
        interp_base=interp_base, hwcap=arch.hwcap, hwcap2=arch.hwcap2, page_size=arch.page_size)
    sp, block = loaders.build_stack(layout, arch.stack_top, arch.word_size, arch.byteorder)
    write(sp, block)
    for name in arch.general_registers:
        emu.regs.set_reg(name, 0)
    for name, value in arch.initial_registers.items():
        emu.regs.set_reg(name, value)
    emu.regs.set_reg(arch.sp, sp)
    if arch.start_cpu is not None:
        arch.start_cpu(emu)
    emu._start_pc = entry
    emu.regs.set_reg(arch.pc, entry)
    emu.kernel.exe_guest_path = exe_path(emu.vfs, host_path, guest_path)
    emu.kernel.exe_host_path = os.path.abspath(host_path)
    emu.device.attach(emu.memory)


def resolve_exec(vfs: "VirtualFS", arch: Arch, guest: str, host: str, argv: list[bytes],
                 host_exec: bool | None = None) -> tuple[str, str, list[bytes], bool]:
    """What execve of `guest` runs: (guest path, host path, argv, whether the host runs it), a
    `#!` script becoming its interpreter. Raises SyscallError(ENOEXEC) unless that replaces this
    image, or, with `host_exec`, is a program of the host's own ISA (bdemu/linux/hostexec.py);
    HostProgram (ENOEXEC) for one that host exec, off (False) but possible (not None), would run."""
    with open(host, "rb") as handle:
        head = handle.read(256)
    if head.startswith(b"#!"):
        words = head[2:].split(b"\n")[0].strip().split(None, 1)
        if not words:
            raise SyscallError(errno.ENOEXEC)
        interpreter = os.fsdecode(words[0])
        argv = [words[0], *words[1:], os.fsencode(guest), *argv[1:]]
        guest, host = vfs.absolute(interpreter), vfs.host_path(interpreter)
    try:
        image = loaders.read_elf(host)
    except (loaders.NotExecutable, OSError):
        raise SyscallError(errno.ENOEXEC) from None
    if image.arch is arch:
        return guest, host, argv, False
    if image.arch is host_arch() and host_exec is not None:
        if host_exec:
            return guest, host, argv, True
        raise HostProgram(errno.ENOEXEC)
    raise SyscallError(errno.ENOEXEC)
