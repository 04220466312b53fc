"""The socket ABI between guest and host: SOCK_*/SO_* numbers, sockaddr layouts, AF_UNIX paths.

Most numbers are the same on every Linux ISA; `Arch.socket_overrides` names
the ones an ISA changes (MIPS swaps SOCK_STREAM and SOCK_DGRAM and numbers
SOL_SOCKET and SO_* its own way). Option values that are C ints are turned
into the host's byte order (a big-endian guest on a little-endian host). A sockaddr is read from guest memory into
the address form Python's `socket` module takes, and written back from it.
AF_UNIX paths are guest paths: they are resolved like file paths (inside
`--rootfs`), and the host call names the resolved file through a directory
or file fd opened the confined way, so a link swapped in meanwhile is never
followed.
"""
from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from dataclasses import dataclass, field

from .errors import SyscallError

AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6 = 0, 1, 2, 10
#: The longest sun_path the kernel takes (108 bytes, one kept for the NUL of a pathname).
SUN_PATH = 108

#: asm-generic/socket.h and linux/net.h; `Arch.socket_overrides` replaces some per ISA.
GENERIC = {
    "SOCK_STREAM": 1, "SOCK_DGRAM": 2, "SOCK_RAW": 3, "SOCK_RDM": 4, "SOCK_SEQPACKET": 5,
    "SOL_SOCKET": 1,
    "SO_DEBUG": 1, "SO_REUSEADDR": 2, "SO_TYPE": 3, "SO_ERROR": 4, "SO_DONTROUTE": 5,
    "SO_BROADCAST": 6, "SO_SNDBUF": 7, "SO_RCVBUF": 8, "SO_KEEPALIVE": 9, "SO_OOBINLINE": 10,
    "SO_NO_CHECK": 11, "SO_PRIORITY": 12, "SO_LINGER": 13, "SO_BSDCOMPAT": 14, "SO_REUSEPORT": 15,
    "SO_PASSCRED": 16, "SO_PEERCRED": 17, "SO_RCVLOWAT": 18, "SO_SNDLOWAT": 19,
    "SO_RCVTIMEO_OLD": 20, "SO_SNDTIMEO_OLD": 21, "SO_BINDTODEVICE": 25, "SO_ACCEPTCONN": 30,
    "SO_PROTOCOL": 38, "SO_DOMAIN": 39, "SO_RCVTIMEO_NEW": 66, "SO_SNDTIMEO_NEW": 67,
}
SOCKET_TYPES = ("SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_RDM", "SOCK_SEQPACKET")
#: How a SOL_SOCKET option's value is laid out: a C int unless named here.
TIMEVAL_OLD = ("SO_RCVTIMEO_OLD", "SO_SNDTIMEO_OLD")  # struct timeval of two longs
TIMEVAL_NEW = ("SO_RCVTIMEO_NEW", "SO_SNDTIMEO_NEW")  # two 64-bit fields
INT_STRUCT_OPTIONS = ("SO_LINGER", "SO_PEERCRED")  # structs of C ints (linger, ucred)
RAW_OPTIONS = ("SO_BINDTODEVICE",)  # a name: the same bytes on every ISA
#: Options of other levels (IPPROTO_*) whose 4-byte value is no C int but an IPv4 address, in
#: network order; every other 4-byte value there is an int in the guest's byte order.
ADDRESS_OPTIONS = frozenset({(socket.IPPROTO_IP, socket.IP_MULTICAST_IF)})


def _host_option(name: str) -> int:
    """The host's number for an option (bdemu may run on any Linux ISA)."""
    plain = name.removesuffix("_OLD").removesuffix("_NEW")
    return getattr(socket, plain, GENERIC[name])


@dataclass
class SocketABI:
    """One guest's socket numbers, both ways, built from GENERIC and the Arch's overrides."""

    numbers: dict[str, int]
    #: guest SOCK_* -> host SOCK_*, and back.
    to_host_type: dict[int, int] = field(default_factory=dict)
    to_guest_type: dict[int, int] = field(default_factory=dict)
    #: guest SO_* -> (name, host SO_*).
    options: dict[int, tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, overrides) -> SocketABI:
        numbers = {**GENERIC, **overrides}
        abi = cls(numbers)
        for name in SOCKET_TYPES:
            host = getattr(socket, name)
            abi.to_host_type[numbers[name]] = host
            abi.to_guest_type[host] = numbers[name]
        for name, value in numbers.items():
            if name.startswith("SO_"):
                abi.options[value] = (name, _host_option(name))
        return abi

    @property
    def sol_socket(self) -> int:
        return self.numbers["SOL_SOCKET"]


@dataclass
class SocketState:
    """Per-guest socket settings: whether AF_INET/AF_INET6 are allowed, and AF_UNIX names."""

    abi: SocketABI
    net: bool = False
    #: The sun_path bdemu gave the host when binding -> the one the guest gave (getsockname).
    unix_names: dict[bytes, bytes] = field(default_factory=dict)


def option_kind(k, level: int, option: int) -> tuple[int, int, str]:
    """(host level, host option, value kind) of a guest option; SOL_SOCKET ones are translated,
    other levels (IPPROTO_TCP, IPPROTO_IP...) use the same numbers on every ISA. Kinds: "int",
    "timeval", "timeval64", "ints" (a struct of ints), "raw", and "level" (another level's
    option: an int when 4 bytes long, else bytes passed unchanged)."""
    level, option = k.signed32(level), k.signed32(option)
    abi = k.sockets.abi
    if level != abi.sol_socket:
        return level, option, "raw" if (level, option) in ADDRESS_OPTIONS else "level"
    known = abi.options.get(option)
    if known is None:
        raise SyscallError(errno.ENOPROTOOPT)
    name, host = known
    kind = "timeval" if name in TIMEVAL_OLD else "timeval64" if name in TIMEVAL_NEW else (
        "raw" if name in RAW_OPTIONS else "ints" if name in INT_STRUCT_OPTIONS else "int")
    return socket.SOL_SOCKET, host, kind


# -- sockaddr -----------------------------------------------------------------------------------
def read_sockaddr(k, address: int, length: int) -> tuple[int, object]:
    """(family, Python address) of a guest sockaddr; AF_UNIX paths still as the guest gave them."""
    length = k.signed32(length)
    if length < 2 or length > 128:
        raise SyscallError(errno.EINVAL)
    raw = k.read(address, length)
    family = int.from_bytes(raw[:2], k.byteorder)
    if family == AF_INET:
        if length < 16:
            raise SyscallError(errno.EINVAL)
        return family, (socket.inet_ntop(socket.AF_INET, raw[4:8]), int.from_bytes(raw[2:4], "big"))
    if family == AF_INET6:
        if length < 24:
            raise SyscallError(errno.EINVAL)
        scope = int.from_bytes(raw[24:28], k.byteorder) if length >= 28 else 0
        return family, (socket.inet_ntop(socket.AF_INET6, raw[8:24]), int.from_bytes(raw[2:4], "big"),
                        int.from_bytes(raw[4:8], "big"), scope)
    if family == AF_UNIX:
        if length > 2 + SUN_PATH:
            raise SyscallError(errno.EINVAL)
        path = raw[2:]
        if path[:1] != b"\0":  # a pathname ends at its NUL; an abstract name is every byte given
            path = path.split(b"\0", 1)[0]
        return family, path
    return family, raw


def pack_sockaddr(k, family: int, address) -> bytes:
    """A guest sockaddr for a Python address (AF_UNIX: the guest's path bytes)."""
    head = family.to_bytes(2, k.byteorder)
    if family == AF_INET:
        return head + address[1].to_bytes(2, "big") + socket.inet_pton(socket.AF_INET, address[0]) + bytes(8)
    if family == AF_INET6:
        host, port, flow, scope = address
        return (head + port.to_bytes(2, "big") + flow.to_bytes(4, "big")
                + socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0]) + scope.to_bytes(4, k.byteorder))
    if family == AF_UNIX:
        return head + address + (b"\0" if address[:1] not in (b"", b"\0") else b"")
    return head + bytes(address)


def write_sockaddr(k, address: int, length_address: int, data: bytes) -> None:
    """Copy a sockaddr out as the kernel does: at most the room given, the full length reported."""
    if not address or not length_address:
        return
    room = k.signed32(int.from_bytes(k.read(length_address, 4), k.byteorder))
    if room < 0:
        raise SyscallError(errno.EINVAL)
    k.write(address, data[:room])
    k.write_int(length_address, len(data))


def guest_address(k, family: int, host_address) -> bytes:
    """A sockaddr the host reported (getsockname, accept, recvfrom), in guest form."""
    if family == AF_UNIX:
        return pack_sockaddr(k, family, guest_unix_name(k, host_address))
    return pack_sockaddr(k, family, host_address)


def guest_unix_name(k, host_name) -> bytes:
    """The guest's name for an AF_UNIX address the host reported."""
    name = os.fsencode(host_name) if isinstance(host_name, str) else bytes(host_name or b"")
    if name[:1] in (b"", b"\0"):
        return name  # unnamed or abstract: the same for host and guest
    known = k.sockets.unix_names.get(name)
    if known is not None:
        return known
    return os.fsencode(k.vfs.guest_path_of_host(os.fsdecode(name)))


# -- AF_UNIX paths --------------------------------------------------------------------------------
@contextlib.contextmanager
def unix_bind_target(k, guest_name: bytes):
    """The sun_path to bind for the guest's `guest_name`: an abstract name as it is, a pathname
    resolved like a file path (creating a file: EROFS under --read-only) and named through its
    confined parent directory fd. Records the name so getsockname answers the guest's path."""
    if guest_name[:1] in (b"", b"\0"):
        yield guest_name
        return
    host, node = k.vfs.resolve(os.fsdecode(guest_name), follow=False)  # bind never follows a link
    if node is not None:
        raise SyscallError(errno.EADDRINUSE)
    k.vfs.check_writable(host)
    direct = os.fsencode(host)
    if k.vfs.rootfs is None and len(direct) < SUN_PATH:
        _remember(k, direct, guest_name)
        yield direct
        return
    parent, name = os.path.split(host)
    fd = (os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) if k.vfs.rootfs is None
          else k.vfs.open_confined(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0))
    try:
        target = os.fsencode(f"/proc/self/fd/{fd}/{name}")
        if len(target) >= SUN_PATH:
            raise SyscallError(errno.ENAMETOOLONG)
        _remember(k, target, guest_name)
        yield target
    finally:
        os.close(fd)


@contextlib.contextmanager
def unix_connect_target(k, guest_name: bytes):
    """The sun_path to connect or send to for the guest's `guest_name`: a pathname must resolve
    (inside --rootfs, links followed there) to a socket file, then named through an O_PATH fd."""
    if guest_name[:1] in (b"", b"\0"):
        yield guest_name
        return
    host, node = k.vfs.resolve(os.fsdecode(guest_name))
    if node is not None:
        raise SyscallError(errno.ECONNREFUSED)
    direct = os.fsencode(host)
    if k.vfs.rootfs is None and len(direct) < SUN_PATH:
        yield direct
        return
    fd = (os.open(host, os.O_PATH | os.O_CLOEXEC) if k.vfs.rootfs is None
          else k.vfs.open_confined(host, os.O_PATH | os.O_CLOEXEC, 0))
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise SyscallError(errno.ECONNREFUSED)
        yield os.fsencode(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _remember(k, host_name: bytes, guest_name: bytes) -> None:
    if host_name != guest_name:
        k.sockets.unix_names[host_name] = guest_name
