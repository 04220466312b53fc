"""MIPS32 little endian, o32 ABI, Linux user mode: the `mips` description in the other byte order."""
from __future__ import annotations

from .mips import o32

ARCH = o32("mipsel", "little")
