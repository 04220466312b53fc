"""System V semaphores: semget, semop, semtimedop, semctl, on the host's semaphore sets.

The sets are host objects (ipcns.py), so forked guest processes and other
programs of the run wait on and post the same semaphores, and SEM_UNDO is
undone by the host when the guest process (a host process) exits. A semop
that must wait never blocks the engine: alone, the thread waits in the host
semtimedop for one slice at a time (so it wakes as soon as another process
posts, and GETNCNT/GETZCNT count it), looking for --timeout, Ctrl-C and guest
signals (EINTR) between slices; in a threaded guest the thread parks and the
operations are tried again without waiting at each switch (not counted by
GETNCNT then). A set of operations in which any has IPC_NOWAIT is tried once.
"""
from __future__ import annotations

import ctypes
import errno
import struct
import time

from . import clock
from .errors import SyscallError
from .hostlibc import LIBC, checked
from .ipcns import SEM, common_ctl, host_semctl, host_stat, until_done, versioned
from .ipcstructs import IPC_INFO, IPC_NOWAIT, IPC_RMID, IPC_SET, IPC_STAT
from .registry import syscall

GETPID, GETVAL, GETALL, GETNCNT, GETZCNT, SETVAL, SETALL = 11, 12, 13, 14, 15, 16, 17
SEM_STAT, SEM_INFO, SEM_STAT_ANY = 18, 19, 20
STRUCT_COMMANDS = (IPC_STAT, IPC_SET, IPC_INFO, SEM_STAT, SEM_INFO, SEM_STAT_ANY)
#: Linux's SEMOPM: operations in one call at most (E2BIG beyond).
SEMOPM = 500
SEMBUF = "HhH"  # sem_num, sem_op, sem_flg


class _Timespec(ctypes.Structure):
    _fields_ = [("seconds", ctypes.c_long), ("nanoseconds", ctypes.c_long)]


@syscall("int", "int", "hex")
def sys_semget(k, key, count, flags):
    return k.ipc.get(SEM, k.signed32(key), k.signed32(flags),
                     lambda host_key, host_flags: checked(LIBC.semget(host_key, k.signed32(count), host_flags)))


def semtimedop(k, semid: int, address: int, count: int, timeout: int, field: int) -> int:
    semid = k.signed32(semid)
    if semid < 0 or count < 1:
        raise SyscallError(errno.EINVAL)
    if count > SEMOPM:
        raise SyscallError(errno.E2BIG)
    end = "<" if k.byteorder == "little" else ">"
    raw = k.read(address, 6 * count)
    deadline = None
    if timeout:
        deadline = time.monotonic() + clock.read_timespec_ns(k, timeout, field) / 1e9
    host_id = k.ipc.check(SEM, semid)
    operations = [struct.unpack_from(end + SEMBUF, raw, 6 * i) for i in range(count)]
    nowait = any(flags & IPC_NOWAIT for _, _, flags in operations)
    host = struct.pack("=" + SEMBUF * count, *(v for number, op, flags in operations
                                                for v in (number, op, flags | IPC_NOWAIT)))
    buffer = ctypes.create_string_buffer(host, len(host))

    def attempt() -> int:
        return checked(LIBC.semtimedop(host_id, buffer, count, None))

    if nowait:
        return attempt()
    waiting = ctypes.create_string_buffer(struct.pack("=" + SEMBUF * count, *(
        v for number, op, flags in operations for v in (number, op, flags))), len(host))

    def timed(seconds: float) -> int:
        spec = _Timespec(int(seconds), int(seconds % 1 * 1e9))
        return checked(LIBC.semtimedop(host_id, waiting, count, ctypes.byref(spec)))

    return until_done(k, attempt, errno.EAGAIN, deadline, timed)


@syscall("int", "ptr", "uint")
def sys_semop(k, semid, address, count):
    return semtimedop(k, semid, address, count, 0, k.word)


@syscall("int", "ptr", "uint", "ptr")
def sys_semtimedop(k, semid, address, count, timeout):
    return semtimedop(k, semid, address, count, timeout, k.word)


@syscall("int", "ptr", "uint", "ptr")
def sys_semtimedop_time64(k, semid, address, count, timeout):
    return semtimedop(k, semid, address, count, timeout, 8)


def semctl(k, semid: int, number: int, command: int, argument: int) -> int:
    semid, number = k.signed32(semid), k.signed32(number)
    if command == IPC_INFO:  # struct seminfo: ten ints, the host's limits
        buffer = (ctypes.c_int * 10)()
        host_semctl(0, 0, IPC_INFO, ctypes.addressof(buffer))
        k.write(argument, b"".join((v & 0xFFFFFFFF).to_bytes(4, k.byteorder) for v in buffer))
        return 0
    if semid < 0 or command not in (IPC_STAT, IPC_SET, IPC_RMID, GETPID, GETVAL, GETALL, GETNCNT,
                                    GETZCNT, SETVAL, SETALL):
        raise SyscallError(errno.EINVAL)  # SEM_STAT & co. index the host's table, not the run's
    host_id = k.ipc.check(SEM, semid)
    if command in (GETPID, GETVAL, GETNCNT, GETZCNT):
        return host_semctl(host_id, number, command)
    if command == SETVAL:
        return host_semctl(host_id, number, SETVAL, k.signed32(argument) & 0xFFFFFFFF)
    if command in (IPC_STAT, IPC_SET, IPC_RMID):
        return common_ctl(k, SEM, host_id, command, argument)
    count = host_stat(SEM, host_id)["nsems"]
    array = (ctypes.c_ushort * count)()
    if command == GETALL:
        host_semctl(host_id, 0, GETALL, ctypes.addressof(array))
        k.write(argument, b"".join(v.to_bytes(2, k.byteorder) for v in array))
    else:
        raw = k.read(argument, 2 * count)
        array[:] = [int.from_bytes(raw[i:i + 2], k.byteorder) for i in range(0, 2 * count, 2)]
        host_semctl(host_id, 0, SETALL, ctypes.addressof(array))
    return 0


@syscall("int", "int", "int", "hex")
def sys_semctl(k, semid, number, command, argument):
    return semctl(k, semid, number, k.signed32(command), argument)


@syscall("int", "int", "int", "hex")
def sys_old_semctl(k, semid, number, command, argument):
    """ARM's semctl and the `ipc` multiplexer's: 64-bit layouts only with IPC_64."""
    return semctl(k, semid, number, versioned(k, command, STRUCT_COMMANDS), argument)
