"""File descriptor syscalls: open, read, write, seek, dup, pipe, fcntl, ioctl."""
from __future__ import annotations

import errno
import fcntl as host_fcntl
import os
import select
import stat
import struct

from . import fifo, locks
from .errors import SyscallError
from .fds import OpenFile
from .fs import GUEST_MODE_BITS, HOST_DEVICES, VirtualDir, VirtualFile
from .registry import syscall

AT_FDCWD = -100
IOV_MAX = 1024
#: Bytes a pipe or socket that polls writable takes without blocking (one pipe buffer).
PIPE_BUF = 4096
MAX_IO = 1 << 28

#: Linux open(2) flag values shared by most ISAs; `Arch.variants["open_flags"]` selects others.
GENERIC_OPEN_FLAGS = {
    "O_CREAT": 0o100, "O_EXCL": 0o200, "O_NOCTTY": 0o400, "O_TRUNC": 0o1000, "O_APPEND": 0o2000,
    "O_NONBLOCK": 0o4000, "O_DSYNC": 0o10000, "O_DIRECT": 0o40000, "O_LARGEFILE": 0o100000,
    "O_DIRECTORY": 0o200000, "O_NOFOLLOW": 0o400000, "O_NOATIME": 0o1000000,
    "O_CLOEXEC": 0o2000000, "O_PATH": 0o10000000, "O_SYNC": 0o4010000,
}
ARM_OPEN_FLAGS = {**GENERIC_OPEN_FLAGS, "O_DIRECTORY": 0o40000, "O_NOFOLLOW": 0o100000,
                  "O_DIRECT": 0o200000, "O_LARGEFILE": 0o400000}
MIPS_OPEN_FLAGS = {**GENERIC_OPEN_FLAGS, "O_APPEND": 0x8, "O_DSYNC": 0x10, "O_NONBLOCK": 0x80,
                   "O_CREAT": 0x100, "O_TRUNC": 0x200, "O_EXCL": 0x400, "O_NOCTTY": 0x800,
                   "O_LARGEFILE": 0x2000, "O_DIRECT": 0x8000, "O_SYNC": 0x4010}
OPEN_FLAG_SETS = {"generic": GENERIC_OPEN_FLAGS, "arm": ARM_OPEN_FLAGS, "mips": MIPS_OPEN_FLAGS}
_HOST = {name: getattr(os, name, 0) for name in GENERIC_OPEN_FLAGS}


def open_flags(k) -> dict[str, int]:
    return OPEN_FLAG_SETS[k.arch.variants.get("open_flags", "generic")]


def new_fd_flags(k, flags: int, extra: int = 0) -> tuple[bool, int]:
    """The flags of eventfd2, timerfd_create, inotify_init1 (the ISA's O_CLOEXEC and O_NONBLOCK,
    plus the call's own `extra` bits; any other is EINVAL): (close-on-exec, host flags for a
    close-on-exec host fd, non-blocking like the guest's)."""
    table = open_flags(k)
    if flags & ~(table["O_CLOEXEC"] | table["O_NONBLOCK"] | extra):
        raise SyscallError(errno.EINVAL)
    return bool(flags & table["O_CLOEXEC"]), os.O_CLOEXEC | (os.O_NONBLOCK if flags & table["O_NONBLOCK"] else 0)


def host_open_flags(k, guest_flags: int) -> int:
    flags = guest_flags & 3
    for name, value in open_flags(k).items():
        if guest_flags & value == value:
            flags |= _HOST[name]
    return flags


def guest_open_flags(k, host_flags: int) -> int:
    flags = host_flags & 3
    for name, value in open_flags(k).items():
        if _HOST[name] and host_flags & _HOST[name] == _HOST[name]:
            flags |= value
    return flags


def dir_base(k, dirfd: int) -> str | None:
    dirfd = k.signed32(dirfd)
    if dirfd == AT_FDCWD:
        return None
    return k.fds.get(dirfd).guest_path


def open_path(k, dirfd: int, path_address: int, flags: int, mode: int) -> int:
    path = k.read_path(path_address)
    base = dir_base(k, dirfd)
    table = open_flags(k)
    follow = not flags & table["O_NOFOLLOW"]
    host, node = k.vfs.resolve(path, base, follow)
    guest = k.vfs.absolute(path, base)
    cloexec = bool(flags & table["O_CLOEXEC"])
    if node is not None:
        return k.fds.install(OpenFile(_open_node(k, node, guest, flags), guest, cloexec, node))
    host_flags = host_open_flags(k, flags) | os.O_CLOEXEC
    if host_flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC) and host not in HOST_DEVICES:
        k.vfs.check_writable(host)
    kind = _file_type(host)
    if k.vfs.rootfs is not None and host not in HOST_DEVICES and (stat.S_ISCHR(kind) or stat.S_ISBLK(kind)):
        raise SyscallError(errno.EACCES)  # device nodes inside a rootfs would reach host hardware
    if not host_flags & os.O_NONBLOCK and stat.S_ISFIFO(kind):
        fd = fifo.open_fifo(k, host, host_flags, mode & GUEST_MODE_BITS & ~k.vfs.umask)
    else:
        fd = k.vfs.open_confined(host, host_flags, mode & GUEST_MODE_BITS & ~k.vfs.umask)
    return k.fds.install(OpenFile(fd, guest, cloexec))


def _file_type(host: str) -> int:
    """The S_IFMT bits of what `host` names (0 if nothing does yet)."""
    try:
        return stat.S_IFMT(os.stat(host).st_mode)
    except OSError:
        return 0


def _open_node(k, node, guest: str, flags: int) -> int:
    if isinstance(node, VirtualDir):
        if flags & 3:
            raise SyscallError(errno.EISDIR)
        # O_PATH: fchmod/fchown on this fd cannot reach the host's `/`.
        return os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    if isinstance(node, VirtualFile):
        if flags & 3 and node.mappable is None:
            raise SyscallError(errno.EACCES)  # /proc/self/maps and friends are read-only (0444)
        fd = os.memfd_create("bdemu" + guest.replace("/", "-"), os.MFD_CLOEXEC)
        os.write(fd, node.content())
        if flags & 3:
            os.lseek(fd, 0, os.SEEK_SET)
            return fd
        try:  # read-only, as the guest opened it: write, splice and copy_file_range into it fail (EBADF)
            return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(fd)
    raise SyscallError(errno.ENOENT)


@syscall("dirfd", "path", "oflags", "mode")
def sys_openat(k, dirfd, path, flags, mode):
    return open_path(k, dirfd, path, flags, mode)


@syscall("path", "oflags", "mode")
def sys_open(k, path, flags, mode):
    return open_path(k, AT_FDCWD, path, flags, mode)


@syscall("path", "mode")
def sys_creat(k, path, mode):
    table = open_flags(k)
    return open_path(k, AT_FDCWD, path, table["O_CREAT"] | table["O_TRUNC"] | 1, mode)


@syscall("fd")
def sys_close(k, fd):
    k.fds.close(k.signed32(fd))
    return 0


CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 0x2, 0x4


@syscall("uint", "uint", "hex")
def sys_close_range(k, first, last, flags):
    """Close (or mark close-on-exec) every open fd in [first, last]; subprocess uses it."""
    if first > last or flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC):
        raise SyscallError(errno.EINVAL)
    for fd, file in k.fds.items():
        if first <= fd <= last:
            if flags & CLOSE_RANGE_CLOEXEC:
                file.cloexec = True
            else:
                k.fds.close(fd)
    return 0


@syscall("fd", "buf_out", "size")
def sys_read(k, fd, buf, count):
    file = k.fds.get(k.signed32(fd))
    reader = getattr(file.node, "guest_read", None)  # a node that answers reads itself (signalfd)
    if reader is not None:
        k.write(buf, data := reader(k, count))
        return len(data)
    k.wait_readable(file.host_fd)
    data = file.swapped(os.read(file.host_fd, k.io_size(buf, count, MAX_IO)), k.byteorder)
    k.write(buf, data)
    return len(data)


@syscall("fd", "buf_in", "size")
def sys_write(k, fd, buf, count):
    file = k.fds.get(k.signed32(fd))
    return write_data(k, file.host_fd, file.swapped(k.read(buf, min(count, MAX_IO)), k.byteorder))


def _write_between_threads(k, host_fd: int, data: bytes) -> int:
    """os.write for a guest with several threads: a blocking pipe or socket (which another
    guest thread may be the one to drain) is written a buffer at a time while it has room,
    and the thread parks while it is full, instead of blocking the engine."""
    try:
        mode = os.fstat(host_fd).st_mode
        blocks = (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)) and os.get_blocking(host_fd)
    except OSError:
        blocks = False
    if not blocks:
        return os.write(host_fd, data)
    return _write_in_turns(k, host_fd, data, 0)


def _write_in_turns(k, host_fd: int, data: bytes, done: int) -> int:
    while done < len(data):
        k.threads.wait(((host_fd, select.POLLOUT | select.POLLERR),),
                       resume=lambda kernel, done=done: _write_in_turns(kernel, host_fd, data, done))
        try:
            done += os.write(host_fd, data[done:done + PIPE_BUF])
        except OSError:
            if done:  # what was written counts, as on Linux
                return done
            raise
    return done


@syscall("fd", "buf_out", "size", "off64")
def sys_pread64(k, fd, buf, count, offset):
    data = os.pread(k.fds.get(k.signed32(fd)).host_fd, k.io_size(buf, count, MAX_IO), offset)
    k.write(buf, data)
    return len(data)


@syscall("fd", "buf_in", "size", "off64")
def sys_pwrite64(k, fd, buf, count, offset):
    return os.pwrite(k.fds.get(k.signed32(fd)).host_fd, k.read(buf, min(count, MAX_IO)), offset)


def _iovecs(k, address: int, count: int) -> list[tuple[int, int]]:
    if count > IOV_MAX:
        raise SyscallError(errno.EINVAL)
    raw = k.read(address, count * 2 * k.word)
    words = [int.from_bytes(raw[i:i + k.word], k.byteorder) for i in range(0, len(raw), k.word)]
    return list(zip(words[0::2], words[1::2]))


@syscall("fd", "iov", "int")
def sys_readv(k, fd, iov, count):
    file = k.fds.get(k.signed32(fd))
    k.wait_readable(file.host_fd)  # interruptible, as in read (musl's stdio reads with readv)
    return read_vector(k, file.host_fd, _iovecs(k, iov, count), file.swapped)


def read_vector(k, host_fd: int, vectors: list[tuple[int, int]], swapped=lambda data, _order: data) -> int:
    """Read from `host_fd` into guest buffers (base, length) in turn until one is left short or
    nothing more is there: only the first read may wait, as readv(2) is one read. `swapped` puts
    what the host fd gives in the guest's byte order (OpenFile.swapped)."""
    total = 0
    for base, length in vectors:
        if not length:
            continue
        if total and not ready_now(host_fd, select.POLLIN):
            break
        data = swapped(os.read(host_fd, k.io_size(base, length, MAX_IO)), k.byteorder)
        k.write(base, data)
        total += len(data)
        if len(data) < length:
            break
    return total


def ready_now(host_fd: int, events: int) -> bool:
    """Whether `host_fd` polls ready for `events` at once (a regular file always does)."""
    poller = select.poll()
    poller.register(host_fd, events)
    return bool(poller.poll(0))


@syscall("fd", "iov", "int")
def sys_writev(k, fd, iov, count):
    file = k.fds.get(k.signed32(fd))
    data = file.swapped(gather_vector(k, _iovecs(k, iov, count)), k.byteorder)
    return write_data(k, file.host_fd, data) if data else 0


def gather_vector(k, vectors: list[tuple[int, int]]) -> bytes:
    """The bytes of guest buffers (base, length), at most MAX_IO in all: a short write, as Linux may."""
    pieces, total = [], 0
    for base, length in vectors:
        piece = k.read(base, min(length, MAX_IO - total))
        pieces.append(piece)
        total += len(piece)
        if total >= MAX_IO:
            break
    return b"".join(pieces)


def write_data(k, host_fd: int, data: bytes) -> int:
    """os.write, or in turns while other guest threads may drain a full pipe (see sys_write)."""
    return os.write(host_fd, data) if k.threads.alone else _write_between_threads(k, host_fd, data)


@syscall("fd", "off", "int")
def sys_lseek(k, fd, offset, whence):
    file = k.fds.get(k.signed32(fd))
    if file.dir_entries is not None or _is_dir(file):
        file.dir_position = 0 if k.signed(offset) == 0 else file.dir_position
        file.dir_entries = None if k.signed(offset) == 0 else file.dir_entries
        return 0
    return os.lseek(file.host_fd, k.signed(offset), whence)


@syscall("fd", "uint", "uint", "ptr", "int")
def sys__llseek(k, fd, high, low, result, whence):
    file = k.fds.get(k.signed32(fd))
    position = os.lseek(file.host_fd, k.signed((high << 32) | low) if k.word == 8 else
                        ((high << 32) | low) - ((1 << 64) if high & 0x80000000 else 0), whence)
    k.write(result, struct.pack("<q" if k.byteorder == "little" else ">q", position))
    return 0


def _is_dir(file: OpenFile) -> bool:
    try:
        return stat.S_ISDIR(os.fstat(file.host_fd).st_mode)
    except OSError:
        return False


@syscall("fd")
def sys_dup(k, fd):
    return k.fds.duplicate(k.signed32(fd))


@syscall("fd", "fd")
def sys_dup2(k, old, new):
    old, new = k.signed32(old), k.signed32(new)
    source = k.fds.get(old)
    if old == new:
        return new
    k.fds.place(new, OpenFile(os.dup(source.host_fd), source.guest_path, False, source.node, records=source.records))
    return new


@syscall("fd", "fd", "oflags")
def sys_dup3(k, old, new, flags):
    old, new = k.signed32(old), k.signed32(new)
    if old == new:
        raise SyscallError(errno.EINVAL)
    source = k.fds.get(old)
    cloexec = bool(flags & open_flags(k)["O_CLOEXEC"])
    k.fds.place(new, OpenFile(os.dup(source.host_fd), source.guest_path, cloexec, source.node,
                              records=source.records))
    return new


def _pipe_fds(k, flags: int) -> list[int]:
    table = open_flags(k)
    read_end, write_end = os.pipe2(os.O_CLOEXEC | (os.O_NONBLOCK if flags & table["O_NONBLOCK"] else 0))
    cloexec = bool(flags & table["O_CLOEXEC"])
    return [k.fds.install(OpenFile(read_end, "pipe:", cloexec)),
            k.fds.install(OpenFile(write_end, "pipe:", cloexec))]


def _pipe(k, address: int, flags: int) -> int:
    fds = _pipe_fds(k, flags)
    k.write(address, b"".join(fd.to_bytes(4, k.byteorder) for fd in fds))
    return 0


@syscall("ptr", "oflags")
def sys_pipe2(k, address, flags):
    return _pipe(k, address, flags)


@syscall("ptr")
def sys_pipe(k, address):
    second = k.arch.variants.get("pipe_second_fd")
    if second is None:
        return _pipe(k, address, 0)
    read_end, write_end = _pipe_fds(k, 0)  # MIPS: both descriptors come back in registers
    k.emu.set_reg(second, write_end)
    return read_end


F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030


@syscall("fd", "int", "hex", names=("fcntl64",))
def sys_fcntl(k, fd, command, argument):
    fd = k.signed32(fd)
    file = k.fds.get(fd)
    if command in (F_DUPFD, F_DUPFD_CLOEXEC):
        if argument >= k.fds.limit:  # (a negative one too, read unsigned)
            raise SyscallError(errno.EINVAL)
        return k.fds.duplicate(fd, argument, command == F_DUPFD_CLOEXEC)
    if command == F_GETFD:
        return int(file.cloexec)
    if command == F_SETFD:
        file.cloexec = bool(argument & 1)
        return 0
    if command == F_GETFL:
        return guest_open_flags(k, host_fcntl.fcntl(file.host_fd, host_fcntl.F_GETFL))
    if command == F_SETFL:
        host_fcntl.fcntl(file.host_fd, host_fcntl.F_SETFL, host_open_flags(k, argument))
        return 0
    if locks.is_record_lock(k, command):  # F_GETLK, F_SETLK(W), their OFD and *64 forms
        return locks.record_lock(k, file.host_fd, command, argument)
    raise SyscallError(errno.EINVAL)


@syscall("fd", "off")
def sys_ftruncate(k, fd, length):
    return _ftruncate(k, fd, k.signed(length))


@syscall("fd", "off64")
def sys_ftruncate64(k, fd, length):
    return _ftruncate(k, fd, length)


def _ftruncate(k, fd: int, length: int) -> int:
    host_fd = k.fds.get(k.signed32(fd)).host_fd
    k.vfs.check_writable_fd(host_fd)
    os.ftruncate(host_fd, length)
    return 0


@syscall("fd", "hex", "off64", "off64")
def sys_fallocate(k, fd, mode, offset, length):
    file = k.fds.get(k.signed32(fd))
    if mode:
        raise SyscallError(errno.EOPNOTSUPP)
    os.posix_fallocate(file.host_fd, offset, length)
    return 0


@syscall("fd", names=("fadvise64_64", "arm_fadvise64_64", "sync_file_range", "arm_sync_file_range",
                      "sync_file_range2", "readahead"))
def sys_fadvise64(k, fd):
    """Advice and write-back hints: only the descriptor matters to an emulator."""
    k.fds.get(k.signed32(fd))
    return 0


@syscall("fd", names=("fdatasync", "syncfs"))
def sys_fsync(k, fd):
    k.fds.get(k.signed32(fd))
    return 0


MFD_FLAGS = 0x1F  # MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_HUGETLB, MFD_NOEXEC_SEAL, MFD_EXEC


@syscall("str", "hex")
def sys_memfd_create(k, name, flags):
    """An anonymous file: a host memfd (mmap, seals, and execve of /proc/self/fd/N work on it)."""
    label = k.read_cstring(name, 250)
    if flags & ~MFD_FLAGS or flags & 4:  # no huge pages
        raise SyscallError(errno.EINVAL)
    host_fd = os.memfd_create(os.fsdecode(label), (flags & ~1) | os.MFD_CLOEXEC)
    return k.fds.install(OpenFile(host_fd, f"/memfd:{os.fsdecode(label)} (deleted)", bool(flags & 1)))


@syscall()
def sys_sync(k):
    """Like fsync: what the guest wrote is in the host's page cache, which the host flushes."""
    return 0
