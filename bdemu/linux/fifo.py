"""Opening a FIFO without O_NONBLOCK: it blocks until the other end is opened too.

The host open waits in a thread, in slices, so a stop request, --timeout or a signal for the
guest still ends the wait. A signal gives the guest EINTR (or restarts the call), but the host
open keeps waiting (`Kernel.fifo_opens`) and the guest's next open of the same FIFO, in the
same mode, takes it over. Linux counts the interrupted opener as gone, so a writer arriving
meanwhile would wait for the retry; here it may complete and write first, its data waiting in
the FIFO. Cancelling the host open instead would need a momentary other end, which lets such
a writer complete, write and leave before the retry: its data lost, the retry waiting forever
(a shell's `(echo x > fifo) & read l < fifo` hung when SIGCHLD came during the open). An
open the guest never retries keeps its thread waiting until the process ends.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .signals import Interrupted

if TYPE_CHECKING:
    from .kernel import Kernel


@dataclass
class PendingOpen:
    """A host open of a FIFO running in its own thread; `outcome` gets "fd" or "error"."""

    thread: threading.Thread
    outcome: dict = field(default_factory=dict)


def open_fifo(k: "Kernel", host: str, flags: int, mode: int) -> int:
    key = _key(host, flags)
    pending = k.fifo_opens.pop(key, None) if key is not None else None
    if pending is None:
        pending = _start(k, host, flags, mode)
    try:
        while pending.thread.is_alive():
            pending.thread.join(k.wait_slice())
    except Interrupted:
        if key is not None:
            k.fifo_opens[key] = pending
            raise
        _cancel(k, host, pending)
        raise
    except BaseException:
        _cancel(k, host, pending)
        raise
    if "error" in pending.outcome:
        raise pending.outcome["error"]
    return pending.outcome["fd"]


def forget_after_fork(k: "Kernel") -> None:
    """In a forked child: the opening threads stayed in the parent; an fd one got is the parent's."""
    for pending in k.fifo_opens.values():
        if "fd" in pending.outcome:
            os.close(pending.outcome["fd"])
    k.fifo_opens.clear()


def _key(host: str, flags: int) -> tuple[int, int, int] | None:
    try:
        info = os.stat(host)
    except OSError:
        return None
    return info.st_dev, info.st_ino, flags & os.O_ACCMODE


def _start(k: "Kernel", host: str, flags: int, mode: int) -> PendingOpen:
    outcome: dict = {}

    def opener() -> None:
        try:
            outcome["fd"] = k.vfs.open_confined(host, flags, mode)
        except OSError as error:
            outcome["error"] = error

    thread = threading.Thread(target=opener, name="bdemu-fifo-open", daemon=True)
    thread.start()
    return PendingOpen(thread, outcome)


def _cancel(k: "Kernel", host: str, pending: PendingOpen) -> None:
    """The run ends: release the host open with a momentary other end of our own."""
    release = k.vfs.open_confined(host, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC, 0)
    pending.thread.join(5)
    os.close(release)
    if "fd" in pending.outcome:
        os.close(pending.outcome["fd"])
