"""The guest's view of the filesystem: host paths, an optional confining rootfs, virtual nodes.

Without `--rootfs` the guest sees the host filesystem with the user's rights,
as under qemu-user. With `--rootfs DIR` every path is resolved component by
component inside DIR, symlinks included, so no `..` or link leads out of it.
Virtual nodes (`/proc/self/exe`, `/proc/self/maps`, sysfs entries of devices)
are answered by bdemu and never touch the host.
"""
from __future__ import annotations

import errno
import os
import posixpath
from dataclasses import dataclass, field
from typing import Callable

from .errors import SyscallError

MAX_SYMLINKS = 40
HOST_DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full", "/dev/tty")


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


class VirtualFS:
    """Resolves guest paths to host paths or virtual nodes; owns the guest's cwd."""

    def __init__(self, rootfs: str | None, cwd: str) -> None:
        self.rootfs = os.path.realpath(rootfs) if rootfs else None
        self.cwd = cwd
        self._nodes: dict[str, Node] = {}
        self.umask = 0o022

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
        """Guest path -> (host path, virtual node or None). Raises SyscallError."""
        if not path:
            raise SyscallError(errno.ENOENT)
        guest = self.absolute(path, base)
        guest = self._self_proc(guest)
        node = self._nodes.get(guest)
        if isinstance(node, VirtualLink) and follow:
            return self.resolve(node.target(), follow=True)
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
        if host == self.rootfs:
            return "/"
        if host.startswith(self.rootfs + "/"):
            return host[len(self.rootfs):]
        return host

    def _self_proc(self, guest: str) -> str:
        prefix = f"/proc/{os.getpid()}"
        if guest == prefix or guest.startswith(prefix + "/"):
            return "/proc/self" + guest[len(prefix):]
        if guest.startswith("/proc/thread-self"):
            return "/proc/self" + guest[len("/proc/thread-self"):]
        return guest

    def _confined(self, guest: str, follow_last: bool) -> str:
        """Resolve `guest` inside the rootfs, following symlinks as the kernel would but never above it."""
        root = self.rootfs
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
            candidate = root + "/" + "/".join(resolved + [component])
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
        return root + ("/" + "/".join(resolved) if resolved else "")
