"""Malformed guests: every broken file gives 126 (127 when missing) and one `bdemu:` line, fast.

The corpus is generated here from one valid snippet ELF (tests/elfgen.py) by
breaking one field at a time, plus files that are not ELF files at all.
"""
from __future__ import annotations

import io
import os
import struct
import sys
import time
from contextlib import redirect_stderr, redirect_stdout

import pytest

from bdemu.cli import main
from conftest import run_bdemu
from elfgen import make_elf

GOOD = make_elf("x86_64", "mov rax, 60\nmov rdi, 3\nsyscall")
PH = 64  # the first program header


def _patch(data: bytes, offset: int, fmt: str, *values) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def _second_segment(vaddr: int, memsz: int) -> bytes:
    """GOOD with a second PT_LOAD at `vaddr`."""
    data = _patch(GOOD, 56, "<H", 2)
    return _patch(data, PH + 56, "<IIQQQQQQ", 1, 6, 0, vaddr, vaddr, 0, memsz, 0x1000)


#: name -> (file bytes, words the one-line message must contain)
CORPUS = {
    "empty": (b"", "empty"),
    "truncated-ident": (GOOD[:10], "not an ELF"),
    "truncated-header": (GOOD[:40], "truncated"),
    "wrong-class": (_patch(GOOD, 4, "<B", 3), "class"),
    "wrong-encoding": (_patch(GOOD, 5, "<B", 7), "encoding"),
    "32-bit-class-for-x86-64": (_patch(GOOD, 4, "<B", 1), "unsupported"),
    "unsupported-machine": (_patch(GOOD, 18, "<H", 0x9999), "unsupported architecture"),
    "relocatable-object": (_patch(GOOD, 16, "<H", 1), "not an executable"),
    "bad-phentsize": (_patch(GOOD, 54, "<H", 12), "program header"),
    "no-program-headers": (_patch(GOOD, 56, "<H", 0), "program header"),
    "65535-program-headers": (_patch(GOOD, 56, "<H", 0xFFFF), "program header"),
    "phoff-past-end": (_patch(GOOD, 32, "<Q", 1 << 40), "past the end"),
    "phoff-overflows": (_patch(GOOD, 32, "<Q", 2**64 - 8), "past the end"),
    "headers-cut-off": (GOOD[:PH + 20], "past the end"),
    "segment-past-end": (_patch(GOOD, PH + 32, "<QQ", 1 << 30, 1 << 30), "PT_LOAD"),
    "terabyte-memsz": (_patch(GOOD, PH + 40, "<Q", 5 << 40), "PT_LOAD"),
    "filesz-over-memsz": (_patch(GOOD, PH + 32, "<Q", 0x2000), "PT_LOAD"),
    "segment-wraps-address-space": (_patch(GOOD, PH + 16, "<Q", 2**64 - 0x1000), "address space"),
    "overlapping-segments": (_second_segment(0x400800, 0x1000), "overlapping"),
    "image-spans-terabytes": (_second_segment(0x400000 + (1 << 42), 0x1000), "too large"),
    "entry-outside-segments": (_patch(GOOD, 24, "<Q", 0x900000), "entry point"),
    "only-empty-segments": (_patch(GOOD, PH + 40, "<Q", 0), "no loadable"),
    "text-without-shebang": (b"echo hello\n", "not an ELF"),
    "bad-shebang-interpreter": (b"#!/nonexistent/interpreter -x\necho hi\n", "script"),
    "empty-shebang": (b"#!\n", "script"),
    "interp-too-long": (None, "PT_INTERP"),
    "missing-interpreter": (None, "interpreter"),
}


def _with_interp(text: bytes, filesz: int | None = None) -> bytes:
    """GOOD with a PT_INTERP naming `text` (placed at file offset 0x800)."""
    data = bytearray(_patch(GOOD, 56, "<H", 2))
    struct.pack_into("<IIQQQQQQ", data, PH + 56, 3, 4, 0x800, 0, 0, filesz or len(text), len(text), 1)
    data[0x800:0x800 + len(text)] = text
    return bytes(data)


CORPUS["interp-too-long"] = (_with_interp(b"/x" * 10, filesz=1 << 20), "PT_INTERP")
CORPUS["missing-interpreter"] = (_with_interp(b"/nonexistent/ld.so\0"), "ld.so")


def run_cli(*args: str) -> tuple[int, str, str]:
    """`bdemu ARGS` in this process, through the same entry point as the command."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


def _one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bdemu: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_malformed_elf_is_126_with_one_line(tmp_path, case):
    data, words = CORPUS[case]
    guest = tmp_path / case
    guest.write_bytes(data)
    guest.chmod(0o755)
    started = time.monotonic()
    status, out, err = run_cli("run", "--max-insns", "1000", str(guest))
    assert time.monotonic() - started < 1.0
    assert status == 126, (case, err)
    assert words in _one_line(err), err
    assert out == ""


def test_the_uncorrupted_base_case_runs(tmp_path):
    guest = tmp_path / "good"
    guest.write_bytes(GOOD)
    assert run_cli("run", str(guest))[0] == 3


def test_special_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = {str(tmp_path): "directory", str(fifo): "not a regular file", "/dev/zero": "not a regular file",
             "/dev/null": "not a regular file"}
    for path, words in cases.items():
        started = time.monotonic()
        status, _, err = run_cli("run", path)
        assert time.monotonic() - started < 1.0, path
        assert status == 126 and words in _one_line(err), (path, err)


def test_fifo_does_not_block_the_real_command(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = run_bdemu("run", str(fifo), timeout=20)
    assert done.returncode == 126 and done.stderr.decode().count("\n") == 1


def test_missing_and_dangling_guests_are_127(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for path in (tmp_path / "missing", tmp_path / "dangling", tmp_path / "no" / "such" / "dir"):
        status, _, err = run_cli("run", str(path))
        assert status == 127 and "no such file" in _one_line(err)


def test_unreadable_file_is_126(tmp_path):
    """Permission denied is 126. Root reads everything, so root runs bdemu without CAP_DAC_*."""
    guest = tmp_path / "secret"
    guest.write_bytes(GOOD)
    guest.chmod(0o111)
    if os.geteuid() == 0:
        import shutil
        import subprocess
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("needs setpriv to drop root's CAP_DAC_OVERRIDE")
        done = subprocess.run([setpriv, "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-P",
                               "-m", "bdemu", "run", str(guest)], capture_output=True, timeout=60, cwd="/")
        status, err = done.returncode, done.stderr.decode()
    else:
        status, _, err = run_cli("run", str(guest))
    assert status == 126 and "permission denied" in _one_line(err), err


def test_huge_sparse_file_is_not_read_whole(tmp_path):
    """A valid header in front of a 64 GiB sparse file: only the headers are read."""
    guest = tmp_path / "sparse"
    with open(guest, "wb") as handle:
        handle.write(_patch(GOOD, 24, "<Q", 0x900000))
        handle.truncate(64 << 30)
    started = time.monotonic()
    status, _, err = run_cli("run", str(guest))
    assert time.monotonic() - started < 1.0
    assert status == 126 and "entry point" in _one_line(err)


@pytest.mark.parametrize("limit", [(), ("--max-memory", "64M")])
def test_segment_bigger_than_memory_is_126_at_once(tmp_path, limit):
    """A 60 GiB bss (valid headers, below the 64 GiB sanity cap) cannot be mapped: 126, fast."""
    guest = tmp_path / "huge-bss"
    guest.write_bytes(_patch(GOOD, PH + 40, "<Q", 60 << 30))
    started = time.monotonic()
    status, _, err = run_cli("run", *limit, str(guest))
    assert time.monotonic() - started < 1.0
    assert status == 126 and "not enough memory" in _one_line(err)
