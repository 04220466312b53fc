"""System V IPC: host objects kept to the run that made them (bdemu/linux/ipcns.py).

The sample guest `sysvipc` (tests/test_samples.py) checks the calls themselves
on every ISA against native and qemu-user runs; these tests check what only
bdemu adds: the run's own namespace, the clean-up at its end, and waits that
--timeout ends.
"""
from __future__ import annotations

import ctypes
import errno
import os
import struct
import subprocess
import sys
import time

from bdemu import Emulator
from guestasm import TABLE, BufferAt, Result, parse_output, write_program

SHMGET, SHMAT, SHMCTL, SHMDT, SEMGET, SEMOP, SEMCTL, MSGGET, MSGRCV, MSGCTL = (
    29, 30, 31, 67, 64, 65, 66, 68, 70, 71)
WRITE, NANOSLEEP = 1, 35
KINDS = ("shm", "sem", "msg")
IPC_PRIVATE, IPC_CREAT, IPC_RMID, IPC_STAT = 0, 0o1000, 0, 2
KEY = 0x62646D76

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.shmat.restype = ctypes.c_void_p


SHM_DEST = 0o1000


def _host_exists(kind: str, host_id: int) -> bool:
    """Whether the host still has the object (a removed segment waits for its last detach)."""
    buffer = ctypes.create_string_buffer(256)
    if kind == "shm":
        return LIBC.shmctl(host_id, IPC_STAT, buffer) == 0 and not int.from_bytes(buffer[20:24], "little") & SHM_DEST
    if kind == "sem":
        return LIBC.semctl(host_id, 0, IPC_STAT, buffer) == 0
    return LIBC.msgctl(host_id, IPC_STAT, buffer) == 0


def test_guest_cannot_reach_host_objects(tmp_path):
    """A run is its own IPC namespace: a host segment is found neither by key nor by id."""
    host_id = LIBC.shmget(KEY, 4096, IPC_CREAT | 0o666)
    assert host_id >= 0
    try:
        steps = [(SHMGET, KEY, 4096, 0), (SHMCTL, host_id, IPC_STAT, BufferAt(0)), (SHMAT, host_id, 0, 0),
                 (SHMCTL, host_id, IPC_RMID, 0),
                 (SHMGET, KEY, 4096, IPC_CREAT | 0o600), (SHMCTL, Result(4), IPC_RMID, 0)]
        result = Emulator(write_program(tmp_path / "guest", steps)).run(capture_output=True)
        results, _ = parse_output(result.stdout, len(steps))
        assert results[:4] == [-errno.ENOENT, -errno.EINVAL, -errno.EINVAL, -errno.EINVAL]
        assert results[4] >= 0 and results[4] != host_id and results[5] == 0  # its own segment
        assert _host_exists("shm", host_id)
    finally:
        LIBC.shmctl(host_id, IPC_RMID, None)


def test_objects_left_are_removed_when_the_run_ends(tmp_path):
    """As when an IPC namespace dies: what the guest did not remove goes with its last process."""
    steps = [(SHMGET, KEY, 8192, IPC_CREAT | 0o600), (SEMGET, IPC_PRIVATE, 3, IPC_CREAT | 0o600),
             (MSGGET, KEY, IPC_CREAT | 0o600), (SHMAT, Result(0), 0, 0),
             (SHMCTL, Result(0), IPC_STAT, BufferAt(0))]
    result = Emulator(write_program(tmp_path / "guest", steps)).run(capture_output=True)
    assert result.exit_code == 0, result
    results, buffer = parse_output(result.stdout, len(steps))
    assert min(results[:4]) >= 0 and results[4] == 0
    assert int.from_bytes(buffer[0:4], "little") == KEY  # IPC_STAT shows the guest's key
    assert int.from_bytes(buffer[48:56], "little") == 8192  # shm_segsz
    for kind, host_id in zip(("shm", "sem", "msg"), results):
        assert not _host_exists(kind, host_id), kind


def test_objects_of_a_run_killed_with_sigkill_are_removed(tmp_path):
    """SIGKILL gives the run no chance to clean up: its watcher (started with the first object)
    sees the run's last process gone and removes what the run left."""
    steps = [(SHMGET, IPC_PRIVATE, 4096, IPC_CREAT | 0o600), (SEMGET, IPC_PRIVATE, 1, IPC_CREAT | 0o600),
             (MSGGET, IPC_PRIVATE, IPC_CREAT | 0o600), (WRITE, 1, TABLE, 24),
             ("store", BufferAt(0), 60), (NANOSLEEP, BufferAt(0), 0)]
    guest = write_program(tmp_path / "guest", steps)
    run = subprocess.Popen([sys.executable, "-P", "-m", "bdemu", "run", guest], stdout=subprocess.PIPE,
                           env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    ids = struct.unpack("<3q", run.stdout.read(24))
    try:
        assert min(ids) >= 0 and all(_host_exists(kind, host_id) for kind, host_id in zip(KINDS, ids))
        run.kill()
        run.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_host_exists(kind, host_id) for kind, host_id in zip(KINDS, ids)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [kind for kind, host_id in zip(KINDS, ids) if _host_exists(kind, host_id)] == []
    finally:
        run.kill()
        run.stdout.close()
        for kind, host_id in zip(KINDS, ids):
            if _host_exists(kind, host_id):
                ({"shm": LIBC.shmctl, "msg": LIBC.msgctl}[kind](host_id, IPC_RMID, None) if kind != "sem"
                 else LIBC.semctl(host_id, 0, IPC_RMID))


def test_blocking_semop_and_msgrcv_end_at_timeout(tmp_path):
    """A wait for another process never blocks the engine: --timeout ends it (exit 124)."""
    for wait in ([(SEMGET, IPC_PRIVATE, 1, IPC_CREAT | 0o600), ("store", BufferAt(0), 0xFFFF0000),
                  (SEMOP, Result(0), BufferAt(0), 1)],  # sem 0, op -1, no flags: waits
                 [(MSGGET, IPC_PRIVATE, IPC_CREAT | 0o600), (MSGRCV, Result(0), BufferAt(0), 64, 0, 0)]):
        started = time.monotonic()
        result = Emulator(write_program(tmp_path / "guest", wait)).run(capture_output=True, timeout=0.5)
        assert result.exit_code == 124, result
        assert time.monotonic() - started < 5


def test_bad_arguments_give_linux_errors(tmp_path):
    steps = [(SHMGET, IPC_PRIVATE, 4096, IPC_CREAT | 0o600),
             (SHMAT, Result(0), 0x1001, 0),        # not page aligned
             (SHMDT, 0x12345000),                  # nothing attached there
             (SHMCTL, Result(0), 99, BufferAt(0)),  # unknown command
             (SHMCTL, Result(0), IPC_STAT, 8),     # bad buffer
             (SEMOP, 12345678, BufferAt(0), 1),    # unknown set
             (SEMCTL, -1, 0, IPC_STAT, 0),
             (MSGCTL, 7777777, IPC_STAT, BufferAt(0)),
             (SHMCTL, Result(0), IPC_RMID, 0)]
    result = Emulator(write_program(tmp_path / "guest", steps)).run(capture_output=True)
    results, _ = parse_output(result.stdout, len(steps))
    assert results[1:] == [-errno.EINVAL, -errno.EINVAL, -errno.EINVAL, -errno.EFAULT, -errno.EINVAL,
                           -errno.EINVAL, -errno.EINVAL, 0]
