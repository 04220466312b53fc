"""Thin ctypes access to libunicorn for the device's hot paths.

The binding wraps every callback in two Python layers and converts every
argument; the device's callbacks run once per guest backdoor access, so they
are registered here directly. The binding's error policy is kept: an
exception raised in a callback is stored on the `Uc` object, the engine
stops, and `emu_start` re-raises it.
"""
from __future__ import annotations

import ctypes
import functools

from unicorn import UC_HOOK_INSN, UcError
from unicorn.unicorn_py3.unicorn import uclib

_void_p, _u64, _uint = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint

MMIO_READ = ctypes.CFUNCTYPE(_u64, _void_p, _u64, _uint, _void_p)
MMIO_WRITE = ctypes.CFUNCTYPE(None, _void_p, _u64, _uint, _u64, _void_p)
CPUID_HOOK = ctypes.CFUNCTYPE(ctypes.c_uint32, _void_p, _void_p)


def _check(status: int) -> None:
    if status:
        raise UcError(status)


def fail(uc, error: BaseException) -> None:
    """The binding's policy for an exception in a callback: remember it, stop; emu_start re-raises it."""
    if uc._hook_exception is None:
        uc._hook_exception = error
    uc.emu_stop()


def mmio_map(uc, address: int, size: int, read_cb, write_cb) -> None:
    """Map an MMIO range with prebuilt MMIO_READ/MMIO_WRITE objects (the caller keeps them alive)."""
    _check(uclib.uc_mmio_map(uc._uch, address, size, ctypes.cast(read_cb, _void_p), None,
                             ctypes.cast(write_cb, _void_p), None))


def add_hook(uc, hook_type: int, function_pointer, begin: int, end: int, *extra) -> int:
    handle = ctypes.c_size_t()
    _check(uclib.uc_hook_add(uc._uch, ctypes.byref(handle), hook_type,
                             ctypes.cast(function_pointer, _void_p), None,
                             _u64(begin), _u64(end), *extra))
    return handle.value


def add_cpuid_hook(uc, cpuid_cb, insn_id: int) -> int:
    return add_hook(uc, UC_HOOK_INSN, cpuid_cb, 1, 0, ctypes.c_int(insn_id))


#: libunicorn without argtypes: calls with prepared ctypes objects skip per-argument conversion.
_lib = ctypes.CDLL(uclib._name)


class RegisterWriter:
    """Writes a fixed list of registers with one `uc_reg_write_batch` call.

    `values` is a ctypes array: set its items, then call `write()`.
    """

    def __init__(self, uc, reg_ids) -> None:
        count = len(reg_ids)
        self._ids = (ctypes.c_int32 * count)(*reg_ids)
        self.values = (_u64 * count)()
        base = ctypes.addressof(self.values)
        self._pointers = (_void_p * count)(*[base + 8 * i for i in range(count)])
        self.write = functools.partial(_lib.uc_reg_write_batch, _void_p(uc._uch.value), self._ids,
                                       self._pointers, ctypes.c_int(count))


class RegisterReader:
    """Reads a fixed list of registers (full width) with one `uc_reg_read_batch` call into `values`."""

    def __init__(self, uc, reg_ids) -> None:
        count = len(reg_ids)
        self._ids = (ctypes.c_int32 * count)(*reg_ids)
        self.values = (_u64 * count)()
        base = ctypes.addressof(self.values)
        self._pointers = (_void_p * count)(*[base + 8 * i for i in range(count)])
        self.read = functools.partial(_lib.uc_reg_read_batch, _void_p(uc._uch.value), self._ids,
                                      self._pointers, ctypes.c_int(count))


class CodeReader:
    """Reads `size` bytes of guest memory without the binding's conversions (None if unmapped)."""

    def __init__(self, uc, size: int) -> None:
        self._buffer = ctypes.create_string_buffer(size)
        self._read = functools.partial(_lib.uc_mem_read, _void_p(uc._uch.value))
        self._size = ctypes.c_size_t(size)

    def __call__(self, address: int) -> bytes | None:
        if self._read(_u64(address), self._buffer, self._size):
            return None
        return self._buffer.raw
