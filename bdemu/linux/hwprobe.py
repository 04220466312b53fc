"""riscv_hwprobe(2): the CPU's features as key/value pairs, which glibc asks for at start-up
to pick its string functions. The values are the ISA's data (`Arch.hwprobe`); this module
only has the kernel's rules for reading and matching them. Every guest CPU is the same one."""
from __future__ import annotations

import errno
import os

from .errors import SyscallError
from .registry import syscall

#: riscv_hwprobe's one flag: narrow the CPU set to those whose values match every pair.
WHICH_CPUS = 1
#: Keys whose value is a bit set (a CPU matches when it has every requested bit).
BITMASK_KEYS = frozenset({3, 4})  # BASE_BEHAVIOR, IMA_EXT_0
#: CPUPERF_0 (misaligned access speed): compared under this mask.
CPUPERF_0, CPUPERF_MASK = 5, 7
PAIR_SIZE = 16  # struct riscv_hwprobe { __s64 key; __u64 value; }


def _online_cpus(k) -> int:
    return sum(1 << cpu for cpu in os.sched_getaffinity(0) if cpu < 8 * k.word)


def _read_cpus(k, size: int, address: int) -> int:
    size = min(size, k.word)
    return int.from_bytes(k.read(address, size), k.byteorder) & _online_cpus(k)


def _matches(key: int, have: int, want: int) -> bool:
    if key in BITMASK_KEYS:
        return have & want == want
    if key == CPUPERF_0:
        return have & CPUPERF_MASK == want & CPUPERF_MASK
    return have == want


@syscall("ptr", "size", "size", "ptr", "hex")
def sys_riscv_hwprobe(k, pairs, count, cpusetsize, cpus, flags):
    values = k.arch.hwprobe
    if flags == WHICH_CPUS:
        if not cpusetsize or not cpus:
            raise SyscallError(errno.EINVAL)
        chosen = _read_cpus(k, cpusetsize, cpus)
        for index in range(count):
            address = pairs + PAIR_SIZE * index
            key = int.from_bytes(k.read(address, 8), k.byteorder, signed=True)
            if key not in values:  # an unknown key matches no CPU
                k.write(address, (-1).to_bytes(8, k.byteorder, signed=True) + bytes(8))
                chosen = 0
            elif not _matches(key, values[key], k.read_word(address + 8)):
                chosen = 0
        k.write(cpus, chosen.to_bytes(min(cpusetsize, k.word), k.byteorder))
        return 0
    if flags:
        raise SyscallError(errno.EINVAL)
    if cpusetsize or cpus:
        if not cpusetsize or not cpus or not _read_cpus(k, cpusetsize, cpus):
            raise SyscallError(errno.EINVAL)
    for index in range(count):
        address = pairs + PAIR_SIZE * index
        key = int.from_bytes(k.read(address, 8), k.byteorder, signed=True)
        known = key in values
        k.write(address, (key if known else -1).to_bytes(8, k.byteorder, signed=True)
                + values.get(key, 0).to_bytes(8, k.byteorder))
    return 0
