"""The command line contract of SPEC section 3: exit statuses and one-line errors."""
from __future__ import annotations

import os
import re

from conftest import ROOT, run_bdemu, sample


def _one_bdemu_line(stderr: bytes) -> str:
    lines = stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("bdemu: ")
    assert "Traceback" not in stderr.decode()
    return lines[0]


def test_missing_guest_is_127(tmp_path):
    done = run_bdemu("run", str(tmp_path / "nope"))
    assert done.returncode == 127
    assert "nope" in _one_bdemu_line(done.stderr)


def test_text_file_is_126(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("just words\n")
    done = run_bdemu("run", str(text))
    assert done.returncode == 126
    _one_bdemu_line(done.stderr)


def test_directory_and_empty_file_are_126(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    for guest in (tmp_path, empty):
        done = run_bdemu("run", str(guest))
        assert done.returncode == 126
        _one_bdemu_line(done.stderr)


def test_foreign_machine_is_126(tmp_path):
    elf = bytearray((ROOT / sample("x86_64", "hello")).read_bytes())
    elf[18:20] = (8).to_bytes(2, "little")  # EM_MIPS with the wrong class: unsupported
    path = tmp_path / "foreign"
    path.write_bytes(bytes(elf))
    done = run_bdemu("run", str(path))
    assert done.returncode == 126
    assert "unsupported" in _one_bdemu_line(done.stderr)


def test_usage_errors_are_2():
    for args in (["run"], ["run", "--backdoor-pages", "0", sample("x86_64", "hello")],
                 ["run", "--no-such-option", sample("x86_64", "hello")],
                 ["run", "--plugin", "no-such-plugin", sample("x86_64", "hello")]):
        done = run_bdemu(*args)
        assert done.returncode == 2, args
        _one_bdemu_line(done.stderr)


def test_guest_args_are_not_parsed_by_bdemu():
    done = run_bdemu("run", sample("x86_64", "hello"), "--plugin", "-p", "--version")
    assert done.returncode == 3
    assert b"argv[1] = --plugin\nargv[2] = -p\nargv[3] = --version\n" in done.stdout


def test_env_options_reach_the_guest():
    done = run_bdemu("run", "--env", "BDEMU_GREETING=bonjour", sample("aarch64", "hello"),
                     env={"PATH": "/usr/bin:/bin", "BDEMU_GREETING": "hidden"})
    assert b"BDEMU_GREETING = bonjour\n" in done.stdout
    done = run_bdemu("run", "--unset-env", "BDEMU_GREETING", sample("aarch64", "hello"),
                     env={"PATH": "/usr/bin:/bin", "BDEMU_GREETING": "hidden"})
    assert b"BDEMU_GREETING = (unset)\n" in done.stdout


def test_max_insns_is_124():
    done = run_bdemu("run", "--max-insns", "10000", sample("x86_64", "compute"))
    assert done.returncode == 124
    assert "limit" in _one_bdemu_line(done.stderr)


def test_timeout_is_124():
    done = run_bdemu("run", "--timeout", "0.05", sample("x86_64", "compute"), "400000000")
    assert done.returncode == 124
    _one_bdemu_line(done.stderr)


def test_version_and_module_entry():
    done = run_bdemu("--version")
    assert done.returncode == 0
    assert re.match(rb"bdemu \d+\.\d+", done.stdout)


def test_rootfs_confines_the_guest(tmp_path):
    """With --rootfs, `/` is the folder: a file outside it cannot be reached, even through `..`."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    guest = root / "bin" / "fileio"
    guest.write_bytes((ROOT / sample("x86_64", "fileio")).read_bytes())
    os.chmod(guest, 0o755)
    (root / "work").mkdir()
    done = run_bdemu("run", "--rootfs", str(root), str(guest), "/work")
    assert done.returncode == 0, done.stderr
    assert b"fileio: 0 failures" in done.stdout
    assert not (tmp_path / "work").exists()


def test_cwd_inside_rootfs_must_be_a_directory(tmp_path):
    """--cwd names a guest directory under --rootfs: a missing one is a usage error, as without it."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    guest = root / "bin" / "fileio"
    guest.write_bytes((ROOT / sample("x86_64", "fileio")).read_bytes())
    (root / "work").mkdir()
    for cwd in ("/missing", "/bin/fileio"):
        done = run_bdemu("run", "--rootfs", str(root), "--cwd", cwd, str(guest), ".")
        assert done.returncode == 2, done.stdout
        assert "--cwd" in _one_bdemu_line(done.stderr) and done.stdout == b""
    done = run_bdemu("run", "--rootfs", str(root), "--cwd", "/work", str(guest), ".")
    assert done.returncode == 0 and b"fileio: 0 failures" in done.stdout, done.stderr
    assert not any((root / "work").iterdir())


def test_plugin_output_goes_to_stderr_unless_asked(tmp_path):
    """Plugin reports default to stderr; `--output -` asks for stdout (after the guest's output);
    `--output FILE` writes the file."""
    done = run_bdemu("run", "-p", "insncount", str(ROOT / sample("x86_64", "hello")), cwd=tmp_path)
    assert b"insns:" not in done.stdout and b"insns:" in done.stderr
    done = run_bdemu("run", "-p", "insncount", "--output", "-", str(ROOT / sample("x86_64", "hello")), cwd=tmp_path)
    assert done.returncode == 0 and not (tmp_path / "-").exists()
    assert done.stdout.startswith(b"Hello from bdemu!\n") and re.search(rb"\ninsns: \d+\n$", done.stdout)
    assert b"insns:" not in done.stderr
    report = tmp_path / "report.txt"
    done = run_bdemu("run", "-p", "insncount", "--output", str(report), str(ROOT / sample("x86_64", "hello")), cwd=tmp_path)
    assert b"insns:" not in done.stdout + done.stderr and report.read_text().startswith("insns: ")


def test_debug_after_guest_is_a_guest_argument(tmp_path):
    """`--debug` after GUEST belongs to the guest: bdemu's errors stay one line, no traceback."""
    done = run_bdemu("run", str(tmp_path / "nope"), "--debug")
    assert done.returncode == 127 and "nope" in _one_bdemu_line(done.stderr)
    done = run_bdemu("run", "--debug", str(tmp_path / "nope"))
    assert done.returncode == 127 and b"Traceback" in done.stderr


def test_no_command_is_a_one_line_usage_error():
    done = run_bdemu()
    assert done.returncode == 2 and done.stdout == b""
    assert "missing command" in _one_bdemu_line(done.stderr)
