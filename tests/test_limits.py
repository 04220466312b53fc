"""Limits (--max-insns, --timeout, --max-memory) and clean stops (SIGINT, SIGTERM, plugin errors).

Guests are assembled x86-64 snippets; the stop tests send real signals to a
`bdemu run` subprocess while its guest loops, sleeps or blocks in read.
"""
from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time

import pytest

from bdemu import Emulator
from conftest import ROOT, run_bdemu
from elfgen import write_elf
from guestasm import BUFFER, Result, parse_output, write_program

READY = 'mov rax, 1\nmov rdi, 1\nlea rsi, [rip + ready]\nmov rdx, 6\nsyscall\n'
TAIL = 'ready: .ascii "ready\\n"'
GUESTS = {
    "loop": READY + "spin: jmp spin\n" + TAIL,
    "sleep": READY + "lea rdi, [rip + span]\nxor rsi, rsi\nmov rax, 35\nsyscall\n"
             "mov rax, 60\nmov rdi, 5\nsyscall\nspan: .quad 100\n.quad 0\n" + TAIL,
    "read": READY + "xor rdi, rdi\nlea rsi, [rip + ready]\nmov rdx, 1\nxor rax, rax\nsyscall\n"
            "mov rax, 60\nmov rdi, 5\nsyscall\n" + TAIL,
    # sendfile(1, 0, NULL, 100) from stdin: busybox cat's way of reading a pipe.
    "sendfile": READY + "mov rdi, 1\nxor rsi, rsi\nxor rdx, rdx\nmov r10, 100\nmov rax, 40\nsyscall\n"
                "mov rax, 60\nmov rdi, 5\nsyscall\n" + TAIL,
    # readv(0, [{rsp + 16, 1}], 1): musl's stdio reads stdin this way.
    "readv": READY + "sub rsp, 32\nlea rax, [rsp + 16]\nmov qword ptr [rsp], rax\nmov qword ptr [rsp + 8], 1\n"
             "xor rdi, rdi\nmov rsi, rsp\nmov rdx, 1\nmov rax, 19\nsyscall\n"
             "mov rax, 60\nmov rdi, 5\nsyscall\n" + TAIL,
    # Two threads (clone CLONE_VM | CLONE_SIGHAND | CLONE_THREAD): the new one blocks reading
    # stdin, the first sleeps 100 s, so every thread waits at once.
    "threads": READY + "mov rax, 56\nmov rdi, 0x10900\nxor rsi, rsi\nxor rdx, rdx\nxor r10, r10\n"
               "xor r8, r8\nsyscall\ntest rax, rax\njz child\n"
               "lea rdi, [rip + span]\nxor rsi, rsi\nmov rax, 35\nsyscall\nmov rax, 60\nmov rdi, 5\nsyscall\n"
               "child: xor rdi, rdi\nlea rsi, [rip + ready]\nmov rdx, 1\nxor rax, rax\nsyscall\n"
               "mov rax, 60\nmov rdi, 6\nsyscall\nspan: .quad 100\n.quad 0\n" + TAIL,
}
PLUGIN = '''from bdemu import Plugin


class Goodbye(Plugin):
    """Writes one line in on_exit."""

    def on_exit(self, emu, result):
        print(f"on_exit ran, status {result.exit_code}", file=emu.output, flush=True)
'''


@pytest.fixture
def guests(tmp_path):
    return {name: write_elf(tmp_path, "x86_64", source, name=name) for name, source in GUESTS.items()}


def _bdemu(*args: str, stdin=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-P", "-m", "bdemu", *args], cwd=ROOT, stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("number, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("guest", sorted(GUESTS))
def test_signals_stop_run_cleanly(guests, tmp_path, guest, number, status):
    (tmp_path / "goodbye.py").write_text(PLUGIN)
    output = tmp_path / "plugin.out"
    process = _bdemu("run", "-p", f"{tmp_path / 'goodbye.py'}:Goodbye", "--output", str(output), guests[guest])
    assert process.stdout.read(6) == b"ready\n"  # the guest runs (and, for "read", blocks on stdin)
    time.sleep(0.2)
    started = time.monotonic()
    process.send_signal(number)
    process.wait(timeout=20)  # before communicate() closes stdin, which would end the blocking read
    out, err = process.communicate(timeout=20)
    assert time.monotonic() - started < 5
    assert process.returncode == status
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bdemu: stopped by SIG"), err
    assert output.read_text() == f"on_exit ran, status {status}\n"


def test_plugin_error_still_runs_every_on_exit(guests, tmp_path):
    (tmp_path / "plugins.py").write_text(PLUGIN + '''

class Broken(Plugin):
    """Raises on the first syscall."""

    def on_syscall(self, emu, number, args):
        raise ValueError("broken on purpose")
''')
    done = run_bdemu("run", "-p", f"{tmp_path / 'plugins.py'}:Goodbye", "-p", f"{tmp_path / 'plugins.py'}:Broken",
                     "--output", str(tmp_path / "out"), guests["loop"])
    assert done.returncode == 125
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and "broken on purpose" in lines[0] and "pc 0x" in lines[0]
    assert (tmp_path / "out").read_text() == "on_exit ran, status 125\n"


# -- --timeout and --max-insns --------------------------------------------------------------------

@pytest.mark.parametrize("guest", ["loop", "sleep"])
def test_timeout_ends_loops_and_sleeps(guests, guest):
    emu = Emulator(guests[guest])
    started = time.monotonic()
    result = emu.run(timeout=0.5, capture_output=True)
    elapsed = time.monotonic() - started
    assert result.exit_code == 124 and result.message == "timeout reached"
    assert 0.5 <= elapsed < 1.5


@pytest.mark.parametrize("guest", ["read", "readv", "sendfile", "threads"])
def test_timeout_ends_a_blocking_read_with_124_and_one_line(guests, guest):
    """stdin is a pipe nobody writes to: the guest blocks in read until --timeout (with
    threads: one reads, the other sleeps, so the scheduler waits for both)."""
    read_end, write_end = os.pipe()
    started = time.monotonic()
    process = _bdemu("run", "--timeout", "0.5", guests[guest], stdin=read_end)
    os.close(read_end)
    try:
        out, err = process.communicate(timeout=20)
    finally:
        os.close(write_end)
    assert process.returncode == 124 and err == b"bdemu: timeout reached\n"
    assert time.monotonic() - started < 5


def test_timeout_wins_over_an_exit_its_children_cause():
    """The forked `sleep` inherits the deadline and ends (124) at the very moment the shell's
    own does; the shell's `wait` then returns and it exits 0 unless bdemu notices its own
    deadline first: an exit after the deadline is a timeout (it lost that race ~1 time in 3)."""
    for _ in range(3):
        done = run_bdemu("run", "--timeout", "0.5", "/bin/sh", "-c", "sleep 10 & wait", timeout=30)
        assert done.returncode == 124 and done.stderr == b"bdemu: timeout reached\n"


@pytest.mark.parametrize("limit", [1, 7, 1000, 123457])
def test_max_insns_stops_within_one_block(tmp_path, limit):
    guest = write_elf(tmp_path, "x86_64", "xor rbx, rbx\nagain: inc rbx\njmp again")
    emu = Emulator(guest)
    result = emu.run(max_insns=limit)
    assert result.exit_code == 124 and result.message == "instruction limit reached"
    executed = 1 + 2 * emu.reg("rbx")  # xor, then (inc, jmp) per round: within one block of `limit`
    assert limit - 2 <= executed <= limit + 2


# -- --max-memory ---------------------------------------------------------------------------------

HOG = """
again:
    xor rdi, rdi
    mov rsi, 0x100000
    mov rdx, 3
    mov r10, 0x22
    mov r8, -1
    xor r9, r9
    mov rax, 9
    syscall
    cmp rax, -4096
    ja failed
    mov rcx, 256
touch:
    mov byte ptr [rax], 1
    add rax, 4096
    dec rcx
    jnz touch
    jmp again
failed:
    neg rax
    mov rdi, rax
    mov rax, 60
    syscall
"""
PEAK_RSS = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True)
sys.stdout.write(f"{done.returncode} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n")
"""


def _peak_rss(*args: str) -> tuple[int, int]:
    """(exit status, peak RSS in KiB) of `bdemu ARGS` run alone in a fresh process."""
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, "-P", "-m", "bdemu", *args],
                          capture_output=True, cwd=ROOT, timeout=120, check=True)
    status, rss = done.stdout.split()
    return int(status), int(rss)


def test_max_memory_gives_the_guest_enomem_and_bounds_bdemu(tmp_path):
    hog = write_elf(tmp_path, "x86_64", HOG, name="hog")
    trivial = write_elf(tmp_path, "x86_64", "mov rax, 60\nmov rdi, 0\nsyscall", name="trivial")
    status, baseline = _peak_rss("run", trivial)
    assert status == 0
    status, peak = _peak_rss("run", "--max-memory", "64M", hog)
    assert status == 12  # the guest saw ENOMEM and exited with it
    assert peak < baseline + 64 * 1024, (peak, baseline)
    assert peak > baseline + 32 * 1024  # it really touched its memory


def test_max_memory_caps_brk_too(tmp_path):
    steps = [("brk", 0), ("brk", 0x400000 + (200 << 20))]
    guest = write_program(tmp_path / "brk", steps)
    emu = Emulator(guest, max_memory=64 << 20)
    result = emu.run(capture_output=True)
    start, after = struct.unpack_from("<qq", result.stdout)
    assert result.exit_code == 0 and after == start  # the break did not move


def test_huge_reads_are_bounded_by_guest_memory(tmp_path):
    """read/pread/getrandom of a gigabyte into a 4 KiB buffer: bdemu moves only what is mapped there."""
    getrandom = 318
    steps = [("open", "/dev/zero", 0, 0), ("read", Result(0), BUFFER, 1 << 30), (getrandom, BUFFER, 1 << 30, 0),
             ("read", Result(0), 0x10000, 1 << 30), ("mmap", 0, 256 << 20, 3, 2, Result(0), 0)]
    guest = write_program(tmp_path / "greedy", steps)
    emu = Emulator(guest, max_memory=64 << 20)
    result = emu.run(capture_output=True)
    results, _ = parse_output(result.stdout, len(steps))
    assert 0 < results[1] < 1 << 16 and results[2] == results[1]  # up to the end of the buffer's mapping
    assert results[3] == -14  # EFAULT: nothing mapped there
    assert results[4] == -12  # ENOMEM: beyond --max-memory


def test_a_plugin_raising_in_on_exit_does_not_skip_the_others(guests, tmp_path):
    (tmp_path / "plugins.py").write_text('''from bdemu import Plugin


class Failing(Plugin):
    """Raises in on_exit."""

    def on_exit(self, emu, result):
        raise RuntimeError("on_exit failed on purpose")
''' + PLUGIN.split("\n", 2)[2])
    done = run_bdemu("run", "--max-insns", "1000", "-p", f"{tmp_path / 'plugins.py'}:Failing",
                     "-p", f"{tmp_path / 'plugins.py'}:Goodbye", "--output", str(tmp_path / "out"), guests["loop"])
    assert done.returncode == 125
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and "on_exit failed on purpose" in lines[0]
    assert (tmp_path / "out").read_text() == "on_exit ran, status 124\n"


def test_execve_argument_limits_are_e2big(tmp_path):
    """One 100 KB string referenced 30 times (3 MB of argv) is E2BIG, as on Linux, not 3 MB of copies;
    a single string over 128 KiB too."""
    from guestasm import DATA
    path = b"/nonexistent"
    results = []
    for length, repeats in ((100_000, 30), (200_000, 1), (1000, 3)):
        table = 8 * (repeats + 1)
        pointer = DATA + len(path) + 1 + table
        blob = pointer.to_bytes(8, "little") * repeats + bytes(8) + b"A" * length
        guest = write_program(tmp_path / "exec", [("execve", path, blob, 0)])
        result = Emulator(guest).run(capture_output=True)
        results.append(parse_output(result.stdout, 1)[0][0])
    assert results == [-7, -7, -2]  # E2BIG, E2BIG, then ENOENT for a reasonable argv


@pytest.mark.parametrize("flags", [0, 1])  # O_RDONLY waits for a writer, O_WRONLY for a reader
def test_timeout_ends_an_open_of_a_fifo_nobody_opens(tmp_path, flags):
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "fifo")
    guest = write_program(tmp_path / "fifo-open", [("open", "/fifo", flags, 0)])
    started = time.monotonic()
    result = Emulator(guest, rootfs=str(root)).run(timeout=0.5, capture_output=True)
    assert result.exit_code == 124 and result.message == "timeout reached"
    assert time.monotonic() - started < 2


def test_a_fifo_opened_by_both_ends_works(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "fifo")
    import threading

    def writer():
        with open(root / "fifo", "wb") as handle:
            handle.write(b"through the fifo")

    thread = threading.Thread(target=writer)
    thread.start()
    guest = write_program(tmp_path / "fifo-read", [("open", "/fifo", 0, 0), ("read", Result(0), BUFFER, 100)])
    result = Emulator(guest, rootfs=str(root)).run(timeout=10, capture_output=True)
    thread.join(5)
    results, buffer = parse_output(result.stdout, 2)
    assert results[0] >= 3 and results[1] == 16 and buffer.startswith(b"through the fifo")
