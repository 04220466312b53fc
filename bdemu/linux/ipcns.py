"""The run's System V IPC namespace: host objects, reachable only by the guest that made them.

Shared memory segments, semaphore sets and message queues are the host's own
objects (libc shmget, semget, msgget...), so a guest's forked processes, which
are host processes, share them through the host kernel. But the host's SysV
namespace is the host's: unchecked, a guest could attach another program's
segment by id (an X server's MIT-SHM buffers) or by key, and whatever it
creates would outlive the run. So each run acts as if in its own IPC
namespace (as `unshare --ipc` would give it):

- a key other than IPC_PRIVATE is turned into a per-run host key (a bijection
  salted with a random number drawn at start-up, shared by the forks);
- every object the run creates is listed in a table that all its processes
  share (a memfd inherited across fork, a few bytes an object); an id that
  is not listed is answered as Linux answers an unknown one (EINVAL), and a
  key whose host object is not listed (another program took that host key:
  odds of 1 in 2^32 a key) gives EACCES;
- the run holds at most MAX_OBJECTS objects (then ENOSPC); each has an index among
  the run's objects of its kind, the lowest free one, as Linux gives (ipcinfo.py);
- when the last process of the run ends, every object still listed is removed
  (IPC_RMID), as when an IPC namespace dies; a segment still attached
  somewhere lives until detached. So that a run killed with SIGKILL leaves
  nothing either, its first object starts a watcher: a detached process
  (`_watch`) that waits for the run's last process to end, however it ends,
  and removes what is still listed.

Each process holds a shared record lock on byte 0 of the table while it runs;
one that ends and then can take it exclusively is the last.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import struct
import time
import weakref

from .errors import SyscallError
from .hostlibc import LIBC, checked
from .ipcstructs import (
    IPC_64,
    IPC_CREAT,
    IPC_EXCL,
    IPC_PRIVATE,
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    guest_layout,
    host_layout,
)

SHM, SEM, MSG = 1, 2, 3
MAX_OBJECTS = 4096
#: A table entry: kind (0: free), host id, the guest's key, its index among the run's objects of
#: its kind (what IPC_INFO, SHM_STAT & co. and /proc/sysvipc speak of: ipcinfo.py).
RECORD = struct.Struct("=iiii")
#: The table's byte after the entries: 1 once the run's watcher started.
WATCHED = MAX_OBJECTS * RECORD.size
_MIX = 0x9E3779B1  # odd: multiplying by it is a bijection of 32-bit keys

LIBC.shmat.restype = ctypes.c_void_p
LIBC.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
LIBC.shmdt.argtypes = [ctypes.c_void_p]
LIBC.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
LIBC.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
LIBC.msgctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
LIBC.msgsnd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
LIBC.msgrcv.restype = ctypes.c_ssize_t
LIBC.msgrcv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long, ctypes.c_int]
LIBC.semtimedop.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def host_semctl(semid: int, number: int, command: int, argument: int = 0) -> int:
    """libc semctl (variadic: the union semun goes as one word)."""
    return checked(LIBC.semctl(ctypes.c_int(semid), ctypes.c_int(number), ctypes.c_int(command),
                               ctypes.c_ulong(argument)))


NAMES = {SHM: "shm", SEM: "sem", MSG: "msg"}
#: Each kind's host *ctl call for one object: (host id, command, buffer or None).
HOST_CTL = {
    SHM: lambda host_id, command, buffer: checked(LIBC.shmctl(host_id, command, buffer)),
    SEM: lambda host_id, command, buffer: host_semctl(host_id, 0, command,
                                                      0 if buffer is None else ctypes.addressof(buffer)),
    MSG: lambda host_id, command, buffer: checked(LIBC.msgctl(host_id, command, buffer)),
}


def versioned(k, command: int, struct_commands: tuple[int, ...]) -> int:
    """A command of the `ipc` multiplexer or of ARM's *ctl calls: without IPC_64 it would use the
    pre-2.4 layouts, which bdemu does not offer (EINVAL)."""
    command = k.signed32(command)
    if command & IPC_64:
        return command & ~IPC_64
    if command in struct_commands:
        raise SyscallError(errno.EINVAL)
    return command


def host_stat(kind: int, host_id: int) -> dict[str, int]:
    layout = host_layout(NAMES[kind])
    buffer = ctypes.create_string_buffer(layout.size)
    HOST_CTL[kind](host_id, IPC_STAT, buffer)
    return layout.unpack(buffer.raw)


def common_ctl(k, kind: int, host_id: int, command: int, address: int, extra: tuple[str, ...] = ()) -> int:
    """IPC_STAT, IPC_SET (owner, group, permission bits and `extra` fields) and IPC_RMID of one
    of the run's objects, in the guest's layout of the kind's structure."""
    layout = guest_layout(k, NAMES[kind])
    if command == IPC_RMID:
        HOST_CTL[kind](host_id, IPC_RMID, None)
        k.ipc.removed(kind, host_id)
        return 0
    values = host_stat(kind, host_id)
    if command == IPC_STAT:
        values["key"] = k.ipc.guest_key(kind, host_id)
        k.write(address, layout.pack(values))
        return 0
    new = layout.unpack(k.read(address, layout.size))
    values["uid"], values["gid"] = new["uid"], new["gid"]
    values["mode"] = (values["mode"] & ~0o777) | (new["mode"] & 0o777)
    for name in extra:
        values[name] = new[name]
    data = host_layout(NAMES[kind]).pack(values)
    HOST_CTL[kind](host_id, IPC_SET, ctypes.create_string_buffer(data, len(data)))
    return 0


#: A wait for an object another process changes looks again after RETRY_FIRST s, doubling up to RETRY_MAX.
RETRY_FIRST, RETRY_MAX = 50e-6, 5e-3


def until_done(k, attempt, busy: int, deadline: float | None = None, timed=None) -> int:
    """Run `attempt()`, a host call that does not wait (SyscallError `busy` when it would), until
    it goes through: EAGAIN once `deadline` (time.monotonic()) passes. Alone, the thread waits
    in slices (`timed(seconds)`: the host call waiting that long at most, else short growing
    sleeps), so --timeout, Ctrl-C and guest signals (EINTR) end the wait; in a threaded guest
    it parks and tries again at each switch."""
    pause = RETRY_FIRST
    while True:
        try:
            return attempt()
        except SyscallError as error:
            if error.code != busy:
                raise
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise SyscallError(errno.EAGAIN)
        if not k.threads.alone:
            k.threads.wait(deadline=deadline, recheck=True)
            raise SyscallError(errno.EAGAIN)  # returned: the deadline passed
        wait = k.wait_slice(left)
        if timed is None:
            time.sleep(min(pause, wait))
            pause = min(2 * pause, RETRY_MAX)
            continue
        try:
            return timed(wait)
        except SyscallError as error:
            if error.code not in (busy, errno.EINTR):
                raise




class IpcNamespace:
    """The SysV objects of one run (see the module docstring)."""

    def __init__(self) -> None:
        self.fd = os.memfd_create("bdemu-sysvipc", os.MFD_CLOEXEC)
        self._finalizer = weakref.finalize(self, os.close, self.fd)
        self.salt = int.from_bytes(os.urandom(4), "little")
        #: (kind, host id) -> guest key: the objects this process knows to be the run's.
        self.known: dict[tuple[int, int], int] = {}
        self.forked()

    def forked(self) -> None:
        """This process is one of the run's (the first, or a fork: record locks are per process)."""
        fcntl.lockf(self.fd, fcntl.LOCK_SH, 1, 0)

    # -- keys and ids ---------------------------------------------------------------------------
    def host_key(self, key: int) -> int:
        if key == IPC_PRIVATE:
            return key
        mixed = ((key * _MIX) & 0xFFFFFFFF) ^ self.salt or self.salt  # never IPC_PRIVATE
        return mixed - (1 << 32) if mixed & 0x80000000 else mixed

    def check(self, kind: int, host_id: int) -> int:
        """`host_id` if it names one of the run's objects of `kind`, else EINVAL."""
        if (kind, host_id) not in self.known:
            self._reload()
            if (kind, host_id) not in self.known:
                raise SyscallError(errno.EINVAL)
        return host_id

    def guest_key(self, kind: int, host_id: int) -> int:
        return self.known.get((kind, host_id), 0)

    def get(self, kind: int, key: int, flags: int, host_get) -> int:
        """xxxget(2): `host_get(host key, flags)` is the host call (SyscallError on failure)."""
        if key == IPC_PRIVATE:
            with self._locked():
                self._reserve()
                host_id = host_get(IPC_PRIVATE, flags)
                self._add(kind, host_id, key)
            return host_id
        host_key = self.host_key(key)
        with self._locked():
            try:
                host_id = host_get(host_key, flags & ~(IPC_CREAT | IPC_EXCL))
            except SyscallError as error:
                if error.code != errno.ENOENT or not flags & IPC_CREAT:
                    raise
                self._reserve()
                host_id = host_get(host_key, flags | IPC_CREAT | IPC_EXCL)
                self._add(kind, host_id, key)
                return host_id
            if flags & IPC_CREAT and flags & IPC_EXCL:
                raise SyscallError(errno.EEXIST)
            self._reload()
            if (kind, host_id) not in self.known:
                raise SyscallError(errno.EACCES)  # a host program's object (see the docstring)
            return host_id

    def removed(self, kind: int, host_id: int) -> None:
        """The guest removed an object (IPC_RMID): it leaves the table."""
        with self._locked():
            for slot, entry in enumerate(self._entries()):
                if entry[:2] == (kind, host_id):
                    os.pwrite(self.fd, bytes(RECORD.size), slot * RECORD.size)
        self.known.pop((kind, host_id), None)

    # -- the end of a process -----------------------------------------------------------------
    def close(self) -> None:
        """This process ends: the last one of the run removes the objects left."""
        if not self._finalizer.alive:
            return
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, 0)
            fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
        except OSError:
            self._finalizer()
            return
        remove_listed(self.fd)
        self._finalizer()

    # -- the table ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self):
        fcntl.lockf(self.fd, fcntl.LOCK_EX, 1, 1)
        try:
            yield
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, 1)

    def _entries(self) -> list[tuple[int, int, int, int]]:
        return table_entries(self.fd)

    def _reload(self) -> list[tuple[int, int, int, int]]:
        entries = self._entries()
        self.known = {(kind, host_id): key for kind, host_id, key, _ in entries if kind}
        return entries

    def objects(self, kind: int) -> list[tuple[int, int, int]]:
        """(index, host id, guest key) of the run's objects of `kind`, by index."""
        return sorted((index, host_id, key) for entry_kind, host_id, key, index in self._reload() if entry_kind == kind)

    def _reserve(self) -> None:
        """ENOSPC once the run holds MAX_OBJECTS objects (called with the table locked)."""
        if sum(1 for entry in self._entries() if entry[0]) >= MAX_OBJECTS:
            raise SyscallError(errno.ENOSPC)

    def _add(self, kind: int, host_id: int, key: int) -> None:
        if os.pread(self.fd, 1, WATCHED)[:1] != b"\1":
            os.pwrite(self.fd, b"\1", WATCHED)
            start_watcher(self.fd)
        entries = self._entries()
        slot = next((index for index, entry in enumerate(entries) if not entry[0]), len(entries))
        used = {entry[3] for entry in entries if entry[0] == kind}
        index = next(index for index in range(MAX_OBJECTS + 1) if index not in used)
        os.pwrite(self.fd, RECORD.pack(kind, host_id, key, index), slot * RECORD.size)
        self.known[(kind, host_id)] = key


def table_entries(fd: int) -> list[tuple[int, int, int, int]]:
    """The records of the run's table `fd` (free ones too: kind 0)."""
    data = os.pread(fd, MAX_OBJECTS * RECORD.size, 0)
    return [RECORD.unpack_from(data, offset) for offset in range(0, len(data) - len(data) % RECORD.size, RECORD.size)]


def remove_listed(fd: int) -> None:
    """Remove every object the table `fd` lists, then empty it (an id removed is one the host may
    give another program's object later). With the run's liveness lock (byte 0) held exclusively."""
    for kind, host_id, _, _ in table_entries(fd):
        if kind in HOST_CTL:
            try:
                HOST_CTL[kind](host_id, IPC_RMID, None)
            except SyscallError:
                pass
    os.ftruncate(fd, 0)


def start_watcher(fd: int) -> None:
    """Start the run's watcher (see the module docstring): a grandchild, so that no guest's wait
    for its children ever meets it, in its own session, holding no fd but the table's."""
    child = os.fork()
    if child:
        os.waitpid(child, 0)
        return
    try:
        if os.fork() == 0:
            _watch(fd)
    finally:
        os._exit(0)


def _watch(fd: int) -> None:
    try:
        os.setsid()
        os.closerange(0, fd)
        os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))
        os.chdir("/")
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)  # granted once no process of the run holds its share
        remove_listed(fd)
    finally:
        os._exit(0)
