"""Thin ctypes access to libunicorn for the device's hot paths.

The binding wraps every callback in two Python layers and converts every
argument; the device's callbacks run once per guest backdoor access, so they
are registered here directly. The binding's error policy is kept: an
exception raised in a callback is stored on the `Uc` object, the engine
stops, and `emu_start` re-raises it.
"""
from __future__ import annotations

import ctypes
import ctypes.util

from unicorn import UC_HOOK_INSN, UC_HOOK_MEM_WRITE, UcError
from unicorn.unicorn_py3.unicorn import uclib

_void_p, _u64, _uint = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint

MMIO_READ = ctypes.CFUNCTYPE(_u64, _void_p, _u64, _uint, _void_p)
MMIO_WRITE = ctypes.CFUNCTYPE(None, _void_p, _u64, _uint, _u64, _void_p)
CPUID_HOOK = ctypes.CFUNCTYPE(ctypes.c_uint32, _void_p, _void_p)


def _check(status: int) -> None:
    if status:
        raise UcError(status)


def guard(uc, function, failed=None):
    """`function` with the binding's policy: on exception remember it, stop the engine, return `failed`."""
    def guarded(*args):
        try:
            return function(*args)
        except BaseException as error:  # noqa: B036 - re-raised by emu_start
            if uc._hook_exception is None:
                uc._hook_exception = error
            uc.emu_stop()
            return failed
    return guarded


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


_libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
#: A C function that ignores its arguments: a memory hook that costs no Python call.
_NOOP = ctypes.cast(_libc.abs, _void_p)


def sync_pc_on_writes(uc, begin: int, end: int) -> int:
    """Make the pc exact during MMIO writes to [begin, end].

    Unicorn updates the guest pc before a memory access only when a memory
    hook covers it; without one, an MMIO callback sees the pc of the block's
    start. A hook whose callback is a C no-op (libc `abs`, harmless with the
    hook's arguments under the C calling conventions) buys the exact pc with
    no Python on the way.
    """
    return add_hook(uc, UC_HOOK_MEM_WRITE, _NOOP, begin, end)


class RegisterWriter:
    """Writes a fixed list of registers with one `uc_reg_write_batch` call."""

    def __init__(self, uc, reg_ids) -> None:
        count = len(reg_ids)
        self._handle, self._count = uc._uch, count
        self._ids = (ctypes.c_int32 * count)(*reg_ids)
        self._values = (_u64 * count)()
        base = ctypes.addressof(self._values)
        self._pointers = (_void_p * count)(*[base + 8 * i for i in range(count)])
        self._fn = uclib.uc_reg_write_batch
        self._ids_ptr = ctypes.cast(self._ids, ctypes.POINTER(ctypes.c_int32))
        self._ptrs_ptr = ctypes.cast(self._pointers, ctypes.POINTER(_void_p))

    def __call__(self, *values: int) -> None:
        self._values[:] = values
        self._fn(self._handle, self._ids_ptr, self._ptrs_ptr, self._count)
