"""chroot(2), kept by bdemu's virtual filesystem: the guest's new `/` is a directory of its tree.

The host process never changes its root. VirtualFS keeps the guest's root as a
path of the guest's first tree (inside --rootfs, if any) and resolves every
absolute path, absolute link and `..` at that root against it, so a chroot
narrows what the guest sees and can never widen it beyond --rootfs. As on
Linux, the cwd stays where it was (getcwd then answers "(unreachable)/..."),
and a cwd or a directory fd outside the new root still reaches above it: the
classic chroot escape leads back to the guest's first root, never further.
"""
from __future__ import annotations

import ctypes
import errno
import os
import struct

from .errors import SyscallError
from .fs import VirtualDir
from .hostlibc import LIBC
from .registry import syscall

CAP_SYS_CHROOT = 18
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def has_capability(capability: int) -> bool:
    """Whether bdemu's process, which is the guest's, has `capability` in its effective set: what
    capget tells the guest, so a guest that sees itself unprivileged is refused as on Linux."""
    header = ctypes.create_string_buffer(struct.pack("=Ii", _LINUX_CAPABILITY_VERSION_3, 0), 8)
    data = ctypes.create_string_buffer(24)
    if LIBC.capget(header, data) < 0:
        return False
    effective = struct.unpack("=6I", data.raw)[0::3]
    return bool(effective[capability // 32] >> (capability % 32) & 1)


@syscall("path")
def sys_chroot(k, path):
    vfs = k.vfs
    host, node = vfs.resolve(k.read_path(path))
    if node is not None:
        raise SyscallError(errno.EACCES if isinstance(node, VirtualDir) else errno.ENOTDIR)
    if not os.path.isdir(host):
        raise SyscallError(errno.ENOTDIR if os.path.exists(host) else errno.ENOENT)
    if not os.access(host, os.X_OK):
        raise SyscallError(errno.EACCES)
    if not has_capability(CAP_SYS_CHROOT):
        raise SyscallError(errno.EPERM)
    full = vfs.guest_path_of_host(os.path.realpath(host))
    if vfs.rootfs is not None and full == os.path.realpath(host):  # a host directory outside the tree
        raise SyscallError(errno.EACCES)
    vfs.set_root(full)
    return 0
