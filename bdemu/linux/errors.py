"""How syscall handlers end a run or fail: exceptions the kernel's dispatcher understands."""
from __future__ import annotations

import errno as _errno


class SyscallError(Exception):
    """Return -errno to the guest from anywhere inside a handler."""

    def __init__(self, code: int) -> None:
        super().__init__(_errno.errorcode.get(code, str(code)))
        self.code = code


class HostProgram(SyscallError):
    """ENOEXEC for a program of the host's own ISA, which host exec (off) would have run."""


class GuestExit(Exception):
    """The guest called exit/exit_group."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class GuestSignal(Exception):
    """The guest was killed by a signal (a fault, or a signal it sent itself)."""

    def __init__(self, signal: int, detail: str = "", fault: bool = False) -> None:
        super().__init__(signal, detail)
        self.signal = signal
        self.detail = detail
        #: Raised by the CPU (a guest handler may catch it), not sent by the guest.
        self.fault = fault


class DebuggerStop(Exception):
    """A blocking syscall gives way to a debugger's stop (gdb's Ctrl-C): it runs again, from its
    instruction, when the debugger resumes the guest (as a ptrace stop restarts it on Linux)."""


class StopRun(Exception):
    """A blocking syscall noticed a host stop request or the --timeout deadline: end the run."""


class ExecRequest(Exception):
    """execve succeeded its checks: the run loop replaces the image."""

    def __init__(self, path: str, host_path: str, argv: list[bytes], envp: list[bytes],
                 native=None) -> None:
        super().__init__(path)
        self.path = path
        self.host_path = host_path
        self.argv = argv
        self.envp = envp
        #: A program of the host's own ISA, which the host runs instead (hostexec.HostExec), or None.
        self.native = native


class WouldBlock(Exception):
    """A syscall must wait while other guest threads could run: its thread parks instead
    (raised by ThreadTable.wait, caught by Kernel.dispatch; see bdemu/linux/threads.py)."""

    def __init__(self, fds: tuple[tuple[int, int], ...] = (), deadline: float | None = None,
                 recheck: bool = False, resume=None, for_signal: bool = False, on_signal=None) -> None:
        super().__init__()
        self.fds = fds
        self.deadline = deadline
        self.recheck = recheck
        #: It waits for a signal only (pause, rt_sigsuspend): one its own thread takes ends it.
        self.for_signal = for_signal
        #: What completes the syscall, `resume(kernel) -> result`, when running the handler again
        #: with the same arguments would repeat what it already did (a write's first part).
        self.resume = resume
        #: For a wait a signal handler always ends with EINTR (a sleep): what the syscall leaves
        #: then, `on_signal(kernel, deadline)` (nanosleep's time left). See ThreadTable.interrupt.
        self.on_signal = on_signal
