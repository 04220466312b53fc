"""Fast register access straight through libunicorn's C API.

The binding's `reg_read`/`reg_write` resolve the register class on every call
(~2.5 us); a raw `uc_reg_read` into a reused buffer costs a fraction of that,
and `uc_reg_read_batch` fetches a syscall's number and six arguments at once.
"""
from __future__ import annotations

import ctypes
from typing import Sequence

from unicorn.unicorn_py3.unicorn import uclib

from .cpu import Arch

_u64 = ctypes.c_uint64


class RegisterFile:
    """Name-based register access for one Unicorn engine (64-bit-or-less registers)."""

    def __init__(self, uc, arch: Arch) -> None:
        self._handle = uc._uch
        self._ids = arch.registers
        self._mask = arch.word_mask
        self._buffer = _u64()
        self._ref = ctypes.byref(self._buffer)
        self._read = uclib.uc_reg_read
        self._write = uclib.uc_reg_write

    def id_of(self, name: str) -> int:
        return self._ids[name]

    def read_id(self, reg_id: int) -> int:
        buffer = self._buffer
        buffer.value = 0
        self._read(self._handle, reg_id, self._ref)
        return buffer.value

    def write_id(self, reg_id: int, value: int) -> None:
        self._buffer.value = value & 0xFFFFFFFFFFFFFFFF
        self._write(self._handle, reg_id, self._ref)

    def reg(self, name: str) -> int:
        return self.read_id(self._ids[name])

    def set_reg(self, name: str, value: int) -> None:
        self.write_id(self._ids[name], value)

    def batch_reader(self, names: Sequence[str]) -> "BatchReader":
        return BatchReader(self._handle, [self._ids[n] for n in names])


class BatchReader:
    """Reads a fixed list of registers with one `uc_reg_read_batch` call."""

    def __init__(self, handle, reg_ids: Sequence[int]) -> None:
        count = len(reg_ids)
        self._handle = handle
        self._count = count
        self._ids = (ctypes.c_int32 * count)(*reg_ids)
        self._values = (_u64 * count)()
        self._pointers = (ctypes.c_void_p * count)(
            *[ctypes.addressof(self._values) + 8 * i for i in range(count)])
        self._fn = uclib.uc_reg_read_batch
        self._ids_ptr = ctypes.cast(self._ids, ctypes.POINTER(ctypes.c_int32))
        self._ptrs_ptr = ctypes.cast(self._pointers, ctypes.POINTER(ctypes.c_void_p))

    def __call__(self) -> list[int]:
        values = self._values
        ctypes.memset(values, 0, 8 * self._count)
        self._fn(self._handle, self._ids_ptr, self._ptrs_ptr, self._count)
        return values[:]
