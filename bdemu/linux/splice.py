"""Transfers between fds: sendfile, copy_file_range, splice, tee, vmsplice.

Every guest fd is a host fd (a virtual file is a memfd), so the host calls do the
work and the host kernel gives Linux's errors (EINVAL for a pipe given to
copy_file_range or a file to tee, ESPIPE for an offset on a pipe, EBADF for the
wrong access mode). The `loff_t *` offsets are guest memory: read before, the
advanced value written back after. A blocking wait on a pipe or socket happens
here, in slices (Kernel.wait_readable/wait_writable), and the host call itself
never blocks (SPLICE_F_NONBLOCK), so --timeout, Ctrl-C and the guest's signals
end it as they end `read`, and other guest threads run meanwhile.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import stat

from .errors import SyscallError
from .files import MAX_IO, _iovecs, gather_vector, read_vector, ready_now, write_data
from .hostlibc import LIBC
from .registry import syscall

SENDFILE_CHUNK = 1 << 20
SPLICE_F_MOVE, SPLICE_F_NONBLOCK, SPLICE_F_MORE, SPLICE_F_GIFT = 1, 2, 4, 8
SPLICE_FLAGS = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | SPLICE_F_GIFT
#: Seconds to wait before trying again when both ends polled ready but the host still said EAGAIN.
RETRY = 0.001


def _read_offset(k, address: int) -> int | None:
    """A `loff_t *` argument: None for NULL (the fd's own position), else the value there."""
    if not address:
        return None
    return int.from_bytes(k.read(address, 8), k.byteorder, signed=True)


def _advance(k, address: int, offset: int | None, done: int) -> None:
    if offset is not None:
        k.write(address, (offset + done).to_bytes(8, k.byteorder, signed=True))


def _blocking(host_fd: int) -> bool:
    try:
        return os.get_blocking(host_fd)
    except OSError:
        return False


def _transfer(k, in_fd: int, out_fd: int, flags: int, call) -> int:
    """Run `call(host_flags)` (a splice or tee between two host fds) without blocking in the host:
    wait for data on `in_fd` and room on `out_fd` first, unless the guest asked not to block."""
    if _access(in_fd) == os.O_WRONLY or _access(out_fd) == os.O_RDONLY:
        raise SyscallError(errno.EBADF)  # before waiting: a write end never polls readable
    while True:
        if not flags & SPLICE_F_NONBLOCK:
            k.wait_readable(in_fd)
            k.wait_writable(out_fd)
        try:
            return call(flags | SPLICE_F_NONBLOCK)
        except BlockingIOError:
            if flags & SPLICE_F_NONBLOCK or not (_blocking(in_fd) and _blocking(out_fd)):
                raise
        k.wait_to_retry(RETRY)


def _access(host_fd: int) -> int:
    """The fd's access mode (O_RDONLY, O_WRONLY, O_RDWR); an O_PATH fd has none (-1)."""
    flags = fcntl.fcntl(host_fd, fcntl.F_GETFL)
    return -1 if flags & os.O_PATH else flags & os.O_ACCMODE


@syscall("fd", "fd", "ptr", "size")
def sys_sendfile64(k, out_fd, in_fd, offset_address, count):
    return _sendfile(k, out_fd, in_fd, offset_address, count, 8)


@syscall("fd", "fd", "ptr", "size")
def sys_sendfile(k, out_fd, in_fd, offset_address, count):
    """The offset is an off_t: a long, 4 bytes on 32-bit ISAs (sendfile64 takes a loff_t)."""
    return _sendfile(k, out_fd, in_fd, offset_address, count, k.word)


def _sendfile(k, out_fd: int, in_fd: int, offset_address: int, count: int, offset_size: int) -> int:
    source = k.fds.get(k.signed32(in_fd))
    target = k.fds.get(k.signed32(out_fd))
    if _access(source.host_fd) == os.O_WRONLY or _access(target.host_fd) == os.O_RDONLY:
        raise SyscallError(errno.EBADF)  # before reading (a write end would wait for good)
    count = min(count, SENDFILE_CHUNK)  # a short count is legal; the copy passes through bdemu
    if offset_address:
        offset = int.from_bytes(k.read(offset_address, offset_size), k.byteorder)
        data = os.pread(source.host_fd, count, offset)
        k.write(offset_address, (offset + len(data)).to_bytes(offset_size, k.byteorder))
    else:
        k.wait_readable(source.host_fd)  # a pipe or a terminal: interruptible, like read
        data = os.read(source.host_fd, count)
    return os.write(target.host_fd, data) if data else 0


@syscall("fd", "ptr", "fd", "ptr", "size", "uint")
def sys_copy_file_range(k, fd_in, off_in, fd_out, off_out, length, flags):
    if flags:
        raise SyscallError(errno.EINVAL)
    source = k.fds.get(k.signed32(fd_in))
    target = k.fds.get(k.signed32(fd_out))
    start_in, start_out = _read_offset(k, off_in), _read_offset(k, off_out)
    count = min(length, MAX_IO)  # a short copy is legal
    try:
        done = os.copy_file_range(source.host_fd, target.host_fd, count, start_in, start_out)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        done = _copy_through(source.host_fd, target.host_fd, count, start_in, start_out)
    _advance(k, off_in, start_in, done)
    _advance(k, off_out, start_out, done)
    return done


def _copy_through(in_fd: int, out_fd: int, count: int, start_in: int | None, start_out: int | None) -> int:
    """Linux's own fallback where the host cannot copy between the two filesystems: read, write."""
    for fd in (in_fd, out_fd):
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SyscallError(errno.EINVAL)
    count = min(count, SENDFILE_CHUNK)
    data = os.read(in_fd, count) if start_in is None else os.pread(in_fd, count, start_in)
    if not data:
        return 0
    return os.write(out_fd, data) if start_out is None else os.pwrite(out_fd, data, start_out)


@syscall("fd", "ptr", "fd", "ptr", "size", "hex")
def sys_splice(k, fd_in, off_in, fd_out, off_out, length, flags):
    if flags & ~SPLICE_FLAGS:
        raise SyscallError(errno.EINVAL)
    source = k.fds.get(k.signed32(fd_in))
    target = k.fds.get(k.signed32(fd_out))
    start_in, start_out = _read_offset(k, off_in), _read_offset(k, off_out)
    count = min(length, MAX_IO)
    if not count:
        return 0
    done = _transfer(k, source.host_fd, target.host_fd, flags, lambda host_flags: os.splice(
        source.host_fd, target.host_fd, count, start_in, start_out, host_flags))
    _advance(k, off_in, start_in, done)
    _advance(k, off_out, start_out, done)
    return done


@syscall("fd", "fd", "size", "hex")
def sys_tee(k, fd_in, fd_out, length, flags):
    if flags & ~SPLICE_FLAGS:
        raise SyscallError(errno.EINVAL)
    source = k.fds.get(k.signed32(fd_in))
    target = k.fds.get(k.signed32(fd_out))
    count = min(length, MAX_IO)
    if not count:
        return 0
    return _transfer(k, source.host_fd, target.host_fd, flags,
                     lambda host_flags: _host_tee(source.host_fd, target.host_fd, count, host_flags))


def _host_tee(in_fd: int, out_fd: int, count: int, flags: int) -> int:
    result = LIBC.tee(in_fd, out_fd, ctypes.c_size_t(count), ctypes.c_uint(flags))
    if result < 0:
        code = ctypes.get_errno() or errno.EINVAL
        raise OSError(code, os.strerror(code))
    return result


@syscall("fd", "iov", "size", "hex")
def sys_vmsplice(k, fd, iov, count, flags):
    """Guest memory into a pipe's write end (a copy: the guest may reuse its buffer at once, which
    Linux leaves undefined), or out of its read end into guest memory (as readv)."""
    if flags & ~SPLICE_FLAGS:
        raise SyscallError(errno.EINVAL)
    host_fd = k.fds.get(k.signed32(fd)).host_fd
    if not stat.S_ISFIFO(os.fstat(host_fd).st_mode):
        raise SyscallError(errno.EBADF)
    vectors = _iovecs(k, iov, count)
    writes = _access(host_fd) != os.O_RDONLY
    if not vectors:
        return 0
    if not flags & SPLICE_F_NONBLOCK:
        (k.wait_writable if writes else k.wait_readable)(host_fd)
    elif _blocking(host_fd) and not ready_now(host_fd, select.POLLOUT if writes else select.POLLIN | select.POLLHUP):
        raise SyscallError(errno.EAGAIN)
    if not writes:
        return read_vector(k, host_fd, vectors)
    data = gather_vector(k, vectors)
    if flags & SPLICE_F_NONBLOCK and _blocking(host_fd):
        data = data[:os.sysconf("SC_PAGESIZE")]  # what one free pipe buffer surely takes
    return write_data(k, host_fd, data) if data else 0
