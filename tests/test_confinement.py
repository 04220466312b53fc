"""--rootfs confinement, --read-only and --mount, attacked by assembled x86-64 guests.

Every trick is a guest that tries to reach the canary file next to the rootfs
(`tmp/outside/canary.txt`). Each must fail with an error the guest sees, the
canary's content must never reach the guest's output, and its bytes and
mtime must stay the same (docs/security.md states the guarantee).
"""
from __future__ import annotations

import os
import socket
import stat
import struct

import pytest

from bdemu import Emulator
from conftest import run_bdemu
from guestasm import (AT_FDCWD, BUFFER, BufferAt, O_CREAT, O_DIRECTORY, O_PATH, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY,
                      Result, parse_output, syscall_program, write_program)
from elfgen import write_elf

CANARY = b"CANARY-7d1f0e-do-not-leak\n"
ENOTDIR = 20
ENOENT, EACCES, EBUSY, EROFS, ELOOP, EXDEV, EADDRINUSE = 2, 13, 16, 30, 40, 18, 98
CONNECT, SENDTO, BIND, GETSOCKNAME, CHROOT = 42, 44, 49, 51, 161


def _unix(path: str) -> tuple[bytes, int]:
    """A sockaddr_un for `path` (placed as a string argument) and its length."""
    return b"\x01\x00" + path.encode(), 2 + len(path) + 1


@pytest.fixture
def world(tmp_path):
    """tmp/root (the rootfs, full of traps) and tmp/outside (the canary and an executable)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    canary = outside / "canary.txt"
    canary.write_bytes(CANARY)
    os.utime(canary, ns=(1_000_000_000, 1_000_000_000))
    write_elf(tmp_path / "outside", "x86_64", "mov rax, 60\nmov rdi, 77\nsyscall", name="prog")
    root = tmp_path / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "inside.txt").write_bytes(b"inside\n")
    (root / "abs").symlink_to(canary)
    (root / "rel").symlink_to("../../outside/canary.txt")
    (root / "dirlink").symlink_to(outside)
    (root / "reldir").symlink_to("../outside")
    (root / "sub" / "up").symlink_to("../../..")
    (root / "dangling").symlink_to(outside / "created.txt")
    (root / "runme").symlink_to(outside / "prog")
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    _bind_unix(outside, "host.sock").close()  # a host socket file no guest may reach
    (root / "hostlink").symlink_to(outside / "host.sock")
    return tmp_path


def _bind_unix(directory, name: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A host AF_UNIX socket bound at directory/name (through a directory fd: tmp paths are long)."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    try:
        server = socket.socket(socket.AF_UNIX, kind)
        server.bind(f"/proc/self/fd/{fd}/{name}")
    finally:
        os.close(fd)
    return server


def _outside_state(world):
    canary = world / "outside" / "canary.txt"
    return sorted(os.listdir(world / "outside")), canary.read_bytes(), canary.stat().st_mtime_ns


def _run(world, steps, **options):
    program = write_program(world / "guest", steps)
    emu = Emulator(program, rootfs=str(world / "root"), **options)
    result = emu.run(capture_output=True, max_insns=1_000_000)
    assert result.exit_code == 0, result
    results, buffer = parse_output(result.stdout, len(steps))
    return results, result.stdout + result.stderr


def _o(world):
    return str(world / "outside")


#: name -> (steps(world), index of the step that must fail, errno it fails with or None for any).
TRICKS = {
    "dotdot-relative": (lambda w: [("open", "../outside/canary.txt", O_RDONLY, 0)], 0, ENOENT),
    "dotdot-absolute": (lambda w: [("open", "/../outside/canary.txt", O_RDONLY, 0)], 0, ENOENT),
    "dotdot-deep": (lambda w: [("open", "/sub/deeper/../../../../outside/canary.txt", O_RDONLY, 0)], 0, ENOENT),
    "absolute-symlink": (lambda w: [("open", "/abs", O_RDONLY, 0)], 0, ENOENT),
    "relative-symlink": (lambda w: [("open", "/rel", O_RDONLY, 0)], 0, ENOENT),
    "symlink-mid-path": (lambda w: [("open", "/dirlink/canary.txt", O_RDONLY, 0)], 0, ENOENT),
    "relative-symlink-mid-path": (lambda w: [("open", "/reldir/canary.txt", O_RDONLY, 0)], 0, ENOENT),
    "symlink-to-dotdots": (lambda w: [("open", "/sub/up/outside/canary.txt", O_RDONLY, 0)], 0, ENOENT),
    "proc-self-root": (lambda w: [("open", f"/proc/self/root{_o(w)}/canary.txt", O_RDONLY, 0)], 0, ENOENT),
    "proc-self-cwd": (lambda w: [("open", "/proc/self/cwd/../outside/canary.txt", O_RDONLY, 0)], 0, ENOENT),
    "proc-self-fd": (lambda w: [("open", "/sub", O_DIRECTORY, 0),
                                ("open", "/proc/self/fd/3/../../outside/canary.txt", O_RDONLY, 0)], 1, ENOENT),
    "proc-self-fd-then-link": (lambda w: [("open", "/", O_DIRECTORY, 0),
                                          ("open", "/proc/self/fd/3/abs", O_RDONLY, 0)], 1, ENOENT),
    "dev-fd-then-dirlink": (lambda w: [("open", "/", O_DIRECTORY, 0),
                                       ("open", "/dev/fd/3/dirlink/canary.txt", O_RDONLY, 0)], 1, ENOENT),
    "openat-dirfd": (lambda w: [("open", "/", O_DIRECTORY, 0),
                                ("openat", Result(0), "../outside/canary.txt", O_RDONLY, 0)], 1, ENOENT),
    "dirfd-before-chdir": (lambda w: [("open", "/sub/deeper", O_DIRECTORY, 0), ("chdir", "/sub"),
                                      ("openat", Result(0), "../../../outside/canary.txt", O_RDONLY, 0)], 2, ENOENT),
    "o-path-dirfd": (lambda w: [("open", "/", O_PATH | O_DIRECTORY, 0),
                                ("openat", Result(0), "../outside/canary.txt", O_RDONLY, 0)], 1, ENOENT),
    "chdir-dotdot-loop": (lambda w: [("chdir", "..")] * 8 + [("open", "outside/canary.txt", O_RDONLY, 0)], 8, ENOENT),
    "fchdir-dotdot": (lambda w: [("open", "/", O_DIRECTORY, 0), ("fchdir", Result(0)), ("chdir", "../.."),
                                 ("open", "outside/canary.txt", O_RDONLY, 0)], 3, ENOENT),
    "guest-absolute-symlink": (lambda w: [("symlink", f"{_o(w)}/canary.txt", "/mine"),
                                          ("open", "/mine", O_RDONLY, 0)], 1, ENOENT),
    "guest-relative-symlinkat": (lambda w: [("symlinkat", "../outside/canary.txt", AT_FDCWD, "/mine"),
                                            ("open", "/mine", O_RDONLY, 0)], 1, ENOENT),
    "hard-link-out": (lambda w: [("link", "/../outside/canary.txt", "/hard"), ("open", "/hard", O_RDONLY, 0)],
                      0, ENOENT),
    "hard-link-through-symlink": (lambda w: [("linkat", AT_FDCWD, "/abs", AT_FDCWD, "/hard", 0x400)], 0, ENOENT),
    "rename-out": (lambda w: [("rename", "/inside.txt", "/../outside/canary.txt")], 0, ENOENT),
    "rename-over-via-link": (lambda w: [("rename", "/inside.txt", "/dirlink/canary.txt")], 0, ENOENT),
    "rename-rootfs-away": (lambda w: [("rename", "/", "/sub/x")], 0, EBUSY),
    "write-through-link": (lambda w: [("open", "/abs", O_WRONLY | O_TRUNC, 0)], 0, ENOENT),
    "create-through-dangling-link": (lambda w: [("open", "/dangling", O_WRONLY | O_CREAT, 0o644)], 0, ENOENT),
    "truncate-through-link": (lambda w: [("truncate", "/dirlink/canary.txt", 0)], 0, ENOENT),
    "chmod-through-link": (lambda w: [("chmod", "/abs", 0o777)], 0, ENOENT),
    "unlink-through-link": (lambda w: [("unlink", "/reldir/canary.txt")], 0, ENOENT),
    "execve-outside": (lambda w: [("execve", f"{_o(w)}/prog", 0, 0)], 0, ENOENT),
    "execve-dotdot": (lambda w: [("execve", "/../outside/prog", 0, 0)], 0, ENOENT),
    "execve-through-link": (lambda w: [("execve", "/runme", 0, 0)], 0, ENOENT),
    "execveat-dirfd": (lambda w: [("open", "/", O_PATH | O_DIRECTORY, 0),
                                  (322, Result(0), "../outside/prog", 0, 0, 0)], 1, None),
    "symlink-loop": (lambda w: [("open", "/loop1", O_RDONLY, 0)], 0, ELOOP),
    "socket-inet": (lambda w: [("socket", 2, 1, 0)], 0, EACCES),
    "socket-inet6": (lambda w: [("socket", 10, 2, 0)], 0, EACCES),
    "unix-bind-dotdot": (lambda w: [("socket", 1, 1, 0), (BIND, Result(0), *_unix("/../outside/evil.sock"))],
                         1, ENOENT),
    "unix-bind-symlink-mid-path": (lambda w: [("socket", 1, 1, 0), (BIND, Result(0), *_unix("/dirlink/evil.sock"))],
                                   1, ENOENT),
    "unix-bind-over-dangling-link": (lambda w: [("socket", 1, 2, 0), (BIND, Result(0), *_unix("/dangling"))],
                                     1, EADDRINUSE),
    "unix-connect-through-link": (lambda w: [("socket", 1, 1, 0), (CONNECT, Result(0), *_unix("/hostlink"))],
                                  1, ENOENT),
    "unix-connect-dotdot": (lambda w: [("socket", 1, 1, 0), (CONNECT, Result(0), *_unix("/../outside/host.sock"))],
                            1, ENOENT),
    "unix-sendto-through-link": (lambda w: [("socket", 1, 2, 0),
                                            (SENDTO, Result(0), "x", 1, 0, *_unix("/reldir/host.sock"))], 1, ENOENT),
    # a chroot inside the rootfs narrows it; no `..`, link, cwd or fd left outside the new root widens it
    "chroot-dotdot": (lambda w: [(CHROOT, "/sub"), ("chdir", "/"), ("open", "/../../outside/canary.txt", O_RDONLY, 0)],
                      2, ENOENT),
    "chroot-cwd-left-outside": (lambda w: [(CHROOT, "/sub/deeper"), ("chdir", "../../.."),
                                           ("open", "outside/canary.txt", O_RDONLY, 0)], 2, ENOENT),
    "chroot-symlink-to-dotdots": (lambda w: [(CHROOT, "/sub"), ("open", "/up/outside/canary.txt", O_RDONLY, 0)],
                                  1, ENOENT),
    "chroot-then-abs-link": (lambda w: [(CHROOT, "/"), (CHROOT, "/sub"), ("open", "/../abs", O_RDONLY, 0)], 2, ENOENT),
    "chroot-dirfd-from-before": (lambda w: [("open", "/", O_DIRECTORY, 0), (CHROOT, "/sub"),
                                            ("openat", Result(0), "../../outside/canary.txt", O_RDONLY, 0)], 2, ENOENT),
    "chroot-proc-self-root": (lambda w: [(CHROOT, "/sub"),
                                         ("open", "/proc/self/root/../outside/canary.txt", O_RDONLY, 0)], 1, ENOENT),
    "chroot-to-outside": (lambda w: [(CHROOT, "/../outside"), ("open", "/canary.txt", O_RDONLY, 0)], 0, ENOENT),
    "chroot-through-dirlink": (lambda w: [(CHROOT, "/dirlink"), ("open", "/canary.txt", O_RDONLY, 0)], 0, ENOENT),
}


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_escape_attempt_fails(world, trick):
    make_steps, failing, code = TRICKS[trick]
    steps = make_steps(world)
    # Whatever the trick opened, the guest tries to read it and prints what it got.
    steps = steps + [("read", Result(failing), BUFFER, 4096)]
    before = _outside_state(world)
    results, output = _run(world, steps)
    assert min(results[:failing], default=0) >= 0, (trick, results)  # the set-up worked (a chroot too)
    assert results[failing] < 0, (trick, results)
    if code is not None:
        assert results[failing] == -code, (trick, results)
    assert CANARY.strip() not in output
    assert _outside_state(world) == before
    assert not (world / "outside" / "created.txt").exists()


def test_proc_self_fd_reopens_the_guests_own_fds(world):
    """/proc/self/fd/N and /dev/fd/N name the guest's fd N (its host fd has another number), a
    directory fd's entries resolve inside the rootfs, and an fd the guest does not have is ENOENT."""
    steps = [("open", "/inside.txt", O_RDONLY, 0), ("open", "/proc/self/fd/3", O_RDONLY, 0),
             ("read", Result(1), BUFFER, 4096), ("open", "/", O_DIRECTORY, 0),
             ("open", "/dev/fd/5/sub/../inside.txt", O_RDONLY, 0), ("open", "/proc/self/fd/99", O_RDONLY, 0),
             # stdout is no directory, nor a link to one, however it is spelled (this recursed)
             ("open", "/dev/fd/1/x", O_RDONLY, 0), ("open", "/proc/self/fd/5", O_DIRECTORY, 0),
             ("open", "/proc/self/fd/7/inside.txt", O_RDONLY, 0)]
    results, output = _run(world, steps)
    assert results[:9] == [3, 4, 7, 5, 6, -ENOENT, -ENOTDIR, 7, -ENOTDIR], results
    assert b"inside\n" in output


def test_readlink_and_getcwd_reveal_no_host_path(world):
    steps = [("open", "/sub", O_DIRECTORY, 0), ("chdir", "/sub"), ("getcwd", BUFFER, 100)]
    results, output = _run(world, steps)
    assert results[2] == len(b"/sub\0") and b"/sub\0" in output
    steps = [("open", "/sub", O_DIRECTORY, 0), ("readlink", "/proc/self/fd/3", BUFFER, 200)]
    results, output = _run(world, steps)
    assert results[1] == len("/sub")
    for steps in ([("readlink", "/proc/self/cwd", BUFFER, 200)], [("readlink", "/proc/self/root", BUFFER, 200)]):
        results, output = _run(world, steps)
        assert str(world).encode() not in output


def test_symlinks_inside_the_rootfs_still_work(world):
    (world / "root" / "good").symlink_to("sub/../inside.txt")
    (world / "root" / "sub" / "abs-inside").symlink_to("/inside.txt")
    results, output = _run(world, [("open", "/good", O_RDONLY, 0), ("read", Result(0), BUFFER, 100),
                                   ("open", "/sub/abs-inside", O_RDONLY, 0), ("read", Result(2), BUFFER, 100)])
    assert results[0] >= 0 and results[1] == 7 and results[3] == 7
    assert b"inside\n" in output


def test_unix_sockets_are_allowed_but_no_host_listener_is_reached_through_a_link(world):
    """An AF_UNIX socket is confined like a file: a link inside the rootfs to a live host socket
    resolves inside the rootfs, so the host server never sees a connection."""
    server = _bind_unix(world / "outside", "live.sock")
    server.listen(4)
    server.setblocking(False)
    (world / "root" / "live").symlink_to(world / "outside" / "live.sock")
    (world / "root" / "rel-live").symlink_to("../outside/live.sock")
    steps = [("socket", 1, 1, 0), (CONNECT, Result(0), *_unix("/live")),
             (CONNECT, Result(0), *_unix("/rel-live")), (CONNECT, Result(0), *_unix("/../outside/live.sock"))]
    results, _ = _run(world, steps)
    assert results[0] >= 0 and results[1:] == [-ENOENT] * 3
    with pytest.raises(BlockingIOError):
        server.accept()
    server.close()


def test_unix_socket_bound_inside_the_rootfs(world):
    """bind creates the socket file inside the rootfs; getsockname answers the guest's path."""
    steps = [("socket", 1, 1, 0), (BIND, Result(0), *_unix("/sub/deeper/../s.sock")), ("listen", Result(0), 1),
             ("store", BufferAt(1024), 110), (GETSOCKNAME, Result(0), BUFFER, BufferAt(1024))]
    results, output = _run(world, steps)
    assert results == [3, 0, 0, 0, 0]
    assert stat.S_ISSOCK((world / "root" / "sub" / "s.sock").stat().st_mode)
    name = b"\x01\x00/sub/deeper/../s.sock\0"
    assert name + bytes(1024 - len(name)) + struct.pack("<Q", len(name)) in output  # the sockaddr, its length
    assert not (world / "outside" / "s.sock").exists()


def test_socketpair_is_allowed_and_private(world):
    results, output = _run(world, [("socketpair", 1, 1, 0, BUFFER)])
    assert results == [0]
    results, _ = _run(world, [("socketpair", 2, 1, 0, BUFFER)])
    assert results == [-97]  # EAFNOSUPPORT: only AF_UNIX pairs


# -- --read-only ---------------------------------------------------------------------------------

def _tree(root):
    return sorted((str(p.relative_to(root)), p.is_symlink() or p.read_bytes() if p.is_file() else None,
                   p.lstat().st_mode, p.lstat().st_mtime_ns) for p in root.rglob("*"))


READ_ONLY_WRITES = [
    ("open", "/inside.txt", O_WRONLY, 0), ("open", "/inside.txt", O_RDWR, 0),
    ("open", "/inside.txt", O_RDONLY | O_TRUNC, 0), ("open", "/new.txt", O_WRONLY | O_CREAT, 0o644),
    ("creat", "/new2.txt", 0o644), ("unlink", "/inside.txt"), ("rmdir", "/sub/deeper"),
    ("mkdir", "/newdir", 0o755), ("rename", "/inside.txt", "/moved.txt"), ("link", "/inside.txt", "/hard"),
    ("symlink", "/inside.txt", "/sym"), ("chmod", "/inside.txt", 0o777), ("truncate", "/inside.txt", 0),
    ("utimensat", AT_FDCWD, "/inside.txt", 0, 0), ("unlinkat", AT_FDCWD, "/sub/deeper", 0x200),
    ("mkdirat", AT_FDCWD, "/newdir2", 0o755), ("renameat2", AT_FDCWD, "/inside.txt", AT_FDCWD, "/m", 0),
]


def test_read_only_refuses_every_write_with_erofs(world):
    root = world / "root"
    before = _tree(root)
    steps = READ_ONLY_WRITES + [("open", "/inside.txt", O_RDONLY, 0), ("fchmod", Result(len(READ_ONLY_WRITES)), 0o600),
                                ("ftruncate", Result(len(READ_ONLY_WRITES)), 0),
                                ("read", Result(len(READ_ONLY_WRITES)), BUFFER, 100)]
    results, output = _run(world, steps, read_only=True)
    assert results[:len(READ_ONLY_WRITES)] == [-EROFS] * len(READ_ONLY_WRITES), results
    opened = results[len(READ_ONLY_WRITES)]
    assert opened >= 3  # reading still works
    assert results[-3:-1] == [-EROFS, -EROFS]
    assert results[-1] == 7 and b"inside\n" in output  # ... and writing to fd 1 too
    assert _tree(root) == before


def test_read_only_still_writes_to_stdout_and_pipes(world, tmp_path):
    program = write_program(world / "guest", [("write", 1, "to stdout\n", 10), ("write", 2, "to stderr\n", 10)])
    done = run_bdemu("run", "--rootfs", str(world / "root"), "--read-only", program)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"to stdout\n") and done.stderr == b"to stderr\n"


# -- --mount -------------------------------------------------------------------------------------

@pytest.fixture
def shared(tmp_path):
    data = tmp_path / "shared"
    data.mkdir()
    (data / "note.txt").write_bytes(b"from the host\n")
    (data / "escape").symlink_to("../../outside/canary.txt")
    (data / "escape-abs").symlink_to(tmp_path / "outside" / "canary.txt")
    return data


def test_mount_read_only_binds_a_host_directory(world, shared):
    before = _outside_state(world)
    steps = [("open", "/mnt/data/note.txt", O_RDONLY, 0), ("read", Result(0), BUFFER, 100),
             ("open", "/mnt/data/new.txt", O_WRONLY | O_CREAT, 0o644), ("unlink", "/mnt/data/note.txt"),
             ("open", "/mnt/data/../../../outside/canary.txt", O_RDONLY, 0),
             ("open", "/mnt/data/escape", O_RDONLY, 0), ("open", "/mnt/data/escape-abs", O_RDONLY, 0),
             ("rename", "/mnt/data", "/moved"), ("open", "/inside.txt", O_WRONLY, 0)]
    (world / "root" / "mnt").mkdir()
    results, output = _run(world, steps, mounts=[f"{shared}:/mnt/data:ro"])
    assert results[0] >= 3 and results[1] == 14 and b"from the host\n" in output
    assert results[2:4] == [-EROFS, -EROFS]
    assert results[4:7] == [-ENOENT, -ENOENT, -ENOENT]
    assert results[7] == -EROFS
    assert results[8] >= 3  # the rest of the rootfs stays writable
    assert sorted(os.listdir(shared)) == ["escape", "escape-abs", "note.txt"]
    assert _outside_state(world) == before and CANARY.strip() not in output


def test_mount_read_write_writes_into_the_host_directory(world, shared):
    steps = [("open", "/data/out.txt", O_WRONLY | O_CREAT, 0o644), ("write", Result(0), "written\n", 8),
             ("rmdir", "/data")]
    results, _ = _run(world, steps, mounts=[f"{shared}:/data"])
    assert results[:2] == [3, 8] and results[2] == -EBUSY
    assert (shared / "out.txt").read_bytes() == b"written\n"


@pytest.mark.parametrize("spec", ["nodir", "{shared}", "{shared}:relative", "{shared}:/x:rw", "{missing}:/x",
                                  "{shared}:/x:ro:extra"])
def test_bad_mount_spec_is_a_usage_error(world, shared, spec):
    program = write_program(world / "guest", [("getcwd", BUFFER, 10)])
    spec = spec.format(shared=shared, missing=world / "missing")
    done = run_bdemu("run", "--rootfs", str(world / "root"), "--mount", spec, program)
    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bdemu: ") and "mount" in lines[0]


def test_mount_without_rootfs_is_a_usage_error(world, shared):
    program = write_program(world / "guest", [("getcwd", BUFFER, 10)])
    done = run_bdemu("run", "--mount", f"{shared}:/x", program)
    assert done.returncode == 2 and done.stderr.decode().startswith("bdemu: --mount needs --rootfs")


def test_escape_suite_through_the_cli(world):
    """The acceptance run: a dozen tricks in one guest under `bdemu run --rootfs`."""
    steps = []
    for name in ("dotdot-absolute", "absolute-symlink", "relative-symlink", "symlink-mid-path", "proc-self-root",
                 "chdir-dotdot-loop", "guest-absolute-symlink", "hard-link-out", "rename-out", "execve-outside",
                 "write-through-link", "socket-inet"):
        steps += TRICKS[name][0](world)
    steps.append(("read", Result(0), BUFFER, 4096))
    before = _outside_state(world)
    program = write_program(world / "guest", steps)
    done = run_bdemu("run", "--rootfs", str(world / "root"), program)
    assert done.returncode == 0, done.stderr
    results, _ = parse_output(done.stdout, len(steps))
    assert sum(1 for r in results if r < 0) >= 12
    assert CANARY.strip() not in done.stdout + done.stderr
    assert _outside_state(world) == before


def test_a_link_swapped_in_after_resolution_is_not_followed(world):
    """The race a forked guest could try: resolve, then swap a directory for a link, then open."""
    from bdemu.linux.fs import VirtualFS
    vfs = VirtualFS(str(world / "root"), "/")
    host, node = vfs.resolve("/sub/deeper/x")
    assert node is None and host == str(world / "root" / "sub" / "deeper" / "x")
    (world / "root" / "sub" / "deeper").rmdir()
    (world / "root" / "sub" / "deeper").symlink_to(world / "outside")
    (world / "outside" / "x").write_bytes(CANARY)
    with pytest.raises(OSError) as error:
        os.close(vfs.open_confined(host, os.O_RDONLY, 0))
    assert error.value.errno == ELOOP


def test_record_takes_the_same_confinement_options(world, shared, tmp_path):
    pytest.importorskip("duckdb")
    (world / "root" / "mnt").mkdir()
    steps = [("open", "/mnt/note.txt", O_RDONLY, 0), ("open", "/inside.txt", O_WRONLY, 0),
             ("open", "/abs", O_RDONLY, 0)]
    program = write_program(world / "guest", steps)
    trace = tmp_path / "t.duckdb"
    done = run_bdemu("record", "-o", str(trace), "--rootfs", str(world / "root"), "--read-only",
                     "--mount", f"{shared}:/mnt:ro", program)
    assert done.returncode == 0, done.stderr
    results, _ = parse_output(done.stdout, len(steps))
    assert results[0] >= 3 and results[1:] == [-EROFS, -ENOENT]
    assert trace.exists()


def test_metadata_calls_work_inside_the_rootfs(world):
    """The race-free forms (parent dirfd, /proc/self/fd paths) still do the job inside DIR."""
    root = world / "root"
    times = struct.pack("<qqqq", 1000, 0, 2000, 0)
    steps = [("mkdir", "/made", 0o700), ("open", "/made/f", O_WRONLY | O_CREAT, 0o600),
             ("write", Result(1), "12345", 5),
             ("truncate", "/made/f", 2), ("chmod", "/made/f", 0o640), ("symlink", "f", "/made/l"),
             ("link", "/made/f", "/made/h"), ("rename", "/made/h", "/made/h2"),
             ("utimensat", AT_FDCWD, "/made/l", times, 0), ("unlink", "/made/h2"),
             ("open", "/made/x", O_WRONLY | O_CREAT, 0o600), ("unlinkat", AT_FDCWD, "/made/x", 0),
             ("mkdir", "/gone", 0o700), ("rmdir", "/gone")]
    results, _ = _run(world, steps)
    assert [r for r in results if r < 0] == [], results
    made = root / "made"
    assert sorted(os.listdir(made)) == ["f", "l"] and (made / "f").read_bytes() == b"12"
    assert (made / "f").stat().st_mode & 0o777 == 0o640 and os.readlink(made / "l") == "f"
    assert (made / "f").stat().st_mtime == 2000 and not (root / "gone").exists()


@pytest.mark.parametrize("call", ["unlink", "chmod", "rename"])
def test_a_link_swapped_in_before_a_metadata_call_is_not_followed(world, call):
    from bdemu.linux.fs import VirtualFS
    vfs = VirtualFS(str(world / "root"), "/")
    host, _ = vfs.resolve("/sub/deeper/canary.txt")
    (world / "root" / "sub" / "deeper").rmdir()
    (world / "root" / "sub" / "deeper").symlink_to(world / "outside")
    before = _outside_state(world)
    with pytest.raises(OSError) as error:
        if call == "chmod":
            with vfs.magic_path(host) as target:
                os.chmod(target, 0o777)
        else:
            with vfs.parent_of(host) as (parent, name):
                if call == "unlink":
                    os.unlink(name, dir_fd=parent)
                else:
                    os.rename(name, "moved", src_dir_fd=parent, dst_dir_fd=parent)
    assert error.value.errno == ELOOP
    assert _outside_state(world) == before


def test_read_only_without_rootfs_protects_the_host(tmp_path):
    target = tmp_path / "host-file"
    target.write_bytes(b"keep\n")
    steps = [("open", str(target), O_WRONLY | O_TRUNC, 0), ("open", str(tmp_path / "new"), O_WRONLY | O_CREAT, 0o644),
             ("unlink", str(target)), ("open", str(target), O_RDONLY, 0), ("read", Result(3), BUFFER, 10),
             ("open", "/dev/null", O_WRONLY, 0), ("write", Result(5), "x", 1)]
    program = write_program(tmp_path / "guest", steps)
    result = Emulator(program, read_only=True).run(capture_output=True)
    results, _ = parse_output(result.stdout, len(steps))
    assert results[:3] == [-EROFS] * 3 and results[4] == 5 and results[6] == 1
    assert target.read_bytes() == b"keep\n" and not (tmp_path / "new").exists()


def test_guest_never_creates_setuid_or_setgid_files(world):
    root = world / "root"
    steps = [("open", "/suid", O_WRONLY | O_CREAT, 0o6755), ("chmod", "/inside.txt", 0o4755),
             ("mkdir", "/sgid-dir", 0o2775), ("open", "/inside.txt", O_RDONLY, 0), ("fchmod", Result(3), 0o6777)]
    results, _ = _run(world, steps)
    assert min(results) >= 0, results
    for name, mode in (("suid", 0o755), ("sgid-dir", 0o755), ("inside.txt", 0o777)):
        assert (root / name).stat().st_mode & 0o7777 == mode, name


def test_device_nodes_inside_the_rootfs_are_refused(world):
    """A rootfs unpacked as root may hold device nodes: they would reach host hardware."""
    root = world / "root"
    os.mknod(root / "mem", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers, harmless
    (root / "devlink").symlink_to("/mem")
    steps = [("open", "/mem", O_RDONLY, 0), ("open", "/devlink", O_RDWR, 0), ("open", "/dev/null", O_RDWR, 0)]
    results, _ = _run(world, steps)
    assert results[:2] == [-EACCES, -EACCES] and results[2] >= 3
