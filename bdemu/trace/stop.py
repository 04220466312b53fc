"""Clean stops on SIGINT and SIGTERM, even while the guest runs inside Unicorn's C code.

A Python signal handler only runs when the main thread executes bytecode,
which may not happen for a long time while `uc_emu_start` runs a hook-free
loop. `signal.set_wakeup_fd` makes the C-level handler write the signal
number to a pipe at once; a watchdog thread blocked on that pipe wakes
(Unicorn runs without the GIL) and calls `emu.request_stop`, which stops the
engine. The run loop then returns 128+N with reason "signal", and the
recorder's `on_exit` flushes everything recorded so far.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals(emu):
    """While active, SIGINT/SIGTERM stop `emu`'s run cleanly instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    closing = threading.Event()

    def watch() -> None:
        while True:
            try:
                data = os.read(read_end, 16)
            except OSError:
                return
            if closing.is_set() or not data:
                return
            wanted = [number for number in data if number in SIGNALS]
            if wanted:
                emu.request_stop(wanted[0])
                while not closing.wait(0.05):  # a stop racing a restart of emu_start is not lost
                    emu.request_stop(wanted[0])
                return

    def handler(number, _frame) -> None:
        emu.request_stop(number)

    previous = {number: signal.signal(number, handler) for number in SIGNALS}
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    thread = threading.Thread(target=watch, name="bdemu-signal-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for number, old in previous.items():
            signal.signal(number, old)
        closing.set()
        os.write(write_end, b"\0")
        thread.join(timeout=5)
        os.close(read_end)
        os.close(write_end)
