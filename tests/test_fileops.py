"""sendfile's relatives (copy_file_range, splice, tee, vmsplice) and ioprio_get/set, run by
assembled x86-64 guests (guestasm: each step's result, then the scratch buffer, on stdout)."""
from __future__ import annotations

import os
import struct
import time

from bdemu import Emulator
from conftest import run_bdemu
from guestasm import BUFFER, TABLE, BufferAt, O_CREAT, O_RDONLY, O_RDWR, Result, parse_output, write_program

ENOENT, EBADF, EAGAIN, EACCES, EINVAL, ESPIPE, ESRCH = 2, 9, 11, 13, 22, 29, 3
NR = {"copy_file_range": 326, "splice": 275, "tee": 276, "vmsplice": 278, "pipe2": 293,
      "ioprio_get": 252, "ioprio_set": 251, "lseek": 8, "pread64": 17, "getpid": 39}
SPLICE_F_NONBLOCK = 2


def _buffer(steps: list) -> int:
    """The guest address of BufferAt(0) in a program of `steps` (see guestasm.syscall_program)."""
    return TABLE + ((8 * len(steps) + 15) & ~15)


def _run(tmp_path, steps, **options):
    program = write_program(tmp_path / "guest", steps)
    result = Emulator(program, **options).run(capture_output=True, max_insns=1_000_000, timeout=20)
    assert result.exit_code == 0, result
    return parse_output(result.stdout, len(steps))


def test_copy_file_range_copies_between_files_and_advances_the_guests_offsets(tmp_path):
    (tmp_path / "src").write_bytes(b"0123456789")
    steps = [("open", str(tmp_path / "src"), O_RDONLY, 0), ("open", str(tmp_path / "dst"), O_RDWR | O_CREAT, 0o644),
             ("store", BufferAt(0), 2), ("store", BufferAt(8), 1),
             (NR["copy_file_range"], 3, BufferAt(0), 4, BufferAt(8), 5, 0),  # at offsets: theirs advance
             (NR["copy_file_range"], 3, 0, 4, 0, 3, 0),  # at the file positions: those advance
             (NR["lseek"], 3, 0, 1), (NR["lseek"], 4, 0, 1),
             (NR["copy_file_range"], 3, 0, 4, 0, 3, 1),  # no flags exist
             (NR["pipe2"], BufferAt(64), 0), (NR["copy_file_range"], 5, 0, 4, 0, 3, 0),  # a pipe: EINVAL
             (NR["copy_file_range"], 99, 0, 4, 0, 3, 0), (NR["copy_file_range"], 3, 0, 3, 0, 1, 0),  # into a read-only fd
             (NR["copy_file_range"], 4, 0, 4, 0, 0, 0)]
    results, buffer = _run(tmp_path, steps)
    assert results[4:9] == [5, 3, 3, 3, -EINVAL], results
    assert results[10:] == [-EINVAL, -EBADF, -EBADF, 0], results
    assert struct.unpack_from("<qq", buffer) == (7, 6)
    assert (tmp_path / "dst").read_bytes() == b"012456"


def test_splice_tee_and_vmsplice_move_data_through_pipes(tmp_path):
    """file -> pipe (at an offset), pipe -> pipe copy (tee), pipe -> file, guest memory <-> pipe."""
    (tmp_path / "src").write_bytes(b"0123456789")
    count = 16
    buffer = _buffer([None] * count)
    steps = [("open", str(tmp_path / "src"), O_RDONLY, 0),  # 3
             (NR["pipe2"], BufferAt(64), 0), (NR["pipe2"], BufferAt(72), 0),  # 4 -> 5, 6 -> 7
             ("open", str(tmp_path / "dst"), O_RDWR | O_CREAT, 0o644),  # 8
             ("store", BufferAt(0), 3),
             (NR["splice"], 3, BufferAt(0), 5, 0, 4, 0),  # "3456" into the first pipe
             (NR["tee"], 4, 7, 100, 0),  # ... copied into the second, still in the first
             (NR["splice"], 4, 0, 8, BufferAt(8), 100, 0),  # the first pipe into the file at offset 0
             ("read", 6, BufferAt(128), 100),  # the copy
             ("store", BufferAt(256), buffer + 512), ("store", BufferAt(264), 8),
             ("store", BufferAt(512), int.from_bytes(b"vmsplice", "little")),
             (NR["vmsplice"], 5, BufferAt(256), 1, 0),  # guest memory into the write end
             ("store", BufferAt(256), buffer + 600),
             (NR["vmsplice"], 4, BufferAt(256), 1, 0),  # ... and out of the read end
             (NR["splice"], 4, 0, 7, 0, 10, SPLICE_F_NONBLOCK)]  # the pipe is empty now
    assert len(steps) == count
    results, out = _run(tmp_path, steps)
    assert results[5:9] == [4, 4, 4, 4], results
    assert results[12] == 8 and results[14] == 8 and results[15] == -EAGAIN, results
    assert struct.unpack_from("<qq", out) == (7, 4)
    assert out[128:132] == b"3456" and out[600:608] == b"vmsplice"
    assert (tmp_path / "dst").read_bytes() == b"3456"


def test_splice_family_errors_are_linuxs(tmp_path):
    (tmp_path / "src").write_bytes(b"0123456789")
    steps = [("open", str(tmp_path / "src"), O_RDONLY, 0), (NR["pipe2"], BufferAt(64), 0),  # 3; 4, 5
             ("open", str(tmp_path / "dst"), O_RDWR | O_CREAT, 0o644),  # 6
             (NR["splice"], 3, 0, 6, 0, 4, 0),  # neither end a pipe
             (NR["splice"], 3, 0, 5, BufferAt(0), 4, 0),  # an offset for the pipe
             (NR["splice"], 3, 0, 5, 0, 4, 0x100),  # an unknown flag
             (NR["tee"], 3, 5, 4, 0),  # tee of a file
             (NR["vmsplice"], 3, BufferAt(256), 1, 0),  # vmsplice of a file
             (NR["vmsplice"], 5, BufferAt(256), 5000, 0),  # more than IOV_MAX vectors
             (NR["splice"], 3, 0, 77, 0, 4, 0), (NR["tee"], 4, 4, 4, SPLICE_F_NONBLOCK),  # a read end as output
             (NR["splice"], 3, 0, 5, 0, 0, 0),
             (NR["splice"], 5, 0, 6, 0, 4, 0), (NR["tee"], 5, 4, 4, 0),  # a write end as input: at once
             (40, 6, 5, 0, 4)]  # sendfile too (it waited for the write end to turn readable)
    results, _ = _run(tmp_path, steps)
    assert results[3:] == [-EINVAL, -ESPIPE, -EINVAL, -EINVAL, -EBADF, -EINVAL, -EBADF, -EBADF, 0, -EBADF, -EBADF, -EBADF], \
        results


def test_synthesized_files_splice_and_copy_or_fail_like_linux(tmp_path):
    """/proc/self/maps is bdemu's own file: it can be spliced and copied (Linux answers EINVAL or
    EXDEV there, which callers fall back from) but, opened read-only, never written to."""
    steps = [("open", "/proc/self/maps", O_RDONLY, 0), (NR["pipe2"], BufferAt(64), 0),  # 3; 4, 5
             (NR["splice"], 3, 0, 5, 0, 100, 0), ("read", 4, BufferAt(128), 100),
             ("open", str(tmp_path / "dst"), O_RDWR | O_CREAT, 0o644),  # 6
             (NR["copy_file_range"], 3, BufferAt(8), 6, 0, 50, 0), (NR["copy_file_range"], 6, BufferAt(0), 3, 0, 5, 0),
             ("write", 3, "x", 1), ("open", "/proc/self/maps", O_RDWR, 0), (NR["splice"], 4, 0, 3, 0, 1, 2)]
    results, out = _run(tmp_path, steps)
    assert results[2] == 100 and results[3] == 100 and results[5] == 50, results
    assert results[6:] == [-EBADF, -EBADF, -EACCES, -EBADF], results
    assert (tmp_path / "dst").read_bytes() == out[128:178]


def test_a_blocked_splice_ends_with_the_timeout(tmp_path):
    """splice from an empty pipe whose write end is open waits in slices: --timeout ends it (124)."""
    steps = [(NR["pipe2"], BUFFER, 0), ("open", str(tmp_path / "dst"), O_RDWR | O_CREAT, 0o644),
             (NR["splice"], 3, 0, 5, 0, 10, 0)]
    program = write_program(tmp_path / "guest", steps)
    started = time.monotonic()
    done = run_bdemu("run", "--timeout", "1", program, timeout=30)
    assert done.returncode == 124, done.stderr
    assert time.monotonic() - started < 15


def test_ioprio_get_and_set_for_the_guests_own_process(tmp_path):
    """Run as a subprocess: the priority set is bdemu's own (the guest's process), not pytest's."""
    idle, best_effort_4 = 3 << 13, (2 << 13) | 4
    steps = [(NR["ioprio_set"], 1, 0, best_effort_4), (NR["ioprio_get"], 1, 0),
             (NR["getpid"],), (NR["ioprio_get"], 1, Result(2)), (NR["ioprio_get"], 2, 0),
             (NR["ioprio_set"], 1, 0, 7 << 13), (NR["ioprio_get"], 9, 0), (NR["ioprio_get"], 1, 1),
             (NR["ioprio_set"], 3, 0, idle), (NR["ioprio_get"], 3, 0), (NR["ioprio_set"], 2, 1, idle)]
    done = run_bdemu("run", write_program(tmp_path / "guest", steps))
    assert done.returncode == 0, done.stderr
    results, _ = parse_output(done.stdout, len(steps))
    assert results[:5] == [0, best_effort_4, results[2], best_effort_4, best_effort_4], results
    assert results[5:8] == [-EINVAL, -EINVAL, -ESRCH], results
    assert results[8:] == [0, idle, -ESRCH], results


def test_readv_of_a_pipe_is_one_read(tmp_path):
    """readv(2) is one read: a pipe holding just the first vector's bytes returns them; reading on
    into the second vector blocked for good (the write end is open)."""
    buffer = _buffer([None] * 7)
    steps = [(NR["pipe2"], BufferAt(64), 0), ("write", 4, "abcd", 4),
             ("store", BufferAt(256), buffer + 512), ("store", BufferAt(264), 4),
             ("store", BufferAt(272), buffer + 600), ("store", BufferAt(280), 100),
             (19, 3, BufferAt(256), 2)]  # readv
    results, out = _run(tmp_path, steps)
    assert results[-1] == 4 and out[512:516] == b"abcd", results
