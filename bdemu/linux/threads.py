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

Other syscalls that would block in the host (read of an empty pipe, sleeps,
poll/select/epoll, wait4, pause) do not block the engine while the guest
has several threads: `ThreadTable.wait` raises WouldBlock, the dispatcher
parks the thread with the syscall's arguments, and another thread runs. A
parked syscall is run again (`_settle`) once one of its host fds is ready,
its deadline passed, a signal is pending, or at each switch for conditions
no fd reports (a child's exit); its result is written when the thread is
switched back in. When no thread can run, the scheduler waits in one host
poll over every parked fd until the earliest deadline, in WAIT_SLICE steps
so --timeout, Ctrl-C and SIGTERM still end the run. A guest with one
thread blocks in the host as before.

Each thread has its own signal mask and thread-directed pending signals
(bdemu/linux/signals.py routes a process-directed signal to a thread that does
not block it). Plugins see a waiting syscall's return (`on_syscall_return`)
when its real result is written, as its thread runs again: `defer_return` holds
it back from the first, placeholder return.
"""
from __future__ import annotations

import errno
import itertools
import os
import select
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..errors import RunStopped
from .errors import GuestExit, SyscallError, WouldBlock
from .signals import PendingSignals

if TYPE_CHECKING:
    from .kernel import Kernel

#: The thread ids bdemu hands out: far above real pids, so a tid never names a host process.
FIRST_TID = 1 << 22
#: Microseconds a thread runs before the next runnable one, when several threads exist.
TIME_SLICE_US = 20_000
#: Seconds between retries of a parked syscall that no fd reports on (wait4) while no thread runs.
RECHECK = 0.005


@dataclass
class Parked:
    """A syscall that would have blocked, run again with the same arguments once it may complete."""

    function: Callable[..., int]
    args: tuple[int, ...]
    fds: tuple[tuple[int, int], ...] = ()  # (host fd, poll events)
    deadline: float | None = None  # time.monotonic() when it stops waiting
    recheck: bool = False  # retried at every switch: no fd tells when it can complete
    for_signal: bool = False  # retried once a signal its thread takes is pending (pause, sigsuspend)
    #: Set for a wait any signal for its thread ends with EINTR (see WouldBlock.on_signal).
    on_signal: Callable[["Kernel", float | None], None] | None = None
    #: The syscall's restart point (sigdelivery.restart_point) while it can still be run from the
    #: start; None once part of it is done (a `resume` completes it).
    restart: tuple[bool, dict[str, int]] | None = None


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
    #: Set while its syscall waits for an fd, a deadline or a condition (see `ThreadTable.wait`).
    parked: Parked | None = None
    #: Its signal mask, and the signals sent to it alone (tkill) or routed to it, not yet
    #: delivered: signal -> (si_code, si_addr). See bdemu/linux/signals.py.
    signal_mask: int = 0
    signal_pending: PendingSignals = field(default_factory=PendingSignals)
    #: The mask rt_sigsuspend replaced: the handler's frame saves it, so sigreturn restores it.
    suspended_mask: int | None = None
    #: The number of its waiting syscall whose return plugins have not seen yet (`defer_return`).
    syscall: int | None = None
    #: Set when a signal ended its waiting syscall: the restart point its handler may use.
    restart: tuple[bool, dict[str, int]] | None = None
    #: Its name once it set one (PR_SET_NAME); the process's (Kernel.comm) until then.
    name: bytes = b""

    @property
    def runnable(self) -> bool:
        return self.futex is None and self.parked is None


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
        #: The parked syscall being run again, whose deadline `wait` keeps (None otherwise).
        self._retrying: Parked | None = None

    @property
    def alone(self) -> bool:
        """One thread, so a syscall may block in the host; never while a parked syscall runs
        again (its first run's deadline holds even if the other threads have exited)."""
        return len(self.threads) == 1 and self._retrying is None

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

    def wait(self, fds: tuple[tuple[int, int], ...] = (), deadline: float | None = None,
             recheck: bool = False, resume: Callable[["Kernel"], int] | None = None,
             for_signal: bool = False,
             on_signal: Callable[["Kernel", float | None], None] | None = None) -> None:
        """A syscall of a multi-threaded guest is about to block until one of `fds` (host fd,
        poll events) is ready or `deadline` (time.monotonic()) passes. Returns at once if it
        need not wait; otherwise raises WouldBlock: the thread parks and the syscall runs again
        later with the same arguments (keeping the first run's deadline). `recheck`: no fd
        tells when it can go on (a child's exit), so retry it at every switch. `resume`: what
        completes the syscall instead of running it again (see WouldBlock). `for_signal`: it
        waits for a signal the thread takes, and nothing else. `on_signal`: a signal for this
        thread ends the wait with EINTR, then this runs (see `interrupt`)."""
        retrying = self._retrying
        if retrying is not None and retrying.deadline is not None:
            deadline = retrying.deadline
        if deadline is not None and time.monotonic() >= deadline:
            return
        if fds and ready_fds(fds, 0):
            return
        raise WouldBlock(fds, deadline, recheck, resume, for_signal, on_signal)

    def park(self, wait: WouldBlock, function: Callable[..., int], args: tuple[int, ...],
             restart: tuple[bool, dict[str, int]] | None = None) -> int:
        """The running thread's syscall must wait: run another thread meanwhile. Returns the
        placeholder result; the real one is written when the thread runs again. `restart`: its
        restart point, if a signal may end the wait (see `interrupt`)."""
        self.current.parked = Parked(function, args, wait.fds, wait.deadline, wait.recheck, wait.for_signal,
                                     wait.on_signal, restart)
        self._request()
        return 0

    def defer_return(self, number: int) -> bool:
        """Whether the running thread's syscall `number` waits (parked, or on a futex), or never
        returns (the thread's exit). A waiting call's result is the placeholder, so plugins see
        its return only when the real one is written, as the thread runs again (with that
        thread's registers and `emu.tid`)."""
        thread = self.current
        if thread.tid not in self.threads:  # it called exit: no return, now or later
            return True
        if thread.parked is None and thread.futex is None:
            return False
        thread.syscall = number
        return True

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
        """A signal for `thread` ends its futex wait or its parked syscall, as on Linux: the call
        fails with EINTR and the handler runs when the thread next runs; a SA_RESTART handler
        then returns into the syscall (if Linux restarts it), which waits again. A call that
        already did part of its work (a `resume` completes it) finishes first."""
        if thread is self.current:
            return
        parked = thread.parked
        if thread.futex is not None or (parked is not None and (parked.on_signal or parked.restart)):
            self._end_with_eintr(thread)

    def _end_with_eintr(self, thread: GuestThread) -> None:
        parked = thread.parked
        thread.futex = thread.deadline = thread.parked = None
        thread.result = -errno.EINTR
        thread.restart = parked.restart if parked is not None else None
        if parked is not None and parked.on_signal is not None:
            try:
                parked.on_signal(self.k, parked.deadline)
            except SyscallError as error:  # nanosleep's `rem` unwritable
                thread.result = -error.code

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
        thread.futex = thread.deadline = thread.parked = None
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
        """The running thread's slice is over: the next `reschedule` goes round robin."""
        self._switch = True

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
        if target.restart is not None:  # a signal ended its wait: the handler runs first
            from .sigdelivery import interrupted_at
            interrupted_at(self.k, target.restart)
            target.restart = None
        if target.result is not None:
            self.k.emu.set_syscall_result(target.result, target.syscall)
            target.result = target.syscall = None

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
        """Round robin from the thread after `leaving`; when none can run, waits (in slices)
        for the first fd, deadline or signal that lets one go on."""
        while True:
            self._settle()
            start = self._order.index(leaving.tid) + 1 if leaving.tid in self._order else 0
            ring = [self.threads[tid] for tid in self._order[start:] + self._order[:start]]
            for thread in ring:
                if thread.runnable:
                    return thread
            if self.k.signals.has_work():  # a signal with no thread to take it: interrupt one
                self._interrupt(ring)
                continue
            self._await(leaving)

    def _settle(self) -> None:
        """Time out the futex waits whose deadline passed, and run again the parked syscalls
        that may complete now."""
        now = time.monotonic()
        signalled = None
        for thread in list(self.threads.values()):
            if thread.deadline is not None and thread.deadline <= now:
                thread.futex = thread.deadline = None
                thread.result = -errno.ETIMEDOUT
            parked = thread.parked
            if parked is None:
                continue
            due = parked.recheck or (parked.deadline is not None and parked.deadline <= now)
            if not due and parked.fds:
                due = bool(ready_fds(parked.fds, 0))
            if not due:
                if signalled is None:
                    signalled = self.k.signals.has_work()
                due = self.k.signals.takes_signal(thread) if parked.for_signal else signalled
            if due:
                self._retry(thread, parked)

    def _retry(self, thread: GuestThread, parked: Parked) -> None:
        self._retrying = parked
        try:
            result = self.k.run_handler(parked.function, parked.args)
        except WouldBlock as again:  # still not ready (another thread took the data)
            parked.fds, parked.recheck, parked.on_signal = again.fds, again.recheck, again.on_signal
            if again.resume is not None:
                parked.function, parked.args = again.resume, ()
            return
        finally:
            self._retrying = None
        thread.parked = None
        thread.result = result

    def _interrupt(self, ring: list[GuestThread]) -> None:
        """Every thread waits and a signal is due: the first parked syscall of a thread that takes
        it (else any parked one, else a futex wait) fails with EINTR, so the run loop delivers
        the signal on that thread."""
        parked = [t for t in ring if t.parked is not None]
        waiting = [t for t in parked if self.k.signals.takes_signal(t)] or parked or ring
        self._end_with_eintr(waiting[0])

    def _await(self, leaving: GuestThread) -> None:
        """No thread can run: block in one host poll over every parked fd until the earliest
        deadline, for one WAIT_SLICE at most (Kernel.wait_slice raises StopRun once the run must
        end). With nothing that could ever wake a thread, it is a deadlock."""
        parked = [t.parked for t in self.threads.values() if t.parked is not None]
        deadlines = [t.deadline for t in self.threads.values() if t.deadline is not None]
        deadlines += [p.deadline for p in parked if p.deadline is not None]
        signal_at = self.k.signals.next_deadline()  # ITIMER_REAL, POSIX timers
        if signal_at is not None:
            deadlines.append(signal_at)
        if not parked and not deadlines:
            raise RunStopped(f"deadlock: all {len(self.threads)} guest threads wait on a futex "
                             f"that no thread can wake (thread {leaving.tid} blocked at pc "
                             f"{self.k.emu.pc:#x})")
        left = min(deadlines) - time.monotonic() if deadlines else None
        if any(p.recheck for p in parked):
            left = RECHECK if left is None else min(left, RECHECK)
        pause = self.k.wait_slice(left)
        fds = tuple(fd for p in parked for fd in p.fds)
        if fds:
            ready_fds(fds, pause)
        elif pause > 0:
            time.sleep(pause)


def ready_fds(fds: tuple[tuple[int, int], ...], timeout: float) -> list[tuple[int, int]]:
    """Host poll of (host fd, events) for up to `timeout` seconds: the (fd, revents) ready."""
    wanted: dict[int, int] = {}
    for fd, events in fds:  # several threads may wait on one fd
        wanted[fd] = wanted.get(fd, 0) | events
    poller = select.poll()
    for fd, events in wanted.items():
        poller.register(fd, events)
    return poller.poll(timeout * 1000)
