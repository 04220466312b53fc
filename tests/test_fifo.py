"""Opening a FIFO blocks until its other end opens; a signal must not lose what a writer sends."""
from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import pytest

from bdemu.linux.fifo import open_fifo
from bdemu.linux.signals import Interrupted


def _kernel(interrupt_first: bool) -> SimpleNamespace:
    """What open_fifo uses of the Kernel: its first wait slice gives way to a signal if asked."""
    calls = []

    def wait_slice(remaining=None):
        calls.append(1)
        if interrupt_first and len(calls) == 1:
            raise Interrupted()
        return 0.05

    vfs = SimpleNamespace(open_confined=lambda host, flags, mode: os.open(host, flags, mode))
    return SimpleNamespace(vfs=vfs, wait_slice=wait_slice, fifo_opens={})


def test_a_writer_arriving_after_an_interrupted_open_reaches_the_retry(tmp_path):
    """A shell's `(echo x > fifo) & read l < fifo` hung under bdemu: SIGCHLD interrupted the
    read side's open, which bdemu cancelled by opening the FIFO itself for a moment; the writer
    slipped through then, wrote and left, its data lost, and the retried open waited forever.
    The interrupted host open now keeps waiting and the retry takes it over."""
    path = str(tmp_path / "fifo")
    os.mkfifo(path)
    k = _kernel(interrupt_first=True)
    with pytest.raises(Interrupted):
        open_fifo(k, path, os.O_RDONLY | os.O_CLOEXEC, 0)

    def writer() -> None:
        fd = os.open(path, os.O_WRONLY)
        os.write(fd, b"through the fifo\n")
        os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    thread.join(10)
    try:
        assert not thread.is_alive(), "the writer found no reader: the interrupted open was dropped"
        fd = open_fifo(k, path, os.O_RDONLY | os.O_CLOEXEC, 0)
        assert os.read(fd, 100) == b"through the fifo\n"
        os.close(fd)
        assert k.fifo_opens == {}
    finally:
        if thread.is_alive():  # release the writer
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))


def test_an_uninterrupted_open_waits_for_the_other_end(tmp_path):
    path = str(tmp_path / "fifo")
    os.mkfifo(path)
    threading.Timer(0.2, lambda: os.close(os.open(path, os.O_WRONLY))).start()
    fd = open_fifo(_kernel(interrupt_first=False), path, os.O_RDONLY | os.O_CLOEXEC, 0)
    assert os.read(fd, 10) == b""  # the writer came and went
    os.close(fd)
