"""Binary layouts of the kernel structures bdemu writes into guest memory.

Layouts that differ per ISA are selected by the name in `Arch.stat_layout`
(and the word size), so no ISA test appears here.
"""
from __future__ import annotations

import os
import stat as statmod
import struct


def _stat_x86_64(st: os.stat_result, end: str) -> bytes:
    return struct.pack(end + "QQQIIIIQqqqqqqqqq24x", st.st_dev, st.st_ino, st.st_nlink, st.st_mode,
                       st.st_uid, st.st_gid, 0, st.st_rdev, st.st_size, st.st_blksize, st.st_blocks,
                       *_times(st))


def _stat_generic64(st: os.stat_result, end: str) -> bytes:
    return struct.pack(end + "QQIIIIQQqiiqqQqQqQ8x", st.st_dev, st.st_ino, st.st_mode, st.st_nlink,
                       st.st_uid, st.st_gid, st.st_rdev, 0, st.st_size, st.st_blksize, 0, st.st_blocks,
                       *_times(st))


def _stat64_i386_arm(st: os.stat_result, end: str) -> bytes:
    """`struct stat64` of i386 and ARM EABI (96 bytes)."""
    return struct.pack(end + "Q4xIIIIIQ4xqIqIIIIII" + "Q", st.st_dev, st.st_ino & 0xFFFFFFFF,
                       st.st_mode, st.st_nlink, st.st_uid, st.st_gid, st.st_rdev, st.st_size,
                       st.st_blksize, st.st_blocks,
                       *[v & 0xFFFFFFFF for v in _times(st)], st.st_ino)


def _stat64_mips(st: os.stat_result, end: str) -> bytes:
    """`struct stat64` of MIPS o32 (104 bytes)."""
    atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns = [v & 0xFFFFFFFF for v in _times(st)]
    return struct.pack(end + "I12xQIIIII12xqIIIIIIII4xq", st.st_dev & 0xFFFFFFFF, st.st_ino, st.st_mode,
                       st.st_nlink, st.st_uid, st.st_gid, st.st_rdev & 0xFFFFFFFF, st.st_size,
                       atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns, st.st_blksize, 0,
                       st.st_blocks)


def _times(st: os.stat_result) -> tuple[int, ...]:
    nanos = [(getattr(st, f"st_{t}time_ns") or 0) % 10**9 for t in "amc"]
    return (int(st.st_atime), nanos[0], int(st.st_mtime), nanos[1], int(st.st_ctime), nanos[2])


STAT_LAYOUTS = {
    "x86_64": _stat_x86_64,
    "generic64": _stat_generic64,
    "stat64": _stat64_i386_arm,
    "stat64_mips": _stat64_mips,
}


def pack_stat(layout: str, st: os.stat_result, byteorder: str) -> bytes:
    return STAT_LAYOUTS[layout](st, "<" if byteorder == "little" else ">")


def pack_statx(st: os.stat_result, byteorder: str) -> bytes:
    end = "<" if byteorder == "little" else ">"
    stamp = end + "qI4x"

    def ts(seconds: float, nanos: int) -> bytes:
        return struct.pack(stamp, int(seconds), nanos % 10**9)

    head = struct.pack(end + "IIQIIIH2xQQQQ", 0x7FF, st.st_blksize, 0, st.st_nlink, st.st_uid,
                       st.st_gid, st.st_mode, st.st_ino, st.st_size, st.st_blocks, 0)
    times = (ts(st.st_atime, st.st_atime_ns) + ts(0, 0) + ts(st.st_ctime, st.st_ctime_ns)
             + ts(st.st_mtime, st.st_mtime_ns))
    devs = struct.pack(end + "IIII", os.major(st.st_rdev), os.minor(st.st_rdev),
                       os.major(st.st_dev), os.minor(st.st_dev))
    data = head + times + devs
    return data + bytes(256 - len(data))


def pack_words(values, word_size: int, byteorder: str, signed: bool = False) -> bytes:
    return b"".join(v.to_bytes(word_size, byteorder, signed=signed) for v in values)


def dirent64(ino: int, offset: int, kind: int, name: bytes, byteorder: str) -> bytes:
    end = "<" if byteorder == "little" else ">"
    reclen = (19 + len(name) + 1 + 7) & ~7
    return struct.pack(end + "QqHB", ino, offset, reclen, kind) + name + bytes(reclen - 19 - len(name))


def dirent_type(mode: int) -> int:
    """DT_* for a stat mode."""
    for test, value in ((statmod.S_ISREG, 8), (statmod.S_ISDIR, 4), (statmod.S_ISLNK, 10),
                        (statmod.S_ISCHR, 2), (statmod.S_ISBLK, 6), (statmod.S_ISFIFO, 1),
                        (statmod.S_ISSOCK, 12)):
        if test(mode):
            return value
    return 0


def utsname(machine: str) -> bytes:
    uname = os.uname()
    fields = ["Linux", uname.nodename, "6.1.0-bdemu", "#1 SMP bdemu", machine, "(none)"]
    return b"".join(f.encode()[:64].ljust(65, b"\0") for f in fields)
