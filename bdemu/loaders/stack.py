"""The initial process stack: argc, argv, envp and the auxiliary vector, as Linux lays it out."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_MINSIGSTKSZ = 23, 25, 26, 31, 51


@dataclass
class StackLayout:
    """Everything the start-up stack depends on (addresses already relocated)."""

    argv: list[bytes]
    envp: list[bytes]
    execfn: bytes
    platform: str
    phdr: int
    phent: int
    phnum: int
    entry: int
    interp_base: int
    hwcap: int
    hwcap2: int
    page_size: int
    random: bytes = field(default_factory=lambda: os.urandom(16))


def build_stack(layout: StackLayout, stack_top: int, word_size: int, byteorder: str) -> tuple[int, bytes]:
    """Return (initial sp, bytes to write at sp). The block ends at `stack_top`."""
    strings = bytearray()
    offsets: list[int] = []  # offsets of strings from the start of `strings`

    def add(data: bytes) -> int:
        offsets.append(len(strings))
        strings.extend(data)
        return offsets[-1]

    argv_offsets = [add(a + b"\0") for a in layout.argv]
    envp_offsets = [add(e + b"\0") for e in layout.envp]
    execfn_offset = add(layout.execfn + b"\0")
    platform_offset = add(layout.platform.encode() + b"\0")
    random_offset = add(layout.random)
    strings_start = (stack_top - 16 - len(strings)) & ~15

    def addr(offset: int) -> int:
        return strings_start + offset

    auxv = [
        (AT_PHDR, layout.phdr), (AT_PHENT, layout.phent), (AT_PHNUM, layout.phnum),
        (AT_PAGESZ, layout.page_size), (AT_BASE, layout.interp_base), (AT_FLAGS, 0),
        (AT_ENTRY, layout.entry), (AT_UID, os.getuid()), (AT_EUID, os.geteuid()),
        (AT_GID, os.getgid()), (AT_EGID, os.getegid()), (AT_SECURE, 0),
        (AT_RANDOM, addr(random_offset)), (AT_HWCAP, layout.hwcap), (AT_HWCAP2, layout.hwcap2),
        (AT_CLKTCK, 100), (AT_PLATFORM, addr(platform_offset)), (AT_EXECFN, addr(execfn_offset)),
        (AT_NULL, 0),
    ]
    words = [len(layout.argv)]
    words += [addr(o) for o in argv_offsets] + [0]
    words += [addr(o) for o in envp_offsets] + [0]
    for key, value in auxv:
        words += [key, value]
    table_size = len(words) * word_size
    sp = (strings_start - table_size) & ~15
    block = bytearray()
    for word in words:
        block += word.to_bytes(word_size, byteorder)
    block += bytes(strings_start - sp - len(block))
    block += strings
    return sp, bytes(block)
