"""System V semaphores: semget, semop, semtimedop, semctl, on the host's semaphore sets.

The sets are host objects (ipcns.py), so forked guest processes and other
programs of the run wait on and post the same semaphores, and SEM_UNDO is
undone by the host when the guest process (a host process) exits. A semop
that must wait never blocks the engine: alone, the thread waits in the host
semtimedop for one slice at a time (so it wakes as soon as another process
posts, and GETNCNT/GETZCNT count it), looking for --timeout, Ctrl-C and guest
signals (EINTR) between slices; in a threaded guest the thread parks and the
operations are tried again without waiting at each switch (not counted by
GETNCNT then). As on Linux a set is applied whole or not at all, and the first
operation that cannot go on decides: with IPC_NOWAIT the call fails (EAGAIN),
without it the caller waits for the whole set.
"""
from __future__ import annotations

import ctypes
import errno
import struct
import time

from . import clock, ipcinfo
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
#: Not an errno: a semop that must wait (until_done's "busy"), as opposed to EAGAIN, its answer.
_WAITS = -1


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
    host = struct.pack("=" + SEMBUF * count, *(v for number, op, flags in operations
                                                for v in (number, op, flags | IPC_NOWAIT)))
    buffer = ctypes.create_string_buffer(host, len(host))

    def attempt() -> int:
        return checked(LIBC.semtimedop(host_id, buffer, count, None))

    nowait = [flags & IPC_NOWAIT for _, _, flags in operations]
    if all(nowait):
        return attempt()
    mixed = any(nowait)

    def attempt_or_wait() -> int:
        try:
            return attempt()
        except SyscallError as error:
            if error.code != errno.EAGAIN or mixed and _stops_at_nowait(host_id, operations):
                raise
        raise SyscallError(_WAITS)

    waiting = ctypes.create_string_buffer(struct.pack("=" + SEMBUF * count, *(
        v for number, op, flags in operations for v in (number, op, flags))), len(host))

    def timed(seconds: float) -> int:
        spec = _Timespec(int(seconds), int(seconds % 1 * 1e9))
        try:
            return checked(LIBC.semtimedop(host_id, waiting, count, ctypes.byref(spec)))
        except SyscallError as error:  # the slice ended, or an IPC_NOWAIT operation stopped it
            if error.code == errno.EAGAIN:
                raise SyscallError(_WAITS) from None
            raise

    return until_done(k, attempt_or_wait, _WAITS, deadline, timed)


def _stops_at_nowait(host_id: int, operations: list[tuple[int, int, int]]) -> bool:
    """Whether, on the set's values now, the first operation that cannot go on has IPC_NOWAIT
    (Linux's semop then fails with EAGAIN; otherwise it waits). Each applies on what the
    earlier ones left, as Linux does."""
    try:
        values = _values(host_id)
    except SyscallError:
        return True
    for number, op, flags in operations:
        if number >= len(values):
            return True
        value = values[number] + op
        if value < 0 or op == 0 and values[number]:
            return bool(flags & IPC_NOWAIT)
        values[number] = value
    return False


def _values(host_id: int) -> list[int]:
    array = (ctypes.c_ushort * host_stat(SEM, host_id)["nsems"])()
    host_semctl(host_id, 0, GETALL, ctypes.addressof(array))
    return list(array)


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
    if ipcinfo.is_info(SEM, command):
        return ipcinfo.do_info(k, SEM, command, argument)
    if ipcinfo.is_stat(SEM, command):
        return ipcinfo.do_stat(k, SEM, command, semid, argument)
    if semid < 0 or command not in (IPC_STAT, IPC_SET, IPC_RMID, GETPID, GETVAL, GETALL, GETNCNT,
                                    GETZCNT, SETVAL, SETALL):
        raise SyscallError(errno.EINVAL)
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
