"""Tiny x86-64 guests made of a list of raw syscalls, for tests of hostile guests.

`syscall_program(steps)` assembles one syscall per step; each result (rax)
is stored in a table that the guest writes to fd 1 at the end (8 bytes per
step, little endian), followed by its 4 KiB scratch buffer, then exits 0.
An argument is an int, a bytes/str (a NUL-terminated string placed in the
image), `Result(i)` (the result of step i, e.g. an fd), `BUFFER` or `BufferAt(n)`.
The pseudo-step ("store", BufferAt(n), value) writes a 64-bit value there (result 0).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from elfgen import BASE, assemble

CODE = BASE + 0x1000
DATA = BASE + 0x100000  # strings
TABLE = BASE + 0x200000  # results, then the buffer
BUFFER_SIZE = 4096
ARG_REGISTERS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")

#: x86-64 syscall numbers the escape tests use.
NR = {"read": 0, "write": 1, "open": 2, "close": 3, "socket": 41, "connect": 42, "sendto": 44, "bind": 49, "listen": 50,
      "getsockname": 51, "socketpair": 53, "execve": 59,
      "truncate": 76, "ftruncate": 77, "getcwd": 79, "chdir": 80, "fchdir": 81, "rename": 82,
      "mkdir": 83, "rmdir": 84, "creat": 85, "link": 86, "unlink": 87, "symlink": 88, "readlink": 89,
      "chmod": 90, "fchmod": 91, "utime": 132, "getdents64": 217, "openat": 257, "mkdirat": 258,
      "unlinkat": 263, "renameat": 264, "linkat": 265, "symlinkat": 266, "readlinkat": 267,
      "utimensat": 280, "renameat2": 316, "nanosleep": 35, "mmap": 9, "brk": 12, "exit": 60}
O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_DIRECTORY, O_PATH = 0, 1, 2, 0o100, 0o1000, 0o200000, 0o10000000
AT_FDCWD = -100


@dataclass(frozen=True)
class Result:
    index: int


BUFFER = object()


@dataclass(frozen=True)
class BufferAt:
    """The address `offset` bytes into the scratch buffer (BUFFER is the address of BufferAt(0))."""
    offset: int


def syscall_program(steps: list[tuple]) -> bytes:
    """An ELF running `steps` = [(name or number, *args), ...] and reporting every result."""
    strings = bytearray()
    lines = []
    table_bytes = 8 * len(steps)
    buffer = TABLE + ((table_bytes + 15) & ~15)
    for index, (call, *args) in enumerate(steps):
        if call == "store":
            place, value = args
            lines += [f"mov r11, {buffer + place.offset:#x}", f"mov rax, {value:#x}", "mov qword ptr [r11], rax",
                      "xor rax, rax", f"mov r11, {TABLE + 8 * index:#x}", "mov qword ptr [r11], rax"]
            continue
        number = NR[call] if isinstance(call, str) else call
        for register, value in zip(ARG_REGISTERS, args):
            if isinstance(value, (bytes, str)):
                lines.append(f"mov {register}, {DATA + len(strings):#x}")
                strings += os.fsencode(value) + b"\0"
            elif isinstance(value, Result):
                lines += [f"mov r11, {TABLE + 8 * value.index:#x}", f"mov {register}, qword ptr [r11]"]
            elif value is BUFFER:
                lines.append(f"mov {register}, {buffer:#x}")
            elif isinstance(value, BufferAt):
                lines.append(f"mov {register}, {buffer + value.offset:#x}")
            else:
                lines.append(f"mov {register}, {value & (2**64 - 1):#x}")
        lines += [f"mov rax, {number}", "syscall", f"mov r11, {TABLE + 8 * index:#x}", "mov qword ptr [r11], rax"]
    lines += ["mov rax, 1", "mov rdi, 1", f"mov rsi, {TABLE:#x}", f"mov rdx, {buffer - TABLE + BUFFER_SIZE}",
              "syscall", "mov rax, 60", "xor rdi, rdi", "syscall"]
    code = assemble("x86_64", "\n".join(lines))
    return image(code, bytes(strings), buffer - TABLE + BUFFER_SIZE)


def image(code: bytes, strings: bytes, bss: int) -> bytes:
    """An ELF with `code` at CODE (r-x), `strings` at DATA (r--) and `bss` zero bytes at TABLE (rw-)."""
    header = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, bytes(7), 2, 62, 1, CODE,
                         64, 0, 0, 64, 56, 3, 0, 0, 0)
    text = struct.pack("<IIQQQQQQ", 1, 5, 0x1000, CODE, CODE, len(code), len(code), 0x1000)
    data = struct.pack("<IIQQQQQQ", 1, 4, 0x2000, DATA, DATA, len(strings), len(strings) + 1, 0x1000)
    table = struct.pack("<IIQQQQQQ", 1, 6, 0, TABLE, TABLE, 0, bss, 0x1000)
    image = (header + text + data + table).ljust(0x1000, b"\0") + code
    return image.ljust(0x2000, b"\0") + strings


def parse_output(stdout: bytes, count: int) -> tuple[list[int], bytes]:
    """(signed results, buffer) from the tail of the guest's stdout."""
    size = 8 * count
    size_with_pad = (size + 15) & ~15
    tail = stdout[-(size_with_pad + BUFFER_SIZE):]
    results = [struct.unpack_from("<q", tail, 8 * i)[0] for i in range(count)]
    return results, tail[size_with_pad:]


def write_program(path, steps: list[tuple]) -> str:
    path.write_bytes(syscall_program(steps))
    path.chmod(0o755)
    return str(path)
