"""execve of a program built for the host's own ISA by a guest of another one: the host runs
it, as qemu-user with binfmt_misc does (a foreign busybox's `sh -c /bin/echo`, `tar z` running
gzip, awk's `system()`).

bdemu cannot emulate such a program (its libraries and ld.so are the host's), so the guest
process becomes it: a real execve of the host file with the guest's argv and envp, after the
host process has been made to look as the guest's execve would leave it. `prepare` takes
what the new program inherits while the syscall can still fail (it runs in the execve
handler: a guest fd bdemu cannot duplicate gives the guest an errno, as Linux fails before
its point of no return); `HostExec.execute` applies it and execs. A forked guest child does
so at once (bdemu/emulator.py `_end_child`); the first process first ends the run for
bdemu's own consumers (plugins' on_exit with reason "host-exec", a recording closed), and its
caller execs (bdemu/cli.py).
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import resource
import signal
import sys
import weakref
from dataclasses import dataclass, field
from typing import NoReturn

from .errors import SyscallError
from .hostlibc import LIBC
from .signals import SIG_IGN, bit

#: glibc's SIG_DFL and SIG_IGN, for the host's signal(2).
_HOST_HANDLERS = {False: ctypes.c_void_p(0), True: ctypes.c_void_p(1)}
#: A 64-bit RLIM_INFINITY as the guest gives it.
_GUEST_INFINITY = (1 << 64) - 1
#: Exit status of a process whose execve failed past the point of no return (as a shell's).
CANNOT_EXECUTE = 126


@dataclass
class HostExec:
    """What the host program gets: its file, argv and envp, the guest's fds (each a private
    close-on-exec duplicate numbered above every guest fd, so putting one in place never
    clobbers another), cwd, umask, signal mask and ignored signals (host numbers), and the
    limits the guest set (host resource numbers)."""

    path: str
    argv: list[bytes]
    envp: list[bytes]
    fds: dict[int, int]
    cwd: str
    umask: int
    mask: set[int]
    ignored: set[int]
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: A private duplicate that `path` names (/proc/self/fd/N: fexecve), or None.
    path_fd: int | None = None

    def __post_init__(self) -> None:
        if not self.argv or not self.argv[0]:  # Linux takes an empty argv; os.execve does not
            self.argv = [os.fsencode(self.path), *self.argv[1:]]
        # A run whose caller does not exec (the Python API may not) gives the duplicates back.
        owned = [*self.fds.values(), *([] if self.path_fd is None else [self.path_fd])]
        self._release = weakref.finalize(self, _close_all, owned)

    def execute(self) -> NoReturn:
        """Become the host program; never returns (a failed execve ends the process with 126:
        the guest is gone already)."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        try:
            self._exec()
        except (OSError, ValueError) as error:
            message = getattr(error, "strerror", None) or str(error)
            os.write(2, f"bdemu: cannot run the host program {self.path}: {message}\n".encode())
        os._exit(CANNOT_EXECUTE)

    def _exec(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        for host in range(1, signal.NSIG):  # Python ignores SIGPIPE and SIGXFSZ itself
            LIBC.signal(ctypes.c_int(host), _HOST_HANDLERS[host in self.ignored])
        for guest_fd, private in self.fds.items():
            os.dup2(private, guest_fd)
        for name in os.listdir("/proc/self/fd"):  # bdemu's own fds stay behind
            if int(name) not in self.fds:
                try:
                    os.set_inheritable(int(name), False)
                except OSError:
                    pass
        try:
            os.chdir(self.cwd)
        except OSError:  # a directory only bdemu shows (its sysfs nodes): the host has none
            pass
        os.umask(self.umask)
        for number, (soft, hard) in self.rlimits.items():
            try:
                resource.setrlimit(number, (_host_limit(soft), _host_limit(hard)))
            except (OSError, ValueError):
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
        os.execve(self.path, self.argv, _environment(self.envp))


def prepare(k, host_path: str, argv: list[bytes], envp: list[bytes]) -> HostExec:
    """The host execve of `host_path` as the guest process stands now (SyscallError if a guest
    fd cannot be duplicated: EMFILE)."""
    kept = [(fd, file.host_fd) for fd, file in k.fds.items() if not file.cloexec]
    floor = max((fd for fd, _ in kept), default=2) + 1
    fds: dict[int, int] = {}
    path_fd = None
    try:
        for fd, host_fd in kept:
            fds[fd] = fcntl.fcntl(host_fd, fcntl.F_DUPFD_CLOEXEC, floor)
        if host_path.startswith("/proc/self/fd/"):  # fexecve: its fd may bear a guest fd's number
            path_fd = fcntl.fcntl(int(host_path.rsplit("/", 1)[1]), fcntl.F_DUPFD_CLOEXEC, floor)
            host_path = f"/proc/self/fd/{path_fd}"
    except OSError as error:
        _close_all([*fds.values(), *([] if path_fd is None else [path_fd])])
        raise SyscallError(error.errno) from None
    state, to_host = k.signals, k.signals.to_host
    blocked = {to_host[number] for number in range(1, state.count + 1)
               if state.mask & bit(number) and number in to_host}
    ignored = {to_host[number] for number, handler in state.handlers.items()
               if handler == SIG_IGN and number in to_host}
    limits = dict(k.rlimits)  # keyed by the host's numbers (identity.py translates MIPS ones)
    return HostExec(host_path, argv, envp, fds, k.vfs.cwd, k.vfs.umask, blocked, ignored, limits, path_fd)


def _environment(envp: list[bytes]) -> dict[bytes, bytes]:
    """envp as os.execve takes it: entries without a name are dropped, the first of a name wins
    (the one getenv finds)."""
    environment: dict[bytes, bytes] = {}
    for entry in envp:
        name, sep, value = entry.partition(b"=")
        if sep and name and b"\0" not in entry:
            environment.setdefault(name, value)
    return environment


def _host_limit(value: int) -> int:
    return resource.RLIM_INFINITY if value >= _GUEST_INFINITY else value


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
