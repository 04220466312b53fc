"""The guest's name in /proc/self/comm, /proc/self/stat and /proc/self/status.

The host files describe the bdemu process, whose name is `python`; the guest's is the
basename execve gave it, or what the process's main thread set with PR_SET_NAME (busybox
names each applet it runs without an exec so). `ps`, `pidof` and `killall` read these files.
Every other field stays the host's: the pid is the guest's own, the rest is only approximate.

Other processes' files are the host's, so a forked child, wholly the guest's, also gives the
name to its host process (`publish`), as qemu-user passes PR_SET_NAME on. So does the first
process when a bdemu command runs it (cli.py); with the Emulator API it keeps its host name, as
it is the user's Python program.
"""
from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING

from .fs import VirtualFile
from .hostlibc import LIBC

PR_SET_NAME = 15

if TYPE_CHECKING:
    from .kernel import Kernel


def process_name(k: "Kernel") -> bytes:
    """The main thread's name (Linux shows the thread group leader's), else the program's."""
    leader = k.threads.threads.get(os.getpid())
    return (leader.name if leader is not None and leader.name else k.comm) or b"?"


def publish(k: "Kernel") -> None:
    """Name the host process as the guest's, where it is the guest's alone (`Kernel.publish_name`)."""
    if k.publish_name:
        LIBC.prctl(PR_SET_NAME, ctypes.c_char_p(process_name(k)), 0, 0, 0)


def _host(name: str) -> bytes:
    with open(f"/proc/self/{name}", "rb") as handle:
        return handle.read()


def stat_text(k: "Kernel") -> bytes:
    """/proc/self/stat with the name between its parentheses (it may itself hold `)`)."""
    text = _host("stat")
    start, end = text.find(b"("), text.rfind(b")")
    return text[:start + 1] + process_name(k) + text[end:]


def status_text(k: "Kernel") -> bytes:
    lines = _host("status").split(b"\n")
    return b"\n".join(b"Name:\t" + process_name(k) if line.startswith(b"Name:") else line for line in lines)


def install(k: "Kernel") -> None:
    k.vfs.add_node("/proc/self/comm", VirtualFile(lambda: process_name(k) + b"\n"))
    k.vfs.add_node("/proc/self/stat", VirtualFile(lambda: stat_text(k)))
    k.vfs.add_node("/proc/self/status", VirtualFile(lambda: status_text(k)))
