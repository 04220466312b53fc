"""System V shared memory: shmget, shmat, shmdt, shmctl, on the host's segments.

A segment is a host segment (see ipcns.py for how the run's are kept apart
from the host's). shmat attaches it in bdemu's own address space (libc shmat)
and maps those host pages into Unicorn with `mem_map_ptr`, as MAP_SHARED
mappings are (shared.py): a forked guest process inherits the host
attachment, so parent, children and any other process attached see each
other's stores at once. The host attachment goes (shmdt) when the last guest
region using it is unmapped: shmdt, munmap, exec or exit. A segment removed
with IPC_RMID lives until its last detach, as on Linux; /proc/self/maps lists
an attachment as `/SYSV<key> (deleted)`, shared (`s`).

A read-only attachment (SHM_RDONLY) is read-only in the host too, so mprotect
cannot make it writable (EACCES, as on Linux).
"""
from __future__ import annotations

import ctypes
import errno

from ..memory import PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, OutOfMemory, page_up
from . import ipcinfo
from .errors import SyscallError
from .hostlibc import LIBC, checked
from .ipcns import SHM, common_ctl, host_stat, versioned
from .ipcstructs import IPC_INFO, IPC_RMID, IPC_SET, IPC_STAT
from .registry import syscall

SHM_RDONLY, SHM_RND, SHM_REMAP, SHM_EXEC = 0o10000, 0o20000, 0o40000, 0o100000
SHM_LOCK, SHM_UNLOCK = 11, 12
#: Commands that take a structure, and so the IPC_64 flag on the versioned entry points.
STRUCT_COMMANDS = (IPC_STAT, IPC_SET, IPC_INFO, 13, 14, 15)  # SHM_STAT, SHM_INFO, SHM_STAT_ANY
MAP_FAILED = ctypes.c_void_p(-1).value


class ShmAttachment:
    """A host attachment of a segment, detached (shmdt) when the last guest region using it goes."""

    def __init__(self, host_id: int, read_only: bool) -> None:
        self.address = None
        address = LIBC.shmat(host_id, None, SHM_RDONLY if read_only else 0)
        if address in (None, MAP_FAILED):
            raise SyscallError(ctypes.get_errno() or errno.EINVAL)
        self.address, self.read_only = address, read_only

    def __del__(self) -> None:
        if self.address is not None:
            LIBC.shmdt(self.address)


@syscall("int", "size", "hex")
def sys_shmget(k, key, size, flags):
    return k.ipc.get(SHM, k.signed32(key), k.signed32(flags),
                     lambda host_key, host_flags: checked(LIBC.shmget(host_key, size, host_flags)))


def do_shmat(k, shmid: int, address: int, flags: int) -> int:
    host_id = k.ipc.check(SHM, k.signed32(shmid))
    shmlba = int(k.arch.variants.get("shmlba", PAGE))
    if address % shmlba:
        if flags & SHM_RND:
            address -= address % shmlba
            if not address and flags & SHM_REMAP:
                raise SyscallError(errno.EINVAL)
        elif address % PAGE:
            raise SyscallError(errno.EINVAL)
    size = page_up(host_stat(SHM, host_id)["segsz"])
    space = k.emu.memory
    if address:
        if address + size > k.arch.word_mask:
            raise SyscallError(errno.EINVAL)
        if not space.is_free(address, address + size) and (not flags & SHM_REMAP or any(
                r.device for r in space.regions if r.start < address + size and address < r.end)):
            raise SyscallError(errno.EINVAL)
        k.shared_files.release(address, address + size)
    else:
        try:
            address = space.find_free(size)
        except OutOfMemory:
            raise SyscallError(errno.ENOMEM) from None
    read_only = bool(flags & SHM_RDONLY)
    attachment = ShmAttachment(host_id, read_only)
    perms = PROT_READ | (0 if read_only else PROT_WRITE) | (PROT_EXEC if flags & SHM_EXEC else 0)
    name = f"/SYSV{k.ipc.guest_key(SHM, host_id) & 0xFFFFFFFF:08x} (deleted)"
    try:
        space.map_host(address, size, perms, attachment, attachment.address, name)
    except OutOfMemory:
        raise SyscallError(errno.ENOMEM) from None
    return address


@syscall("int", "ptr", "hex")
def sys_shmat(k, shmid, address, flags):
    return do_shmat(k, shmid, address, flags)


@syscall("ptr")
def sys_shmdt(k, address):
    space = k.emu.memory
    region = space.find(address)
    if address % PAGE or region is None or region.start != address or not isinstance(region.host, ShmAttachment):
        raise SyscallError(errno.EINVAL)
    attachment = region.host
    for piece in [r for r in space.regions if r.host is attachment]:
        space.unmap(piece.start, piece.end - piece.start)
    return 0


def shmctl(k, shmid: int, command: int, address: int) -> int:
    shmid = k.signed32(shmid)
    if ipcinfo.is_info(SHM, command):
        return ipcinfo.do_info(k, SHM, command, address)
    if ipcinfo.is_stat(SHM, command):
        return ipcinfo.do_stat(k, SHM, command, shmid, address)
    if shmid < 0 or command not in (IPC_STAT, IPC_SET, IPC_RMID, SHM_LOCK, SHM_UNLOCK):
        raise SyscallError(errno.EINVAL)
    host_id = k.ipc.check(SHM, shmid)
    if command in (SHM_LOCK, SHM_UNLOCK):
        checked(LIBC.shmctl(host_id, command, None))
        return 0
    return common_ctl(k, SHM, host_id, command, address)


@syscall("int", "int", "ptr")
def sys_shmctl(k, shmid, command, address):
    return shmctl(k, shmid, k.signed32(command), address)


@syscall("int", "int", "ptr")
def sys_old_shmctl(k, shmid, command, address):
    """ARM's shmctl and the `ipc` multiplexer's: 64-bit layouts only with IPC_64."""
    return shmctl(k, shmid, versioned(k, command, STRUCT_COMMANDS), address)
