"""The guest's names for its own fds (/dev/stdin, /dev/fd/N, /proc/self/fd/N, and links to
them), and /proc/PID of its other processes, with and without --rootfs."""
from __future__ import annotations

import shutil
import stat
import struct

import pytest

from bdemu import Emulator
from conftest import ROOT, run_bdemu
from guestasm import BufferAt, O_RDONLY, Result, parse_output, write_program

ENOENT, EACCES = 2, 13
PIPE2, DUP2, LSTAT = 293, 33, 6
BUSYBOX = ROOT / "tests" / ".cache" / "busybox" / "x86_64" / "busybox"


@pytest.fixture(params=["rootfs", "host"])
def place(request, tmp_path):
    """(rootfs or None, the guest's name of tmp/root): the same tree seen both ways."""
    root = tmp_path / "root"
    root.mkdir()
    return (str(root), "") if request.param == "rootfs" else (None, str(root))


def test_links_to_dev_stdin_reach_the_guests_fd_0(place, tmp_path):
    """fd 0 is the guest's pipe (dup2), not bdemu's stdin: /dev/stdin, /dev/fd/0 and links to them
    (one a rootfs may hold, as Debian's /dev/stdin -> /proc/self/fd/0) read the pipe. Inside
    --rootfs the links resolved to a file of the rootfs (ENOENT); without it, to bdemu's fd 0."""
    rootfs, top = place
    (tmp_path / "root" / "in").symlink_to("/dev/stdin")
    (tmp_path / "root" / "fd0").symlink_to("/proc/self/fd/0")
    # a link in the middle of a path is bdemu's to follow only inside a rootfs (the host follows it)
    (tmp_path / "root" / "fds").symlink_to("/dev/fd" if rootfs else "/dev/fd/0")
    fds_0 = f"{top}/fds/0" if rootfs else f"{top}/fds"
    steps = [(PIPE2, BufferAt(0), 0), ("write", 4, "abcdefghijkl", 12), (DUP2, 3, 0),
             ("open", f"{top}/in", O_RDONLY, 0), ("read", Result(3), BufferAt(100), 3),
             ("open", f"{top}/fd0", O_RDONLY, 0), ("read", Result(5), BufferAt(200), 3),
             ("open", fds_0, O_RDONLY, 0), ("read", Result(7), BufferAt(300), 3),
             ("open", "/dev/stdin", O_RDONLY, 0), ("read", Result(9), BufferAt(400), 3)]
    program = write_program(tmp_path / "guest", steps)
    result = Emulator(program, rootfs=rootfs).run(capture_output=True, max_insns=1_000_000, input=b"host stdin")
    results, out = parse_output(result.stdout, len(steps))
    assert [results[i] for i in (4, 6, 8, 10)] == [3] * 4, results
    assert out[100:103] + out[200:203] + out[300:303] + out[400:403] == b"abcdefghijkl"


def test_dev_stdin_and_dev_fd_are_links_and_name_no_host_path(place, tmp_path):
    """As on Linux, /dev/stdin reads as /proc/self/fd/0 and /dev/fd as /proc/self/fd (lstat: links);
    readlink of /dev/fd/N answers the guest's path, never the host's."""
    rootfs, top = place
    (tmp_path / "root" / "f").write_bytes(b"x")
    steps = [("readlink", "/dev/stdin", BufferAt(0), 100), ("readlink", "/dev/fd", BufferAt(100), 100),
             (LSTAT, "/dev/stdout", BufferAt(200)), ("open", f"{top}/f", O_RDONLY, 0),
             ("readlink", "/dev/fd/3", BufferAt(400), 200), ("readlink", "/proc/self/fd/3", BufferAt(600), 200),
             ("readlink", "/dev/fd/9", BufferAt(800), 100)]
    program = write_program(tmp_path / "guest", steps)
    result = Emulator(program, rootfs=rootfs).run(capture_output=True, max_insns=1_000_000)
    results, out = parse_output(result.stdout, len(steps))
    assert out[:results[0]] == b"/proc/self/fd/0" and out[100:100 + results[1]] == b"/proc/self/fd"
    assert results[2] == 0 and stat.S_ISLNK(struct.unpack_from("<I", out, 200 + 24)[0])
    assert out[400:400 + results[4]] == out[600:600 + results[5]] == f"{top}/f".encode()
    assert results[6] == -ENOENT


@pytest.mark.parametrize("rootfs", [False, True])
def test_proc_pid_fd_of_another_guest_process_is_not_inspectable(tmp_path, rootfs):
    """A forked guest child is another bdemu process: its host fds are not its guest fds, which
    this process cannot see. /proc/CHILD/fd (cwd, maps...) fail with EACCES, as for a process
    one may not ptrace, instead of listing bdemu's fds; /proc/self/fd still lists the guest's."""
    if not BUSYBOX.exists():
        pytest.skip("busybox-static not fetched (tests/test_busybox.py fetches it)")
    script = ("sleep 5 & c=$!; ls /proc/$c/fd; echo rc=$?; readlink /proc/$c/cwd; echo rc=$?; "
              "ls /proc/self/fd | tr '\\n' ' '; kill $c")
    (tmp_path / "bin").mkdir()
    shutil.copy(BUSYBOX, tmp_path / "bin" / "busybox")  # its applets run by execve of /proc/self/exe
    options = ["--rootfs", str(tmp_path)] if rootfs else []
    done = run_bdemu("run", *options, str(tmp_path / "bin" / "busybox"), "sh", "-c", script, timeout=60)
    out = done.stdout.decode()
    assert "rc=1\nrc=1\n" in out, (out, done.stderr)
    assert b"Permission denied" in done.stderr
    assert out.split("\n")[-1].split() == ["0", "1", "2", "3"], out  # ls's own: stdio and the listing
