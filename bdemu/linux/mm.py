"""Memory syscalls: brk, mmap (anonymous, file-backed, device windows), munmap, mprotect, mremap, msync."""
from __future__ import annotations

import errno
import fcntl
import os

from ..memory import PAGE, OutOfMemory, page_up
from .errors import SyscallError
from .registry import syscall
from .shared import host_mapping

MAP_SHARED, MAP_PRIVATE, MAP_FIXED = 0x1, 0x2, 0x10
MAP_FIXED_NOREPLACE = 0x100000
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
MADV_DONTNEED = 4
PROT_WRITE, PROT_EXEC = 2, 4


@syscall("ptr")
def sys_brk(k, address):
    return k.emu.memory.brk(address)


def do_mmap(k, address: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
    space = k.emu.memory
    anonymous = flags & k.arch.map_anonymous
    if length == 0 or offset % PAGE or length > k.arch.word_mask - PAGE:
        raise SyscallError(errno.EINVAL)
    size = page_up(length)
    file = None if anonymous else k.fds.get(k.signed32(fd))
    access = None
    if file is not None and file.node is None:
        access = fcntl.fcntl(file.host_fd, fcntl.F_GETFL) & os.O_ACCMODE
        if access == os.O_WRONLY or (flags & MAP_SHARED and prot & 2 and access != os.O_RDWR):
            raise SyscallError(errno.EACCES)
    fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)
    if fixed:
        if address % PAGE:
            raise SyscallError(errno.EINVAL)
        if flags & MAP_FIXED_NOREPLACE and not space.is_free(address, address + size):
            raise SyscallError(errno.EEXIST)
        if not space.is_free(address, address + size) and any(
                r.device for r in space.regions if r.start < address + size and address < r.end):
            raise SyscallError(errno.EINVAL)
    else:
        try:
            address = space.find_free(size, address)
        except OutOfMemory:
            raise SyscallError(errno.ENOMEM) from None
    if fixed:
        k.shared_files.release(address, address + size)
    mappable = getattr(file.node, "mappable", None) if file is not None else None
    if mappable is not None:
        return mappable.map_into(k.emu, address, size, prot, offset)
    name = k.vfs.shown(file.guest_path) if file is not None else ""
    host = None
    if flags & MAP_SHARED and (anonymous or access == os.O_RDWR):
        host = host_mapping(size, None if anonymous else file.host_fd, offset)
    try:
        if host is not None:  # shared with forked processes (and the file): see shared.py
            mapping, shared = host
            space.map_host(address, shared, prot & 7, mapping, mapping.address, name, offset)
            if shared < size:  # past the end of the file
                try:
                    space.map(address + shared, size - shared, prot & 7, name, offset + shared)
                except OutOfMemory:
                    space.unmap(address, shared)
                    raise
        else:
            space.map(address, size, prot & 7, name, offset)
    except OutOfMemory:
        raise SyscallError(errno.ENOMEM) from None
    if host is not None:
        if file is not None and prot & PROT_EXEC:
            k.emu.note_mapped_code(file.host_fd, address, offset)
        return address
    if file is not None:
        chunk, done = 1 << 20, 0
        while done < length:  # in chunks: a mapping of /dev/zero is not read at once
            data = os.pread(file.host_fd, min(chunk, length - done), offset + done)
            if not data:
                break
            k.emu.uc.mem_write(address + done, data)
            done += len(data)
        if prot & PROT_EXEC:
            k.emu.note_mapped_code(file.host_fd, address, offset)
        if flags & MAP_SHARED and access == os.O_RDWR:
            k.shared_files.add(address, address + size, file.host_fd, offset)
    return address


@syscall("ptr", "size", "prot", "mflags", "fd", "off")
def sys_mmap(k, address, length, prot, flags, fd, offset):
    return do_mmap(k, address, length, prot, flags, fd, offset)


@syscall("ptr")
def sys_old_mmap(k, address):
    """i386's `mmap` (90): one pointer to its six arguments."""
    words = k.read(address, 6 * k.word)
    return do_mmap(k, *(int.from_bytes(words[i:i + k.word], k.byteorder) for i in range(0, 6 * k.word, k.word)))


@syscall("ptr", "size", "prot", "mflags", "fd", "off")
def sys_mmap2(k, address, length, prot, flags, fd, page_offset):
    return do_mmap(k, address, length, prot, flags, fd, page_offset * PAGE)


@syscall("ptr", "size")
def sys_munmap(k, address, length):
    if address % PAGE or length == 0:
        raise SyscallError(errno.EINVAL)
    k.shared_files.release(address, address + page_up(length))
    k.emu.memory.unmap(address, length)
    return 0


@syscall("ptr", "size", "hex")
def sys_msync(k, address, length, flags):
    if address % PAGE:
        raise SyscallError(errno.EINVAL)
    if not k.emu.memory.is_mapped(address, address + page_up(length)):
        raise SyscallError(errno.ENOMEM)
    k.shared_files.write_back(address, address + page_up(length))
    return 0


@syscall("ptr", "size", "prot")
def sys_mprotect(k, address, length, prot):
    if address % PAGE:
        raise SyscallError(errno.EINVAL)
    if prot & PROT_WRITE and any(getattr(r.host, "read_only", False) for r in k.emu.memory.regions
                                 if r.start < address + length and address < r.end):
        raise SyscallError(errno.EACCES)  # a SHM_RDONLY attachment (shm.py)
    if not k.emu.memory.protect(address, length, prot & 7):
        raise SyscallError(errno.ENOMEM)
    return 0


@syscall("ptr", "size", "size", "hex", "ptr")
def sys_mremap(k, old, old_size, new_size, flags, new_address):
    space = k.emu.memory
    if old % PAGE or new_size == 0:
        raise SyscallError(errno.EINVAL)
    old_size, new_size = page_up(old_size), page_up(new_size)
    region = space.find(old)
    if region is None or not space.is_mapped(old, old + old_size):
        raise SyscallError(errno.EFAULT)
    k.shared_files.release(old, old + old_size)  # a moved shared mapping goes on as a private copy
    if new_size <= old_size and not flags & MREMAP_FIXED:
        if new_size < old_size:
            space.unmap(old + new_size, old_size - new_size)
        return old
    if not flags & MREMAP_FIXED and space.is_free(old + old_size, old + new_size):
        try:
            space.map(old + old_size, new_size - old_size, region.perms, region.name)
        except OutOfMemory:
            raise SyscallError(errno.ENOMEM) from None
        return old
    if not flags & MREMAP_MAYMOVE:
        raise SyscallError(errno.ENOMEM)
    try:
        target = new_address if flags & MREMAP_FIXED else space.find_free(new_size)
        data = bytes(k.emu.uc.mem_read(old, min(old_size, new_size)))
        space.map(target, new_size, region.perms, region.name)
    except OutOfMemory:
        raise SyscallError(errno.ENOMEM) from None
    k.emu.uc.mem_write(target, data)
    space.unmap(old, old_size)
    return target


@syscall("ptr", "size", "int")
def sys_madvise(k, address, length, advice):
    if advice == MADV_DONTNEED and length:
        space = k.emu.memory
        size = page_up(length)
        if space.is_mapped(address, address + size):
            for region in space.regions:
                lo, hi = max(address, region.start), min(address + size, region.end)
                if lo < hi and not region.device and region.host is None:  # shared memory keeps its bytes
                    k.emu.uc.mem_write(lo, bytes(hi - lo))
    return 0


@syscall("ptr", "ptr", "size", "ptr", "hex")
def sys_get_mempolicy(k, mode, nodemask, maxnode, address, flags):
    """One memory node and the default policy (MPOL_DEFAULT = 0), which is all the guest gets."""
    if nodemask and not 0 < maxnode <= 8 * PAGE:  # at least one node; Linux clears a page at most
        raise SyscallError(errno.EINVAL)
    if mode:
        k.write_int(mode, 0)
    if nodemask:
        k.write(nodemask, bytes((maxnode + 63) // 64 * 8))
    return 0


@syscall("hex", "hex")
def sys_pkey_alloc(k, flags, rights):
    """No protection keys, as on a CPU without them."""
    raise SyscallError(errno.ENOSPC)


@syscall("int")
def sys_pkey_free(k, key):
    raise SyscallError(errno.EINVAL)


@syscall("ptr", "size", "prot", "int")
def sys_pkey_mprotect(k, address, length, prot, key):
    if k.signed32(key) != -1:  # no key was ever allocated
        raise SyscallError(errno.EINVAL)
    return sys_mprotect(k, address, length, prot)


@syscall("ptr", "ptr", "hex", names=("ARM_cacheflush", "cachectl", "riscv_flush_icache"))
def sys_cacheflush(k, start, end, flags):
    """Unicorn keeps translated code coherent with guest writes: nothing to flush."""
    return 0


@syscall("ptr", "size", names=("munlock",))
def sys_mlock(k, address, length):
    """Guest memory is bdemu's; locking it in RAM changes nothing the guest can see."""
    start = address & ~(PAGE - 1)
    if not k.emu.memory.is_mapped(start, page_up(address + length)):
        raise SyscallError(errno.ENOMEM)
    return 0


@syscall("ptr", "size", "hex")
def sys_mlock2(k, address, length, flags):
    return sys_mlock(k, address, length)


@syscall("hex", names=("munlockall",))
def sys_mlockall(k, flags):
    return 0


@syscall("ptr", "size", "ptr")
def sys_mincore(k, address, length, vector):
    """Every mapped page is resident."""
    if address % PAGE:
        raise SyscallError(errno.EINVAL)
    if not k.emu.memory.is_mapped(address, page_up(address + length)):
        raise SyscallError(errno.ENOMEM)
    k.write(vector, b"\1" * (page_up(length) // PAGE))
    return 0
