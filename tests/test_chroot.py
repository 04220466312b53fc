"""chroot(2) kept by bdemu's virtual filesystem, with and without --rootfs (escapes out of
--rootfs after a chroot: tests/test_confinement.py, TRICKS chroot-*)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bdemu import Emulator
from conftest import ROOT, run_bdemu
from guestasm import BUFFER, BufferAt, O_DIRECTORY, O_RDONLY, Result, parse_output, write_program

ENOENT, EPERM, EACCES, ENOTDIR = 2, 1, 13, 20
CHROOT, FCHDIR = 161, 81
BUSYBOX = ROOT / "tests" / ".cache" / "busybox" / "x86_64" / "busybox"


@pytest.fixture
def tree(tmp_path):
    """tmp/root: the rootfs, with a jail/ holding its own files and links."""
    root = tmp_path / "root"
    (root / "jail" / "etc").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc" / "name").write_bytes(b"outer\n")
    (root / "jail" / "etc" / "name").write_bytes(b"jail!\n")
    (root / "jail" / "abs").symlink_to("/etc/name")
    (root / "jail" / "up").symlink_to("../../..")
    (root / "file").write_bytes(b"")
    return tmp_path


def _run(tmp_path, steps, rootfs=None):
    program = write_program(tmp_path / "guest", steps)
    result = Emulator(program, rootfs=rootfs).run(capture_output=True, max_insns=1_000_000)
    assert result.exit_code == 0, result
    return parse_output(result.stdout, len(steps))


def test_chroot_makes_a_directory_the_guests_root(tree):
    """Absolute paths, absolute links and `..` at the root resolve in the new root; the cwd stays
    outside until a chdir (getcwd: "(unreachable)/", as Linux); /proc/self/root reads "/"."""
    steps = [("open", "/", O_DIRECTORY, 0),  # 0: a directory fd from before
             (CHROOT, "/jail"), ("getcwd", BufferAt(0), 100),
             ("open", "/etc/name", O_RDONLY, 0), ("read", Result(3), BufferAt(100), 6),
             ("open", "/../../abs", O_RDONLY, 0), ("read", Result(5), BufferAt(200), 6),
             ("open", "/up/etc/name", O_RDONLY, 0), ("read", Result(7), BufferAt(300), 6),
             ("chdir", "/"), ("getcwd", BufferAt(400), 100), ("readlink", "/proc/self/root", BufferAt(500), 100),
             ("openat", Result(0), "etc/name", O_RDONLY, 0), ("read", Result(12), BufferAt(600), 6),
             (FCHDIR, Result(0)), ("getcwd", BufferAt(700), 100), ("readlink", "/proc/self/cwd", BufferAt(800), 100)]
    results, out = _run(tree, steps, rootfs=str(tree / "root"))
    assert results[1] == 0 and results[2] == len(b"(unreachable)/\0"), results
    assert out[:15] == b"(unreachable)/\0"
    assert out[100:106] == out[200:206] == out[300:306] == b"jail!\n"
    assert results[10] == 2 and out[400:402] == b"/\0" and out[500:501] == b"/" and results[11] == 1
    assert out[600:606] == b"outer\n"  # an fd from before the chroot still names the outer tree, as on Linux
    assert out[700:715] == b"(unreachable)/\0" and results[16] == 1 and out[800:801] == b"/"


def test_chroot_errors(tree, monkeypatch):
    steps = [(CHROOT, "/missing"), (CHROOT, "/file"), (CHROOT, "/proc/self"), (CHROOT, 0)]
    results, _ = _run(tree, steps, rootfs=str(tree / "root"))
    assert results == [-ENOENT, -ENOTDIR, -EACCES, -14], results
    from bdemu.linux import chroot
    monkeypatch.setattr(chroot, "has_capability", lambda capability: False)
    results, _ = _run(tree, [(CHROOT, "/jail"), ("open", "/etc/name", O_RDONLY, 0), ("read", Result(1), BUFFER, 6)],
                      rootfs=str(tree / "root"))
    assert results[0] == -EPERM  # without CAP_SYS_CHROOT (what capget shows the guest), as Linux


def test_chroot_without_rootfs_confines_paths_to_the_directory(tree):
    jail = tree / "root" / "jail"
    steps = [(CHROOT, str(jail)), ("chdir", "/"), ("open", "/etc/name", O_RDONLY, 0), ("read", Result(2), BUFFER, 6),
             ("open", "/../../../../../abs", O_RDONLY, 0), ("read", Result(4), BufferAt(100), 6),
             ("getcwd", BufferAt(200), 100)]
    results, out = _run(tree, steps)
    assert results[:2] == [0, 0] and out[:6] == out[100:106] == b"jail!\n", results
    assert out[200:202] == b"/\0"


def test_chrooted_busybox_runs_programs_from_the_new_root(tree):
    """busybox chroot: chroot, chdir, then execve of a program found inside the new root (its
    own ELF loaded through the new root), in a forked child of the shell."""
    if not BUSYBOX.exists():
        pytest.skip("busybox-static not fetched (tests/test_busybox.py fetches it)")
    root = tree / "root"
    for place in (root / "bin", root / "jail" / "bin"):
        place.mkdir()
        shutil.copy(BUSYBOX, place / "busybox")
    done = run_bdemu("run", "--rootfs", str(root), str(root / "bin" / "busybox"), "sh", "-c",
                     "cat /etc/name; chroot /jail /bin/busybox sh -c 'cat /etc/name /abs; pwd; cd ..; ls'")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().split()
    assert lines[:4] == ["outer", "jail!", "jail!", "/"], lines
    assert "etc" in lines and "file" not in lines
    assert not Path(root / "jail" / "jail").exists()
