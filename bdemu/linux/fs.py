"""The guest's view of the filesystem: host paths, an optional confining rootfs, virtual nodes.

Without `--rootfs` the guest sees the host filesystem with the user's rights,
as under qemu-user. With `--rootfs DIR` every path is resolved component by
component inside DIR, symlinks included, so no `..` or link leads out of it.
Virtual nodes (`/proc/self/exe`, `/proc/self/maps`, sysfs entries of devices)
are answered by bdemu and never touch the host. `Mount`s bind host
directories into the confined tree; `read_only` (or a `:ro` mount) makes every
write that would reach the host fail with EROFS. docs/security.md states the
guarantee and its limits.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import posixpath
import stat
import struct
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .errors import SyscallError
from .hostlibc import LIBC

MAX_SYMLINKS = 40
#: Mode bits a guest may set on host files: never set-user-ID or set-group-ID, so an untrusted
#: guest run by root cannot leave a setuid-root program behind (docs/security.md).
GUEST_MODE_BITS = 0o1777
HOST_DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full", "/dev/tty")
#: Where the guest finds its own fds by number (see VirtualFS._fd_entry).
FD_DIRS = ("/proc/self/fd/", "/proc/self/fdinfo/", "/dev/fd/")
FD_DIRS_BARE = ("/proc/self/fd", "/proc/self/fdinfo", "/dev/fd")
STDIO_LINKS = {"/dev/stdin": "/dev/fd/0", "/dev/stdout": "/dev/fd/1", "/dev/stderr": "/dev/fd/2"}


@dataclass
class VirtualFile:
    """A file whose bytes bdemu makes on open; `mappable` lets mmap map a device window."""

    content: Callable[[], bytes]
    mappable: object | None = None


@dataclass
class VirtualDir:
    entries: set[str] = field(default_factory=set)


@dataclass
class VirtualLink:
    target: Callable[[], str]


Node = VirtualFile | VirtualDir | VirtualLink


@dataclass(frozen=True)
class Mount:
    """A host directory bound at `guest` (an absolute, normalised guest path)."""

    host: str
    guest: str
    read_only: bool = False


def parse_mount(spec: str) -> Mount:
    """`HOST:GUEST[:ro]` -> Mount; raises ValueError with a reason for a bad spec."""
    parts = spec.split(":")
    read_only = len(parts) == 3 and parts[2] == "ro"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not read_only):
        raise ValueError(f"--mount expects HOST:GUEST[:ro], not {spec!r}")
    host, guest = parts[0], parts[1]
    if not host or not os.path.isdir(host):
        raise ValueError(f"--mount {spec!r}: {host!r} is not a directory")
    if not guest.startswith("/"):
        raise ValueError(f"--mount {spec!r}: the guest path must be absolute")
    guest = "/" + posixpath.normpath(guest).lstrip("/")
    return Mount(os.path.realpath(host), guest.rstrip("/") or "/", read_only)


def parse_mounts(specs, rootfs: str | None) -> list["Mount"]:
    """`HOST:GUEST[:ro]` strings -> Mounts; a bad spec, or mounts without a rootfs, is a usage error."""
    from ..errors import UsageError
    if specs and rootfs is None:
        raise UsageError("--mount needs --rootfs")
    try:
        return [parse_mount(spec) for spec in specs]
    except ValueError as error:
        raise UsageError(str(error)) from None


class VirtualFS:
    """Resolves guest paths to host paths or virtual nodes; owns the guest's cwd."""

    def __init__(self, rootfs: str | None, cwd: str, mounts: Sequence[Mount] = (),
                 read_only: bool = False) -> None:
        self.rootfs = os.path.realpath(rootfs) if rootfs else None
        self.cwd = cwd
        self._nodes: dict[str, Node] = {}
        self.umask = 0o022
        self.read_only = read_only
        #: Longest guest prefix first, so the deepest mount wins.
        self.mounts = sorted(mounts, key=lambda m: -len(m.guest))
        if self.mounts and self.rootfs is None:
            raise ValueError("--mount needs --rootfs")
        #: The guest's fd table (the kernel sets it): guest fd -> its OpenFile, or None.
        self.file_of: Callable[[int], object | None] = lambda fd: None

    # -- virtual nodes -------------------------------------------------------------------
    def add_node(self, path: str, node: Node) -> None:
        """Publish a virtual node; parents become virtual directories listing it."""
        self._nodes[path] = node
        parent, name = posixpath.split(path)
        while parent and parent != path:
            directory = self._nodes.get(parent)
            if not isinstance(directory, VirtualDir):
                directory = VirtualDir()
                self._nodes[parent] = directory
            directory.entries.add(name)
            if parent == "/":
                break
            path, (parent, name) = parent, posixpath.split(parent)

    def node(self, guest_path: str) -> Node | None:
        return self._nodes.get(guest_path)

    def is_fd_dir(self, guest_path: str) -> bool:
        """/proc/self/fd (or /dev/fd, /proc/self/fdinfo): its entries are the guest's fds."""
        return self._self_proc(guest_path.rstrip("/") or "/") in FD_DIRS_BARE

    def virtual_entries(self, guest_path: str) -> set[str]:
        directory = self._nodes.get(guest_path)
        return set(directory.entries) if isinstance(directory, VirtualDir) else set()

    # -- resolution -------------------------------------------------------------------------
    def absolute(self, path: str, base: str | None = None) -> str:
        """The normalised absolute guest path of `path` (relative to `base` or the cwd)."""
        if not path.startswith("/"):
            path = posixpath.join(base or self.cwd, path)
        normal = posixpath.normpath(path)
        return "/" + normal.lstrip("/") if normal != "/" else "/"

    def resolve(self, path: str, base: str | None = None, follow: bool = True) -> tuple[str, Node | None]:
        """Guest path -> (host path, virtual node or None). Raises SyscallError.

        A path ending in `/` or `/.` names a directory, as on Linux: a last link is followed,
        anything else that exists is ENOTDIR, and a missing one keeps its slash for the host
        call to judge (mkdir makes it, open with O_CREAT fails). Normalising the path dropped
        that slash: `stat("file/")` succeeded, so the shell's `*/` glob matched files too."""
        if path.endswith(("/", "/.")) and path.strip("/."):
            host, node = self._resolve(path, base, True)
            if node is None and not os.path.exists(host):
                return host.rstrip("/") + "/", None
            if isinstance(node, VirtualFile) or node is None and not os.path.isdir(host):
                raise SyscallError(errno.ENOTDIR)
            return host, node
        return self._resolve(path, base, follow)

    def _resolve(self, path: str, base: str | None, follow: bool) -> tuple[str, Node | None]:
        if not path:
            raise SyscallError(errno.ENOENT)
        guest = self.absolute(path, base)
        guest = STDIO_LINKS.get(guest) or self._self_proc(guest)
        if guest.startswith(FD_DIRS) or guest in FD_DIRS_BARE:
            return self._fd_entry(guest, follow)
        node = self._nodes.get(guest)
        if isinstance(node, VirtualLink) and follow:
            return self._resolve(node.target(), None, True)
        if isinstance(node, VirtualDir):
            # A real directory keeps its own entries; the virtual ones are listed on top of them.
            host = guest if self.rootfs is None else self._confined(guest, follow)
            if os.path.isdir(host):
                return host, None
        if node is not None:
            return guest, node
        if self.rootfs is None:
            return guest, None
        if guest in HOST_DEVICES:
            return guest, None
        return self._confined(guest, follow), None

    def host_path(self, path: str, base: str | None = None, follow: bool = True) -> str:
        host, node = self.resolve(path, base, follow)
        if node is not None:
            raise SyscallError(errno.EACCES if isinstance(node, VirtualFile) else errno.EISDIR)
        return host

    def guest_path_of_host(self, host: str) -> str:
        """Map a host path back into the guest's namespace (for getcwd, readlink)."""
        if self.rootfs is None:
            return host
        for mount in self.mounts:
            if host == mount.host or host.startswith(mount.host + "/"):
                return mount.guest.rstrip("/") + host[len(mount.host):] or "/"
        if host == self.rootfs:
            return "/"
        if host.startswith(self.rootfs + "/"):
            return host[len(self.rootfs):]
        return host

    def _fd_entry(self, guest: str, follow: bool) -> tuple[str, Node | None]:
        """/proc/self/fd/N (/dev/fd/N, /proc/self/fdinfo/N) names the guest's fd N, whose host fd
        has another number: the host path of that host fd. The directories list the guest's fds."""
        if guest in FD_DIRS_BARE:  # listed by fsops from the fd table
            return guest, VirtualDir()
        folder = next(f for f in FD_DIRS if guest.startswith(f))
        number, _, rest = guest[len(folder):].partition("/")
        file = self.file_of(int(number)) if number.isdigit() else None
        if file is None or (rest and folder == "/proc/self/fdinfo/"):
            raise SyscallError(errno.ENOENT)
        if rest:  # below a directory fd: resolved from that directory's guest path, confined as usual
            base = file.guest_path
            if not base.startswith("/") or base in STDIO_LINKS:  # a pipe, a socket, stdio
                raise SyscallError(errno.ENOTDIR)
            base = self._self_proc(self.absolute(base))
            if base.startswith(FD_DIRS) or base in FD_DIRS_BARE:  # opened through another fd link
                raise SyscallError(errno.ENOTDIR)
            return self.resolve(posixpath.join(base, rest), follow=follow)
        kind = "fdinfo" if folder == "/proc/self/fdinfo/" else "fd"
        return f"/proc/self/{kind}/{file.host_fd}", None

    def _self_proc(self, guest: str) -> str:
        prefix = f"/proc/{os.getpid()}"
        if guest == prefix or guest.startswith(prefix + "/"):
            return "/proc/self" + guest[len(prefix):]
        if guest.startswith("/proc/thread-self"):
            return "/proc/self" + guest[len("/proc/thread-self"):]
        return guest

    def _host_of(self, components: list[str]) -> str:
        """Host path of a guest path already free of `.`, `..` and links (mounts applied)."""
        guest = "/" + "/".join(components)
        for mount in self.mounts:
            if guest == mount.guest or guest.startswith(mount.guest.rstrip("/") + "/"):
                rest = guest[len(mount.guest):].lstrip("/")
                return mount.host + ("/" + rest if rest else "")
        return self.rootfs + (guest if components else "")

    def _confined(self, guest: str, follow_last: bool) -> str:
        """Resolve `guest` inside the rootfs, following symlinks as the kernel would but never above it.

        Each component is checked with lstat; a link's target is read and resolved again from
        the guest's `/` (absolute) or its parent (relative), so neither `..` nor a link can
        climb out. More than MAX_SYMLINKS links fail with ELOOP, as on Linux.
        """
        resolved: list[str] = []
        pending = [c for c in guest.split("/") if c]
        pending.reverse()
        links = 0
        while pending:
            component = pending.pop()
            if component == ".":
                continue
            if component == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = self._host_of(resolved + [component])
            if (pending or follow_last) and os.path.islink(candidate):
                links += 1
                if links > MAX_SYMLINKS:
                    raise SyscallError(errno.ELOOP)
                target = os.readlink(candidate)
                if target.startswith("/"):
                    resolved = []
                pending.extend(reversed([c for c in target.split("/") if c]))
                continue
            resolved.append(component)
        return self._host_of(resolved)

    # -- writes ---------------------------------------------------------------------------------
    def check_writable(self, host: str) -> None:
        """EROFS unless a guest write to `host` is allowed (`--read-only`, `:ro` mounts)."""
        if self.read_only:
            raise SyscallError(errno.EROFS)
        for mount in self.mounts:
            if mount.read_only and (host == mount.host or host.startswith(mount.host + "/")):
                raise SyscallError(errno.EROFS)

    def check_removable(self, host: str) -> None:
        """The rootfs and mount points themselves cannot be removed or renamed (EBUSY)."""
        if self.rootfs is not None and (host == self.rootfs or any(host == m.host for m in self.mounts)):
            raise SyscallError(errno.EBUSY)

    def check_writable_fd(self, host_fd: int) -> None:
        """`check_writable` for an fd's file; pipes and sockets are not the host's files."""
        if not (self.read_only or self.mounts):
            return
        try:
            target = os.readlink(f"/proc/self/fd/{host_fd}")
        except OSError:
            raise SyscallError(errno.EBADF) from None
        if target.startswith("/"):
            self.check_writable(target)

    def _anchor(self, host: str) -> str:
        """The rootfs or mount directory `host` (a path made by `resolve`) lies in."""
        return next((m.host for m in self.mounts if host == m.host or host.startswith(m.host + "/")),
                    self.rootfs)

    def open_confined(self, host: str, flags: int, mode: int) -> int:
        """Open a host path made by `resolve`: with a rootfs, the kernel re-checks that no link
        (swapped in since resolution) and no `..` is crossed (openat2 RESOLVE_NO_SYMLINKS)."""
        if self.rootfs is None or host in HOST_DEVICES or _is_fd_link(host):
            return os.open(host, flags, mode)
        anchor = self._anchor(host)
        relative = host[len(anchor):].lstrip("/") or "."
        anchor_fd = os.open(anchor, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = openat2(anchor_fd, relative, flags, mode, RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)
        finally:
            os.close(anchor_fd)
        if not flags & os.O_PATH and stat.S_IFMT(os.fstat(fd).st_mode) in (stat.S_IFCHR, stat.S_IFBLK):
            os.close(fd)  # a device node swapped in since open_path checked
            raise SyscallError(errno.EACCES)
        return fd

    @contextlib.contextmanager
    def parent_of(self, host: str):
        """(directory fd or None, name) to act on `host` with `dir_fd=` calls: the parent is
        opened like `open_confined`, so a link swapped into the path is never followed."""
        anchor = None if self.rootfs is None or host in HOST_DEVICES or _is_fd_link(host) else self._anchor(host)
        if anchor is None or host == anchor:
            yield None, host
            return
        parent, name = posixpath.split(host.rstrip("/"))
        name += "/" if host.endswith("/") else ""  # a missing directory (see resolve)
        fd = self.open_confined(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0)
        try:
            yield fd, name
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def magic_path(self, host: str):
        """A `/proc/self/fd/N` path naming the file at `host` itself (opened like `open_confined`),
        for calls that follow the last link (chmod, chown, utimes) without a race."""
        if self.rootfs is None or host in HOST_DEVICES or _is_fd_link(host):
            yield host
            return
        fd = self.open_confined(host, os.O_PATH | os.O_CLOEXEC, 0)
        try:
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)


def _is_fd_link(host: str) -> bool:
    """A host path `_fd_entry` made: the magic link of one of the guest's own host fds."""
    for folder in ("/proc/self/fd/", "/proc/self/fdinfo/"):
        if host.startswith(folder) and host[len(folder):].isdigit():
            return True
    return False


RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 1, 2, 4, 8
_SYS_OPENAT2 = 437  # the same number on every Linux ISA


def openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    """openat2(2), falling back to openat with O_NOFOLLOW on kernels (or seccomp filters) without it."""
    how = struct.pack("QQQ", flags, mode if flags & (os.O_CREAT | os.O_TMPFILE) else 0, resolve)
    fd = LIBC.syscall(_SYS_OPENAT2, dirfd, os.fsencode(path), how, len(how))
    if fd >= 0:
        return fd
    code = ctypes.get_errno()
    if code not in (errno.ENOSYS, errno.EPERM):
        raise OSError(code, os.strerror(code), path)
    return os.open(path, flags | os.O_NOFOLLOW, mode, dir_fd=dirfd)
