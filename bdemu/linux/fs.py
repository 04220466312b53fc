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
#: bdemu's links to the guest's fds, as udev makes them: wherever a path or a link leads to them.
DEV_LINKS = {"/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
             "/dev/stderr": "/proc/self/fd/2", "/dev/fd": "/proc/self/fd"}
#: Trees where bdemu synthesizes nodes: a link into them is resolved by bdemu, not on the host.
SYNTHESIZED = ("/proc/", "/dev/", "/sys/")
#: /proc/PID entries Linux lets only a process that may ptrace PID open (EACCES otherwise).
PTRACE_GUARDED = frozenset({"fd", "fdinfo", "cwd", "root", "exe", "map_files", "maps", "smaps", "mem",
                            "environ", "auxv", "pagemap", "stack", "syscall"})


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
        #: Whether a host pid is another process of this guest (the kernel sets it).
        self.is_guest_pid: Callable[[int], bool] = lambda pid: False
        #: The guest's root (chroot), a full path: one from the first root, --rootfs or the host's
        #: `/`. The cwd and every fd's guest_path are full paths too; `shown` gives the guest's view.
        self.root = "/"
        self._root_parts: list[str] = []
        for path, target in DEV_LINKS.items():
            self.add_node(path, VirtualLink(lambda target=target: target))
        self.add_node("/proc/self/root", VirtualLink(lambda: self.root))
        self.add_node("/proc/self/cwd", VirtualLink(lambda: self.cwd))

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
        return self._nodes.get(self.key(guest_path))

    def is_fd_dir(self, guest_path: str) -> bool:
        """/proc/self/fd (or /dev/fd, /proc/self/fdinfo): its entries are the guest's fds."""
        return self.key(guest_path.rstrip("/") or "/") in FD_DIRS_BARE

    def virtual_entries(self, guest_path: str) -> set[str]:
        directory = self._nodes.get(self.key(guest_path))
        return set(directory.entries) if isinstance(directory, VirtualDir) else set()

    # -- the root and full paths --------------------------------------------------------------
    def absolute(self, path: str, base: str | None = None) -> str:
        """The normalised full path of the guest's `path`: an absolute one starts at the guest's
        root, a relative one at `base` (a full path) or the cwd."""
        return self._walk(self.root if path.startswith("/") else base or self.cwd, path)

    def _walk(self, start: str, path: str) -> str:
        """`path`'s components applied to the full path `start`; `..` at the root stays there."""
        parts = [c for c in start.split("/") if c]
        for component in path.split("/"):
            if component == "..":
                if parts and parts != self._root_parts:
                    parts.pop()
            elif component and component != ".":
                parts.append(component)
        return "/" + "/".join(parts)

    def shown(self, full: str) -> str:
        """A full path as the guest sees it (readlink): from its root, or whole if outside it."""
        if self.root == "/" or not full.startswith("/"):
            return full
        if full == self.root:
            return "/"
        return full[len(self.root):] if full.startswith(self.root + "/") else full

    def cwd_text(self) -> str:
        """getcwd(2)'s answer: a cwd outside the root (a chroot without chdir) is "(unreachable)"."""
        inside = self.root == "/" or self.cwd == self.root or self.cwd.startswith(self.root + "/")
        return self.shown(self.cwd) if inside else "(unreachable)" + self.cwd

    def key(self, full: str) -> str:
        """The name bdemu's own nodes go by (/proc/self/..., /dev/stdin): the guest's view."""
        return self._self_proc(self.shown(full))

    def set_root(self, full: str) -> None:
        """chroot: `full` (a full path free of links) becomes the guest's `/`."""
        self.root = full
        self._root_parts = [c for c in full.split("/") if c]

    @property
    def confining(self) -> bool:
        """Whether paths resolve component by component (a rootfs, or a chroot without one)."""
        return self.rootfs is not None or self.root != "/"

    # -- resolution -------------------------------------------------------------------------
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
        return self.resolve_full(self.absolute(path, base), follow)

    def resolve_full(self, full: str, follow: bool = True, hops: int = 0) -> tuple[str, Node | None]:
        """`resolve` for a full path (a cwd, an fd's guest_path); `hops`: links followed so far."""
        if hops > MAX_SYMLINKS:
            raise SyscallError(errno.ELOOP)
        key = self.key(full)
        node = self._nodes.get(key)
        if isinstance(node, VirtualLink):
            if not follow:
                return full, node
            return self.resolve_full(self._link_full(node), True, hops + 1)
        if key.startswith(FD_DIRS) or key in FD_DIRS_BARE:
            return self._fd_entry(key, follow)
        self._check_inspectable(key)
        name, _, rest = key[len("/proc/self/"):].partition("/")
        below = self._nodes.get("/proc/self/" + name) if key.startswith("/proc/self/") and rest else None
        if isinstance(below, VirtualLink):  # /proc/self/root/..., /proc/self/cwd/...
            return self.resolve_full(self._walk(self._link_full(below), rest), follow, hops + 1)
        if isinstance(node, VirtualDir):
            # A real directory keeps its own entries; the virtual ones are listed on top of them.
            host = self._confined(full, follow, hops) if self.confining else full
            if isinstance(host, str) and os.path.isdir(host):
                return host, None
        if node is not None:
            return full, node
        if key in HOST_DEVICES:
            return key, None
        if not self.confining:
            return self._host_link(full, follow, hops)
        found = self._confined(full, follow, hops)
        return found if isinstance(found, tuple) else (found, None)

    def _link_full(self, node: VirtualLink) -> str:
        """The full path a virtual link names (its target is a full path, or a host-relative GUEST)."""
        target = node.target()
        return self._walk("/" if target.startswith("/") else self.cwd, target)

    def _target(self, target: str, directory: str) -> str:
        """The full path a link's text names: an absolute one from the root, else from `directory`."""
        return self._walk(self.root if target.startswith("/") else directory, target)

    def _host_link(self, full: str, follow: bool, hops: int) -> tuple[str, Node | None]:
        """Without a rootfs the host follows links, except a last one into bdemu's own nodes
        (`ln -s /dev/stdin x`: x must be the guest's fd 0, not bdemu's)."""
        if follow and os.path.islink(full):
            try:
                landing = self._target(os.readlink(full), posixpath.dirname(full))
            except OSError:
                return full, None
            if self._synthesized(landing):
                return self.resolve_full(landing, True, hops + 1)
        return full, None

    def _synthesized(self, full: str) -> bool:
        key = self.key(full)
        return key.startswith(SYNTHESIZED) or key in self._nodes and not isinstance(self._nodes[key], VirtualDir)

    def _check_inspectable(self, key: str) -> None:
        """/proc/PID/fd (cwd, maps...) of another of the guest's processes would show that bdemu's
        host fds and memory, not the guest's, which this process cannot know: EACCES, as for a
        process it may not ptrace (docs/security.md)."""
        if key.startswith("/proc/"):
            pid, _, rest = key[len("/proc/"):].partition("/")
            if pid.isdigit() and rest.partition("/")[0] in PTRACE_GUARDED and self.is_guest_pid(int(pid)):
                raise SyscallError(errno.EACCES)

    def host_path(self, path: str, base: str | None = None, follow: bool = True) -> str:
        return self._host_only(*self.resolve(path, base, follow))

    def host_path_full(self, full: str, follow: bool = True) -> str:
        return self._host_only(*self.resolve_full(full, follow))

    @staticmethod
    def _host_only(host: str, node: Node | None) -> str:
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
            if not base.startswith("/") or base in DEV_LINKS:  # a pipe, a socket, stdio
                raise SyscallError(errno.ENOTDIR)
            if self.key(base).startswith(FD_DIRS) or self.key(base) in FD_DIRS_BARE:  # opened through an fd link
                raise SyscallError(errno.ENOTDIR)
            return self.resolve_full(self._walk(base, rest), follow)
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
        """Host path of a full path already free of `.`, `..` and links (mounts applied)."""
        guest = "/" + "/".join(components)
        if self.rootfs is None:  # a chroot without --rootfs
            return guest
        for mount in self.mounts:
            if guest == mount.guest or guest.startswith(mount.guest.rstrip("/") + "/"):
                rest = guest[len(mount.guest):].lstrip("/")
                return mount.host + ("/" + rest if rest else "")
        return self.rootfs + (guest if components else "")

    def _confined(self, guest: str, follow_last: bool, links: int = 0) -> str | tuple[str, Node | None]:
        """Resolve the full path `guest` inside the rootfs, following symlinks as the kernel
        would but never above it, nor above the guest's root (chroot) from inside it.

        Each component is checked with lstat; a link's target is read and resolved again from
        the guest's `/` (absolute) or its parent (relative), so neither `..` nor a link can
        climb out. More than MAX_SYMLINKS links fail with ELOOP, as on Linux. A link into
        bdemu's own nodes (`/dev/stdin`, `/proc/self/fd/N`) is resolved as that node: then
        the answer is what `resolve_full` gives, a (path, node) pair.
        """
        resolved: list[str] = []
        pending = [c for c in guest.split("/") if c]
        pending.reverse()
        while pending:
            component = pending.pop()
            if component == ".":
                continue
            if component == "..":
                if resolved and resolved != self._root_parts:
                    resolved.pop()
                continue
            candidate = self._host_of(resolved + [component])
            if (pending or follow_last) and os.path.islink(candidate):
                links += 1
                if links > MAX_SYMLINKS:
                    raise SyscallError(errno.ELOOP)
                target = os.readlink(candidate)
                landing = self._target(target, "/" + "/".join(resolved))
                if self._synthesized(landing):
                    return self.resolve_full(self._walk(landing, "/".join(reversed(pending))), follow_last, links)
                if target.startswith("/"):
                    resolved = list(self._root_parts)
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
