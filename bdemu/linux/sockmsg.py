"""sendmsg/recvmsg and their batch forms: msghdr, iovecs and control messages (SCM_RIGHTS).

A `struct msghdr` is seven word-sized slots on every ISA (name, namelen,
iov, iovlen, control, controllen, flags; namelen and flags are 32-bit).
Control messages carry guest fds as host fds: SCM_RIGHTS sent by the guest
names guest fds, which are looked up in its fd table; fds received are
installed in it, so fd passing works between guest processes and with host
programs alike.
"""
from __future__ import annotations

import array
import errno
import os
import select
import socket
import time
from dataclasses import dataclass

from . import clock
from .errors import SyscallError, WouldBlock
from .fds import OpenFile
from .files import MAX_IO, _iovecs
from .registry import syscall
from .sockabi import AF_UNIX, guest_address, read_sockaddr, unix_connect_target
from .sockets import host_socket, receive, send_data

SCM_RIGHTS, SCM_CREDENTIALS = 1, 2
MSG_CTRUNC, MSG_DONTWAIT, MSG_WAITFORONE, MSG_CMSG_CLOEXEC = 0x8, 0x40, 0x10000, 0x40000000
MAX_CONTROL = 1 << 16
MAX_BATCH = 1024


@dataclass
class MessageHeader:
    name: int
    namelen: int
    iov: int
    iovlen: int
    control: int
    controllen: int


def read_header(k, address: int) -> MessageHeader:
    w = k.word
    raw = k.read(address, 7 * w)
    slots = [int.from_bytes(raw[i:i + w], k.byteorder) for i in range(0, 7 * w, w)]
    namelen = int.from_bytes(raw[w:w + 4], k.byteorder)
    return MessageHeader(slots[0], namelen, slots[2], slots[3], slots[4], slots[5])


def _align(k, size: int) -> int:
    return (size + k.word - 1) & ~(k.word - 1)


def _head(k) -> int:
    """Where a cmsg's data starts: CMSG_ALIGN(sizeof(struct cmsghdr))."""
    return _align(k, k.word + 8)


def control_to_host(k, address: int, length: int) -> list[tuple[int, int, bytes]]:
    """The guest's control messages as Python ancillary data (SCM_RIGHTS: guest fds -> host fds)."""
    if not address or not length:
        return []
    raw = k.read(address, min(length, MAX_CONTROL))
    sol_socket = k.sockets.abi.sol_socket
    messages, offset, head = [], 0, _head(k)
    while offset + k.word + 8 <= len(raw):
        size = int.from_bytes(raw[offset:offset + k.word], k.byteorder)
        level = int.from_bytes(raw[offset + k.word:offset + k.word + 4], k.byteorder, signed=True)
        kind = int.from_bytes(raw[offset + k.word + 4:offset + k.word + 8], k.byteorder, signed=True)
        if size < head or offset + size > len(raw):
            raise SyscallError(errno.EINVAL)
        body = raw[offset + head:offset + size]
        if level == sol_socket and kind == SCM_RIGHTS:
            fds = [k.fds.get(int.from_bytes(body[i:i + 4], k.byteorder, signed=True)).host_fd
                   for i in range(0, len(body) - 3, 4)]
            messages.append((socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes()))
        elif level == sol_socket and kind == SCM_CREDENTIALS:
            messages.append((socket.SOL_SOCKET, socket.SCM_CREDENTIALS, body))
        elif level == sol_socket:
            raise SyscallError(errno.EINVAL)
        else:
            messages.append((level, kind, body))
        offset += _align(k, size)
    return messages


def control_to_guest(k, messages, room: int, cloexec: bool) -> tuple[bytes, bool]:
    """Ancillary data received by the host as guest cmsgs fitting in `room` bytes; received fds
    join the guest's fd table (those that do not fit are closed). Returns (bytes, truncated)."""
    out, truncated, head = bytearray(), False, _head(k)
    for level, kind, body in messages:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            host_fds = array.array("i")
            host_fds.frombytes(body[:len(body) // 4 * 4])
            fit = max(0, (room - len(out) - head) // 4)
            guest_fds = [_adopt(k, fd, cloexec) for fd in host_fds[:fit]]
            for fd in host_fds[fit:]:
                os.close(fd)
                truncated = True
            if not guest_fds:
                continue
            body = b"".join(fd.to_bytes(4, k.byteorder) for fd in guest_fds)
        if len(out) + head + len(body) > room:
            truncated = True
            continue
        guest_level = k.sockets.abi.sol_socket if level == socket.SOL_SOCKET else level
        out += (head + len(body)).to_bytes(k.word, k.byteorder)
        out += guest_level.to_bytes(4, k.byteorder, signed=True) + kind.to_bytes(4, k.byteorder, signed=True)
        out += bytes(head - k.word - 8) + body
        out += bytes(min(_align(k, len(out)), room) - len(out))
    return bytes(out), truncated


def _adopt(k, host_fd: int, cloexec: bool) -> int:
    try:
        target = os.readlink(f"/proc/self/fd/{host_fd}")
    except OSError:
        target = "socket:"
    guest_path = k.vfs.guest_path_of_host(target) if target.startswith("/") else target
    try:
        return k.fds.install(OpenFile(host_fd, guest_path, cloexec))
    except SyscallError:
        os.close(host_fd)
        return -1


def _sendmsg(k, sock: socket.socket, address: int, flags: int) -> int:
    header = read_header(k, address)
    pieces, total = [], 0
    for base, length in _iovecs(k, header.iov, header.iovlen):
        piece = k.read(base, min(length, MAX_IO - total))
        pieces.append(piece)
        total += len(piece)
    data = b"".join(pieces)
    ancillary = control_to_host(k, header.control, header.controllen)
    if not header.name or not header.namelen:
        return send_data(k, sock, data, flags, None, ancillary)
    family, target = read_sockaddr(k, header.name, header.namelen)
    if family != sock.family:
        raise SyscallError(errno.EAFNOSUPPORT if sock.family != AF_UNIX else errno.EINVAL)
    if family == AF_UNIX:
        with unix_connect_target(k, target) as name:
            return send_data(k, sock, data, flags, name, ancillary)
    return send_data(k, sock, data, flags, target, ancillary)


def _recvmsg(k, sock: socket.socket, address: int, flags: int) -> int:
    header = read_header(k, address)
    vectors = _iovecs(k, header.iov, header.iovlen)
    size = min(sum(length for _, length in vectors), MAX_IO)
    room = min(header.controllen, MAX_CONTROL) if header.control else 0
    host_room = socket.CMSG_SPACE(room) if room else 0

    def receiver(count: int, host_flags: int):
        return sock.recvmsg(count, host_room, host_flags | socket.MSG_CMSG_CLOEXEC)

    data, ancillary, message_flags, peer = receive(k, sock, size, flags, receiver)
    offset = 0
    for base, length in vectors:
        if offset >= len(data):
            break
        k.write(base, data[offset:offset + length])
        offset += length
    control, truncated = control_to_guest(k, ancillary, room, bool(flags & MSG_CMSG_CLOEXEC))
    k.write(header.control, control)
    w = k.word
    k.write(address + 5 * w, len(control).to_bytes(w, k.byteorder))
    guest_flags = (message_flags & ~socket.MSG_CMSG_CLOEXEC) | (MSG_CTRUNC if truncated else 0)
    k.write_int(address + 6 * w, guest_flags)
    if header.name:
        name = b"" if peer is None or (peer == "" and sock.family != AF_UNIX) else guest_address(k, sock.family, peer)
        k.write(header.name, name[:header.namelen])
        k.write_int(address + w, len(name))
    return len(data)


@syscall("fd", "ptr", "hex")
def sys_sendmsg(k, fd, message, flags):
    with host_socket(k, fd) as sock:
        return _sendmsg(k, sock, message, flags)


@syscall("fd", "ptr", "hex")
def sys_recvmsg(k, fd, message, flags):
    with host_socket(k, fd) as sock:
        return _recvmsg(k, sock, message, flags)


def _batch(k, fd: int, vector: int, count: int, flags: int, later_flags: int, one, after=None) -> int:
    """sendmmsg/recvmmsg: one message after another (the later ones with `later_flags` added);
    an error after the first ends the batch, and so does `after()` returning False."""
    entry = _align(k, 7 * k.word + 4)  # struct mmsghdr: a msghdr and the 32-bit msg_len
    done = 0
    with host_socket(k, fd) as sock:
        for index in range(min(count, MAX_BATCH)):
            try:
                moved = one(k, sock, vector + index * entry, flags if index == 0 else flags | later_flags)
            except (SyscallError, OSError, WouldBlock):  # a later message that must wait ends the batch
                if index == 0:
                    raise
                break
            k.write_int(vector + index * entry + 7 * k.word, moved)
            done += 1
            if after is not None and not after():
                break
    return done


@syscall("fd", "ptr", "uint", "hex")
def sys_sendmmsg(k, fd, vector, count, flags):
    return _batch(k, fd, vector, count, flags, 0, _sendmsg)


def _recvmmsg(k, fd: int, vector: int, count: int, flags: int, timeout: int, size: int) -> int:
    """Waits for the first message (as Linux does, whatever the timeout); the later ones only
    while they are there (MSG_WAITFORONE) or, with a timeout, until it passes. As on Linux the
    time left is written back to `timeout` after each message, and a message received once it
    passed ends the batch (Linux would still block for later ones, a bug recvmmsg(2) names)."""
    if not timeout:
        return _batch(k, fd, vector, count, flags, MSG_DONTWAIT, _recvmsg)
    end = time.monotonic() + clock.read_timespec_ns(k, timeout, size) / 1e9
    later = MSG_DONTWAIT if flags & MSG_WAITFORONE else 0

    def time_left() -> bool:
        left = max(0, int((end - time.monotonic()) * 1e9))
        k.write(timeout, clock.timespec_bytes(k, left, size))
        return left > 0

    def one(k, sock, address: int, message_flags: int) -> int:
        if address != vector and not message_flags & MSG_DONTWAIT:  # a later message, until `end`
            while not select.select([sock], [], [], k.wait_slice(end - time.monotonic()))[0]:
                if time.monotonic() >= end:
                    raise SyscallError(errno.EAGAIN)
        return _recvmsg(k, sock, address, message_flags)

    return _batch(k, fd, vector, count, flags, later, one, time_left)


@syscall("fd", "ptr", "uint", "hex", "ptr")
def sys_recvmmsg(k, fd, vector, count, flags, timeout):
    return _recvmmsg(k, fd, vector, count, flags, timeout, k.word)


@syscall("fd", "ptr", "uint", "hex", "ptr")
def sys_recvmmsg_time64(k, fd, vector, count, flags, timeout):
    return _recvmmsg(k, fd, vector, count, flags, timeout, 8)
