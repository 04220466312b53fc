"""Thin ctypes access to libunicorn for the device's hot paths.

The binding wraps every callback in two Python layers and converts every
argument; the device's callbacks run once per guest backdoor access, so they
are registered directly. Hook registration and the error policy (`fail`)
are the shared ones of bdemu/regs.py; this module adds the
MMIO and CPUID prototypes and a raw guest-memory reader.
"""
from __future__ import annotations

import ctypes
import functools

from unicorn import UC_HOOK_INSN, UcError
from unicorn.unicorn_py3.unicorn import uclib

from ..regs import add_hook, fail, raw_lib  # noqa: F401 (`fail` is the device's error policy too)

_void_p, _u64, _uint = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint

MMIO_READ = ctypes.CFUNCTYPE(_u64, _void_p, _u64, _uint, _void_p)
MMIO_WRITE = ctypes.CFUNCTYPE(None, _void_p, _u64, _uint, _u64, _void_p)
CPUID_HOOK = ctypes.CFUNCTYPE(ctypes.c_uint32, _void_p, _void_p)
INSN_INVALID_HOOK = ctypes.CFUNCTYPE(ctypes.c_bool, _void_p, _void_p)


def _check(status: int) -> None:
    if status:
        raise UcError(status)


def mmio_map(uc, address: int, size: int, read_cb, write_cb) -> None:
    """Map an MMIO range with prebuilt MMIO_READ/MMIO_WRITE objects (the caller keeps them alive)."""
    _check(uclib.uc_mmio_map(uc._uch, address, size, ctypes.cast(read_cb, _void_p), None,
                             ctypes.cast(write_cb, _void_p), None))


def add_cpuid_hook(uc, cpuid_cb, insn_id: int) -> int:
    return add_hook(uc, UC_HOOK_INSN, cpuid_cb, 1, 0, ctypes.c_int(insn_id))


class CodeReader:
    """Reads `size` bytes of guest memory without the binding's conversions (None if unmapped)."""

    def __init__(self, uc, size: int) -> None:
        self._buffer = ctypes.create_string_buffer(size)
        self._read = functools.partial(raw_lib.uc_mem_read, _void_p(uc._uch.value))
        self._size = ctypes.c_size_t(size)

    def __call__(self, address: int) -> bytes | None:
        if self._read(_u64(address), self._buffer, self._size):
            return None
        return self._buffer.raw
