"""Guest threads (clone with CLONE_VM | CLONE_THREAD), run one at a time on the one Unicorn engine.

Each thread is a saved Unicorn context (all CPU state: TLS register, Thumb
bit, FP/vector registers, MIPS hi/lo), plus its copy of the guest memory
its ISA keeps per thread (Arch.thread_memory: i386's GDT TLS entries). A
switch happens when the running thread blocks in futex, yields or exits,
which is where glibc's and
CPython's threads hand over to each other, and every TIME_SLICE_US
microseconds while several threads exist (so a thread spinning on a flag
another sets still lets that one run). A switch cannot
happen inside the syscall hook (Unicorn still finishes the syscall
instruction afterwards, on whatever registers are loaded), so the hook asks
the run loop to stop and the loop calls `ThreadTable.reschedule` between two
`emu_start`s, when every thread's pc is past its syscall. A waiter's syscall
result (0 when woken, -ETIMEDOUT) is written when it is switched back in.

Each thread has its own signal mask and thread-directed pending signals
(bdemu/linux/signals.py routes a process-directed signal to a thread that does
not block it). Not modelled: blocking host calls other than futex (a read of
an empty pipe stalls every thread).
"""
from __future__ import annotations

import errno
import itertools
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import RunStopped
from .errors import GuestExit, SyscallError

if TYPE_CHECKING:
    from .kernel import Kernel

#: The thread ids bdemu hands out: far above real pids, so a tid never names a host process.
FIRST_TID = 1 << 22
#: Microseconds a thread runs before the next runnable one, when several threads exist.
TIME_SLICE_US = 20_000


@dataclass
class GuestThread:
    tid: int
    context: object | None = None  # Unicorn context; None while the thread is the running one
    clear_child_tid: int = 0
    #: Set while blocked: the futex word it waits on, and when the wait times out (monotonic s).
    futex: int | None = None
    deadline: float | None = None
    #: The result its pending syscall returns when it next runs (None: leave the register alone).
    result: int | None = None
    spawn: dict = field(default_factory=dict)
    #: Its copy of the ISA's per-thread memory (Arch.thread_memory) while it is not running.
    memory: tuple[bytes, ...] = ()
    #: Its signal mask, and the signals sent to it alone (tkill) or routed to it, not yet
    #: delivered: signal -> (si_code, si_addr). See bdemu/linux/signals.py.
    signal_mask: int = 0
    signal_pending: dict = field(default_factory=dict)


def install_tls(kernel: "Kernel", tls: int) -> None:
    """clone(CLONE_SETTLS)'s `tls` argument, on the new thread's (or child's) registers."""
    if kernel.arch.clone_tls is not None:
        kernel.arch.clone_tls(kernel, tls)
    else:
        kernel.arch.set_tls(kernel.emu, tls)


class ThreadTable:
    """Every thread of one guest process, and which one runs."""

    def __init__(self, kernel: "Kernel") -> None:
        self.k = kernel
        self.current = GuestThread(os.getpid())
        self.threads: dict[int, GuestThread] = {self.current.tid: self.current}
        self._order: list[int] = [self.current.tid]
        self._next_tid = itertools.count(FIRST_TID + os.getpid() % 1000 * 1000)
        self._switch = False
        self._births: list[GuestThread] = []

    @property
    def alone(self) -> bool:
        return len(self.threads) == 1

    # -- requests made inside a syscall -----------------------------------------------------------
    def spawn(self, stack: int, tls: int | None, clear_child_tid: int) -> int:
        """clone of a thread: its context is taken once this syscall has completed."""
        thread = GuestThread(next(self._next_tid), clear_child_tid=clear_child_tid,
                             spawn={"stack": stack, "tls": tls}, signal_mask=self.current.signal_mask)
        self.threads[thread.tid] = thread
        self._order.append(thread.tid)
        self._births.append(thread)
        self._request()
        return thread.tid

    def block(self, futex: int, deadline: float | None) -> None:
        self.current.futex, self.current.deadline = futex, deadline
        self._request()

    def wake(self, futex: int, count: int) -> int:
        woken = 0
        for tid in self._order:
            thread = self.threads[tid]
            if woken >= count:
                break
            if thread.futex == futex and thread is not self.current:
                thread.futex = thread.deadline = None
                thread.result = 0
                woken += 1
        return woken

    def interrupt(self, thread: GuestThread) -> None:
        """A signal for `thread` ends its wait: its syscall fails with EINTR, and the handler runs
        when it next runs."""
        if thread is not self.current and thread.futex is not None:
            thread.futex = thread.deadline = None
            thread.result = -errno.EINTR

    def requeue(self, source: int, target: int, count: int) -> int:
        """Move up to `count` waiters from one futex word to another (condition variables)."""
        moved = 0
        for tid in self._order:
            thread = self.threads[tid]
            if moved >= count:
                break
            if thread.futex == source and thread is not self.current:
                thread.futex = target
                moved += 1
        return moved

    def yield_(self) -> None:
        if not self.alone:
            self._request()

    def exit_current(self, status: int) -> None:
        """exit() of one thread: the process ends with its last thread."""
        thread = self.current
        if thread.clear_child_tid:
            try:
                self.k.write_int(thread.clear_child_tid, 0)
            except SyscallError:
                pass
            self.wake(thread.clear_child_tid, 1 << 30)
        del self.threads[thread.tid]
        self._order.remove(thread.tid)
        if not self.threads:
            raise GuestExit(status & 0xFF)
        thread.futex = thread.deadline = None
        self._request()

    def keep_only_current(self) -> None:
        """After fork (in the child) or execve only the calling thread remains, its tid the pid."""
        self._births = []
        self._switch = False
        self.current.tid = os.getpid()
        self.threads = {self.current.tid: self.current}
        self._order = [self.current.tid]

    def time_slice_us(self) -> int:
        """How long a thread runs before the next runnable one gets the CPU (0: no slicing).

        A time, not an instruction count: Unicorn counts instructions with a per-instruction
        hook, while its timeout costs nothing until it fires."""
        return 0 if self.alone else TIME_SLICE_US

    def preempt(self) -> None:
        """The running thread's slice is over: round robin to the next runnable thread."""
        self._switch = True
        self.reschedule()

    def _request(self) -> None:
        self._switch = True
        self.k.emu.request_reschedule()

    # -- between two emu_starts ------------------------------------------------------------------
    def reschedule(self) -> None:
        """Create the threads cloned since the last stop, then run the next runnable thread."""
        if not self._switch:
            return
        self._switch = False
        uc, arch = self.k.emu.uc, self.k.arch
        for thread in self._births:
            own, own_memory = uc.context_save(), self._save_memory()
            self.k.emu.set_reg(arch.syscall.result, 0)
            if arch.syscall.error_flag:
                self.k.emu.set_reg(arch.syscall.error_flag, 0)
            if thread.spawn["stack"]:
                self.k.emu.set_reg(arch.sp, thread.spawn["stack"])
            if thread.spawn["tls"] is not None:
                self._install_child_tls(thread)
            thread.context, thread.memory = uc.context_save(), self._save_memory()
            uc.context_restore(own)
            self._load_memory(own_memory)
        self._births = []
        leaving = self.current
        target = self._pick(leaving)
        if target is not leaving:
            if leaving.tid in self.threads:
                leaving.context, leaving.memory = uc.context_save(), self._save_memory()
            uc.context_restore(target.context)
            self._load_memory(target.memory)
            target.context, target.memory = None, ()
            self.current = target
        if target.result is not None:
            self.k.emu.set_syscall_result(target.result)
            target.result = None

    def _install_child_tls(self, thread: GuestThread) -> None:
        try:
            install_tls(self.k, thread.spawn["tls"])
        except SyscallError as error:  # Linux fails the clone; libcs pass what the parent uses
            self.k.warn_once("clone-tls", f"clone: the new thread's TLS argument is invalid "
                             f"({errno.errorcode.get(error.code, error.code)}); it keeps the parent's")

    def _save_memory(self) -> tuple[bytes, ...]:
        return tuple(self.k.read(address, size) for address, size in self.k.arch.thread_memory)

    def _load_memory(self, saved: tuple[bytes, ...]) -> None:
        for (address, _size), data in zip(self.k.arch.thread_memory, saved):
            self.k.write(address, data)

    def _pick(self, leaving: GuestThread) -> GuestThread:
        """Round robin from the thread after `leaving`; waits for the earliest timeout if none can run."""
        now = time.monotonic()
        for thread in self.threads.values():
            if thread.deadline is not None and thread.deadline <= now:
                thread.futex = thread.deadline = None
                thread.result = -errno.ETIMEDOUT
        while True:
            start = self._order.index(leaving.tid) + 1 if leaving.tid in self._order else 0
            ring = self._order[start:] + self._order[:start]
            for tid in ring:
                thread = self.threads[tid]
                if thread.futex is None:
                    return thread
            timed = [self.threads[tid] for tid in ring if self.threads[tid].deadline is not None]
            if not timed:
                raise RunStopped(f"deadlock: all {len(self.threads)} guest threads wait on a futex "
                                 f"that no thread can wake (thread {leaving.tid} blocked at pc "
                                 f"{self.k.emu.pc:#x})")
            first = min(timed, key=lambda t: t.deadline)
            pause = first.deadline - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            first.futex = first.deadline = None
            first.result = -errno.ETIMEDOUT
