"""Path and metadata syscalls: stat, getdents, access, readlink, cwd, create/remove/rename (statfs: statfs.py)."""
from __future__ import annotations

import errno
import os
import stat as statmod
import time

from .errors import SyscallError
from .files import AT_FDCWD, dir_base
from .fs import GUEST_MODE_BITS, HOST_DEVICES, VirtualDir, VirtualFile, VirtualLink
from .registry import syscall
from .structs import dirent64, dirent_type, pack_stat, pack_statx

AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, AT_EMPTY_PATH = 0x100, 0x200, 0x400, 0x1000


def _virtual_stat(node) -> os.stat_result:
    if isinstance(node, VirtualDir):
        mode, size = statmod.S_IFDIR | 0o555, 0
    elif isinstance(node, VirtualLink):
        mode, size = statmod.S_IFLNK | 0o777, len(os.fsencode(node.target()))
    elif node.mappable is not None:  # a device window (sysfs resourceN): its size, read-write
        mode, size = statmod.S_IFREG | 0o600, node.mappable.size
    else:
        mode, size = statmod.S_IFREG | 0o444, 4096
    extra = {"st_atime_ns": 0, "st_mtime_ns": 0, "st_ctime_ns": 0, "st_blksize": 4096,
             "st_blocks": 0, "st_rdev": 0}
    return os.stat_result((mode, 0, 0, 1, os.getuid(), os.getgid(), size, 0, 0, 0), extra)


def stat_path(k, dirfd: int, path_address: int, flags: int) -> os.stat_result:
    if flags & AT_EMPTY_PATH and (path_address == 0 or not k.read_cstring(path_address)):
        return os.fstat(k.fds.get(k.signed32(dirfd)).host_fd)
    path = k.read_path(path_address)
    follow = not flags & AT_SYMLINK_NOFOLLOW
    host, node = k.vfs.resolve(path, dir_base(k, dirfd), follow)
    if node is not None:
        return _virtual_stat(node)
    return os.stat(host, follow_symlinks=follow)


def _write_stat(k, address: int, st: os.stat_result) -> int:
    k.write(address, pack_stat(k.arch.stat_layout, st, k.byteorder))
    return 0


@syscall("fd", "ptr", names=("fstat64",))
def sys_fstat(k, fd, address):
    return _write_stat(k, address, os.fstat(k.fds.get(k.signed32(fd)).host_fd))


@syscall("dirfd", "path", "ptr", "hex", names=("fstatat64",))
def sys_newfstatat(k, dirfd, path, address, flags):
    return _write_stat(k, address, stat_path(k, dirfd, path, flags))


@syscall("path", "ptr", names=("stat64",))
def sys_stat(k, path, address):
    return _write_stat(k, address, stat_path(k, AT_FDCWD, path, 0))


@syscall("path", "ptr", names=("lstat64",))
def sys_lstat(k, path, address):
    return _write_stat(k, address, stat_path(k, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW))


@syscall("dirfd", "path", "hex", "hex", "ptr")
def sys_statx(k, dirfd, path, flags, mask, address):
    k.write(address, pack_statx(stat_path(k, dirfd, path, flags), k.byteorder))
    return 0


@syscall("fd", "buf_out", "size")
def sys_getdents64(k, fd, address, size):
    file = k.fds.get(k.signed32(fd))
    if file.dir_entries is None:
        file.dir_entries = _list_directory(k, file)
        file.dir_position = 0
    out = bytearray()
    while file.dir_position < len(file.dir_entries):
        ino, kind, name = file.dir_entries[file.dir_position]
        record = dirent64(ino, file.dir_position + 1, kind, name, k.byteorder)
        if len(out) + len(record) > size:
            if not out:
                raise SyscallError(errno.EINVAL)
            break
        out += record
        file.dir_position += 1
    k.write(address, bytes(out))
    return len(out)


def _list_directory(k, file) -> list[tuple[int, int, bytes]]:
    entries = [(1, 4, b"."), (1, 4, b"..")]
    names: set[str] = set()
    if k.vfs.is_fd_dir(file.guest_path):
        # The host's listing would be bdemu's fds: the guest's are its own fd table's.
        return entries + [(fd + 1, 10, str(fd).encode()) for fd, _ in sorted(k.fds.items())]
    if not isinstance(file.node, VirtualDir):
        if not statmod.S_ISDIR(os.fstat(file.host_fd).st_mode):
            raise SyscallError(errno.ENOTDIR)
        for entry in os.scandir(file.host_fd):
            names.add(entry.name)
            try:
                kind = dirent_type(entry.stat(follow_symlinks=False).st_mode)
            except OSError:
                kind = 0
            entries.append((entry.inode(), kind, os.fsencode(entry.name)))
    for name in sorted(k.vfs.virtual_entries(file.guest_path) - names):
        node = k.vfs.node(file.guest_path.rstrip("/") + "/" + name)
        kind = 4 if isinstance(node, VirtualDir) else 10 if isinstance(node, VirtualLink) else 8
        entries.append((abs(hash(name)) & 0xFFFFFFFF or 1, kind, name.encode()))
    return entries


def _access(k, dirfd: int, path_address: int, mode: int, flags: int) -> int:
    path = k.read_path(path_address)
    host, node = k.vfs.resolve(path, dir_base(k, dirfd), not flags & AT_SYMLINK_NOFOLLOW)
    if node is not None:
        if mode & 2 and isinstance(node, VirtualFile) and node.mappable is None:
            raise SyscallError(errno.EACCES)
        return 0
    if not os.access(host, mode & 7, follow_symlinks=not flags & AT_SYMLINK_NOFOLLOW):
        raise SyscallError(errno.EACCES if os.path.lexists(host) else errno.ENOENT)
    return 0


@syscall("path", "int")
def sys_access(k, path, mode):
    return _access(k, AT_FDCWD, path, mode, 0)


@syscall("dirfd", "path", "int")
def sys_faccessat(k, dirfd, path, mode):
    return _access(k, dirfd, path, mode, 0)


@syscall("dirfd", "path", "int", "hex")
def sys_faccessat2(k, dirfd, path, mode, flags):
    return _access(k, dirfd, path, mode, flags)


def _readlink(k, dirfd: int, path_address: int, buf: int, size: int) -> int:
    path = k.read_path(path_address)
    key = k.vfs.key(k.vfs.absolute(path, dir_base(k, dirfd)))
    number = key.removeprefix("/proc/self/fd/").removeprefix("/dev/fd/")
    if number != key and number.isdigit():  # the host's link would name a host path
        file = k.fds.find(int(number))
        if file is None:
            raise SyscallError(errno.ENOENT)
        target = _fd_link_text(k, file)
    else:
        host, node = k.vfs.resolve(path, dir_base(k, dirfd), follow=False)
        if isinstance(node, VirtualLink):
            target = k.vfs.shown(node.target())
        elif node is not None:
            raise SyscallError(errno.EINVAL)
        else:
            target = os.readlink(host)
    data = os.fsencode(target)[:size]
    k.write(buf, data)
    return len(data)


def _fd_link_text(k, file) -> str:
    """What /proc/self/fd/N reads as: the guest path of the file; the host's name of a pipe or
    socket (pipe:[N]); for stdio (and what was opened as /dev/fd/N) the host's path if the guest
    can see it."""
    if file.guest_path.startswith("/") and not file.guest_path.startswith("/dev/fd/"):
        return k.vfs.shown(file.guest_path)
    try:
        real = os.readlink(f"/proc/self/fd/{file.host_fd}")
    except OSError:
        return file.guest_path
    if not real.startswith("/"):
        return real
    guest = k.vfs.guest_path_of_host(real)
    if file.guest_path.startswith("/") and (k.vfs.rootfs is None or guest != real or real in HOST_DEVICES):
        return k.vfs.shown(guest)
    return file.guest_path


@syscall("path", "buf_out", "size")
def sys_readlink(k, path, buf, size):
    return _readlink(k, AT_FDCWD, path, buf, size)


@syscall("dirfd", "path", "buf_out", "size")
def sys_readlinkat(k, dirfd, path, buf, size):
    return _readlink(k, dirfd, path, buf, size)


@syscall("buf_out", "size")
def sys_getcwd(k, buf, size):
    data = os.fsencode(k.vfs.cwd_text()) + b"\0"
    if len(data) > size:
        raise SyscallError(errno.ERANGE)
    k.write(buf, data)
    return len(data)


def change_directory(k, guest: str) -> int:
    """chdir to the full path `guest`."""
    host, node = k.vfs.resolve_full(guest)
    if node is None and not os.path.isdir(host):
        raise SyscallError(errno.ENOTDIR if os.path.exists(host) else errno.ENOENT)
    if node is not None and not isinstance(node, VirtualDir):
        raise SyscallError(errno.ENOTDIR)
    if node is None and not os.access(host, os.X_OK):
        raise SyscallError(errno.EACCES)
    k.vfs.cwd = k.vfs.guest_path_of_host(host) if node is None else guest
    return 0


@syscall("path")
def sys_chdir(k, path):
    return change_directory(k, k.vfs.absolute(k.read_path(path)))


@syscall("fd")
def sys_fchdir(k, fd):
    return change_directory(k, k.fds.get(k.signed32(fd)).guest_path)


def _host(k, dirfd: int, path_address: int, follow: bool = False) -> str:
    return k.vfs.host_path(k.read_path(path_address), dir_base(k, dirfd), follow)


def _writable(k, dirfd: int, path_address: int, follow: bool = False) -> str:
    """The host path of a file the guest changes: EROFS under `--read-only` or a `:ro` mount."""
    host = _host(k, dirfd, path_address, follow)
    k.vfs.check_writable(host)
    return host


def _removable(k, dirfd: int, path_address: int) -> str:
    """Like `_writable`, and never the rootfs or a mount point itself (EBUSY)."""
    host = _writable(k, dirfd, path_address)
    k.vfs.check_removable(host)
    return host


def _writable_fd(k, fd: int) -> int:
    host_fd = k.fds.get(k.signed32(fd)).host_fd
    k.vfs.check_writable_fd(host_fd)
    return host_fd


@syscall("dirfd", "path", "hex")
def sys_unlinkat(k, dirfd, path, flags):
    with k.vfs.parent_of(_removable(k, dirfd, path)) as (parent, name):
        (os.rmdir if flags & AT_REMOVEDIR else os.unlink)(name, dir_fd=parent)
    return 0


@syscall("path")
def sys_unlink(k, path):
    return sys_unlinkat(k, AT_FDCWD, path, 0)


@syscall("path")
def sys_rmdir(k, path):
    return sys_unlinkat(k, AT_FDCWD, path, AT_REMOVEDIR)


@syscall("dirfd", "path", "mode")
def sys_mkdirat(k, dirfd, path, mode):
    with k.vfs.parent_of(_writable(k, dirfd, path)) as (parent, name):
        os.mkdir(name, mode & GUEST_MODE_BITS & ~k.vfs.umask, dir_fd=parent)
    return 0


@syscall("path", "mode")
def sys_mkdir(k, path, mode):
    return sys_mkdirat(k, AT_FDCWD, path, mode)


@syscall("dirfd", "path", "mode", "hex")
def sys_mknodat(k, dirfd, path, mode, device):
    """FIFOs, sockets and empty files. Device nodes need CAP_MKNOD, which an untrusted guest
    never has here: EPERM, as for an unprivileged process (docs/security.md)."""
    kind = statmod.S_IFMT(mode) or statmod.S_IFREG
    if kind in (statmod.S_IFCHR, statmod.S_IFBLK):
        raise SyscallError(errno.EPERM)
    if kind not in (statmod.S_IFIFO, statmod.S_IFSOCK, statmod.S_IFREG):
        raise SyscallError(errno.EINVAL)
    with k.vfs.parent_of(_writable(k, dirfd, path)) as (parent, name):
        os.mknod(name, kind | mode & GUEST_MODE_BITS & ~k.vfs.umask, dir_fd=parent)
    return 0


@syscall("path", "mode", "hex")
def sys_mknod(k, path, mode, device):
    return sys_mknodat(k, AT_FDCWD, path, mode, device)


@syscall("dirfd", "path", "dirfd", "path", "hex")
def sys_renameat2(k, olddir, old, newdir, new, flags):
    source, target = _removable(k, olddir, old), _removable(k, newdir, new)
    if flags & 1 and os.path.lexists(target):  # RENAME_NOREPLACE
        raise SyscallError(errno.EEXIST)
    with k.vfs.parent_of(source) as (source_dir, source_name), \
            k.vfs.parent_of(target) as (target_dir, target_name):
        os.rename(source_name, target_name, src_dir_fd=source_dir, dst_dir_fd=target_dir)
    return 0


@syscall("dirfd", "path", "dirfd", "path")
def sys_renameat(k, olddir, old, newdir, new):
    return sys_renameat2(k, olddir, old, newdir, new, 0)


@syscall("path", "path")
def sys_rename(k, old, new):
    return sys_renameat2(k, AT_FDCWD, old, AT_FDCWD, new, 0)


@syscall("path", "dirfd", "path")
def sys_symlinkat(k, target, dirfd, path):
    text = k.read_path(target)
    with k.vfs.parent_of(_writable(k, dirfd, path)) as (parent, name):
        os.symlink(text, name, dir_fd=parent)
    return 0


@syscall("path", "path")
def sys_symlink(k, target, path):
    return sys_symlinkat(k, target, AT_FDCWD, path)


@syscall("dirfd", "path", "dirfd", "path", "hex")
def sys_linkat(k, olddir, old, newdir, new, flags):
    source, target = _writable(k, olddir, old, bool(flags & AT_SYMLINK_FOLLOW)), _writable(k, newdir, new)
    with k.vfs.parent_of(source) as (source_dir, source_name), \
            k.vfs.parent_of(target) as (target_dir, target_name):
        os.link(source_name, target_name, src_dir_fd=source_dir, dst_dir_fd=target_dir, follow_symlinks=False)
    return 0


@syscall("path", "path")
def sys_link(k, old, new):
    return sys_linkat(k, AT_FDCWD, old, AT_FDCWD, new, 0)


@syscall("mode")
def sys_umask(k, mask):
    old, k.vfs.umask = k.vfs.umask, mask & 0o777
    return old


@syscall("dirfd", "path", "mode")
def sys_fchmodat(k, dirfd, path, mode):
    with k.vfs.magic_path(_writable(k, dirfd, path, True)) as target:
        os.chmod(target, mode & GUEST_MODE_BITS)
    return 0


@syscall("path", "mode")
def sys_chmod(k, path, mode):
    return sys_fchmodat(k, AT_FDCWD, path, mode)


@syscall("fd", "mode")
def sys_fchmod(k, fd, mode):
    os.fchmod(_writable_fd(k, fd), mode & GUEST_MODE_BITS)
    return 0


@syscall("dirfd", "path", "int", "int", "hex")
def sys_fchownat(k, dirfd, path, uid, gid, flags):
    follow = not flags & AT_SYMLINK_NOFOLLOW
    host = _writable(k, dirfd, path, follow)
    if follow:
        with k.vfs.magic_path(host) as target:
            os.chown(target, k.signed32(uid), k.signed32(gid))
    else:
        with k.vfs.parent_of(host) as (parent, name):
            os.chown(name, k.signed32(uid), k.signed32(gid), dir_fd=parent, follow_symlinks=False)
    return 0


@syscall("path", "int", "int", names=("chown32",))
def sys_chown(k, path, uid, gid):
    return sys_fchownat(k, AT_FDCWD, path, uid, gid, 0)


@syscall("path", "int", "int", names=("lchown32",))
def sys_lchown(k, path, uid, gid):
    return sys_fchownat(k, AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW)


@syscall("fd", "int", "int", names=("fchown32",))
def sys_fchown(k, fd, uid, gid):
    os.fchown(_writable_fd(k, fd), k.signed32(uid), k.signed32(gid))
    return 0


@syscall("path", "off")
def sys_truncate(k, path, length):
    return _truncate(k, path, k.signed(length))


@syscall("path", "off64")
def sys_truncate64(k, path, length):
    return _truncate(k, path, length)


def _truncate(k, path: int, length: int) -> int:
    fd = k.vfs.open_confined(_writable(k, AT_FDCWD, path, True), os.O_WRONLY | os.O_CLOEXEC, 0)
    try:
        os.ftruncate(fd, length)
    finally:
        os.close(fd)
    return 0


@syscall("dirfd", "path", "ptr", "hex")
def sys_utimensat(k, dirfd, path, times, flags):
    return _utimensat(k, dirfd, path, times, flags, k.word)


@syscall("dirfd", "path", "ptr", "hex")
def sys_utimensat_time64(k, dirfd, path, times, flags):
    return _utimensat(k, dirfd, path, times, flags, 8)


UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2


def _utimensat(k, dirfd: int, path: int, times: int, flags: int, size: int) -> int:
    """Two timespecs of `size`-byte fields (the *_time64 calls use 8 on 32-bit ISAs)."""
    words = None
    if times:
        raw = k.read(times, 4 * size)
        words = [int.from_bytes(raw[i:i + size], k.byteorder, signed=True) for i in range(0, len(raw), size)]

    def stamps(current: os.stat_result) -> dict:
        if words is None:
            return {}
        chosen = []
        for (seconds, nanos), old in zip((words[:2], words[2:]), (current.st_atime_ns, current.st_mtime_ns)):
            nanos &= 0xFFFFFFFF
            chosen.append(old if nanos == UTIME_OMIT else time.time_ns() if nanos == UTIME_NOW
                          else seconds * 10**9 + nanos)
        return {"ns": tuple(chosen)}

    if path == 0:
        target = f"/proc/self/fd/{_writable_fd(k, dirfd)}"
        os.utime(target, **stamps(os.stat(target)))
        return 0
    follow = not flags & AT_SYMLINK_NOFOLLOW
    host = _writable(k, dirfd, path, follow)
    if follow:
        with k.vfs.magic_path(host) as target:
            os.utime(target, **stamps(os.stat(target)))
    else:
        with k.vfs.parent_of(host) as (parent, name):
            current = os.stat(name, dir_fd=parent, follow_symlinks=False)
            os.utime(name, dir_fd=parent, follow_symlinks=False, **stamps(current))
    return 0
