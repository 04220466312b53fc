"""The stop gate: how bdemu stops the engine while the run goes on.

Unicorn 2.1's `uc_emu_stop` from another thread (and `emu_start`'s own
timeout, which is the same call from Unicorn's timer thread) can land in the
middle of a basic block; once a memory access follows, the engine leaves with
the pc still at the block's start although part of the block ran, and
restarting there runs those instructions again (an `inc [mem]` twice, a
`lock cmpxchg` that then finds its own lock taken). Called from a block hook,
`uc_emu_stop` leaves before the block runs. So the gate is a native block
hook (core.c's `bd_stop_gate`): other threads only raise its `requested`
flag, and a deadline (a guest thread's time slice, a timer) is read from the
clock every few hundred blocks. A native block hook costs about 1.2x on
compute-bound code, so the run loop installs one only once the guest has
threads, timers or signal handlers. Loaded with ctypes and no numpy: a plain
run imports nothing heavy.
"""
from __future__ import annotations

import ctypes
import importlib.machinery
import os
import time

#: Blocks between two clock reads while a deadline is set (core.c's GATE_CHECK_EVERY).
GATE_CHECK_EVERY = 512


class _GateState(ctypes.Structure):
    _fields_ = [("requested", ctypes.c_int32), ("countdown", ctypes.c_uint32), ("deadline_ns", ctypes.c_uint64),
                ("fired", ctypes.c_int32), ("pad", ctypes.c_int32), ("emu_stop", ctypes.c_void_p)]


def _hook_function() -> int:
    """Address of `bd_stop_gate` in the native core, found next to this file."""
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_native")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(folder, "_core" + suffix)
        if os.path.exists(path):
            return ctypes.cast(ctypes.CDLL(path).bd_stop_gate, ctypes.c_void_p).value
    raise RuntimeError(f"bdemu's native core is not built in {folder}")


class StopGate:
    """Stops the engine at the start of a block, never inside one: what another thread asks
    with `request()`, and what must happen by a deadline set with `arm()`."""

    def __init__(self, uc) -> None:
        from unicorn import UC_HOOK_BLOCK
        from unicorn.unicorn_py3.unicorn import uclib

        from .regs import add_hook
        self.state = _GateState(emu_stop=ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value,
                                countdown=GATE_CHECK_EVERY)
        self.handle = add_hook(uc, UC_HOOK_BLOCK, _hook_function(), 1, 0,
                               user_data=ctypes.addressof(self.state))
        uc.ctl_flush_tb()  # blocks translated before have no call to the hook

    def request(self) -> None:
        """From any thread: stop at the next block."""
        self.state.requested = 1

    def arm(self, seconds: float | None) -> None:
        """Stop at the first block once `seconds` have passed (None: no deadline)."""
        self.state.fired = 0
        if seconds is None:
            self.state.deadline_ns = 0
            return
        self.state.countdown = 1  # the first block already reads the clock
        self.state.deadline_ns = max(1, time.monotonic_ns() + int(seconds * 1e9))

    @property
    def deadline_fired(self) -> bool:
        return self.state.fired == 1
