"""System V IPC structures as data: `ipc64_perm`, `shmid64_ds`, `semid64_ds`, `msqid64_ds`.

Each layout is a list of (field, kind) in order, kinds being struct codes
(`i`, `I`, `H`) or `W` for an unsigned long of the ISA's word size; fields
are naturally aligned, unnamed ones are padding. A time field `x` may come
with `x_high` (its upper 32 bits, on 32-bit ISAs since Linux 5.1). The
families, named by `Arch.variants["ipc"]` (default: the word size), are:

- "64": the generic 64-bit layouts (AArch64, RISC-V 64);
- "x86_64": as "64", but `semid64_ds` has a word of padding after each time;
- "32": the generic 32-bit ones (i386, ARM), each time followed by its high word;
- "mips32": MIPS o32 keeps the high words after the other fields (16-bit in
  `shmid64_ds`).

The host's own layout is one of these too (`HOST`), used for the host's libc calls.
The *_INFO structures (`INFO_LAYOUTS`: `shminfo64`, `shm_info`, `seminfo`,
`msginfo`) have the same fields on every ISA, sized by its word.
"""
from __future__ import annotations

import platform
import struct
import sys

IPC_PRIVATE = 0
IPC_CREAT, IPC_EXCL, IPC_NOWAIT = 0o1000, 0o2000, 0o4000
IPC_RMID, IPC_SET, IPC_STAT, IPC_INFO = 0, 1, 2, 3
#: Ored into a *ctl command by 32-bit callers of the `ipc` multiplexer and ARM's *ctl calls:
#: "the 64-bit layouts"; without it they would be the pre-2.4 layouts, which bdemu does not offer.
IPC_64 = 0x100

PERM = (("key", "i"), ("uid", "I"), ("gid", "I"), ("cuid", "I"), ("cgid", "I"), ("mode", "I"),
        ("seq", "H"), ("", "H"), ("", "W"), ("", "W"))


def _times(names: tuple[str, ...], high: bool) -> tuple[tuple[str, str], ...]:
    return tuple(field for name in names for field in ((name, "W"),) + (((name + "_high", "W"),) if high else ()))


def _shm(high: bool) -> tuple:
    return PERM + (("segsz", "W"),) + _times(("atime", "dtime", "ctime"), high) + (
        ("cpid", "i"), ("lpid", "i"), ("nattch", "W"), ("", "W"), ("", "W"))


def _msg(high: bool) -> tuple:
    return PERM + _times(("stime", "rtime", "ctime"), high) + (
        ("cbytes", "W"), ("qnum", "W"), ("qbytes", "W"), ("lspid", "i"), ("lrpid", "i"), ("", "W"), ("", "W"))


LAYOUTS: dict[str, dict[str, tuple]] = {
    "64": {"shm": _shm(False), "msg": _msg(False),
           "sem": PERM + (("otime", "W"), ("ctime", "W"), ("nsems", "W"), ("", "W"), ("", "W"))},
    "x86_64": {"shm": _shm(False), "msg": _msg(False),
               "sem": PERM + (("otime", "W"), ("", "W"), ("ctime", "W"), ("", "W"), ("nsems", "W"),
                              ("", "W"), ("", "W"))},
    "32": {"shm": _shm(True), "msg": _msg(True),
           "sem": PERM + _times(("otime", "ctime"), True) + (("nsems", "W"), ("", "W"), ("", "W"))},
    "mips32": {"shm": PERM + (("segsz", "W"), ("atime", "W"), ("dtime", "W"), ("ctime", "W"), ("cpid", "i"),
                              ("lpid", "i"), ("nattch", "W"), ("atime_high", "H"), ("dtime_high", "H"),
                              ("ctime_high", "H"), ("", "H")),
               "msg": _msg(True),
               "sem": PERM + (("otime", "W"), ("ctime", "W"), ("nsems", "W"), ("otime_high", "W"),
                              ("ctime_high", "W"))},
}

_UNUSED = (("", "W"),) * 4
INFO_LAYOUTS: dict[str, tuple] = {
    "shminfo": tuple((name, "W") for name in ("shmmax", "shmmin", "shmmni", "shmseg", "shmall")) + _UNUSED,
    "shm_info": (("used_ids", "i"),) + tuple((name, "W") for name in (
        "shm_tot", "shm_rss", "shm_swp", "swap_attempts", "swap_successes")),
    "seminfo": tuple((name, "i") for name in ("semmap", "semmni", "semmns", "semmnu", "semmsl", "semopm",
                                              "semume", "semusz", "semvmx", "semaem")),
    "msginfo": tuple((name, "i") for name in ("msgpool", "msgmap", "msgmax", "msgmnb", "msgmni", "msgssz",
                                              "msgtql")) + (("msgseg", "H"),),
}

#: The host's family (its libc passes the kernel's structures through on 64-bit hosts).
HOST_FAMILY = {"x86_64": "x86_64"}.get(platform.machine(), "64")


class Layout:
    """One structure of one family, compiled for a word size and byte order."""

    def __init__(self, fields: tuple, word: int, byteorder: str) -> None:
        code, offset, self.names = "<" if byteorder == "little" else ">", 0, []
        for name, kind in fields:
            kind = ("Q" if word == 8 else "I") if kind == "W" else kind
            size = struct.calcsize(kind)
            if offset % size:
                code += f"{size - offset % size}x"
                offset += size - offset % size
            code += kind
            offset += size
            self.names.append(name)
        if offset % word:  # the struct's own alignment
            code += f"{word - offset % word}x"
        self.struct = struct.Struct(code)
        self.size = self.struct.size
        self._masks = [(1 << (8 * struct.calcsize(c))) - 1 for c in code[1:] if c.isalpha() and c != "x"]
        self._signed = [c == "i" for c in code[1:] if c.isalpha() and c != "x"]

    def pack(self, values: dict[str, int]) -> bytes:
        out = []
        for name, mask, signed in zip(self.names, self._masks, self._signed):
            if name.endswith("_high"):
                value = values.get(name[:-5], 0) >> 32
            else:
                value = values.get(name, 0) if name else 0
            value &= mask
            if signed and value > mask >> 1:
                value -= mask + 1
            out.append(value)
        return self.struct.pack(*out)

    def unpack(self, data: bytes) -> dict[str, int]:
        values = dict(zip(self.names, self.struct.unpack(data[:self.size])))
        for name in [n for n in values if n.endswith("_high")]:
            values[name[:-5]] |= values.pop(name) << 32
        values.pop("", None)
        return values


def layout(kind: str, family: str, word: int, byteorder: str) -> Layout:
    return Layout(LAYOUTS[family][kind], word, byteorder)


def guest_layout(k, kind: str) -> Layout:
    family = k.arch.variants.get("ipc", "64" if k.word == 8 else "32")
    return layout(kind, family, k.word, k.byteorder)


def host_layout(kind: str) -> Layout:
    return layout(kind, HOST_FAMILY, struct.calcsize("l"), sys.byteorder)


def guest_info_layout(k, name: str) -> Layout:
    return Layout(INFO_LAYOUTS[name], k.word, k.byteorder)


def host_info_layout(name: str) -> Layout:
    return Layout(INFO_LAYOUTS[name], struct.calcsize("l"), sys.byteorder)
