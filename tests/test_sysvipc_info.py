"""System V IPC seen whole: IPC_INFO, SHM_INFO/SEM_INFO/MSG_INFO, the *_STAT commands and
/proc/sysvipc show the run's own objects (bdemu/linux/ipcinfo.py), and semop's mix of
IPC_NOWAIT and waiting operations (bdemu/linux/sem.py).

Each object has an index among the run's objects of its kind, the lowest free one, as
Linux gives in a fresh IPC namespace; the limits are the host's, with the run's cap of
4096 objects of a kind. The sysvipc sample checks the same calls against Linux on every
ISA (tests/test_samples.py).
"""
from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import struct
import subprocess
import threading
import time

import pytest
from conftest import run_bdemu
from guestasm import BufferAt, Result, parse_output, write_program

from bdemu import Emulator

SHMGET, SHMAT, SHMCTL, SEMGET, SEMOP, SEMCTL, MSGGET, MSGSND, MSGCTL, OPEN, READ = (
    29, 30, 31, 64, 65, 66, 68, 69, 71, 2, 0)
SEMTIMEDOP, CLOCK_GETTIME = 220, 228
IPC_PRIVATE, IPC_CREAT, IPC_NOWAIT, IPC_RMID, IPC_INFO = 0, 0o1000, 0o4000, 0, 3
SHM_STAT, SHM_INFO, SHM_STAT_ANY = 13, 14, 15
SEM_STAT, SEM_INFO, SETALL, GETALL = 18, 19, 17, 13
MSG_STAT, MSG_INFO = 11, 12
KEY = 0x62646D77
MAX_OBJECTS = 4096

LIBC = ctypes.CDLL(None, use_errno=True)


def _host_limits() -> tuple[list[int], list[int], list[int]]:
    """The host's IPC_INFO answers: shminfo (9 words), seminfo (10 ints), msginfo (7 ints, a short)."""
    shminfo, seminfo, msginfo = (ctypes.c_ulong * 9)(), (ctypes.c_int * 10)(), ctypes.create_string_buffer(32)
    assert LIBC.shmctl(0, IPC_INFO, shminfo) >= 0
    assert LIBC.semctl(ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(IPC_INFO),
                       ctypes.c_ulong(ctypes.addressof(seminfo))) >= 0
    assert LIBC.msgctl(0, IPC_INFO, msginfo) >= 0
    return list(shminfo), list(seminfo), list(struct.unpack("=7iH2x", msginfo.raw))


def test_info_and_stat_walk_the_runs_objects(tmp_path):
    """What ipcs does without /proc: *_INFO for the highest index, then *_STAT at each index;
    every structure checked field by field (x86-64 layouts)."""
    steps = [(SHMGET, KEY, 10000, IPC_CREAT | 0o640),                 # 0
             (SEMGET, KEY, 3, IPC_CREAT | 0o600),                     # 1
             (MSGGET, IPC_PRIVATE, IPC_CREAT | 0o622),                # 2
             (SHMGET, IPC_PRIVATE, 4096, IPC_CREAT | 0o600),          # 3: index 1
             (SHMAT, Result(0), 0, 0),                                # 4
             ("store", BufferAt(0), 5), ("store", BufferAt(8), int.from_bytes(b"hello", "little")),
             (MSGSND, Result(2), BufferAt(0), 5, 0),                  # 7
             (SHMCTL, 0, IPC_INFO, BufferAt(0)),                      # 8
             (SHMCTL, 0, SHM_INFO, BufferAt(128)),                    # 9
             (SHMCTL, 0, SHM_STAT, BufferAt(256)),                    # 10
             (SHMCTL, 1, SHM_STAT_ANY, BufferAt(384)),                # 11
             (SHMCTL, 2, SHM_STAT, BufferAt(512)),                    # 12: no such index
             (SEMCTL, 0, 0, IPC_INFO, BufferAt(640)),                 # 13
             (SEMCTL, 0, 0, SEM_INFO, BufferAt(704)),                 # 14
             (SEMCTL, 0, 0, SEM_STAT, BufferAt(768)),                 # 15
             (MSGCTL, 0, IPC_INFO, BufferAt(896)),                    # 16
             (MSGCTL, 0, MSG_INFO, BufferAt(960)),                    # 17
             (MSGCTL, 0, MSG_STAT, BufferAt(1024)),                   # 18
             (MSGCTL, 1, MSG_STAT, BufferAt(1152)),                   # 19: no such index
             (SHMCTL, Result(0), IPC_RMID, 0), (SHMCTL, Result(3), IPC_RMID, 0),
             (SEMCTL, Result(1), 0, IPC_RMID, 0), (MSGCTL, Result(2), IPC_RMID, 0),
             (SHMCTL, 0, SHM_INFO, BufferAt(1280)),                   # 24
             (SHMCTL, 0, SHM_STAT, BufferAt(1408))]                   # 25
    result = Emulator(write_program(tmp_path / "guest", steps)).run(capture_output=True)
    assert result.exit_code == 0, result
    results, buffer = parse_output(result.stdout, len(steps))
    shm_id, sem_id, msg_id, other_shm = results[:4]
    assert min(results[:4]) >= 0 and results[4] > 0 and results[7] == 0
    shminfo, seminfo, msginfo = _host_limits()

    def words(offset: int, count: int, code: str = "Q") -> list[int]:
        return list(struct.unpack_from(f"<{count}{code}", buffer, offset))

    assert results[8] == 1  # the highest shm index in use
    assert words(0, 9) == [shminfo[0], shminfo[1], min(shminfo[2], MAX_OBJECTS)] + shminfo[3:5] + [0] * 4
    assert results[9] == 1
    used_ids, = struct.unpack_from("<i", buffer, 128)
    assert used_ids == 2 and words(136, 5)[0] == 3 + 1  # shm_tot: pages of 10000 + 4096 bytes
    assert words(136, 5)[1] <= 4 and words(136, 5)[3:] == [0, 0]  # shm_rss, swap_attempts/successes

    # SHM_STAT returns the id and fills shmid64_ds: key, mode, size, pids, attach count
    assert results[10] == shm_id and results[11] == other_shm and results[12] == -errno.EINVAL
    key, uid, gid, cuid, cgid, mode = struct.unpack_from("<iIIIII", buffer, 256)
    assert (key, mode & 0o777, uid, cuid) == (KEY, 0o640, LIBC.geteuid(), LIBC.geteuid())
    segsz, atime, dtime, ctime, cpid, lpid, nattch = struct.unpack_from("<QqqqiiQ", buffer, 256 + 48)
    assert (segsz, dtime, nattch) == (10000, 0, 1) and atime >= ctime > 0 and cpid == lpid > 0
    assert struct.unpack_from("<i", buffer, 384)[0] == 0 and struct.unpack_from("<Q", buffer, 384 + 48)[0] == 4096

    # seminfo: the host's limits with the run's cap; SEM_INFO counts the run's sets and semaphores
    assert results[13] == results[14] == 0
    expected = seminfo[:]
    expected[1] = min(seminfo[1], MAX_OBJECTS)
    assert list(struct.unpack_from("<10i", buffer, 640)) == expected
    expected[7], expected[9] = 1, 3  # semusz: sets, semaem: semaphores
    assert list(struct.unpack_from("<10i", buffer, 704)) == expected
    assert results[15] == sem_id
    assert struct.unpack_from("<iIIIII", buffer, 768)[0::5] == (KEY, 0o600)
    assert struct.unpack_from("<Q", buffer, 768 + 48 + 32)[0] == 3  # sem_nsems after x86-64's padded times

    # msginfo: MSG_INFO gives queues, messages and bytes in use
    assert results[16] == results[17] == 0
    expected = msginfo[:]
    expected[4] = min(msginfo[4], MAX_OBJECTS)
    assert list(struct.unpack_from("<7iH", buffer, 896)) == expected
    expected[0], expected[1], expected[6] = 1, 1, 5
    assert list(struct.unpack_from("<7iH", buffer, 960)) == expected
    assert results[18] == msg_id and results[19] == -errno.EINVAL
    assert struct.unpack_from("<iIIIII", buffer, 1024)[0::5] == (0, 0o622)
    cbytes, qnum, qbytes, lspid, lrpid = struct.unpack_from("<QQQii", buffer, 1024 + 48 + 24)
    assert (cbytes, qnum, lspid > 0, lrpid) == (5, 1, True, 0) and qbytes == msginfo[3]

    # none left: the highest index is 0 again, and index 0 is empty
    assert results[20:24] == [0, 0, 0, 0]
    assert results[24] == 0 and struct.unpack_from("<i", buffer, 1280)[0] == 0 and results[25] == -errno.EINVAL


def test_indices_are_reused_lowest_first(tmp_path):
    """A new object takes the lowest free index of its kind, as in a fresh Linux namespace."""
    steps = [(SEMGET, IPC_PRIVATE, 1, IPC_CREAT | 0o600), (SEMGET, IPC_PRIVATE, 2, IPC_CREAT | 0o600),
             (SEMGET, IPC_PRIVATE, 3, IPC_CREAT | 0o600), (SEMCTL, Result(0), 0, IPC_RMID, 0),
             (SEMGET, IPC_PRIVATE, 4, IPC_CREAT | 0o600),
             (SEMCTL, 0, 0, SEM_STAT, BufferAt(0)), (SEMCTL, 2, 0, SEM_STAT, BufferAt(256)),
             (SEMCTL, 0, 0, SEM_INFO, BufferAt(512))]
    result = Emulator(write_program(tmp_path / "guest", steps)).run(capture_output=True)
    results, buffer = parse_output(result.stdout, len(steps))
    assert results[5] == results[4] and results[6] == results[2] and results[7] == 2
    assert struct.unpack_from("<Q", buffer, 48 + 32)[0] == 4
    assert struct.unpack_from("<10i", buffer, 512)[7:10:2] == (3, 2 + 3 + 4)


def _proc_steps(kind: str) -> list[tuple]:
    return [(OPEN, f"/proc/sysvipc/{kind}", 0), (READ, Result(len(SETUP)), BufferAt(0), 4096)]


SETUP = [(SHMGET, KEY, 10000, IPC_CREAT | 0o640), (SEMGET, IPC_PRIVATE, 3, IPC_CREAT | 0o600),
         (MSGGET, KEY, IPC_CREAT | 0o622), ("store", BufferAt(0), 7),
         (MSGSND, Result(2), BufferAt(0), 11, 0), (SHMAT, Result(0), 0, 0)]


def _native_lines() -> dict[str, tuple[str, str]]:
    """The header and line Linux prints for objects made natively as SETUP makes them."""
    LIBC.shmat.restype = ctypes.c_void_p
    shm_id = LIBC.shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0o640)
    sem_id = LIBC.semget(IPC_PRIVATE, 3, IPC_CREAT | 0o600)
    msg_id = LIBC.msgget(IPC_PRIVATE, IPC_CREAT | 0o622)
    address = LIBC.shmat(shm_id, None, 0)
    try:
        message = ctypes.create_string_buffer(struct.pack("<q", 7) + bytes(11), 19)
        assert min(shm_id, sem_id, msg_id) >= 0 and LIBC.msgsnd(msg_id, message, 11, 0) == 0
        lines = {}
        for kind, host_id in (("shm", shm_id), ("sem", sem_id), ("msg", msg_id)):
            with open(f"/proc/sysvipc/{kind}") as table:
                header, *rows = table.readlines()
            lines[kind] = header, next(row for row in rows if int(row.split()[1]) == host_id)
        return lines
    finally:
        LIBC.shmdt(ctypes.c_void_p(address))
        LIBC.shmctl(shm_id, IPC_RMID, None), LIBC.semctl(sem_id, 0, IPC_RMID), LIBC.msgctl(msg_id, IPC_RMID, None)


def _ends(line: str) -> list[int]:
    """Where each field ends: Linux right-aligns every column to a fixed width."""
    return [match.end() for match in re.finditer(r"\S+", line)]


def test_proc_sysvipc_lists_the_runs_objects_as_linux_does(tmp_path):
    """/proc/sysvipc/{shm,sem,msg}: Linux's header and columns (compared with the lines this
    host's kernel prints for the same objects), the run's objects only (a host segment is not
    listed), keys as the guest gave them."""
    native = _native_lines()
    host_id = LIBC.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600)
    assert host_id >= 0
    try:
        for kind in ("shm", "sem", "msg"):
            steps = SETUP + _proc_steps(kind)
            result = Emulator(write_program(tmp_path / "guest", steps)).run(capture_output=True)
            results, buffer = parse_output(result.stdout, len(steps))
            assert results[-1] > 0, results
            header, *lines = buffer[:results[-1]].decode().splitlines(keepends=True)
            assert header == native[kind][0] and len(lines) == 1
            assert _ends(lines[0]) == _ends(native[kind][1]) and lines[0].endswith("\n")
            row = dict(zip(header.split(), lines[0].split()))
            expected = {"shm": {"key": str(KEY), "shmid": str(results[0]), "perms": "640", "size": "10000",
                                "nattch": "1", "swap": "0", "dtime": "0"},
                        "sem": {"key": "0", "semid": str(results[1]), "perms": "600", "nsems": "3", "otime": "0"},
                        "msg": {"key": str(KEY), "msqid": str(results[2]), "perms": "622", "cbytes": "11",
                                "qnum": "1", "lrpid": "0", "rtime": "0"}}[kind]
            assert {name: row[name] for name in expected} == expected
            assert row.get("uid") == str(LIBC.geteuid()) and int(row["ctime"]) > 0
    finally:
        LIBC.shmctl(host_id, IPC_RMID, None)


def _sembufs(offset: int, *operations: tuple[int, int, int]) -> list[tuple]:
    """Steps storing struct sembuf entries (sem_num, sem_op, sem_flg) at BufferAt(offset)."""
    raw = b"".join(struct.pack("<HhH", *operation) for operation in operations).ljust(16, b"\0")
    return [("store", BufferAt(offset + at), int.from_bytes(raw[at:at + 8], "little")) for at in (0, 8)]


def _semop_run(tmp_path, values: tuple[int, int], operations, timeout_ns: int = 0, nsems: int = 2):
    """A guest: a set of `nsems` semaphores starting at `values`, then semtimedop(`operations`)
    timed between two CLOCK_MONOTONIC readings; returns (semop's result, seconds, values after)."""
    steps = [(SEMGET, IPC_PRIVATE, nsems, IPC_CREAT | 0o600),
             ("store", BufferAt(0), values[0] | values[1] << 16), (SEMCTL, Result(0), 0, SETALL, BufferAt(0)),
             *_sembufs(64, *operations), ("store", BufferAt(128), timeout_ns // 10**9),
             ("store", BufferAt(136), timeout_ns % 10**9),
             (CLOCK_GETTIME, 1, BufferAt(256)),
             (SEMTIMEDOP, Result(0), BufferAt(64), len(operations), BufferAt(128) if timeout_ns else 0),
             (CLOCK_GETTIME, 1, BufferAt(272)), (SEMCTL, Result(0), 0, GETALL, BufferAt(512))]
    result = Emulator(write_program(tmp_path / "guest", steps)).run(capture_output=True, timeout=20)
    assert result.exit_code == 0, result
    results, buffer = parse_output(result.stdout, len(steps))
    started, ended = (seconds + nanoseconds / 1e9 for seconds, nanoseconds in struct.iter_unpack("<qq", buffer[256:288]))
    return results[-3], ended - started, struct.unpack_from("<2H", buffer, 512)


def test_semop_nowait_mixed_with_waiting_operations(tmp_path):
    """Linux applies a set whole or not at all, and the first operation that cannot go on
    decides: with IPC_NOWAIT, EAGAIN at once; without, the caller waits (here until the timeout)
    even though a later operation has IPC_NOWAIT. Nothing is applied either way."""
    # sem 0 can go down, sem 1 cannot and has IPC_NOWAIT: EAGAIN, sem 0 untouched
    assert _semop_run(tmp_path, (1, 0), [(0, -1, 0), (1, -1, IPC_NOWAIT)])[::2] == (-errno.EAGAIN, (1, 0))
    # the first that cannot go on has IPC_NOWAIT, a later one would wait: EAGAIN at once
    answer, seconds, values = _semop_run(tmp_path, (0, 0), [(1, -1, IPC_NOWAIT), (0, -1, 0)], 2 * 10**9)
    assert (answer, values) == (-errno.EAGAIN, (0, 0)) and seconds < 1
    # the first that cannot go on waits, a later one has IPC_NOWAIT: it waits out its 0.3 s
    answer, seconds, values = _semop_run(tmp_path, (0, 1), [(0, -1, 0), (1, -1, IPC_NOWAIT)], 3 * 10**8)
    assert (answer, values) == (-errno.EAGAIN, (0, 1)) and seconds >= 0.29
    # operations apply in turn: +1 then -1 on sem 0 go through though it starts at 0
    assert _semop_run(tmp_path, (0, 1), [(0, 1, IPC_NOWAIT), (0, -1, 0), (1, -1, 0)])[::2] == (0, (0, 0))


def test_semop_mixed_set_waits_for_another_process(tmp_path):
    """The waiting set goes through once another process posts: here the test itself, on the
    host set the guest waits on (counted by GETNCNT, as Linux counts a waiter)."""
    GETPID, GETNCNT = 11, 14
    posted = []

    def post() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open("/proc/sysvipc/sem") as table:
                ids = [int(row.split()[1]) for row in table.readlines()[1:] if row.split()[3] == "7"]
            for host_id in ids:
                # the guest's set: SETALL by this process (the guest runs in it), a waiter on sem 0
                if LIBC.semctl(host_id, 0, GETPID) == os.getpid() and LIBC.semctl(host_id, 0, GETNCNT) > 0:
                    operation = ctypes.create_string_buffer(struct.pack("=HhH", 0, 1, 0), 6)
                    posted.append(LIBC.semop(host_id, operation, 1))
                    return
            time.sleep(0.01)

    helper = threading.Thread(target=post)
    helper.start()
    try:
        answer, seconds, values = _semop_run(tmp_path, (0, 1), [(0, -1, 0), (1, -1, IPC_NOWAIT)], nsems=7)
    finally:
        helper.join()
    assert posted == [0] and answer == 0 and values == (0, 0)


IPCS_SCRIPT = ("ipcmk -M 10000 -p 640 >/dev/null; ipcmk -S 3 >/dev/null; ipcmk -Q -p 600 >/dev/null;"
               " id=$(ipcmk -M 4096 | awk '{print $NF}'); ipcs; ipcs -u;"
               " ipcrm -m $id && ipcs -m; ipcrm -a; ipcs")


def _normalized(text: str) -> str:
    """ipcs's output with what differs between runs (keys, ids) replaced by names."""
    return re.sub(r"^0x[0-9a-f]{8} +\d+ +", "KEY ID ", text, flags=re.M)


def test_util_linux_ipcs_and_ipcrm(tmp_path):
    """util-linux's ipcs (which reads /proc/sysvipc, and asks SHM_INFO & co. for -u) and ipcrm,
    run by a guest shell after ipcmk made objects, print what they print natively in a fresh
    IPC namespace (`unshare --ipc`), keys and ids aside."""
    tools = [shutil.which(name) for name in ("ipcs", "ipcrm", "ipcmk", "unshare")]
    native = subprocess.run(["unshare", "--ipc", "/bin/sh", "-c", IPCS_SCRIPT], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}) if all(tools) else None
    if native is None or native.returncode != 0:
        pytest.skip("needs util-linux's ipcs, ipcrm and ipcmk, and unshare --ipc, on the host")
    done = run_bdemu("run", "/bin/sh", "-c", IPCS_SCRIPT, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    assert done.returncode == 0, done.stderr.decode()
    assert _normalized(done.stdout.decode()) == _normalized(native.stdout)
    assert "10000" in done.stdout.decode() and "segments allocated 2" in done.stdout.decode()
