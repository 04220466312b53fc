"""System V message queues: msgget, msgsnd, msgrcv, msgctl, on the host's queues.

The queues are host objects (ipcns.py), shared by the guest's forked
processes. A message is `long mtype` (the guest's word) then its text; the
host's is 8 bytes then the text. A send to a full queue or a receive from an
empty one waits without blocking the engine: the host call is tried again
with IPC_NOWAIT after short, growing sleeps (there is no timed host
msgsnd/msgrcv), cut short by --timeout, Ctrl-C and guest signals (EINTR); a
threaded guest's thread parks meanwhile.
"""
from __future__ import annotations

import ctypes
import errno
import struct

from . import ipcinfo
from .errors import SyscallError
from .hostlibc import LIBC, checked
from .ipcns import MSG, common_ctl, until_done, versioned
from .ipcstructs import IPC_INFO, IPC_NOWAIT, IPC_RMID, IPC_SET, IPC_STAT
from .registry import syscall

MSG_STAT, MSG_INFO, MSG_STAT_ANY = 11, 12, 13
STRUCT_COMMANDS = (IPC_STAT, IPC_SET, IPC_INFO, MSG_STAT, MSG_INFO, MSG_STAT_ANY)
MSG_COPY = 0o40000
#: Linux's default MSGMAX, if the host's cannot be read.
DEFAULT_MSGMAX = 8192
HOST_LONG = struct.Struct("=q")


def _msgmax() -> int:
    """The host's largest message: no call reads or allocates more than this for the guest."""
    try:
        with open("/proc/sys/kernel/msgmax", "rb") as limits:
            return int(limits.read())
    except (OSError, ValueError):
        return DEFAULT_MSGMAX


@syscall("int", "hex")
def sys_msgget(k, key, flags):
    return k.ipc.get(MSG, k.signed32(key), k.signed32(flags),
                     lambda host_key, host_flags: checked(LIBC.msgget(host_key, host_flags)))


@syscall("int", "ptr", "size", "hex")
def sys_msgsnd(k, msqid, address, size, flags):
    msqid, flags = k.signed32(msqid), k.signed32(flags)
    if msqid < 0 or size > _msgmax():
        raise SyscallError(errno.EINVAL)
    kind = k.signed(k.read_word(address))
    if kind < 1:
        raise SyscallError(errno.EINVAL)
    message = HOST_LONG.pack(kind) + k.read(address + k.word, size)
    host_id = k.ipc.check(MSG, msqid)
    buffer = ctypes.create_string_buffer(message, len(message))

    def attempt() -> int:
        return checked(LIBC.msgsnd(host_id, buffer, size, flags | IPC_NOWAIT))

    return attempt() if flags & IPC_NOWAIT else until_done(k, attempt, errno.EAGAIN)


def msgrcv(k, msqid: int, address: int, size: int, kind: int, flags: int) -> int:
    msqid, flags = k.signed32(msqid), k.signed32(flags)
    if msqid < 0 or size > k.arch.word_mask >> 1 or (flags & MSG_COPY and not flags & IPC_NOWAIT):
        raise SyscallError(errno.EINVAL)
    host_id = k.ipc.check(MSG, msqid)
    size = min(size, _msgmax())
    buffer = ctypes.create_string_buffer(HOST_LONG.size + size)

    def attempt() -> int:
        return checked(LIBC.msgrcv(host_id, buffer, size, k.signed(kind), flags | IPC_NOWAIT))

    received = attempt() if flags & IPC_NOWAIT else until_done(k, attempt, errno.ENOMSG)
    got = HOST_LONG.unpack_from(buffer.raw)[0]
    k.write(address, (got & k.arch.word_mask).to_bytes(k.word, k.byteorder)
            + buffer.raw[HOST_LONG.size:HOST_LONG.size + received])
    return received


@syscall("int", "ptr", "size", "int", "hex")
def sys_msgrcv(k, msqid, address, size, kind, flags):
    return msgrcv(k, msqid, address, size, kind, flags)


def msgctl(k, msqid: int, command: int, address: int) -> int:
    msqid = k.signed32(msqid)
    if ipcinfo.is_info(MSG, command):
        return ipcinfo.do_info(k, MSG, command, address)
    if ipcinfo.is_stat(MSG, command):
        return ipcinfo.do_stat(k, MSG, command, msqid, address)
    if msqid < 0 or command not in (IPC_STAT, IPC_SET, IPC_RMID):
        raise SyscallError(errno.EINVAL)
    return common_ctl(k, MSG, k.ipc.check(MSG, msqid), command, address, ("qbytes",))


@syscall("int", "int", "ptr")
def sys_msgctl(k, msqid, command, address):
    return msgctl(k, msqid, k.signed32(command), address)


@syscall("int", "int", "ptr")
def sys_old_msgctl(k, msqid, command, address):
    """ARM's msgctl and the `ipc` multiplexer's: 64-bit layouts only with IPC_64."""
    return msgctl(k, msqid, versioned(k, command, STRUCT_COMMANDS), address)
