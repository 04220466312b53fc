"""signalfd: a guest fd that reads the signals pending for the thread that reads it.

The signals stay bdemu's own (signals.py): a read takes the lowest pending
signal in the fd's mask (the reading thread's own, then the process's), as
sigtimedwait does, and returns it as a `struct signalfd_siginfo` (128 bytes,
the same on every ISA); guests block those signals so that no handler or
default action takes them first. For poll, select and epoll, which the host
answers, the fd's host side is an eventfd whose count is kept at 1 while one
of its signals is pending and at 0 otherwise: brought up to date whenever a
blocking call waits a slice (Kernel.wait_slice) and after each read, so a
signal from another process is seen within one slice (50 ms). A forked child
gets eventfds of its own, as its pending signals are its own.
"""
from __future__ import annotations

import errno
import os
import select
import struct
import weakref

from .errors import SyscallError
from .fds import OpenFile
from .files import new_fd_flags
from .registry import syscall
from .signals import bit, siginfo, take_waited

RECORD_SIZE = 128


class SignalFd:
    """The node behind a signalfd's guest fds: its mask and bdemu's own handle on the eventfd."""

    def __init__(self, mask: int, event_fd: int) -> None:
        self.mask = mask
        self.event_fd = event_fd
        weakref.finalize(self, os.close, event_fd)

    def pending(self, k) -> bool:
        state = k.signals
        return any(self.mask & bit(signal)
                   for signal in state.pending.keys() | state.threads.current.signal_pending.keys())

    def guest_read(self, k, count: int) -> bytes:
        if count < RECORD_SIZE:
            raise SyscallError(errno.EINVAL)
        state, records = k.signals, []
        while True:
            state.check_alarm()
            if state.arrived:
                state.take_arrivals()
            while len(records) < count // RECORD_SIZE:
                found = take_waited(state, self.mask)
                if found is None:
                    break
                signal, (code, value) = found
                records.append(_record(k, signal, code, value))
            sync(k)
            if records:
                return b"".join(records)
            if not os.get_blocking(self.event_fd):
                raise SyscallError(errno.EAGAIN)
            k.wait_readable(self.event_fd)


def sync(k) -> None:
    """Each signalfd's eventfd readable exactly while one of its signals is pending."""
    for node in list(k.signalfds):
        ready = node.pending(k)
        if ready != bool(select.select([node.event_fd], [], [], 0)[0]):
            if ready:
                os.eventfd_write(node.event_fd, 1)
            else:
                os.eventfd_read(node.event_fd)


def after_fork(k) -> None:
    """In a forked child: fresh eventfds, so that parent and child do not set each other's."""
    for node in list(k.signalfds):
        fresh = os.eventfd(0, os.EFD_CLOEXEC | (0 if os.get_blocking(node.event_fd) else os.EFD_NONBLOCK))
        for _, file in k.fds.items():
            if file.node is node:
                os.dup2(fresh, file.host_fd, inheritable=False)
        os.dup2(fresh, node.event_fd, inheritable=False)
        os.close(fresh)


def _record(k, signal: int, code: int, value) -> bytes:
    """A `struct signalfd_siginfo` from the siginfo_t the guest's handler would get."""
    info, end = siginfo(k, signal, code, value), k.byteorder
    layout = k.arch.signal_frame
    code_at = layout.siginfo_code if layout is not None else 8
    fields = 16 if k.word == 8 else 12

    def number(offset: int, size: int = 4, signed: bool = False) -> int:
        return int.from_bytes(info[offset:offset + size], end, signed=signed)

    code = number(code_at, signed=True)
    errno_value = number(12 - code_at, signed=True)  # si_errno is the other one of bytes 4..11
    pid = uid = tid = overrun = integer = pointer = address = 0
    if code == k.signals.timer_code:
        tid, overrun = number(fields), number(fields + 4)
        integer, pointer = number(fields + 8, signed=True), number(fields + 8, k.word)
    elif isinstance(value, int) and value and code > 0:  # a fault: si_addr
        address = number(fields, k.word)
    else:
        pid, uid = number(fields), number(fields + 4)
        integer, pointer = number(fields + 8, signed=True), number(fields + 8, k.word)
    return struct.pack(("<" if end == "little" else ">") + "IiiIIiIIIIiiQQQQHHiQI28x", signal, errno_value,
                       code, pid, uid, 0, tid, 0, overrun, 0, 0, integer, pointer, 0, 0, address, 0, 0, 0, 0, 0)


def _signalfd(k, fd: int, address: int, size: int, flags: int) -> int:
    state = k.signals
    cloexec, host_flags = new_fd_flags(k, flags)
    if size != state.sigset_size:
        raise SyscallError(errno.EINVAL)
    mask = state.read_set(k, address) & ~state.unblockable
    fd = k.signed32(fd)
    if fd != -1:
        node = k.fds.get(fd).node
        if not isinstance(node, SignalFd):
            raise SyscallError(errno.EINVAL)
        node.mask = mask
        sync(k)
        return fd
    k.fds.lowest_free()  # EMFILE before anything is made
    host_fd = os.eventfd(0, host_flags)
    node = SignalFd(mask, os.dup(host_fd))
    k.signalfds.add(node)
    installed = k.fds.install(OpenFile(host_fd, "anon_inode:[signalfd]", cloexec, node))
    sync(k)
    return installed


@syscall("fd", "ptr", "size", "hex")
def sys_signalfd4(k, fd, mask, size, flags):
    return _signalfd(k, fd, mask, size, flags)


@syscall("fd", "ptr", "size")
def sys_signalfd(k, fd, mask, size):
    return _signalfd(k, fd, mask, size, 0)
