"""The run's IPC namespace seen whole: IPC_INFO, the *_INFO and *_STAT commands, /proc/sysvipc.

`ipcs` lists objects in one of two ways: it reads /proc/sysvipc/{shm,sem,msg}
(util-linux), or it asks SHM_INFO (SEM_INFO, MSG_INFO) for the highest index
in use and walks the indices with SHM_STAT (busybox, util-linux without
/proc). Both show only the run's objects (ipcns.py), each at its index among
the run's objects of its kind. The limits are the host's, which enforces
them, except that the run holds at most ipcns.MAX_OBJECTS objects of a kind.

What bdemu plays is a 64-bit kernel, as the rest of the IPC layer does: a
32-bit guest gets the compat answers (shminfo clamped to INT_MAX) and
/proc/sysvipc in the 64-bit kernel's columns.
"""
from __future__ import annotations

import ctypes
import errno
import mmap

from .errors import SyscallError
from .fs import VirtualFile
from .ipcns import HOST_CTL, MAX_OBJECTS, MSG, NAMES, SEM, SHM, host_stat
from .ipcstructs import IPC_INFO, guest_info_layout, guest_layout, host_info_layout, host_layout

#: Per kind: its *_STAT, *_INFO and *_STAT_ANY commands.
STAT, INFO, STAT_ANY = {SHM: 13, SEM: 18, MSG: 11}, {SHM: 14, SEM: 19, MSG: 12}, {SHM: 15, SEM: 20, MSG: 13}
INT_MAX = 0x7FFFFFFF
HOST_PAGE = mmap.PAGESIZE  # the host kernel's, in which SHM_INFO counts
#: The host's index of an id: its low 15 bits, or 24 with the kernel's ipcmni_extend.
HOST_INDEX_MASKS = (0x7FFF, 0xFFFFFF)
#: /proc/sysvipc/<kind>: the header and each object's line, as a 64-bit Linux prints them.
PROC = {
    SHM: ("       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid"
          "      atime      dtime      ctime                   rss                  swap\n",
          "{key:10d} {id:10d}  {mode:4o} {segsz:21d} {cpid:5d} {lpid:5d}  {nattch:5d} {uid:5d} {gid:5d}"
          " {cuid:5d} {cgid:5d} {atime:10d} {dtime:10d} {ctime:10d} {rss:21d} {swap:21d}\n"),
    SEM: ("       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n",
          "{key:10d} {id:10d}  {mode:4o} {nsems:10d} {uid:5d} {gid:5d} {cuid:5d} {cgid:5d} {otime:10d}"
          " {ctime:10d}\n"),
    MSG: ("       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime"
          "      rtime      ctime\n",
          "{key:10d} {id:10d}  {mode:4o}  {cbytes:10d} {qnum:10d} {lspid:5d} {lrpid:5d} {uid:5d} {gid:5d}"
          " {cuid:5d} {cgid:5d} {stime:10d} {rtime:10d} {ctime:10d}\n"),
}


def is_stat(kind: int, command: int) -> bool:
    return command in (STAT[kind], STAT_ANY[kind])


def is_info(kind: int, command: int) -> bool:
    return command in (IPC_INFO, INFO[kind])


def stat_any(kind: int, host_id: int) -> dict[str, int]:
    """The host's IPC_STAT of an object, or its *_STAT_ANY when the caller may not read it."""
    try:
        return host_stat(kind, host_id)
    except SyscallError as error:
        if error.code != errno.EACCES:
            raise
    layout = host_layout(NAMES[kind])
    buffer = ctypes.create_string_buffer(layout.size)
    for mask in HOST_INDEX_MASKS:
        try:
            if HOST_CTL[kind](host_id & mask, STAT_ANY[kind], buffer) == host_id:
                return layout.unpack(buffer.raw)
        except SyscallError:
            pass
    raise SyscallError(errno.EACCES)


def objects_stats(k, kind: int) -> list[dict[str, int]]:
    """IPC_STAT's values, with `id` and the guest's `key`, of each of the run's objects of `kind`
    by index (one removed meanwhile is left out)."""
    found = []
    for _, host_id, key in k.ipc.objects(kind):
        try:
            values = stat_any(kind, host_id)
        except SyscallError:
            continue
        values.update(id=host_id, key=key)
        found.append(values)
    return found


def do_stat(k, kind: int, command: int, index: int, address: int) -> int:
    """SHM_STAT (SEM_STAT, MSG_STAT): the object at `index` in the run's table of its kind, in
    its *id_ds; returns its id. The _ANY forms skip the read permission check."""
    index = k.signed32(index)
    host_id, key = next(((host_id, key) for at, host_id, key in k.ipc.objects(kind) if at == index),
                        (None, None))
    if host_id is None:
        raise SyscallError(errno.EINVAL)
    values = stat_any(kind, host_id) if command == STAT_ANY[kind] else host_stat(kind, host_id)
    values["key"] = key
    k.write(address, guest_layout(k, NAMES[kind]).pack(values))
    return host_id


def _host_info(kind: int, name: str) -> dict[str, int]:
    layout = host_info_layout(name)
    buffer = ctypes.create_string_buffer(layout.size)
    HOST_CTL[kind](0, IPC_INFO, buffer)
    return layout.unpack(buffer.raw)


def _shm_info(k, command: int, stats: list[dict[str, int]]) -> tuple[str, dict[str, int]]:
    if command == IPC_INFO:
        values = _host_info(SHM, "shminfo")
        values["shmmni"] = min(values["shmmni"], MAX_OBJECTS)
        if k.word == 4:
            values = {name: min(value, INT_MAX) for name, value in values.items()}
        return "shminfo", values
    resident = host_shm_usage()
    return "shm_info", {
        "used_ids": len(stats),
        "shm_tot": sum(-(-values["segsz"] // HOST_PAGE) for values in stats),
        "shm_rss": sum(resident.get(values["id"], (0, 0))[0] for values in stats) // HOST_PAGE,
        "shm_swp": sum(resident.get(values["id"], (0, 0))[1] for values in stats) // HOST_PAGE}


def _sem_info(k, command: int, stats: list[dict[str, int]]) -> tuple[str, dict[str, int]]:
    values = _host_info(SEM, "seminfo")
    values["semmni"] = min(values["semmni"], MAX_OBJECTS)
    if command != IPC_INFO:
        values["semusz"], values["semaem"] = len(stats), sum(values["nsems"] for values in stats)
    return "seminfo", values


def _msg_info(k, command: int, stats: list[dict[str, int]]) -> tuple[str, dict[str, int]]:
    values = _host_info(MSG, "msginfo")
    values["msgmni"] = min(values["msgmni"], MAX_OBJECTS)
    if command != IPC_INFO:
        values["msgpool"] = len(stats)
        values["msgmap"] = min(sum(values["qnum"] for values in stats), INT_MAX)
        values["msgtql"] = min(sum(values["cbytes"] for values in stats), INT_MAX)
    return "msginfo", values


INFO_OF = {SHM: _shm_info, SEM: _sem_info, MSG: _msg_info}


def do_info(k, kind: int, command: int, address: int) -> int:
    """IPC_INFO: the namespace's limits; SHM_INFO (SEM_INFO, MSG_INFO): with its usage. Returns
    the highest index in use (0 when none is)."""
    objects = k.ipc.objects(kind)
    stats = objects_stats(k, kind) if command != IPC_INFO else []
    name, values = INFO_OF[kind](k, command, stats)
    k.write(address, guest_info_layout(k, name).pack(values))
    return objects[-1][0] if objects else 0


def host_shm_usage() -> dict[int, tuple[int, int]]:
    """Host segment id -> (resident bytes, swapped bytes), from the host's /proc/sysvipc/shm
    (empty if it cannot be read)."""
    try:
        with open("/proc/sysvipc/shm") as table:
            header, *lines = table.read().splitlines()
        columns = header.split()
        at = columns.index("shmid"), columns.index("rss"), columns.index("swap")
    except (OSError, ValueError):
        return {}
    usage = {}
    for line in lines:
        fields = line.split()
        try:
            usage[int(fields[at[0]])] = int(fields[at[1]]), int(fields[at[2]])
        except (IndexError, ValueError):
            continue
    return usage


def proc_text(k, kind: int) -> bytes:
    """/proc/sysvipc/<kind>: the run's objects by index."""
    header, line = PROC[kind]
    usage = host_shm_usage() if kind == SHM else {}
    rows = []
    for values in objects_stats(k, kind):
        values["rss"], values["swap"] = usage.get(values["id"], (0, 0))
        values["key"] = k.signed32(values["key"] & 0xFFFFFFFF)
        rows.append(line.format(**values))
    return (header + "".join(rows)).encode()


def proc_nodes(k) -> list[tuple[str, VirtualFile]]:
    """The /proc/sysvipc files, for the kernel's virtual filesystem."""
    return [(f"/proc/sysvipc/{NAMES[kind]}", VirtualFile(lambda kind=kind: proc_text(k, kind)))
            for kind in (SHM, SEM, MSG)]
