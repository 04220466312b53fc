"""ioctl: the requests of every file (FIOCLEX, FIONBIO, FIONREAD) and of terminals, by name.

Request numbers are asm-generic's, replaced per ISA by `Arch.ioctl_overrides` (MIPS).
"""
from __future__ import annotations

import errno
import fcntl as host_fcntl
import os
import struct
import sys
import termios

from .errors import SyscallError
from .registry import syscall


#: asm-generic/ioctls.h; `Arch.ioctl_overrides` replaces some per ISA (MIPS).
IOCTLS = {
    "TCGETS": 0x5401, "TCSETS": 0x5402, "TCSETSW": 0x5403, "TCSETSF": 0x5404,
    "TIOCGPGRP": 0x540F, "TIOCGWINSZ": 0x5413,
    "FIONREAD": 0x541B, "FIONBIO": 0x5421, "FIONCLEX": 0x5450, "FIOCLEX": 0x5451,
}
#: sizeof(struct termios) as the kernel copies it (four flag words, c_line, 19 c_cc) on every ISA
#: but MIPS; glibc's larger user struct is converted by tcgetattr from a kernel-sized local.
KERNEL_TERMIOS = 36
_TERMIOS_SETS = {"TCSETS": termios.TCSETS, "TCSETSW": termios.TCSETSW, "TCSETSF": termios.TCSETSF}


def ioctl_name(k, request: int) -> str | None:
    """The name of an ioctl request number on the guest's ISA (None: one bdemu does not know)."""
    overrides = k.arch.ioctl_overrides
    for name, generic in IOCTLS.items():
        if overrides.get(name, generic) == request:
            return name
    return None


@syscall("fd", "hex", "ptr")
def sys_ioctl(k, fd, request, argument):
    file = k.fds.get(k.signed32(fd))
    name = ioctl_name(k, request & 0xFFFFFFFF)
    # Requests of every file, as Linux's do_vfs_ioctl serves them before the file's own.
    if name in ("FIOCLEX", "FIONCLEX"):
        file.cloexec = name == "FIOCLEX"
        return 0
    if name == "FIONBIO":  # the argument points to an int: nonzero sets O_NONBLOCK
        os.set_blocking(file.host_fd, not int.from_bytes(k.read(argument, 4), k.byteorder))
        return 0
    if name == "FIONREAD":  # bytes ready to read: pipes, sockets, terminals, regular files
        ready = host_fcntl.ioctl(file.host_fd, termios.FIONREAD, bytes(4))
        k.write_int(argument, int.from_bytes(ready, sys.byteorder, signed=True))
        return 0
    if not os.isatty(file.host_fd):
        raise SyscallError(errno.ENOTTY)
    if name in ("TCGETS", *_TERMIOS_SETS) and k.arch.variants.get("termios"):
        raise SyscallError(errno.EINVAL)  # an ISA whose struct termios bdemu does not translate
    if name == "TCGETS":  # four tcflag_t words, then c_line and c_cc bytes
        termios_bytes = host_fcntl.ioctl(file.host_fd, termios.TCGETS, bytes(KERNEL_TERMIOS))[:KERNEL_TERMIOS]
        k.write(argument, k.swap_ints(termios_bytes[:16]) + termios_bytes[16:])
        return 0
    if name in _TERMIOS_SETS:
        termios_bytes = k.read(argument, KERNEL_TERMIOS)
        host_fcntl.ioctl(file.host_fd, _TERMIOS_SETS[name], k.swap_ints(termios_bytes[:16]) + termios_bytes[16:])
        return 0
    if name == "TIOCGWINSZ":  # four unsigned shorts
        size = struct.unpack("@4H", host_fcntl.ioctl(file.host_fd, termios.TIOCGWINSZ, bytes(8)))
        k.write(argument, b"".join(value.to_bytes(2, k.byteorder) for value in size))
        return 0
    if name == "TIOCGPGRP":
        k.write_int(argument, os.tcgetpgrp(file.host_fd))
        return 0
    raise SyscallError(errno.EINVAL)
