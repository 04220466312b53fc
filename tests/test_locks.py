"""File locks are host locks: a guest waits for, and is refused by, a lock another host process holds."""
from __future__ import annotations

import struct
import subprocess
import sys

from bdemu import Emulator
from guestasm import O_RDWR, BufferAt, Result, parse_output, write_program

FCNTL, FLOCK = 72, 73
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
F_WRLCK, F_UNLCK = 1, 2
LOCK_EX, LOCK_NB, LOCK_UN = 2, 4, 8
EAGAIN = 11
#: x86-64 `struct flock`: type, whence, start, len, pid.
FLOCK_STRUCT = struct.Struct("<hh4xqqi4x")

HOLDER = """
import fcntl, sys, time
with open(sys.argv[1], "r+") as f:
    (fcntl.flock if sys.argv[2] == "flock" else fcntl.lockf)(f, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
    open(sys.argv[1] + ".released", "w").close()  # before the lock goes with the file
"""


def hold(path, kind: str, seconds: float) -> subprocess.Popen:
    """Another host process that holds an exclusive lock of `kind` on `path` for `seconds`, then
    creates `path`.released and lets go."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), kind, str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    return holder


def test_flock_is_refused_then_waits_for_another_process(tmp_path):
    target = tmp_path / "locked"
    target.write_bytes(b"x")
    holder = hold(target, "flock", 0.5)
    steps = [("open", str(target), O_RDWR), (FLOCK, Result(0), LOCK_EX | LOCK_NB),
             (FLOCK, Result(0), LOCK_EX), (FLOCK, Result(0), LOCK_UN)]
    result = Emulator(write_program(tmp_path / "guest", steps)).run(capture_output=True)
    released = (tmp_path / "locked.released").exists()  # the waiting flock returned after this
    holder.wait()
    assert result.exit_code == 0, result
    results, _ = parse_output(result.stdout, len(steps))
    assert results[0] >= 0 and results[1:] == [-EAGAIN, 0, 0]
    assert released


def test_record_locks_see_refuse_and_wait_for_another_process(tmp_path):
    target = tmp_path / "locked"
    target.write_bytes(b"x" * 100)
    holder = hold(target, "posix", 0.5)
    write_lock = FLOCK_STRUCT.pack(F_WRLCK, 0, 0, 0, 0)
    steps = [("store", BufferAt(0), int.from_bytes(write_lock[:8], "little")),
             ("open", str(target), O_RDWR),
             (FCNTL, Result(1), F_SETLK, BufferAt(0)),
             (FCNTL, Result(1), F_SETLKW, BufferAt(0)),
             (FCNTL, Result(1), F_GETLK, BufferAt(64))]  # the lock it holds now does not conflict with itself
    result = Emulator(write_program(tmp_path / "guest", steps)).run(capture_output=True)
    released = (tmp_path / "locked.released").exists()
    holder.wait()
    assert result.exit_code == 0, result
    results, buffer = parse_output(result.stdout, len(steps))
    assert results[2:] == [-EAGAIN, 0, 0]
    assert released
    assert FLOCK_STRUCT.unpack_from(buffer, 64)[0] == F_UNLCK  # nobody else's lock is in the way
    # While another process holds a write lock, F_GETLK answers with that lock and its pid.
    holder = hold(target, "posix", 5)
    try:
        steps = [("store", BufferAt(0), int.from_bytes(write_lock[:8], "little")),
                 ("open", str(target), O_RDWR), (FCNTL, Result(1), F_GETLK, BufferAt(0))]
        result = Emulator(write_program(tmp_path / "guest2", steps)).run(capture_output=True)
    finally:
        holder.kill()
        holder.wait()
    results, buffer = parse_output(result.stdout, len(steps))
    kind, whence, start, length, pid = FLOCK_STRUCT.unpack_from(buffer, 0)
    assert results[2] == 0 and kind == F_WRLCK and pid == holder.pid and (start, length) == (0, 0)
