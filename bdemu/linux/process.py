"""Process syscalls: exit, fork/clone, execve, wait, kill, thread bookkeeping (identity and
limits are in identity.py).

Guest processes are host processes: fork/vfork/clone without CLONE_VM fork
bdemu itself, and the child goes on emulating a copy of everything. Plugins
observe the first process only; a child detaches them and never writes into
the parent's outputs.
"""
from __future__ import annotations

import errno
import os
import struct

from . import signals
from .errors import ExecRequest, GuestExit, GuestSignal, HostProgram, SyscallError
from .files import dir_base
from .fsops import AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW
from .registry import syscall
from .threads import install_tls

CLONE_VM, CLONE_VFORK, CLONE_THREAD, CLONE_SETTLS = 0x100, 0x4000, 0x10000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x100000, 0x200000, 0x1000000


@syscall("int")
def sys_exit_group(k, status):
    k.emu.check_stop()  # past --timeout, the run timed out even if the guest was about to end
    raise GuestExit(status & 0xFF)


@syscall("int")
def sys_exit(k, status):
    """The calling thread ends; the process with its last thread."""
    if k.threads.alone:
        k.emu.check_stop()
        raise GuestExit(status & 0xFF)
    k.threads.exit_current(status)
    return 0


@syscall()
def sys_getpid(k):
    return os.getpid()


@syscall()
def sys_gettid(k):
    return k.threads.current.tid


@syscall()
def sys_getppid(k):
    return os.getppid()


@syscall("ptr")
def sys_set_tid_address(k, address):
    k.threads.current.clear_child_tid = address
    return k.threads.current.tid


@syscall("ptr", "size")
def sys_set_robust_list(k, head, length):
    return 0


@syscall("ptr", "size", "hex", "hex")
def sys_rseq(k, address, length, flags, signature):
    raise SyscallError(errno.ENOSYS)


@syscall("int", "size", "ptr")
def sys_sched_getaffinity(k, pid, size, address):
    if size < k.word:
        raise SyscallError(errno.EINVAL)
    mask = sum(1 << cpu for cpu in os.sched_getaffinity(0) if cpu < 8 * k.word)
    k.write(address, mask.to_bytes(k.word, k.byteorder))
    return k.word


@syscall("int", "size", "ptr")
def sys_sched_setaffinity(k, pid, size, address):
    """Accepted for the guest's own threads if the mask names a CPU (one CPU runs them all)."""
    _own_task(k, k.signed32(pid))
    if not any(k.read(address, min(size, 1024))):
        raise SyscallError(errno.EINVAL)
    return 0


@syscall("ptr", "ptr", "ptr")
def sys_getcpu(k, cpu, node, cache):
    for address in (cpu, node):
        if address:
            k.write_int(address, 0)
    return 0


SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE = 0, 1, 2, 3, 5


def _own_task(k, pid: int) -> None:
    """Scheduling calls answer for the guest's own threads only: another process's policy is
    none of an (untrusted) guest's business, and a negative pid is invalid."""
    if pid < 0:
        raise SyscallError(errno.EINVAL)
    if pid not in (0, os.getpid()) and pid not in k.threads.threads:
        raise SyscallError(errno.ESRCH)


@syscall("int")
def sys_sched_getscheduler(k, pid):
    """Every guest thread runs under the normal time-sharing policy."""
    _own_task(k, pid)
    return SCHED_OTHER


@syscall("int", "ptr")
def sys_sched_getparam(k, pid, address):
    _own_task(k, pid)
    k.write_int(address, 0)  # struct sched_param { int sched_priority; }: 0 under SCHED_OTHER
    return 0


@syscall("int", "int", "ptr")
def sys_sched_setscheduler(k, pid, policy, address):
    """Only the policies an unprivileged process may choose: the others need CAP_SYS_NICE."""
    _own_task(k, pid)
    if policy & ~0x40000000 not in (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE):  # ~SCHED_RESET_ON_FORK
        raise SyscallError(errno.EPERM if policy in (SCHED_FIFO, SCHED_RR) else errno.EINVAL)
    return 0


@syscall("int")
def sys_sched_get_priority_max(k, policy):
    return _priority_range(policy)[1]


@syscall("int")
def sys_sched_get_priority_min(k, policy):
    return _priority_range(policy)[0]


def _priority_range(policy: int) -> tuple[int, int]:
    if policy in (SCHED_FIFO, SCHED_RR):
        return 1, 99
    if policy in (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE):
        return 0, 0
    raise SyscallError(errno.EINVAL)


@syscall()
def sys_sched_yield(k):
    k.threads.yield_()
    return 0


# -- processes ---------------------------------------------------------------------------------
def fork_process(k, flags: int, stack: int, parent_tid: int, child_tid: int, tls: int) -> int:
    if flags & CLONE_VM and flags & CLONE_THREAD:
        tid = k.threads.spawn(stack, tls if flags & CLONE_SETTLS else None,
                              child_tid if flags & CLONE_CHILD_CLEARTID else 0)
        if flags & CLONE_PARENT_SETTID and parent_tid:
            k.write_int(parent_tid, tid)
        if flags & CLONE_CHILD_SETTID and child_tid:
            k.write_int(child_tid, tid)
        return tid
    if flags & CLONE_THREAD or (flags & CLONE_VM and not flags & CLONE_VFORK):
        k.warn_once("threads", "clone with CLONE_VM but not CLONE_THREAD is not supported: ENOSYS")
        raise SyscallError(errno.ENOSYS)
    k.flush_host_stdio()
    pid = k.host_signals.fork()
    if pid:
        k.children.add(pid)
        if flags & CLONE_PARENT_SETTID and parent_tid:
            k.write_int(parent_tid, pid)
        return pid
    k.emu.become_child()
    k.forked()
    k.threads.keep_only_current()
    k.signals.reset_for_fork()
    if stack:
        k.emu.set_reg("sp", stack)
    if flags & CLONE_SETTLS:
        install_tls(k, tls)
    if flags & CLONE_CHILD_SETTID and child_tid:
        k.write_int(child_tid, os.getpid())
    return 0


@syscall()
def sys_fork(k):
    return fork_process(k, 0, 0, 0, 0, 0)


@syscall()
def sys_vfork(k):
    return fork_process(k, 0, 0, 0, 0, 0)


@syscall("hex", "ptr", "ptr", "ptr", "ptr")
def sys_clone(k, flags, stack, parent_tid, a4, a5):
    """The argument order differs: x86-64 passes tls last, most ISAs fourth (CLONE_BACKWARDS)."""
    if k.arch.variants.get("clone", "tls_fifth") == "tls_fourth":
        tls, child_tid = a4, a5
    else:
        child_tid, tls = a4, a5
    return fork_process(k, flags, stack, parent_tid, child_tid, tls)


@syscall("ptr", "size")
def sys_clone3(k, address, size):
    """clone with a `struct clone_args` (glibc's pthread_create tries it first)."""
    if size < 64:
        raise SyscallError(errno.EINVAL)
    raw = k.read(address, 64)
    flags, _pidfd, child_tid, parent_tid, _signal, stack, stack_size, tls = (
        int.from_bytes(raw[i:i + 8], k.byteorder) for i in range(0, 64, 8))
    return fork_process(k, flags, stack + stack_size if stack else 0, parent_tid, child_tid, tls)


@syscall("path", "ptr", "ptr")
def sys_execve(k, path, argv, envp):
    return _execve(k, k.vfs.absolute(k.read_path(path)), argv, envp)


@syscall("dirfd", "path", "ptr", "ptr", "hex")
def sys_execveat(k, dirfd, path, argv, envp, flags):
    """execve of a path relative to `dirfd`, or of the file `dirfd` is (AT_EMPTY_PATH: fexecve,
    and the fileless memfd_create + fexecve of droppers)."""
    name = k.read_cstring(path) if path else b""
    if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW):
        raise SyscallError(errno.EINVAL)
    if not name:
        if not flags & AT_EMPTY_PATH:
            raise SyscallError(errno.ENOENT)
        k.fds.get(k.signed32(dirfd))  # EBADF
        guest = f"/dev/fd/{k.signed32(dirfd)}"
    else:
        guest = k.vfs.absolute(os.fsdecode(name), dir_base(k, dirfd))
        if flags & AT_SYMLINK_NOFOLLOW and os.path.islink(k.vfs.host_path_full(guest, follow=False)):
            raise SyscallError(errno.ELOOP)
    return _execve(k, guest, argv, envp)


def _execve(k, guest: str, argv: int, envp: int) -> int:
    arguments = k.read_string_array(argv)
    environment = k.read_string_array(envp)
    host = k.vfs.host_path_full(guest)
    if not os.path.exists(host):
        raise SyscallError(errno.ENOENT)
    if os.path.isdir(host) or not os.access(host, os.X_OK):
        raise SyscallError(errno.EACCES)
    if host.startswith("/proc/self/fd/"):  # one of the guest's fds, which exec may close first
        host = k.keep_for_exec(int(host.rsplit("/", 1)[1]))
    try:
        guest, host, arguments, native = k.emu.resolve_exec(guest, host, arguments)
    except HostProgram:
        k.warn_once("host-exec", f"{guest} is a program for this machine, not for the {k.arch.name} guest "
                                 "(ENOEXEC): --host-exec runs such programs natively, unconfined")
        raise
    if native:
        from .hostexec import prepare
        raise ExecRequest(guest, host, arguments, environment, prepare(k, host, arguments, environment))
    raise ExecRequest(guest, host, arguments, environment)


def _guest_status(k, status: int) -> int:
    """A wait status with the host's signal numbers turned into the guest's (MIPS differs)."""
    from_host = k.signals.from_host
    if os.WIFSIGNALED(status):
        return status & ~0x7F | from_host.get(os.WTERMSIG(status), os.WTERMSIG(status))
    if os.WIFSTOPPED(status):
        return status & ~0xFF00 | from_host.get(os.WSTOPSIG(status), os.WSTOPSIG(status)) << 8
    return status


def _wait(k, pid: int, options: int) -> tuple[int, int]:
    options = options & 0xFFFFFFFF & ~0x40000000
    delay = 0.0005
    try:
        while True:  # WNOHANG polls, so a stop request or --timeout ends a long wait
            child, status = os.waitpid(pid, options | os.WNOHANG)
            if child or options & os.WNOHANG:
                return child, status
            k.wait_to_retry(delay)
            delay = min(delay * 2, 0.05)
    except ChildProcessError:
        raise SyscallError(errno.ECHILD) from None


@syscall("int", "ptr", "hex", "ptr")
def sys_wait4(k, pid, status_address, options, rusage):
    child, status = _wait(k, k.signed32(pid), options)
    if child and status_address:
        k.write_int(status_address, _guest_status(k, status))
    if rusage:
        k.write(rusage, bytes(18 * k.word if k.word == 8 else 72))
    return child


@syscall("int", "ptr", "hex")
def sys_waitpid(k, pid, status_address, options):
    return sys_wait4(k, pid, status_address, options, 0)


@syscall("int", "int", "ptr", "hex", "ptr")
def sys_waitid(k, idtype, ident, infop, options, rusage):
    idtype_map = {0: os.P_ALL, 1: os.P_PID, 2: os.P_PGID}
    if idtype not in idtype_map:
        raise SyscallError(errno.EINVAL)
    try:
        if k.threads.alone or options & os.WNOHANG:
            result = os.waitid(idtype_map[idtype], ident, options & 0xFFFFFFFF)
        else:  # no fd reports a child's exit: the other threads run, and this is retried at each switch
            result = os.waitid(idtype_map[idtype], ident, options & 0xFFFFFFFF | os.WNOHANG)
            if result is None:
                k.threads.wait(recheck=True)
    except ChildProcessError:
        raise SyscallError(errno.ECHILD) from None
    if infop:
        info = bytearray(128)
        if result is not None:
            end = "<" if k.byteorder == "little" else ">"
            struct.pack_into(end + "iii", info, 0, 17, 0, result.si_code)  # SIGCHLD
            offset = 16 if k.word == 8 else 12
            struct.pack_into(end + "iIi", info, offset, result.si_pid, result.si_uid, result.si_status)
        k.write(infop, bytes(info))
    return 0


def signal_self(k, signal: int, code: int = signals.SI_USER) -> int:
    """A signal the guest sends to its own process: ignored, fatal at once (its default action,
    when some thread does not block it), or queued for delivery to a thread that does not block
    it. `code` is the siginfo si_code a handler sees."""
    if signal == 0:
        return 0
    if not 0 < signal <= k.signals.count:
        raise SyscallError(errno.EINVAL)
    _queue(k, signal, list(k.threads.threads.values()), lambda: k.signals.send_process(signal, code))
    return 0


def _queue(k, signal: int, takers: list, send) -> None:
    """Apply a signal sent to one of `takers` (threads): ignore it, end the run, or queue it (a
    debugger sees it first: queued whatever its action)."""
    action, traced = k.signals.disposition(signal), k.signals.traced
    if action == "ignore" and not traced:
        return
    if action == "default" and not traced and any(not t.signal_mask & signals.bit(signal) for t in takers):
        raise GuestSignal(signal, "sent by the guest to itself")
    if action == "handler" and k.arch.signal_frame is None:
        k.warn_once(f"signal{signal}", f"signal {signal} has a guest handler; delivery is not supported yet")
        return
    send()
    if k.signals.deliverable() is not None:
        k.emu.request_signal_work()


def _host_signal(k, signal: int) -> int:
    """The host's number for a guest signal sent to another process (0 stays 0)."""
    if signal == 0:
        return 0
    host = k.signals.to_host.get(signal)
    if host is None:
        raise SyscallError(errno.EINVAL)
    return host


def is_guest_process(k, pid: int) -> bool:
    """True for this guest's own processes (they hold the kernel's marker fd): the only ones a
    guest may signal or regroup, as in its own PID namespace; any other host process is ESRCH."""
    if pid == os.getpid():
        return True
    try:
        return os.readlink(f"/proc/{pid}/fd/{k.marker_fd}") == k.marker
    except OSError:
        return False


def _guest_processes(k) -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and is_guest_process(k, int(name))]


def _signal_processes(k, targets: list[int], signal: int) -> int:
    if not targets:
        raise SyscallError(errno.ESRCH)
    for target in targets:
        if target == os.getpid():
            signal_self(k, signal)
            continue
        try:
            os.kill(target, _host_signal(k, signal))
        except ProcessLookupError:
            pass
    return 0


@syscall("int", "signal")
def sys_kill(k, pid, signal):
    pid = k.signed32(pid)
    if pid == os.getpid() or (pid in (0, -1) and not k.children):
        return signal_self(k, signal)
    if pid > 0:
        if not is_guest_process(k, pid):
            raise SyscallError(errno.ESRCH)
        os.kill(pid, _host_signal(k, signal))
        return 0
    if pid == -1:  # every guest process but the caller
        return _signal_processes(k, [p for p in _guest_processes(k) if p != os.getpid()], signal)
    group = os.getpgid(0) if pid == 0 else -pid  # only the guest's own members of the group
    members = []
    for member in _guest_processes(k):
        try:
            if os.getpgid(member) == group:
                members.append(member)
        except ProcessLookupError:
            pass
    members.sort(key=lambda member: member == os.getpid())  # the caller last: it may not come back
    return _signal_processes(k, members, signal)


@syscall("int", "int", "signal")
def sys_tgkill(k, tgid, tid, signal):
    if k.signed32(tgid) <= 0:
        raise SyscallError(errno.EINVAL)
    if k.signed32(tid) in k.threads.threads and k.signed32(tgid) != os.getpid():
        raise SyscallError(errno.ESRCH)
    return sys_tkill(k, tid, signal)


@syscall("int", "signal")
def sys_tkill(k, tid, signal):
    """To one thread: a thread of this process gets it even while others would not block it."""
    tid = k.signed32(tid)
    if not 0 <= signal <= k.signals.count:
        raise SyscallError(errno.EINVAL)
    thread = k.threads.threads.get(tid)
    if thread is not None:
        if signal:
            _queue(k, signal, [thread], lambda: k.signals.send_thread(thread, signal, signals.SI_TKILL))
        return 0
    if tid <= 0 or not is_guest_process(k, tid):
        raise SyscallError(errno.ESRCH)
    os.kill(tid, _host_signal(k, signal))
    return 0


ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004


@syscall("hex", "ptr")
def sys_arch_prctl(k, code, address):
    if code == ARCH_SET_FS:
        k.arch.set_tls(k.emu, address)
        return 0
    if code == ARCH_GET_FS:
        k.write_word(address, k.emu.reg(k.arch.tls_register))
        return 0
    raise SyscallError(errno.EINVAL)


@syscall("ptr")
def sys_set_thread_area(k, address):
    """i386: a `struct user_desc` for a GDT entry; MIPS: the thread pointer itself."""
    if k.arch.thread_area is not None:
        return k.arch.thread_area(k, address)
    k.arch.set_tls(k.emu, address)
    return 0


@syscall("ptr", names=("ARM_set_tls",))
def sys_set_tls(k, address):
    k.arch.set_tls(k.emu, address)
    return 0
