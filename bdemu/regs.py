"""Fast access to libunicorn's C API: registers, batches of registers, hook registration.

The binding's `reg_read`/`reg_write` resolve the register class on every call
(~2.5 us); a raw `uc_reg_read` into a reused buffer costs a fraction of that,
and `uc_reg_read_batch` fetches a syscall's number and six arguments at once.
"""
from __future__ import annotations

import ctypes
import functools
from typing import Sequence

from unicorn.unicorn_py3.unicorn import uclib

from .cpu import Arch

_u64 = ctypes.c_uint64
#: libunicorn again, without argtypes: calls with prepared ctypes objects skip per-argument conversion.
raw_lib = _raw = ctypes.CDLL(uclib._name)


class RegisterFile:
    """Name-based register access for one Unicorn engine (64-bit-or-less registers)."""

    def __init__(self, uc, arch: Arch) -> None:
        self._uch = uc._uch
        self._handle = ctypes.c_void_p(uc._uch.value)
        self._ids = arch.registers
        self._mask = arch.word_mask
        self._buffer = _u64()
        self._ref = ctypes.byref(self._buffer)
        self._read = _raw.uc_reg_read
        self._write = _raw.uc_reg_write
        #: Read a full-width general register (no buffer clearing needed on 64-bit ISAs).
        self.read_gpr = self._read_full if arch.bits == 64 else self.read_id

    def id_of(self, name: str) -> int:
        return self._ids[name]

    def read_id(self, reg_id: int) -> int:
        buffer = self._buffer
        buffer.value = 0
        self._read(self._handle, reg_id, self._ref)
        return buffer.value

    def _read_full(self, reg_id: int) -> int:
        self._read(self._handle, reg_id, self._ref)
        return self._buffer.value

    def write_id(self, reg_id: int, value: int) -> None:
        self._buffer.value = value & 0xFFFFFFFFFFFFFFFF
        self._write(self._handle, reg_id, self._ref)

    def reg(self, name: str) -> int:
        return self.read_id(self._ids[name])

    def set_reg(self, name: str, value: int) -> None:
        self.write_id(self._ids[name], value)

    def batch_reader(self, names: Sequence[str]) -> "BatchReader":
        return BatchReader(self._uch, [self._ids[n] for n in names])

    def batch_writer(self, names: Sequence[str]) -> "BatchWriter":
        return BatchWriter(self._uch, [self._ids[n] for n in names])


class _Batch:
    """A fixed list of registers and a value slot for each, for one batch call."""

    def __init__(self, handle, reg_ids: Sequence[int], function) -> None:
        count = len(reg_ids)
        self._ids = (ctypes.c_int32 * count)(*reg_ids)
        self.values = (_u64 * count)()
        base = ctypes.addressof(self.values)
        self._pointers = (ctypes.c_void_p * count)(*[base + 8 * i for i in range(count)])
        self._size = 8 * count
        self._call = functools.partial(function, ctypes.c_void_p(handle.value), self._ids,
                                       self._pointers, ctypes.c_int(count))


class BatchReader(_Batch):
    """Reads a fixed list of registers with one `uc_reg_read_batch` call.

    `read()` fills `values` (full-width registers need no clearing); calling the
    reader clears first and returns a list, which is right for narrower registers too.
    """

    def __init__(self, handle, reg_ids: Sequence[int]) -> None:
        super().__init__(handle, reg_ids, _raw.uc_reg_read_batch)
        self.read = self._call

    def __call__(self) -> list[int]:
        ctypes.memset(self.values, 0, self._size)
        self._call()
        return self.values[:]


class BatchWriter(_Batch):
    """Writes a fixed list of registers with one `uc_reg_write_batch` call: set `values`, then `write()`."""

    def __init__(self, handle, reg_ids: Sequence[int]) -> None:
        super().__init__(handle, reg_ids, _raw.uc_reg_write_batch)
        self.write = self._call


def fail(uc, error: BaseException) -> None:
    """The binding's policy for an exception in a callback: remember it and stop; emu_start re-raises it."""
    if uc._hook_exception is None:
        uc._hook_exception = error
    uc.emu_stop()


def add_hook(uc, hook_type: int, function, begin: int = 1, end: int = 0, *extra,
             user_data: int | None = None) -> int:
    """`uc_hook_add` of a ctypes function object or a C function address (the caller keeps it alive)."""
    handle = ctypes.c_size_t()
    status = uclib.uc_hook_add(uc._uch, ctypes.byref(handle), hook_type,
                               ctypes.cast(function, ctypes.c_void_p), ctypes.c_void_p(user_data),
                               ctypes.c_uint64(begin), ctypes.c_uint64(end), *extra)
    if status:
        from unicorn import UcError
        raise UcError(status)
    return handle.value


def add_raw_hook(uc, hook_type: int, prototype, callback, keep: list, *extra) -> int:
    """Register `callback` with `uc_hook_add` directly, skipping the binding's wrapper layers.

    The binding's policy is kept (see `fail`). `keep` holds the ctypes function
    object for the engine's life.
    """
    def guarded(*args):
        try:
            return callback(*args[1:-1])
        except BaseException as error:  # noqa: B036 - re-raised by emu_start
            fail(uc, error)

    function = prototype(guarded)
    keep.append(function)
    return add_hook(uc, hook_type, function, 1, 0, *extra)


#: Hook prototypes with the engine handle as a plain pointer (no conversion cost).
SYSCALL_INSN_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
INTERRUPT_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
