"""ipc(2): the System V IPC multiplexer of i386 and MIPS o32, whose libcs use it for every call.

`call`'s low 16 bits pick the operation, its high bits a version (an old
form of msgrcv and shmat). The *ctl operations are the kernel's old_*ctl:
their commands carry IPC_64 for the 64-bit layouts (see ipcns.versioned).
"""
from __future__ import annotations

import errno

from . import msg, sem, shm
from .errors import SyscallError
from .registry import syscall


def _semctl(k, first, second, third, ptr, fifth, version):
    if not ptr:
        raise SyscallError(errno.EINVAL)
    return sem.sys_old_semctl(k, first, second, third, k.read_word(ptr))  # ptr -> union semun


def _msgrcv(k, first, second, third, ptr, fifth, version):
    if version:
        return msg.msgrcv(k, first, ptr, second, fifth, third)
    if not ptr:  # version 0: ptr -> struct ipc_kludge { msgp; long msgtyp; }
        raise SyscallError(errno.EINVAL)
    return msg.msgrcv(k, first, k.read_word(ptr), second, k.read_word(ptr + k.word), third)


def _shmat(k, first, second, third, ptr, fifth, version):
    if version == 1:  # iBCS2's form
        raise SyscallError(errno.EINVAL)
    k.write_word(third, shm.do_shmat(k, first, ptr, second))
    return 0


CALLS = {
    1: lambda k, first, second, third, ptr, fifth, version: sem.semtimedop(k, first, ptr, second, 0, k.word),
    2: lambda k, first, second, third, ptr, fifth, version: sem.sys_semget(k, first, second, third),
    3: _semctl,
    4: lambda k, first, second, third, ptr, fifth, version: sem.semtimedop(k, first, ptr, second, fifth, k.word),
    11: lambda k, first, second, third, ptr, fifth, version: msg.sys_msgsnd(k, first, ptr, second, third),
    12: _msgrcv,
    13: lambda k, first, second, third, ptr, fifth, version: msg.sys_msgget(k, first, second),
    14: lambda k, first, second, third, ptr, fifth, version: msg.sys_old_msgctl(k, first, second, ptr),
    21: _shmat,
    22: lambda k, first, second, third, ptr, fifth, version: shm.sys_shmdt(k, ptr),
    23: lambda k, first, second, third, ptr, fifth, version: shm.sys_shmget(k, first, second, third),
    24: lambda k, first, second, third, ptr, fifth, version: shm.sys_old_shmctl(k, first, second, ptr),
}


@syscall("uint", "int", "int", "int", "ptr", "int")
def sys_ipc(k, call, first, second, third, ptr, fifth):
    operation = CALLS.get(call & 0xFFFF)
    if operation is None:
        raise SyscallError(errno.ENOSYS)
    return operation(k, first, second, third, ptr, fifth, (call >> 16) & 0xFFFF)
