"""File locks: flock(2) and fcntl's record locks, taken as host locks on the host file.

Every guest process is a host process, so a host lock keeps out the guest's
other processes, other bdemu runs and host programs alike, with Linux's
rules (record locks belong to the process, flock and OFD locks to the open
file). A lock that has to wait is asked for again in short sleeps rather than
with a blocking host call, which would stall the run: the wait ends for a
signal, Ctrl-C or `--timeout`, and in a threaded guest only the caller's
thread waits (see bdemu/linux/threads.py).

`struct flock` is laid out three ways: the 64-bit one (also `flock64` on ARM
and MIPS), i386's `flock64` whose 64-bit fields are 4-byte aligned
(`Arch.variants["flock64"] == "packed"`), and the 32-bit `flock` with `long`
offsets, which MIPS extends with `l_sysid` and padding and numbers its
commands differently (`Arch.variants["fcntl"] == "mips"`).
"""
from __future__ import annotations

import errno
import fcntl as host_fcntl
import struct

from .errors import SyscallError
from .registry import syscall

LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8
#: Seconds between two attempts at a lock that has to wait.
RETRY = 0.002
#: The host's struct flock (a 64-bit host): type, whence, start, len, pid.
HOST_FLOCK = struct.Struct("@hhqqi4x")
HOST_GET, HOST_SET = host_fcntl.F_GETLK, host_fcntl.F_SETLK
HOST_OFD_GET, HOST_OFD_SET = 36, 37  # F_OFD_GETLK, F_OFD_SETLK
F_UNLCK = 2

#: Guest layouts: struct format of (type, whence, start, len, pid); MIPS's 32-bit one has l_sysid before l_pid.
WIDE, PACKED, NARROW, NARROW_MIPS = "hh4xqqi4x", "hhqqi", "hhiii", "hhiiii16x"


def _guest_layout(k, command: int) -> tuple[str, bool, bool] | None:
    """(struct format, is a get, waits) of record-lock `command` for this ISA; None if it is none."""
    mips = k.arch.variants.get("fcntl") == "mips"
    narrow = (14, 6, 7) if mips else (5, 6, 7)
    wide64 = (33, 34, 35) if mips else (12, 13, 14)
    ofd = (36, 37, 38)
    if k.word == 8:
        tables = ((narrow, WIDE), (ofd, WIDE))
    else:
        wide = PACKED if k.arch.variants.get("flock64") == "packed" else WIDE
        tables = ((narrow, NARROW_MIPS if mips else NARROW), (wide64, wide), (ofd, wide))
    for commands, layout in tables:
        if command in commands:
            index = commands.index(command)
            return layout, index == 0, index == 2
    return None


def is_record_lock(k, command: int) -> bool:
    return _guest_layout(k, command) is not None


def record_lock(k, host_fd: int, command: int, address: int) -> int:
    """fcntl F_GETLK / F_SETLK / F_SETLKW, their 64-bit and OFD forms."""
    layout, get, waits = _guest_layout(k, command)
    guest = struct.Struct(("<" if k.byteorder == "little" else ">") + layout)
    fields = guest.unpack(k.read(address, guest.size))
    kind, whence, start, length = fields[:4]
    ofd = command in (36, 37, 38)
    request = HOST_FLOCK.pack(kind, whence, start, length, 0)
    if get:
        kind, whence, start, length, pid = HOST_FLOCK.unpack(
            host_fcntl.fcntl(host_fd, HOST_OFD_GET if ofd else HOST_GET, request))
        values = [kind, whence, start, length, pid]
        if layout == NARROW_MIPS:
            values.insert(4, 0)  # l_sysid
        k.write(address, guest.pack(*values))
        return 0
    if not waits or kind == F_UNLCK:
        host_fcntl.fcntl(host_fd, HOST_OFD_SET if ofd else HOST_SET, request)
        return 0
    return until_granted(k, lambda: host_fcntl.fcntl(host_fd, HOST_OFD_SET if ofd else HOST_SET, request))


def until_granted(k, attempt) -> int:
    """Call `attempt` (a host lock request that does not wait) until no other owner holds the lock."""
    while True:
        try:
            attempt()
            return 0
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        k.wait_to_retry(RETRY)


@syscall("fd", "hex")
def sys_flock(k, fd, operation):
    file = k.fds.get(k.signed32(fd))
    kind = operation & ~LOCK_NB
    if kind not in (LOCK_SH, LOCK_EX, LOCK_UN):
        raise SyscallError(errno.EINVAL)
    if kind == LOCK_UN or operation & LOCK_NB:
        host_fcntl.flock(file.host_fd, operation)
        return 0
    return until_granted(k, lambda: host_fcntl.flock(file.host_fd, kind | LOCK_NB))
