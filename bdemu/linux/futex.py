"""futex: glibc's locks, condition variables, once-flags and thread joins.

With one thread nobody else can change the word or wake a waiter, so a wait
whose value still matches could only end by its timeout (slept out, then
ETIMEDOUT) and a wake finds nobody. With several guest threads
(bdemu/linux/threads.py) a wait blocks the calling thread and lets another
run; a wake makes waiters runnable again.

A process-shared futex (no FUTEX_PRIVATE_FLAG) in memory that forked guest
processes share (bdemu/linux/shared.py) can be woken by another process,
which is another bdemu: its wake cannot reach us, but its store to the word
can. So such a wait looks at the word again after short, growing sleeps and
ends once it changed (Linux too lets a wait end with the word unchanged:
callers check it).
"""
from __future__ import annotations

import errno
import time

from . import clock
from .errors import SyscallError
from .registry import syscall

FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 6, 7, 8, 9, 10
FUTEX_CMD_MASK = 0x7F  # without FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
#: A wait on shared memory looks at the word again after POLL_FIRST seconds, doubling up to POLL_MAX.
POLL_FIRST, POLL_MAX = 20e-6, 2e-3


def _word(k, address: int) -> int:
    if address % 4:
        raise SyscallError(errno.EINVAL)
    return int.from_bytes(k.read(address, 4), k.byteorder)


def _deadline(k, op: int, timeout: int, field: int) -> float | None:
    """The monotonic time a wait gives up: FUTEX_WAIT's timeout is relative, WAIT_BITSET's absolute."""
    if not timeout:
        return None
    value = clock.read_timespec_ns(k, timeout, field) / 1e9
    if op & FUTEX_CMD_MASK == FUTEX_WAIT:
        return time.monotonic() + value
    now = time.time() if op & FUTEX_CLOCK_REALTIME else time.monotonic()
    return time.monotonic() + (value - now)


def _futex(k, address, op, value, timeout, address2, value3, field):
    command = op & FUTEX_CMD_MASK
    threads = k.threads
    if command in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        if _word(k, address) != value & 0xFFFFFFFF:
            raise SyscallError(errno.EAGAIN)
        deadline = _deadline(k, op, timeout, field)
        if not op & FUTEX_PRIVATE_FLAG and _process_shared(k, address):
            return _wait_shared(k, address, value & 0xFFFFFFFF, deadline)
        if not threads.alone:
            threads.block(address, deadline)
            return 0
        if deadline is not None:  # only the timeout can end it: sleep it out (a stop cuts it short)
            clock.sleep_ns(k, max(0, int((deadline - time.monotonic()) * 1e9)))
            raise SyscallError(errno.ETIMEDOUT)
        # Nothing can ever wake this thread: waiting forever would hang the run.
        k.warn_once("futex-deadlock", "futex wait with no other thread to wake it; returning EINTR")
        raise SyscallError(errno.EINTR)
    if command in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        return threads.wake(address, k.signed32(value))
    if command in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if command == FUTEX_CMP_REQUEUE and _word(k, address) != value3 & 0xFFFFFFFF:
            raise SyscallError(errno.EAGAIN)
        woken = threads.wake(address, k.signed32(value))
        return woken + threads.requeue(address, address2, timeout & 0x7FFFFFFF)
    if command == FUTEX_WAKE_OP:
        return _wake_op(k, address, value, timeout & 0x7FFFFFFF, address2, value3)
    if command in (FUTEX_LOCK_PI, FUTEX_TRYLOCK_PI):
        # The lock is free or held by a dead owner: take it, as the kernel would.
        k.write_int(address, threads.current.tid)
        return 0
    if command == FUTEX_UNLOCK_PI:
        k.write_int(address, 0)
        return 0
    raise SyscallError(errno.ENOSYS)


def _process_shared(k, address: int) -> bool:
    region = k.emu.memory.find(address)
    return region is not None and region.host is not None


def _wait_shared(k, address: int, value: int, deadline: float | None) -> int:
    """Wait until another process changes the word (see the module docstring), the deadline, or a
    signal. A thread of a threaded guest parks and is looked at again at each switch."""
    if not k.threads.alone:
        k.threads.wait(deadline=deadline, recheck=True)  # returns only once the deadline passed
        raise SyscallError(errno.ETIMEDOUT)
    pause = POLL_FIRST
    while _word(k, address) == value:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise SyscallError(errno.ETIMEDOUT)
        time.sleep(k.wait_slice(pause if left is None else min(pause, left)))
        pause = min(2 * pause, POLL_MAX)
    return 0


def _wake_op(k, address: int, count: int, count2: int, address2: int, encoded: int) -> int:
    """*address2 = *address2 OP arg; wake on address; if the old *address2 CMP cmparg, wake on address2."""
    op, cmp = (encoded >> 28) & 0xF, (encoded >> 24) & 0xF
    arg, cmparg = (encoded >> 12) & 0xFFF, encoded & 0xFFF
    if op & 8:
        arg = 1 << arg
    old = _word(k, address2)
    new = {0: arg, 1: old + arg, 2: old | arg, 3: old & ~arg, 4: old ^ arg}.get(op & 7)
    if new is None:
        raise SyscallError(errno.ENOSYS)
    k.write_int(address2, new & 0xFFFFFFFF)
    signed_old = old - (1 << 32) if old & 0x80000000 else old
    hit = {0: signed_old == cmparg, 1: signed_old != cmparg, 2: signed_old < cmparg,
           3: signed_old <= cmparg, 4: signed_old > cmparg, 5: signed_old >= cmparg}.get(cmp, False)
    woken = k.threads.wake(address, k.signed32(count))
    if hit:
        woken += k.threads.wake(address2, k.signed32(count2))
    return woken


@syscall("ptr", "int", "uint", "ptr", "ptr", "uint")
def sys_futex(k, address, op, value, timeout, address2, value3):
    return _futex(k, address, op, value, timeout, address2, value3, k.word)


@syscall("ptr", "int", "uint", "ptr", "ptr", "uint")
def sys_futex_time64(k, address, op, value, timeout, address2, value3):
    return _futex(k, address, op, value, timeout, address2, value3, 8)


