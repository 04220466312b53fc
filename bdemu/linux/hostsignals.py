"""Signals from other processes (a forked guest child, a shell's `kill`) reach guest handlers.

A guest process is a host process, so another process signals it with a host
signal. While the guest has a handler for a signal (or ignores it), bdemu
catches the host signal instead of dying of it; it also catches the common
terminating signals (ALWAYS_BRIDGED) for the whole run, so their default
action ends the run as a guest signal does. A Python signal handler would
only run once the main thread executes bytecode, which may not happen for a
long time while Unicorn runs hook-free code; so, like bdemu/trace/stop.py,
the C-level handler's wakeup fd (`signal.set_wakeup_fd`) wakes a watcher
thread, which notes the number on the kernel's SignalState (`arrived`) and
stops the engine (`Emulator.wake_for_host_signals`, which records why). The
run loop turns it into a guest signal at its next safe point, and a blocking
syscall notices it in its wait slices
(`SignalState.check_interrupt`). The wakeup fd set before (stop.py's) still
gets every byte of the signals bdemu did not take over. The host's own
dispositions come back when the run ends.
"""
from __future__ import annotations

import _thread
import os
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .kernel import Kernel

#: Host signals bdemu never takes over: uncatchable, or used by bdemu itself (SIGPIPE is ignored
#: by Python).
NEVER_BRIDGED = frozenset({signal.SIGKILL, signal.SIGSTOP, signal.SIGPIPE})
#: Ctrl-C and SIGTERM stop the run (130/143, see stop.py) unless the guest has a handler for
#: them: a guest that merely ignores them cannot make bdemu unstoppable. A forked child, though,
#: ignores them when its guest does: a shell's background jobs ignore SIGINT, and `trap '' TERM`
#: keeps a script's subshells alive (the first process still stops, and so the run).
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
#: Host signals that terminate by default and that bdemu takes over for the whole run, so
#: their default action ends the run like a guest's own (128+n, plugins' on_exit) and a guest
#: that blocks one holds it pending.
ALWAYS_BRIDGED = tuple(getattr(signal, name) for name in (
    "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR")
    if hasattr(signal, name))
#: How often the watcher stops the engine again while a noted signal is not taken yet (a stop
#: can race a restart of emu_start), in seconds.
RESTOP_INTERVAL = 0.02


class HostSignals:
    """The host signals one guest process takes over, and the watcher thread that notes them."""

    def __init__(self, kernel: "Kernel") -> None:
        self.k = kernel
        #: host number -> the Python handler it had before bdemu took it over.
        self.previous: dict[int, object] = {}
        self._pipe: tuple[int, int] | None = None
        self._forward = -1  # the wakeup fd set before ours (stop.py's), or -1
        self._closing = threading.Event()
        self._watcher: int | None = None  # the watcher thread's id
        #: Host signals that end the run (in a forked child, where stop.py's watcher is gone).
        self._stop_on: tuple[int, ...] = ()
        self._always: set[int] = set()
        self._in_child = False

    def activate(self) -> None:
        """The run starts: take over ALWAYS_BRIDGED (only from the main thread)."""
        for host in ALWAYS_BRIDGED:
            self._take(host)
        self._always = set(self.previous)

    def _take(self, host: int) -> None:
        if host in self.previous or not self._start():
            return
        try:
            self.previous[host] = signal.signal(host, _noted_by_watcher)
        except (ValueError, OSError):  # a signal the host refuses
            pass

    def follow(self, guest: int) -> None:
        """The guest changed its action for `guest`: take the host signal over while the guest
        handles or ignores it, give it back when the guest restores the default."""
        state = self.k.signals
        host = state.to_host.get(guest)
        if host is None or host in NEVER_BRIDGED:
            return
        handler = state.handlers.get(guest, 0)
        if handler > 1 or (handler == 1 and (host not in STOP_SIGNALS or self._in_child)):  # or SIG_IGN
            self._take(host)
        elif host in self.previous and host not in self._always:
            try:
                signal.signal(host, self.previous.pop(host))
            except (ValueError, OSError):
                pass

    def refresh(self) -> None:
        """After execve reset the guest's handlers: give back the host signals no longer handled."""
        for host in list(self.previous):
            guest = self.k.signals.from_host.get(host)
            if guest is not None:
                self.follow(guest)

    def _start(self) -> bool:
        """Set up the wakeup fd and the watcher (once); False when this is not the main thread."""
        if self._watcher is not None:
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        try:
            forward = signal.set_wakeup_fd(-1)
        except ValueError:
            return False
        self._start_with(forward)
        return True

    def _watch(self, read_end: int, closing: threading.Event, forward: int) -> None:
        """The watcher thread: it owns the pipe's read end and closes it when told to end."""
        try:
            self._relay(read_end, closing, forward)
        finally:
            os.close(read_end)

    def _relay(self, read_end: int, closing: threading.Event, forward: int) -> None:
        state, emu = self.k.signals, self.k.emu
        while True:
            try:
                data = os.read(read_end, 64)
            except OSError:
                return
            if closing.is_set() or not data:
                return
            others = bytes(number for number in data if number not in self.previous)
            if forward >= 0 and others:
                try:
                    os.write(forward, others)
                except OSError:
                    pass
            stops = [number for number in data if number in self._stop_on and number not in self.previous]
            if stops:
                emu.request_stop(stops[0])
            noted = [number for number in data if number in self.previous]
            ends_run = any(self._ends_run(number) for number in noted)
            if noted:
                state.arrived.extend(noted)
                emu.wake_for_host_signals(ends_run)
            elif not stops:
                continue
            for _ in range(50):  # until the run loop took them, or the run ended
                if closing.wait(RESTOP_INTERVAL) or not (state.arrived or stops):
                    break
                if stops:
                    emu.request_stop(stops[0])
                if state.arrived:
                    emu.wake_for_host_signals(ends_run)

    def _ends_run(self, host: int) -> bool:
        """Would this host signal kill the guest now (default action, not blocked)? From the
        watcher thread, so a guess on data the run loop may be changing: when unsure, yes."""
        state = self.k.signals
        guest = state.from_host.get(host)
        if guest is None:
            return False
        try:
            return state.disposition(guest) == "default" and not state.blocked_by_all(guest)
        except RuntimeError:  # a thread came or went meanwhile
            return True

    def fork(self) -> int:
        """os.fork(), with host signals held until the child has a wakeup pipe of its own: a
        signal reaching the child before would be written into the parent's pipe, and the
        parent's watcher would take it for the parent's (a SIGTERM sent to a child at once
        stopped the parent)."""
        held = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            pid = os.fork()
            if pid == 0 and self._watcher is not None:
                for end in self._pipe:  # the parent's watcher owns its read end
                    os.close(end)
                self._new_pipe()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        return pid

    def after_fork(self) -> None:
        """In a forked child, once the emu_start that forked returned (a thread started before
        could take the place of Unicorn's timer thread, which emu_start joins): no watcher
        thread survived the fork, so start one on the child's own pipe (`fork`). The child stops
        on SIGINT/SIGTERM itself (what stop.py's watcher did for the parent), unless its guest
        ignores them (STOP_SIGNALS), as it may have since before the fork."""
        self._in_child = True
        if self._watcher is None:
            return
        self._stop_on = (signal.SIGINT, signal.SIGTERM) if self._forward >= 0 else ()
        for host in STOP_SIGNALS:  # before the watcher reads one that came already
            guest = self.k.signals.from_host.get(host)
            if guest is not None:
                self.follow(guest)
        self._start_watcher(-1)

    def _new_pipe(self) -> None:
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        self._pipe = (read_end, write_end)

    def _start_with(self, forward: int) -> None:
        self._new_pipe()
        self._start_watcher(forward)

    def _start_watcher(self, forward: int) -> None:
        read_end = self._pipe[0]
        self._forward = forward
        self._closing = threading.Event()
        # Not threading.Thread: its start() waits until the new thread runs, which takes
        # milliseconds on a loaded machine, at every run; this one starts on its own time.
        self._watcher = _thread.start_new_thread(self._watch, (read_end, self._closing, forward))

    def _stop_watcher(self) -> None:
        """Tell the watcher to end (it closes the read end itself, whenever it runs)."""
        self._closing.set()
        try:
            os.write(self._pipe[1], b"\0")
        except OSError:  # it saw `closing` after a signal's byte and is gone already
            pass
        os.close(self._pipe[1])

    def close(self) -> None:
        """The run ended: give every host signal its handler back, and the wakeup fd."""
        for host, previous in self.previous.items():
            try:
                signal.signal(host, previous)
            except (ValueError, OSError, TypeError):
                pass
        self.previous.clear()
        self._always = set()
        if self._watcher is None:
            return
        try:
            signal.set_wakeup_fd(self._forward, warn_on_full_buffer=False)
        except ValueError:
            pass
        self._stop_watcher()
        self._watcher = self._pipe = None


def _noted_by_watcher(_number, _frame) -> None:
    """The Python-level handler does nothing: the watcher thread already noted the signal."""
