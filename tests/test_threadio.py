"""The thread scheduler's wake-ups (bdemu/linux/threads.py): parked syscalls, deadlines, the
host poll when every thread waits, deadlock detection. A small stand-in kernel holds real
pipes and real time; the guests that run these paths end to end are samples/src/threadio.c
(every ISA) and the threaded guests of test_limits.py.
"""
from __future__ import annotations

import errno
import os
import re
import select
import threading
import time

import pytest

from bdemu import Emulator, Plugin
from bdemu.errors import RunStopped
from bdemu.linux.errors import StopRun, WouldBlock
from bdemu.linux.kernel import Kernel
from bdemu.linux.signals import SignalState
from bdemu.linux.threads import GuestThread, ThreadTable

from conftest import ROOT, run_bdemu, sample


class StandInEmulator:
    def __init__(self) -> None:
        self.pc = 0
        self.stop_at: float | None = None  # check_stop raises StopRun from then on
        self.debugger = None  # no GDB stub (wait_slice asks whether it wants the guest stopped)

    def request_reschedule(self) -> None:
        pass

    def request_signal_work(self) -> None:
        pass

    def check_stop(self) -> None:
        if self.stop_at is not None and time.monotonic() >= self.stop_at:
            raise StopRun()


class StandInKernel:
    """What ThreadTable uses of a Kernel; the waiting and retry code is the real one."""

    wait_slice = Kernel.wait_slice
    run_handler = Kernel.run_handler

    def __init__(self) -> None:
        self.emu = StandInEmulator()
        self.emu.stop_at = time.monotonic() + 10  # no test can hang
        self.signals = SignalState()
        self.threads = ThreadTable(self)
        self.signals.threads = self.threads  # as Kernel links them: masks and pending signals are per thread
        self.signalfds = ()  # none open: Kernel.wait_slice has none to bring up to date

    def host_error(self, error: OSError) -> int:
        return -error.errno


def read_pipe(k, fd):
    """Like sys_read of a blocking pipe."""
    k.threads.wait(((fd, select.POLLIN | select.POLLHUP),))
    return len(os.read(fd, 100))


def sleep_for(k, milliseconds):
    """Like nanosleep: the deadline is computed anew at each run, as a handler does."""
    k.threads.wait(deadline=time.monotonic() + milliseconds / 1000)
    return 0


@pytest.fixture
def kernel():
    return StandInKernel()


@pytest.fixture
def pipe():
    read_end, write_end = os.pipe()
    yield read_end, write_end
    os.close(read_end)
    os.close(write_end)


def second_thread(table: ThreadTable) -> GuestThread:
    tid = table.spawn(0, None, 0)
    table._births.clear()  # created by reschedule() in a real run; not needed here
    return table.threads[tid]


def park(table: ThreadTable, thread: GuestThread, function, *args) -> None:
    """Run `function` as `thread`'s syscall, the way Kernel.dispatch does: it must park."""
    running, table.current = table.current, thread
    try:
        with pytest.raises(WouldBlock) as raised:
            function(table.k, *args)
        table.park(raised.value, function, args)
    finally:
        table.current = running


def block_on_futex(thread: GuestThread, deadline: float | None = None) -> None:
    thread.futex, thread.deadline = 0x1000, deadline


def test_wait_returns_when_it_need_not_block(kernel, pipe):
    read_end, write_end = pipe
    second_thread(kernel.threads)
    with pytest.raises(WouldBlock) as raised:
        kernel.threads.wait(((read_end, select.POLLIN),), time.monotonic() + 5)
    assert raised.value.fds == ((read_end, select.POLLIN),) and raised.value.deadline is not None
    kernel.threads.wait(((read_end, select.POLLIN),), time.monotonic() - 1)  # deadline passed
    os.write(write_end, b"x")
    kernel.threads.wait(((read_end, select.POLLIN),))  # readable
    with pytest.raises(WouldBlock) as raised:
        kernel.threads.wait(recheck=True)
    assert raised.value.recheck and not raised.value.fds


def test_parked_reader_runs_once_its_pipe_has_data(kernel, pipe):
    read_end, write_end = pipe
    table, main = kernel.threads, kernel.threads.current
    reader = second_thread(table)
    park(table, reader, read_pipe, read_end)
    assert not reader.runnable
    assert table._pick(main) is main  # the reader's pipe is empty: main goes on
    os.write(write_end, b"abc")
    assert table._pick(main) is reader
    assert reader.parked is None and reader.result == 3


def test_when_every_thread_waits_a_write_from_elsewhere_wakes_the_reader(kernel, pipe):
    read_end, write_end = pipe
    table, main = kernel.threads, kernel.threads.current
    reader = second_thread(table)
    park(table, reader, read_pipe, read_end)
    block_on_futex(main)  # main joins the reader
    threading.Timer(0.2, os.write, (write_end, b"hello")).start()
    started = time.monotonic()
    assert table._pick(main) is reader
    assert 0.15 <= time.monotonic() - started < 2
    assert reader.result == 5


def test_a_parked_sleep_keeps_its_first_deadline(kernel):
    table, main = kernel.threads, kernel.threads.current
    sleeper = second_thread(table)
    park(table, sleeper, sleep_for, 300)
    block_on_futex(main)
    started = time.monotonic()
    assert table._pick(main) is sleeper  # each retry computes a new deadline; the first one holds
    assert 0.25 <= time.monotonic() - started < 1.5
    assert sleeper.result == 0


def test_a_parked_sleep_left_alone_keeps_its_deadline(kernel):
    """The other thread exits: the sleep, run again as the only thread, must not start over."""
    table, main = kernel.threads, kernel.threads.current

    def nanosleep_like(k, milliseconds):
        if k.threads.alone:
            time.sleep(milliseconds / 1000)
            return 0
        return sleep_for(k, milliseconds)

    sleeper = second_thread(table)
    park(table, sleeper, nanosleep_like, 300)
    started = time.monotonic()
    table.exit_current(0)
    assert table._pick(main) is sleeper and sleeper.result == 0
    assert time.monotonic() - started < 0.5


def test_a_reader_whose_data_another_took_stays_parked(kernel, pipe):
    read_end, write_end = pipe
    table, main = kernel.threads, kernel.threads.current
    first, second = second_thread(table), second_thread(table)
    park(table, first, read_pipe, read_end)
    park(table, second, read_pipe, read_end)
    os.write(write_end, b"x")
    assert table._pick(main) is first and first.result == 1
    assert second.parked is not None  # the byte is gone: it would still block
    block_on_futex(main)
    block_on_futex(first)
    kernel.emu.stop_at = time.monotonic() + 0.3
    with pytest.raises(StopRun):
        table._pick(main)
    assert second.parked is not None and second.result is None


def test_a_stop_request_ends_the_wait_within_a_slice(kernel, pipe):
    read_end, _ = pipe
    table, main = kernel.threads, kernel.threads.current
    park(table, second_thread(table), read_pipe, read_end)
    block_on_futex(main)
    kernel.emu.stop_at = time.monotonic() + 0.2
    started = time.monotonic()
    with pytest.raises(StopRun):
        table._pick(main)
    assert time.monotonic() - started < 0.5


def test_only_futex_waits_with_no_timeout_are_a_deadlock(kernel):
    table, main = kernel.threads, kernel.threads.current
    other = second_thread(table)
    block_on_futex(main)
    block_on_futex(other)
    with pytest.raises(RunStopped, match="deadlock: all 2 guest threads wait on a futex"):
        table._pick(main)
    other.futex = None
    park(table, other, sleep_for, 50)  # a sleeper will wake: not a deadlock
    assert table._pick(main) is other and other.result == 0


def test_a_futex_timeout_still_wakes_its_waiter(kernel):
    table, main = kernel.threads, kernel.threads.current
    other = second_thread(table)
    block_on_futex(main, time.monotonic() + 0.1)
    block_on_futex(other)
    assert table._pick(other) is main and main.result == -errno.ETIMEDOUT


def test_a_signal_due_while_every_thread_waits_interrupts_a_parked_syscall(kernel, pipe):
    read_end, _ = pipe
    table, main = kernel.threads, kernel.threads.current
    reader = second_thread(table)
    park(table, reader, read_pipe, read_end)
    block_on_futex(main)
    kernel.signals.pending[10] = (0, 0)
    assert table._pick(main) is reader and reader.result == -errno.EINTR
    assert main.futex is not None  # the futex waiter was left alone


def test_a_wait_no_fd_reports_on_is_retried_at_each_switch(kernel):
    table, main = kernel.threads, kernel.threads.current
    child_exited = []
    runs = []

    def wait_for_child(k):
        runs.append(1)
        if not child_exited:
            k.threads.wait(recheck=True)
        return 42

    waiter = second_thread(table)
    park(table, waiter, wait_for_child)
    assert table._pick(main) is main and waiter.parked is not None
    assert len(runs) == 2
    child_exited.append(1)
    block_on_futex(main)
    assert table._pick(main) is waiter and waiter.result == 42


def test_a_failing_retry_returns_its_errno(kernel, pipe):
    read_end, write_end = pipe
    table, main = kernel.threads, kernel.threads.current
    reader = second_thread(table)

    def read_closed(k, fd):
        k.threads.wait(((fd, select.POLLIN),))
        raise OSError(errno.EBADF, "closed")

    park(table, reader, read_closed, read_end)
    os.write(write_end, b"x")
    assert table._pick(main) is reader and reader.result == -errno.EBADF



def test_a_signal_for_a_sleeping_thread_ends_its_sleep_with_the_time_left(kernel, pipe):
    """A sleep any signal ends (nanosleep: on_signal) stops at once, with EINTR and what its
    on_signal leaves (the time left); a parked read is left to complete (SA_RESTART-like)."""
    read_end, _ = pipe
    table = kernel.threads
    sleeper, reader = second_thread(table), second_thread(table)
    left = []

    def sleep_with_rem(k, milliseconds):
        k.threads.wait(deadline=time.monotonic() + milliseconds / 1000,
                       on_signal=lambda k, deadline: left.append(deadline - time.monotonic()))
        return 0

    park(table, sleeper, sleep_with_rem, 2000)
    park(table, reader, read_pipe, read_end)
    table.interrupt(reader)
    assert reader.parked is not None and reader.result is None
    table.interrupt(sleeper)
    assert sleeper.parked is None and sleeper.result == -errno.EINTR and sleeper.runnable
    assert len(left) == 1 and 1.5 < left[0] <= 2.0


# -- what plugins and recordings see of syscalls that waited (the threadio guest, end to end) -----

class SyscallLog(Plugin):
    """Every call and return, by thread; a return must follow a call of the same thread."""

    def __init__(self) -> None:
        super().__init__()
        self.open: dict[int, tuple[str, tuple]] = {}
        self.done: list[tuple[int, str, tuple, int]] = []
        self.orphans = 0

    def on_syscall(self, emu, number, args) -> None:
        assert emu.tid not in self.open, "a thread made a syscall before its last one returned"
        self.open[emu.tid] = (emu.syscall_name(number), args)

    def on_syscall_return(self, emu, number, result) -> None:
        call = self.open.pop(emu.tid, None)
        if call is None or call[0] != emu.syscall_name(number):
            self.orphans += 1
            return
        self.done.append((emu.tid, call[0], call[1], emu.kernel.signed(result)))


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_plugins_see_what_a_waiting_syscall_returned(arch):
    emu = Emulator(str(ROOT / sample(arch, "threadio")), env={})
    log = emu.add_plugin(SyscallLog())
    result = emu.run(timeout=60, capture_output=True)
    assert result.exit_code == 0 and b"all ok" in result.stdout, result.stdout
    assert log.orphans == 0
    main = os.getpid()
    # 1. the reader thread blocked in read() on the empty pipe until the writer's "ping"
    first_read = next(r for r in log.done if r[1] == "read" and r[0] != main)
    assert first_read[3] == 4
    # 3. poll(fds, 1, 5000) in a thread, woken by another thread's write
    assert [r[3] for r in log.done if r[1] in ("poll", "ppoll") and r[0] != main][:1] == [1]
    # 8. waitpid() in a thread: the child's pid, not a placeholder
    waits = [r[3] for r in log.done if r[1] in ("wait4", "waitid")]
    assert waits and all(w > 0 for w in waits[:1])


def test_strace_shows_a_waiting_read_resumed_with_its_result():
    done = run_bdemu("run", "-p", "strace", sample("x86_64", "threadio"))
    assert done.returncode == 0, done.stderr
    text = done.stderr.decode()
    unfinished = re.search(r"^\[pid (\d+)\] read\(3, 0x[0-9a-f]+, 31\) <unfinished \.\.\.>$", text, re.M)
    assert unfinished, text
    resumed = re.search(rf'^\[pid {unfinished[1]}\] <\.\.\. read resumed> read\(3, "ping", 31\) = 4$', text, re.M)
    assert resumed and resumed.start() > unfinished.start(), text
    # a thread's exit never returns: `= ?`, then the thread is gone, as strace -f shows it
    ended = re.search(rf'^\[pid {unfinished[1]}\] exit\(0\) += \?\n\[pid {unfinished[1]}\] \+\+\+ exited with 0 \+\+\+$',
                      text, re.M)
    assert ended and ended.start() > resumed.start(), text


def test_a_recording_stores_what_a_waiting_syscall_returned(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "threadio.duckdb"
    done = run_bdemu("record", "-o", str(path), sample("x86_64", "threadio"))
    assert done.returncode == 0, done.stderr
    con = duckdb.connect(str(path), read_only=True)
    main = con.execute("SELECT tid FROM syscalls ORDER BY seq LIMIT 1").fetchone()[0]
    read = con.execute("SELECT ret FROM syscalls WHERE name = 'read' AND tid <> ? ORDER BY seq LIMIT 1",
                       [main]).fetchone()
    assert read == (4,)
    waits = con.execute("SELECT ret FROM syscalls WHERE name = 'wait4' ORDER BY seq").fetchall()
    assert waits and waits[0][0] > 0
    assert con.execute("SELECT count(DISTINCT tid) FROM syscalls").fetchone()[0] > 2
    # only exits have no return: each thread's exit, then the process's exit_group last
    unreturned = [name for name, in con.execute("SELECT name FROM syscalls WHERE ret IS NULL ORDER BY seq").fetchall()]
    assert unreturned[-1] == "exit_group" and set(unreturned[:-1]) == {"exit"}
    threads = con.execute("SELECT count(DISTINCT tid) FROM syscalls").fetchone()[0]
    assert len(unreturned) - 1 == threads - 1  # every thread but the main one exited by exit()
