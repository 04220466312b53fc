"""Resource limits a guest sets are its own: read back, inherited, never applied to bdemu."""
from __future__ import annotations

import resource
import struct

from conftest import run_bdemu
from guestasm import BufferAt, parse_output, write_program

GETRLIMIT, SETRLIMIT, PRLIMIT64, FORK, WAIT4, EXIT = 97, 160, 302, 57, 61, 60
EINVAL, EPERM = 22, 1


def test_a_lowered_limit_reads_back_and_a_bad_one_fails(tmp_path):
    """`ulimit -n 64; ulimit -n` printed the host's limit: setrlimit was accepted and dropped.
    Linux keeps the new pair, refuses soft > hard (EINVAL), and reports it through getrlimit
    and prlimit64 alike; a forked child inherits it."""
    nofile = resource.RLIMIT_NOFILE
    _, host_hard = resource.getrlimit(nofile)
    steps = [("store", BufferAt(0), 64), ("store", BufferAt(8), 64), (SETRLIMIT, nofile, BufferAt(0)),
             (GETRLIMIT, nofile, BufferAt(16)),
             ("store", BufferAt(32), 50), ("store", BufferAt(40), 40), (SETRLIMIT, nofile, BufferAt(32)),
             (PRLIMIT64, 0, nofile, 0, BufferAt(48)),
             (FORK,), (GETRLIMIT, nofile, BufferAt(64))]
    guest = write_program(tmp_path / "limits", steps)
    done = run_bdemu("run", guest)
    assert done.returncode == 0, done.stderr
    # Both processes report; the child's table comes first or second: check each.
    size = len(done.stdout) // 2
    for output in (done.stdout[:size], done.stdout[size:]):
        results, buffer = parse_output(output, len(steps))
        assert results[2] == 0 and results[6] == -EINVAL
        assert struct.unpack_from("<QQ", buffer, 16) == (64, 64)
        assert struct.unpack_from("<QQ", buffer, 48) == (64, 64)
        assert struct.unpack_from("<QQ", buffer, 64) == (64, 64)
    assert resource.getrlimit(nofile)[1] == host_hard


DUP, DUP2, FCNTL, WRITE, CLOSE = 32, 33, 72, 1, 3
EBADF, EMFILE = 9, 24
F_DUPFD = 0


def test_the_fd_limit_is_enforced(tmp_path):
    """`ulimit -n 5` meant nothing: fds went on up to bdemu's own cap. Linux keeps every new fd
    below RLIMIT_NOFILE's soft limit (open/dup: EMFILE, dup2: EBADF, F_DUPFD: EINVAL) and leaves
    an fd above a lowered limit open; raising the soft limit makes room again."""
    nofile = resource.RLIMIT_NOFILE
    steps = [(DUP2, 1, 20),  # above the limit to come: stays open
             ("store", BufferAt(0), 5), ("store", BufferAt(8), 64), (SETRLIMIT, nofile, BufferAt(0)),
             (DUP, 0), (DUP, 0), (DUP, 0),  # 3, 4, then EMFILE
             (DUP2, 0, 5), (DUP2, 0, 4), (FCNTL, 0, F_DUPFD, 5), (FCNTL, 0, F_DUPFD, 1),
             (WRITE, 20, BufferAt(0), 1), (CLOSE, 20),
             ("store", BufferAt(16), 6), ("store", BufferAt(24), 64), (SETRLIMIT, nofile, BufferAt(16)),
             (DUP, 0), (DUP, 0)]  # 5, then EMFILE
    guest = write_program(tmp_path / "nofile", steps)
    done = run_bdemu("run", guest)
    assert done.returncode == 0, done.stderr
    output = done.stdout[1:]  # the byte written through fd 20 comes first
    assert done.stdout[:1] == b"\x05"
    results, _ = parse_output(output, len(steps))
    assert results[:4] == [20, 0, 0, 0]
    assert results[4:7] == [3, 4, -EMFILE]
    assert results[7:11] == [-EBADF, 4, -EINVAL, -EMFILE]
    assert results[11:13] == [1, 0]
    assert results[15:] == [0, 5, -EMFILE]


def test_mips_resource_numbers_are_mips_ones():
    """MIPS numbers resources its own way (RLIMIT_NOFILE is 5, the common RLIMIT_RSS): `ulimit -n`
    on mipsel read the host's RLIMIT_RSS, and set it."""
    from test_busybox import _busybox
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    done = run_bdemu("run", _busybox("mipsel"), "sh", "-c", "ulimit -n; ulimit -n 7; ulimit -n")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().split()
    assert lines[:2] == [str(soft), "7"]
