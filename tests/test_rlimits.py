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
