"""Socket syscalls: socket, bind, listen, accept, connect, send/recv, options, i386's socketcall.

A guest socket is a host socket: its host fd sits in the guest's fd table like
a file's, so read, write, poll, epoll, fcntl, dup and fork work on it
unchanged. AF_UNIX sockets are always allowed (their paths are confined like
files, see sockabi.py); AF_INET and AF_INET6 only with `--net`
(`Emulator(net=True)`); every other family fails with EACCES
(docs/security.md). Blocking calls wait in the kernel's slices, so
`--timeout`, Ctrl-C and SIGTERM still end the run.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import socket
import struct
import sys
import time

from .errors import SyscallError
from .fds import OpenFile
from .files import MAX_IO, open_flags
from .hostlibc import LIBC
from .registry import syscall
from .sockabi import (
    AF_INET,
    AF_INET6,
    AF_UNIX,
    AF_UNSPEC,
    guest_address,
    option_kind,
    read_sockaddr,
    unix_bind_target,
    unix_connect_target,
    write_sockaddr,
)
from .threads import ready_fds

MSG_OOB, MSG_PEEK, MSG_DONTROUTE, MSG_DONTWAIT, MSG_EOR, MSG_WAITALL = 0x1, 0x2, 0x4, 0x40, 0x80, 0x100
MSG_NOSIGNAL, MSG_MORE = 0x4000, 0x8000
#: Flags passed on to the host call; blocking and SIGPIPE are bdemu's business.
HOST_MSG_FLAGS = MSG_OOB | MSG_PEEK | MSG_DONTROUTE | MSG_EOR | MSG_MORE
POLLIN, POLLOUT, POLLERR, POLLHUP = 1, 4, 8, 16


# -- the host socket behind a guest fd ----------------------------------------------------------
@contextlib.contextmanager
def host_socket(k, fd: int):
    """A Python socket over the guest fd's host fd, for the length of one call (never closes it)."""
    host_fd = k.fds.get(k.signed32(fd)).host_fd
    try:
        sock = socket.socket(fileno=host_fd)
    except OSError as error:
        raise SyscallError(errno.ENOTSOCK if error.errno in (errno.ENOTSOCK, errno.EBADF) else error.errno) from None
    try:
        yield sock
    finally:
        sock.detach()


def wait_ready(k, sock: socket.socket, events: int, timeout_option: int | None = None, resume=None) -> None:
    """Block until `sock` is ready for `events`, in slices (a stop or --timeout ends the run);
    EAGAIN after the socket's SO_RCVTIMEO/SO_SNDTIMEO, EINTR when a signal is to be delivered.
    In a guest with several threads the calling thread parks instead (its peer may be another
    guest thread) and the syscall runs again once the socket is ready, or `resume` completes it
    (see ThreadTable.wait): the caller must not have consumed or sent anything yet."""
    limit = _timeout(sock, timeout_option) if timeout_option is not None else None
    end = None if limit is None else time.monotonic() + limit
    if not k.threads.alone:
        watched = ((sock.fileno(), events | POLLERR | POLLHUP),)
        k.threads.wait(watched, end, resume=resume)  # returns once ready or past the first run's deadline
        if not ready_fds(watched, 0):
            raise SyscallError(errno.EAGAIN)
        return
    poller = select.poll()
    poller.register(sock.fileno(), events | POLLERR | POLLHUP)
    while True:
        left = None if end is None else end - time.monotonic()
        wait = k.wait_slice(left)
        if poller.poll(wait * 1000):
            return
        if left is not None and left <= wait:
            raise SyscallError(errno.EAGAIN)
        if k.signals.has_work():
            k.emu.request_signal_work()
            raise SyscallError(errno.EINTR)


def _timeout(sock: socket.socket, option: int) -> float | None:
    seconds, micros = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("ll")))
    return None if seconds == micros == 0 else seconds + micros / 1e6


def _blocking(sock: socket.socket, flags: int = 0) -> bool:
    return not flags & MSG_DONTWAIT and os.get_blocking(sock.fileno())


@contextlib.contextmanager
def _nonblocking(sock: socket.socket):
    """Make one accept/connect non-blocking; the wait happens in bdemu's slices instead."""
    was = os.get_blocking(sock.fileno())
    if was:
        os.set_blocking(sock.fileno(), False)
    try:
        yield
    finally:
        if was:
            os.set_blocking(sock.fileno(), True)


# -- creating and naming -----------------------------------------------------------------------
def _type_and_flags(k, kind: int) -> tuple[int, bool, bool]:
    """(host SOCK_* type, non-blocking, close-on-exec) of a guest `type` argument."""
    flags = open_flags(k)
    host_type = k.sockets.abi.to_host_type.get(kind & 0xF)
    if host_type is None or kind & ~(0xF | flags["O_NONBLOCK"] | flags["O_CLOEXEC"]):
        raise SyscallError(errno.EINVAL)
    return host_type, bool(kind & flags["O_NONBLOCK"]), bool(kind & flags["O_CLOEXEC"])


def _install(k, host_fd: int, cloexec: bool) -> int:
    try:
        return k.fds.install(OpenFile(host_fd, "socket:", cloexec))
    except SyscallError:
        os.close(host_fd)
        raise


@syscall("int", "int", "int")
def sys_socket(k, domain, kind, protocol):
    """AF_UNIX always; AF_INET/AF_INET6 with --net; other families reach the host: EACCES."""
    if domain not in (AF_UNIX, AF_INET, AF_INET6) or (domain != AF_UNIX and not k.sockets.net):
        raise SyscallError(errno.EACCES)
    host_type, nonblocking, cloexec = _type_and_flags(k, kind)
    sock = socket.socket(domain, host_type | socket.SOCK_CLOEXEC | (socket.SOCK_NONBLOCK if nonblocking else 0),
                         k.signed32(protocol))
    return _install(k, sock.detach(), cloexec)


@syscall("int", "int", "int", "ptr")
def sys_socketpair(k, domain, kind, protocol, address):
    """A connected AF_UNIX pair reaches nothing outside the guest, so it is allowed."""
    if domain != AF_UNIX:
        raise SyscallError(errno.EAFNOSUPPORT)
    host_type, nonblocking, cloexec = _type_and_flags(k, kind)
    first, second = socket.socketpair(socket.AF_UNIX, host_type | (socket.SOCK_NONBLOCK if nonblocking else 0))
    fds = [_install(k, end.detach(), cloexec) for end in (first, second)]
    k.write(address, b"".join(fd.to_bytes(4, k.byteorder) for fd in fds))
    return 0


@syscall("fd", "ptr", "int")
def sys_bind(k, fd, address, length):
    family, target = read_sockaddr(k, address, length)
    with host_socket(k, fd) as sock:
        if family != sock.family:
            raise SyscallError(errno.EINVAL if sock.family == AF_UNIX else errno.EAFNOSUPPORT)
        if family == AF_UNIX:
            with unix_bind_target(k, target) as name:
                sock.bind(name)
        else:
            sock.bind(target)
    return 0


@syscall("fd", "int")
def sys_listen(k, fd, backlog):
    with host_socket(k, fd) as sock:
        sock.listen(max(0, k.signed32(backlog)))
    return 0


@syscall("fd", "ptr", "ptr", "int")
def sys_accept4(k, fd, address, length, flags):
    table = open_flags(k)
    if flags & ~(table["O_NONBLOCK"] | table["O_CLOEXEC"]):
        raise SyscallError(errno.EINVAL)
    with host_socket(k, fd) as sock:
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise SyscallError(errno.EINVAL)  # not listening: Linux fails at once, never waits
        while True:
            if _blocking(sock):
                wait_ready(k, sock, POLLIN, socket.SO_RCVTIMEO)
            try:
                with _nonblocking(sock):
                    connection, peer = sock.accept()
                break
            except BlockingIOError:
                if not _blocking(sock):
                    raise
        family = sock.family
    new_fd = connection.detach()
    if flags & table["O_NONBLOCK"]:
        os.set_blocking(new_fd, False)
    guest_fd = _install(k, new_fd, bool(flags & table["O_CLOEXEC"]))
    write_sockaddr(k, address, length, guest_address(k, family, peer))
    return guest_fd


@syscall("fd", "ptr", "ptr")
def sys_accept(k, fd, address, length):
    return sys_accept4(k, fd, address, length, 0)


@syscall("fd", "ptr", "int")
def sys_connect(k, fd, address, length):
    family, target = read_sockaddr(k, address, length)
    with host_socket(k, fd) as sock:
        if family == AF_UNSPEC:  # dissolve a datagram socket's association
            if LIBC.connect(sock.fileno(), k.read(address, k.signed32(length)), k.signed32(length)) < 0:
                raise SyscallError(ctypes.get_errno())
            return 0
        if family != sock.family:
            raise SyscallError(errno.EAFNOSUPPORT)
        if family == AF_UNIX:
            with unix_connect_target(k, target) as name:
                return _connect(k, sock, name)
        return _connect(k, sock, target)


def _connect(k, sock: socket.socket, target) -> int:
    blocking = _blocking(sock)
    while True:
        with _nonblocking(sock):
            code = sock.connect_ex(target)
        if not blocking or code not in (errno.EINPROGRESS, errno.EAGAIN):
            break
        if code == errno.EAGAIN:  # an AF_UNIX listener's backlog is full: try again shortly
            time.sleep(k.wait_slice())
            continue
        return _connected(k, sock.fileno())
    if code:
        raise SyscallError(code)
    return 0


def _connected(k, host_fd: int) -> int:
    """The end of a connect in progress: once the socket is writable, its SO_ERROR (a parked
    thread resumes here, as connecting again would fail with EALREADY)."""
    sock = socket.socket(fileno=host_fd)
    try:
        wait_ready(k, sock, POLLOUT, socket.SO_SNDTIMEO, resume=lambda kernel: _connected(kernel, host_fd))
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    finally:
        sock.detach()
    if code:
        raise SyscallError(code)
    return 0


def _name(k, fd: int, address: int, length: int, peer: bool) -> int:
    with host_socket(k, fd) as sock:
        family = sock.family
        if family not in (AF_UNIX, AF_INET, AF_INET6):  # an inherited netlink socket: host bytes
            return _raw_name(k, sock.fileno(), address, length, LIBC.getpeername if peer else LIBC.getsockname)
        name = sock.getpeername() if peer else sock.getsockname()
    write_sockaddr(k, address, length, guest_address(k, family, name))
    return 0


def _raw_name(k, host: int, address: int, length: int, host_call) -> int:
    buffer = ctypes.create_string_buffer(128)
    size = ctypes.c_uint32(128)
    if host_call(host, buffer, ctypes.byref(size)) < 0:
        raise SyscallError(ctypes.get_errno() or errno.EINVAL)
    raw = bytearray(buffer.raw[:size.value])
    family = int.from_bytes(raw[:2], sys.byteorder)  # the host's sockaddr: host byte order
    raw[:2] = family.to_bytes(2, k.byteorder)
    if family == socket.AF_NETLINK:
        raw[4:12] = k.swap_ints(bytes(raw[4:12]))  # nl_pid, nl_groups
    write_sockaddr(k, address, length, bytes(raw))
    return 0


@syscall("fd", "ptr", "ptr")
def sys_getsockname(k, fd, address, length):
    return _name(k, fd, address, length, False)


@syscall("fd", "ptr", "ptr")
def sys_getpeername(k, fd, address, length):
    """Also asked by bash about an inherited stdin (rsh detection)."""
    return _name(k, fd, address, length, True)


@syscall("fd", "int")
def sys_shutdown(k, fd, how):
    with host_socket(k, fd) as sock:
        sock.shutdown(how)
    return 0


# -- data -------------------------------------------------------------------------------------
def send_data(k, sock: socket.socket, data: bytes, flags: int, target=None, ancillary=(), sent: int = 0) -> int:
    """send/sendto/sendmsg on a host socket: a blocking stream send waits until everything went
    out; `ancillary` (control messages) goes with the first byte. `sent`: bytes already out (a
    thread that parked part way resumes here rather than sending them again)."""
    host_flags = flags & HOST_MSG_FLAGS | socket.MSG_DONTWAIT
    blocking = _blocking(sock, flags)
    while True:
        try:
            extra = () if target is None else (target,)
            count = sock.sendmsg([data[sent:]], [] if sent else ancillary, host_flags, *extra)
        except BlockingIOError:
            if not blocking:
                raise
            host_fd, done = sock.fileno(), sent
            resume = (lambda kernel: _send_rest(kernel, host_fd, data, flags, target, done)) if sent else None
            try:
                wait_ready(k, sock, POLLOUT, socket.SO_SNDTIMEO, resume=resume)
            except SyscallError:
                if sent:  # timed out or interrupted part way: what went out counts, as on Linux
                    return sent
                raise
            continue
        except BrokenPipeError:
            if flags & MSG_NOSIGNAL:
                raise SyscallError(errno.EPIPE) from None
            raise
        sent += count
        if not blocking or sent >= len(data) or sock.type != socket.SOCK_STREAM:
            return sent


def _send_rest(k, host_fd: int, data: bytes, flags: int, target, sent: int) -> int:
    sock = socket.socket(fileno=host_fd)
    try:
        return send_data(k, sock, data, flags, target, (), sent)
    finally:
        sock.detach()


def receive(k, sock: socket.socket, size: int, flags: int, receiver):
    """Call `receiver(size, host_flags)` once data is there; MSG_WAITALL gathers `size` bytes."""
    host_flags = flags & HOST_MSG_FLAGS | socket.MSG_DONTWAIT
    blocking = _blocking(sock, flags)
    while True:
        if blocking:
            wait_ready(k, sock, POLLIN, socket.SO_RCVTIMEO)
        try:
            result = receiver(size, host_flags)
        except BlockingIOError:
            if not blocking:
                raise
            continue
        if flags & MSG_WAITALL and blocking and sock.type == socket.SOCK_STREAM and 0 < len(result[0]) < size:
            if not k.threads.alone and not ready_fds(((sock.fileno(), POLLIN | POLLERR | POLLHUP),), 0):
                return result  # the rest would park and the syscall start over: a short read instead
            rest = receive(k, sock, size - len(result[0]), flags, receiver)
            return (result[0] + rest[0],) + tuple(result[1:])
        return result


@syscall("fd", "buf_in", "size", "hex", "ptr", "int")
def sys_sendto(k, fd, buf, count, flags, address, length):
    data = k.read(buf, min(count, MAX_IO))
    with host_socket(k, fd) as sock:
        if not address:
            return send_data(k, sock, data, flags)
        family, target = read_sockaddr(k, address, length)
        if family != sock.family:
            raise SyscallError(errno.EAFNOSUPPORT if sock.family != AF_UNIX else errno.EINVAL)
        if family == AF_UNIX:
            with unix_connect_target(k, target) as name:
                return send_data(k, sock, data, flags, name)
        return send_data(k, sock, data, flags, target)


@syscall("fd", "buf_in", "size", "hex")
def sys_send(k, fd, buf, count, flags):
    return sys_sendto(k, fd, buf, count, flags, 0, 0)


@syscall("fd", "buf_out", "size", "hex", "ptr", "ptr")
def sys_recvfrom(k, fd, buf, count, flags, address, length):
    size = k.io_size(buf, count, MAX_IO)
    with host_socket(k, fd) as sock:
        data, peer = receive(k, sock, size, flags, sock.recvfrom)
        family = sock.family
    k.write(buf, data)
    if address and length:
        if peer is None or peer == "" and family != AF_UNIX:
            k.write_int(length, 0)
        else:
            write_sockaddr(k, address, length, guest_address(k, family, peer))
    return len(data)


@syscall("fd", "buf_out", "size", "hex")
def sys_recv(k, fd, buf, count, flags):
    return sys_recvfrom(k, fd, buf, count, flags, 0, 0)


# -- options ----------------------------------------------------------------------------------
@syscall("fd", "int", "int", "ptr", "int")
def sys_setsockopt(k, fd, level, option, value, length):
    length = k.signed32(length)
    if length < 0:
        raise SyscallError(errno.EINVAL)
    raw = k.read(value, min(length, 4096))
    with host_socket(k, fd) as sock:
        host_level, host_option, kind = option_kind(k, level, option)
        if kind == "int":
            if len(raw) < 4:
                raise SyscallError(errno.EINVAL)
            sock.setsockopt(host_level, host_option, int.from_bytes(raw[:4], k.byteorder, signed=True))
        elif kind in ("timeval", "timeval64"):
            size = k.word if kind == "timeval" else 8
            if len(raw) < 2 * size:
                raise SyscallError(errno.EINVAL)
            seconds, micros = (int.from_bytes(raw[i:i + size], k.byteorder, signed=True) for i in (0, size))
            sock.setsockopt(host_level, host_option, struct.pack("ll", seconds, micros))
        elif kind == "ints" or kind == "level" and len(raw) == 4:
            sock.setsockopt(host_level, host_option, k.swap_ints(raw))
        else:
            sock.setsockopt(host_level, host_option, raw)
    return 0


@syscall("fd", "int", "int", "ptr", "ptr")
def sys_getsockopt(k, fd, level, option, value, length_address):
    room = k.signed32(int.from_bytes(k.read(length_address, 4), k.byteorder))
    if room < 0:
        raise SyscallError(errno.EINVAL)
    with host_socket(k, fd) as sock:
        host_level, host_option, kind = option_kind(k, level, option)
        if kind == "int":
            result = sock.getsockopt(host_level, host_option)
            if host_level == socket.SOL_SOCKET and host_option == socket.SO_TYPE:
                result = k.sockets.abi.to_guest_type.get(result, result)
            elif host_level == socket.SOL_SOCKET and host_option == socket.SO_ERROR and result:
                result = _guest_errno(k, result)
            data = result.to_bytes(4, k.byteorder, signed=True)
        elif kind in ("timeval", "timeval64"):
            size = k.word if kind == "timeval" else 8
            seconds, micros = struct.unpack("ll", sock.getsockopt(host_level, host_option, struct.calcsize("ll")))
            data = seconds.to_bytes(size, k.byteorder, signed=True) + micros.to_bytes(size, k.byteorder, signed=True)
        else:
            data = sock.getsockopt(host_level, host_option, max(room, 1))
            if kind == "ints" or kind == "level" and len(data) == 4:
                data = k.swap_ints(data)
    k.write(value, data[:room])
    k.write_int(length_address, min(room, len(data)))
    return 0


def _guest_errno(k, code: int) -> int:
    name = errno.errorcode.get(code)
    return k.arch.errno_overrides.get(name, code) if name else code


# -- i386's multiplexer -------------------------------------------------------------------------
#: socketcall's call numbers (linux/net.h) -> (handler name, argument count).
SOCKETCALLS = {
    1: ("socket", 3), 2: ("bind", 3), 3: ("connect", 3), 4: ("listen", 2), 5: ("accept", 3),
    6: ("getsockname", 3), 7: ("getpeername", 3), 8: ("socketpair", 4), 9: ("send", 4),
    10: ("recv", 4), 11: ("sendto", 6), 12: ("recvfrom", 6), 13: ("shutdown", 2),
    14: ("setsockopt", 5), 15: ("getsockopt", 5), 16: ("sendmsg", 3), 17: ("recvmsg", 3),
    18: ("accept4", 4), 19: ("recvmmsg", 5), 20: ("sendmmsg", 4),
}


@syscall("int", "ptr")
def sys_socketcall(k, call, arguments):
    """One syscall for every socket call (i386, MIPS o32): the arguments are words in memory."""
    from .registry import HANDLERS
    entry = SOCKETCALLS.get(call)
    if entry is None:
        raise SyscallError(errno.EINVAL)
    name, count = entry
    raw = k.read(arguments, count * k.word)
    words = [int.from_bytes(raw[i:i + k.word], k.byteorder) for i in range(0, len(raw), k.word)]
    return HANDLERS[name].function(k, *words)
