"""The documents gdb reads with `qXfer:OBJECT:read`: the target description, the thread list,
the program's path; served in windows (`m` more follows, `l` the last one)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

from .packets import escape

if TYPE_CHECKING:
    from ..cpu.gdb import GdbTarget
    from ..emulator import Emulator


def xfer(text: str, document: Callable[[str, str], bytes | None]) -> bytes:
    """qXfer:OBJECT:read:ANNEX:OFFSET,LENGTH -> m<chunk> (more follows) or l<chunk> (the end);
    `document(obj, annex)` gives the whole document (None: no such one)."""
    parts = text.split(":")
    if len(parts) != 5 or parts[2] != "read":
        return b""
    data = document(parts[1], parts[3])
    if data is None:
        return b"E00"
    offset, length = (int(x, 16) for x in parts[4].split(","))
    chunk = data[offset:offset + length]
    return (b"l" if offset + length >= len(data) else b"m") + escape(chunk)


def program_path(emu: "Emulator") -> str:
    """The running program as the guest names it (/proc/self/exe), which vFile resolves; its
    host path if that name does not lead to it (a program outside --rootfs)."""
    guest = emu.kernel.exe_guest_path
    try:
        if guest and os.path.isfile(emu.vfs.host_path(guest)):
            return guest
    except Exception:
        pass
    return os.path.abspath(emu.path)


def threads_xml(emu: "Emulator", tids: list[int]) -> bytes:
    threads, comm = emu.kernel.threads, emu.kernel.comm
    entries = []
    for tid in tids:
        name = (threads.threads[tid].name or comm).decode("utf-8", "replace")
        name = name.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
        entries.append(f'<thread id="{tid:x}" name="{name}"/>')
    return ("<threads>" + "".join(entries) + "</threads>").encode()


def target_xml(target: "GdbTarget") -> bytes:
    lines = ['<?xml version="1.0"?>', '<!DOCTYPE target SYSTEM "gdb-target.dtd">', "<target>",
             f"<architecture>{target.architecture}</architecture>", "<osabi>GNU/Linux</osabi>"]
    for name, registers in target.features:
        lines.append(f'<feature name="{name}">')
        for r in registers:
            number = "" if r.regnum is None else f' regnum="{r.regnum}"'
            lines.append(f'<reg name="{r.name}" bitsize="{r.bits}" type="{r.type}"{number}/>')
        lines.append("</feature>")
    lines.append("</target>")
    return "\n".join(lines).encode()
