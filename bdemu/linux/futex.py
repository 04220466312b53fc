"""futex for a single-threaded guest: glibc's locks, once-flags and exit paths use it.

With one thread nobody else can change the word or wake a waiter, so a wait
whose value still matches could only end by its timeout (ETIMEDOUT at once
rather than sleeping) and a wake finds nobody (0 woken).
"""
from __future__ import annotations

import errno
import os

from .errors import SyscallError
from .registry import syscall

FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 6, 7, 8, 9, 10
FUTEX_CMD_MASK = 0x7F  # without FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME


@syscall("ptr", "int", "uint", "ptr", "ptr", "uint", names=("futex_time64",))
def sys_futex(k, address, op, value, timeout, address2, value3):
    command = op & FUTEX_CMD_MASK
    if command in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        if address % 4:
            raise SyscallError(errno.EINVAL)
        current = int.from_bytes(k.read(address, 4), k.byteorder)
        if current != value & 0xFFFFFFFF:
            raise SyscallError(errno.EAGAIN)
        if timeout:
            raise SyscallError(errno.ETIMEDOUT)
        # Nothing can ever wake this thread: waiting forever would hang the run.
        k.warn_once("futex-deadlock", "futex wait with no other thread to wake it; returning EINTR")
        raise SyscallError(errno.EINTR)
    if command in (FUTEX_WAKE, FUTEX_WAKE_BITSET, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP):
        if command == FUTEX_CMP_REQUEUE:
            current = int.from_bytes(k.read(address, 4), k.byteorder)
            if current != value3 & 0xFFFFFFFF:
                raise SyscallError(errno.EAGAIN)
        return 0
    if command in (FUTEX_LOCK_PI, FUTEX_TRYLOCK_PI):
        # The lock is free or held by a dead owner: take it, as the kernel would.
        k.write_int(address, os.getpid())
        return 0
    if command == FUTEX_UNLOCK_PI:
        k.write_int(address, 0)
        return 0
    raise SyscallError(errno.ENOSYS)
