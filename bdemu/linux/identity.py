"""Identity and resource syscalls: user and group ids, uname, rlimits, sysinfo, prctl,
process groups and sessions, rusage. The host answers for the guest (it runs as this user)."""
from __future__ import annotations

import ctypes
import errno
import os
import resource
import struct

from . import procnames
from .errors import SyscallError
from .fds import NR_OPEN
from .hostlibc import LIBC, host_syscall
from .process import is_guest_process
from .registry import syscall
from .structs import utsname

RLIM_INFINITY = (1 << 64) - 1
CAP_SYS_RESOURCE = 24


for _name, _function in (("getuid", os.getuid), ("geteuid", os.geteuid), ("getgid", os.getgid),
                         ("getegid", os.getegid)):
    def _make(function):
        def handler(k):
            return function()
        handler.__name__ = f"sys_{_name}"
        return handler
    syscall(names=(_name + "32",))(_make(_function))


def _set_ids(k, *ids: int) -> int:
    current = {os.getuid(), os.geteuid(), os.getgid(), os.getegid()}
    for value in ids:
        value = k.signed32(value)
        if value != -1 and value not in current and os.geteuid() != 0:
            raise SyscallError(errno.EPERM)
    return 0


@syscall("int", names=("setgid", "setfsuid", "setfsgid", "setuid32", "setgid32", "setfsuid32",
                        "setfsgid32"))
def sys_setuid(k, uid):
    return _set_ids(k, uid)


@syscall("int", "int", names=("setregid", "setreuid32", "setregid32"))
def sys_setreuid(k, real, effective):
    return _set_ids(k, real, effective)


@syscall("int", "int", "int", names=("setresgid", "setresuid32", "setresgid32"))
def sys_setresuid(k, real, effective, saved):
    return _set_ids(k, real, effective, saved)


@syscall("ptr", "ptr", "ptr", names=("getresuid32",))
def sys_getresuid(k, real, effective, saved):
    for address in (real, effective, saved):
        k.write_int(address, os.geteuid())
    return 0


@syscall("ptr", "ptr", "ptr", names=("getresgid32",))
def sys_getresgid(k, real, effective, saved):
    for address in (real, effective, saved):
        k.write_int(address, os.getegid())
    return 0


@syscall("int", "ptr", names=("getgroups32",))
def sys_getgroups(k, size, address):
    groups = os.getgroups()
    if size:
        if size < len(groups):
            raise SyscallError(errno.EINVAL)
        k.write(address, b"".join(g.to_bytes(4, k.byteorder) for g in groups))
    return len(groups)


@syscall("int", "ptr", names=("setgroups32",))
def sys_setgroups(k, size, address):
    return 0 if os.geteuid() == 0 else -errno.EPERM


@syscall("ptr")
def sys_uname(k, address):
    k.write(address, utsname(k.arch.uname_machine))
    return 0


def _resource(k, guest_id: int) -> int:
    """The common (host) number of the guest's resource `guest_id` (MIPS numbers differ)."""
    return k.arch.rlimit_overrides.get(guest_id, guest_id)


def _rlimit(k, resource_id: int) -> tuple[int, int]:
    """The guest's limit: what it set (`Kernel.rlimits`), else the host's."""
    return k.rlimits[resource_id] if resource_id in k.rlimits else _host_rlimit(resource_id)


def _host_rlimit(resource_id: int) -> tuple[int, int]:
    try:
        soft, hard = resource.getrlimit(resource_id)
    except (ValueError, OSError):
        raise SyscallError(errno.EINVAL) from None
    return tuple(RLIM_INFINITY if v == resource.RLIM_INFINITY else v for v in (soft, hard))


def _set_rlimit(k, resource_id: int, soft: int, hard: int) -> None:
    """Kept for the guest to read back (and for its children, and across execve), never applied
    to the host: bdemu itself needs more fds, memory and stack than a guest may allow itself."""
    _, current_hard = _rlimit(k, resource_id)
    if soft > hard:
        raise SyscallError(errno.EINVAL)
    if hard > current_hard and not _has_capability(CAP_SYS_RESOURCE):
        raise SyscallError(errno.EPERM)
    k.rlimits[resource_id] = (soft, hard)
    if resource_id == resource.RLIMIT_NOFILE:
        k.fds.limit = min(soft, NR_OPEN)


def _has_capability(number: int) -> bool:
    """Whether the host process (so the guest) holds a capability: root in a container may not."""
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"CapEff:"):
                return bool(int(line.split()[1], 16) >> number & 1)
    return False


def _unpack_limit(k, address: int, word: int) -> tuple[int, int]:
    """A struct rlimit of `word`-byte fields; a 32-bit RLIM_INFINITY becomes the 64-bit one."""
    data = k.read(address, 2 * word)
    values = [int.from_bytes(data[i:i + word], k.byteorder) for i in (0, word)]
    return tuple(RLIM_INFINITY if v == (1 << 8 * word) - 1 else v for v in values)


@syscall("int", "int", "ptr", "ptr")
def sys_prlimit64(k, pid, resource_id, new, old):
    own = k.signed32(pid) in (0, os.getpid())
    resource_id = _resource(k, resource_id)
    if old:
        soft, hard = _rlimit(k, resource_id) if own else _host_rlimit(resource_id)
        k.write(old, struct.pack("<QQ" if k.byteorder == "little" else ">QQ", soft, hard))
    if new and own:
        _set_rlimit(k, resource_id, *_unpack_limit(k, new, 8))
    return 0


@syscall("int", "ptr", names=("ugetrlimit",))
def sys_getrlimit(k, resource_id, address):
    soft, hard = _rlimit(k, _resource(k, resource_id))
    mask = k.arch.word_mask
    k.write(address, b"".join(min(v, mask).to_bytes(k.word, k.byteorder) for v in (soft, hard)))
    return 0


@syscall("int", "ptr")
def sys_setrlimit(k, resource_id, address):
    _set_rlimit(k, _resource(k, resource_id), *_unpack_limit(k, address, k.word))
    return 0


_HOST_SYSINFO = struct.Struct("@l3L6LHH2LI")


@syscall("ptr")
def sys_sysinfo(k, address):
    """The host's own figures; a 32-bit guest gets memory in larger `mem_unit`s so they fit."""
    buffer = ctypes.create_string_buffer(128)
    if LIBC.sysinfo(buffer) != 0:
        raise SyscallError(ctypes.get_errno())
    uptime, *figures, procs, _pad, _high, _freehigh, unit = _HOST_SYSINFO.unpack_from(buffer.raw)
    loads, memory = figures[:3], [v * unit for v in figures[3:]]
    unit = 1
    while any(v // unit > k.arch.word_mask for v in memory):
        unit *= 2
    kind = "q" if k.word == 8 else "i"
    word = kind.upper()
    end = "<" if k.byteorder == "little" else ">"
    pad = "4x" if k.word == 8 else ""
    data = struct.pack(f"{end}{kind}3{word}6{word}HH{pad}2{word}I", uptime, *loads,
                       *[v // unit for v in memory], procs, 0, 0, 0, unit)
    k.write(address, data.ljust(64 if k.word == 4 else 112, b"\0"))
    return 0


@syscall("int", "hex", "hex", "hex", "hex")
def sys_prctl(k, option, a2, a3, a4, a5):
    if option == 15:  # PR_SET_NAME: of the calling thread
        k.threads.current.name = k.read_cstring(a2, 16)[:15]
        if k.threads.current.tid == os.getpid():
            procnames.publish(k)
        return 0
    if option == 16:  # PR_GET_NAME
        k.write(a2, (k.threads.current.name or k.comm).ljust(16, b"\0"))
        return 0
    if option in (38, 39, 1, 2, 4, 3):  # NO_NEW_PRIVS, PDEATHSIG, DUMPABLE
        return 0
    raise SyscallError(errno.EINVAL)


@syscall("int")
def sys_getpgid(k, pid):
    return os.getpgid(pid)


@syscall()
def sys_getpgrp(k):
    return os.getpgrp()


@syscall("int", "int")
def sys_setpgid(k, pid, pgid):
    pid, pgid = k.signed32(pid), k.signed32(pgid)
    if (pid and not is_guest_process(k, pid)) or (pgid and not is_guest_process(k, pgid)):
        raise SyscallError(errno.ESRCH if pid and not is_guest_process(k, pid) else errno.EPERM)
    os.setpgid(pid, pgid)
    return 0


@syscall("int")
def sys_getsid(k, pid):
    return os.getsid(pid)


@syscall()
def sys_setsid(k):
    os.setsid()
    return os.getpid()  # the new session's id


@syscall("int", "ptr")
def sys_getrusage(k, who, address):
    k.write(address, bytes(18 * k.word if k.word == 8 else 72))
    return 0


PRIO_PROCESS = 0


def _priority_target(k, which: int, who: int) -> int:
    """The host pid a priority call may touch: this guest's own processes only, as in its own
    PID namespace (a process group or user would reach host processes outside the guest)."""
    who = k.signed32(who)
    if which != PRIO_PROCESS:
        raise SyscallError(errno.EINVAL if which > 2 else errno.EPERM)
    if who and not is_guest_process(k, who):
        raise SyscallError(errno.ESRCH)
    return who


@syscall("int", "int")
def sys_getpriority(k, which, who):
    """The raw syscall returns 20 - nice (1..40), so that no success looks like an error."""
    return 20 - os.getpriority(PRIO_PROCESS, _priority_target(k, which, who))


@syscall("int", "int", "int")
def sys_setpriority(k, which, who, nice):
    try:
        os.setpriority(PRIO_PROCESS, _priority_target(k, which, who), max(-20, min(19, k.signed32(nice))))
    except OSError as error:
        raise SyscallError(error.errno) from None
    return 0


@syscall("ptr", "ptr")
def sys_capget(k, header, data):
    """The capabilities of the guest's process (or of its child): the host's answer for bdemu, which
    is that process. `data` NULL asks for the preferred version only."""
    version, pid = struct.unpack(("<" if k.byteorder == "little" else ">") + "Ii", k.read(header, 8))
    if pid and not is_guest_process(k, pid):
        raise SyscallError(errno.ESRCH if pid > 0 else errno.EINVAL)
    host_header = ctypes.create_string_buffer(struct.pack("=Ii", version, pid), 8)
    host_data = ctypes.create_string_buffer(24)
    result = LIBC.capget(host_header, host_data if data else None)
    error = ctypes.get_errno()
    preferred = struct.unpack("=I", host_header.raw[:4])[0]
    if preferred != version:  # an unknown version: the kernel names the one it prefers
        k.write(header, preferred.to_bytes(4, k.byteorder))
    if result < 0:
        raise SyscallError(error)
    if data:
        words = 1 if version == 0x19980330 else 2  # _LINUX_CAPABILITY_VERSION_1: 32 capabilities
        values = struct.unpack("=6I", host_data.raw)[:3 * words]
        k.write(data, b"".join(value.to_bytes(4, k.byteorder) for value in values))
    return 0


@syscall("hex")
def sys_personality(k, persona):
    """Always PER_LINUX (0); 0xffffffff only asks. Setting another one is accepted and ignored."""
    return 0


IOPRIO_WHO_PROCESS, IOPRIO_WHO_PGRP, IOPRIO_WHO_USER = 1, 2, 3


def _ioprio_target(k, which: int, who: int) -> int:
    """The host pid an I/O priority call acts on: a process of this guest. A process group or user
    (who 0, or the guest's own) means the calling process alone: the host's group or user would
    reach processes outside the guest."""
    who = k.signed32(who)
    if which == IOPRIO_WHO_PROCESS:
        if who and not is_guest_process(k, who):
            raise SyscallError(errno.ESRCH)
        return who
    if which == IOPRIO_WHO_PGRP:
        if who not in (0, os.getpgrp()):
            raise SyscallError(errno.ESRCH)
        return 0
    if which == IOPRIO_WHO_USER:
        if who not in (0, os.getuid()):
            raise SyscallError(errno.ESRCH)
        return 0
    raise SyscallError(errno.EINVAL)


@syscall("int", "int")
def sys_ioprio_get(k, which, who):
    """The host's answer for the guest's process (bdemu is that process), e.g. 0: no class set."""
    return host_syscall("ioprio_get", IOPRIO_WHO_PROCESS, _ioprio_target(k, which, who))


@syscall("int", "int", "hex")
def sys_ioprio_set(k, which, who, priority):
    """Sets the priority of bdemu's process, which is the guest's; the host checks the class and
    level (EINVAL) and the right to the real-time class (EPERM)."""
    return host_syscall("ioprio_set", IOPRIO_WHO_PROCESS, _ioprio_target(k, which, who), priority & 0xFFFFFFFF)
