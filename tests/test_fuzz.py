"""Fuzzing the loader and the run loop with mutated sample ELFs: no traceback, no hang, SPEC statuses.

Mutations of samples/bin/{x86_64,aarch64}/* (seeded, so a failure reproduces):
byte flips in the ELF header and the program headers, random truncations,
splices of two samples, and flips in the first code pages. Most cases run in
this process through `bdemu.cli.main` (the command's own entry point: option
parsing, Emulator, run loop, error reporting), a few hundred as real
subprocesses. Every run uses --max-insns and --timeout, an empty --rootfs
and --read-only, so a mutated guest can neither hang nor leave files.
In-process runs cannot fork (a fork would copy pytest): fork answers EAGAIN
there, and the subprocess runs, which do fork, get their own session and are
killed as a group. A third test runs assembled guests making random syscalls
with random arguments.
"""
from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import sys
import time

import pytest

from bdemu.cli import main
from bdemu.linux import process as guest_process
from conftest import ROOT, SAMPLES

IN_PROCESS = int(os.environ.get("BDEMU_FUZZ_CASES", "2000"))
#: ~0.4 s each (an interpreter start): a sample of real commands, on top of the in-process cases.
SUBPROCESSES = int(os.environ.get("BDEMU_FUZZ_SUBPROCESSES", "200"))
SEEDS = sorted(p for isa in ("x86_64", "aarch64") for p in (SAMPLES / isa).iterdir() if p.is_file())
LIMITS = ("--max-insns", "20000", "--timeout", "2")


def _header_ranges(data: bytes) -> list[tuple[int, int]]:
    ranges = [(0, min(64, len(data)))]
    if len(data) >= 64 and data[4] == 2:
        phoff, = struct.unpack_from("<Q", data, 32)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        if phoff < len(data):
            ranges.append((phoff, min(len(data), phoff + phentsize * phnum)))
    return ranges


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    data = bytearray(rng.choice(seeds))
    kind = rng.random()
    if kind < 0.45:  # flips in the ELF header or program headers
        for _ in range(rng.randint(1, 6)):
            start, end = rng.choice(_header_ranges(bytes(data)))
            if end > start:
                where = rng.randrange(start, end)
                data[where] = rng.choice([0, 0xFF, rng.randrange(256), data[where] ^ (1 << rng.randrange(8))])
    elif kind < 0.6:  # truncation, often inside the headers
        data = data[:rng.choice([rng.randrange(0, 128), rng.randrange(0, 4096), rng.randrange(0, len(data))])]
    elif kind < 0.75:  # splice two samples
        other = rng.choice(seeds)
        cut = rng.randrange(0, min(len(data), len(other)))
        data = data[:cut] + other[cut:] if rng.random() < 0.5 else other[:cut] + data[cut:]
    elif kind < 0.9:  # flips in the code: the guest runs and crashes in odd ways
        for _ in range(rng.randint(1, 20)):
            where = rng.randrange(0, min(len(data), 1 << 16))
            data[where] = rng.randrange(256)
    else:  # a huge field in one program header
        start, end = _header_ranges(bytes(data))[-1]
        if end - start >= 56:
            field = start + rng.randrange(0, (end - start) // 8) * 8
            data[field:field + 8] = rng.choice([2**64 - 1, 1 << 40, 2**63, 0x1000]).to_bytes(8, "little")
    return bytes(data)


ALLOWED = set(range(0, 256))


def check_outcome(status: int, stderr: str, guest_exited: bool = False) -> None:
    """SPEC 3: a status from the table, never a traceback or an internal error, at most one final
    `bdemu:` line (warnings aside), and one for every status bdemu itself chose (`guest_exited`:
    the guest's own exit_group gave the status, e.g. a mutated `spawn` whose execve fails exits 127)."""
    assert status in ALLOWED, status
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr[-2000:]
    own = [line for line in stderr.splitlines() if line.startswith("bdemu: ") and
           not line.startswith("bdemu: warning: ")]
    assert len(own) <= 1, own
    if status in (124, 125, 126, 127) and not guest_exited:
        assert own, (status, stderr[-500:])


@pytest.fixture
def jail(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    return root


def _no_fork(k, *args, **kwargs):
    import errno
    from bdemu.linux.errors import SyscallError
    raise SyscallError(errno.EAGAIN)


def test_fuzz_in_process(jail, tmp_path, capfd, monkeypatch):
    from bdemu import Emulator
    monkeypatch.setattr(guest_process, "fork_process", _no_fork)
    results = []
    run = Emulator.run

    def run_and_keep(self, *args, **kwargs):
        results.append(run(self, *args, **kwargs))
        return results[-1]
    monkeypatch.setattr(Emulator, "run", run_and_keep)
    rng = random.Random(20261123)
    seeds = [p.read_bytes() for p in SEEDS]
    guest = tmp_path / "guest"
    statuses: dict[int, int] = {}
    devnull = os.open(os.devnull, os.O_RDONLY)
    saved_stdin = os.dup(0)
    os.dup2(devnull, 0)
    started = time.monotonic()
    try:
        for case in range(IN_PROCESS):
            data = mutate(rng, seeds)
            guest.write_bytes(data)
            guest.chmod(0o755)
            results.clear()
            status = main(["run", *LIMITS, "--rootfs", str(jail), "--read-only", str(guest)])
            out, err = capfd.readouterr()
            try:
                check_outcome(status, err, guest_exited=bool(results) and results[-1].reason == "exit")
            except AssertionError:
                (tmp_path / "failing-case").write_bytes(data)
                raise AssertionError(f"case {case}: status {status}, saved as {tmp_path / 'failing-case'}: "
                                     f"{err[-1000:]}") from None
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        os.dup2(saved_stdin, 0)
        os.close(saved_stdin)
        os.close(devnull)
    assert os.listdir(jail) == []
    with capfd.disabled():
        print(f"\nfuzz: {IN_PROCESS} in-process cases in {time.monotonic() - started:.1f}s, statuses {statuses}")
    # The mix is representative: loader rejections, guests that ran, and crashes all occur.
    assert statuses.get(126, 0) > IN_PROCESS // 10
    assert sum(n for s, n in statuses.items() if s < 124) > IN_PROCESS // 20
    assert sum(n for s, n in statuses.items() if s > 128) > 0


def test_fuzz_subprocesses(jail, tmp_path):
    rng = random.Random(11235813)
    seeds = [p.read_bytes() for p in SEEDS]
    guest = tmp_path / "guest"
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    for case in range(SUBPROCESSES):
        data = mutate(rng, seeds)
        guest.write_bytes(data)
        guest.chmod(0o755)
        process = subprocess.Popen([sys.executable, "-P", "-m", "bdemu", "run", *LIMITS, "--rootfs", str(jail),
                                    "--read-only", str(guest)], cwd=ROOT, env=environment,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            (tmp_path / "hanging-case").write_bytes(data)
            raise AssertionError(f"case {case} hung")
        finally:
            try:  # forked guest children die with their session
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            check_outcome(process.returncode, err.decode(errors="replace"))
        except AssertionError:
            (tmp_path / "failing-case").write_bytes(data)
            raise
    assert os.listdir(jail) == []


SYSCALL_PROGRAMS = int(os.environ.get("BDEMU_FUZZ_SYSCALL_PROGRAMS", "300"))
#: Calls that would end the program early or act on this (pytest) process itself.
NOT_FUZZED = {"fork", "vfork", "clone", "clone3", "execve", "execveat", "exit", "exit_group", "kill", "tkill",
              "tgkill", "setsid", "setpgid", "pause", "rt_sigsuspend", "ioprio_set"}


def _random_argument(rng: random.Random):
    from guestasm import BUFFER
    choice = rng.random()
    if choice < 0.3:
        return rng.choice([0, 1, 2, 3, 4, -1, -100, 4096, 0x7FFFFFFF])
    if choice < 0.5:
        return BUFFER
    if choice < 0.6:
        return rng.choice([b"/file", b"/sub", b"..", b"/", b"/proc/self/maps", b"/dev/zero", b"/sys"])
    if choice < 0.8:
        return rng.randrange(0, 1 << 64) - (1 << 63)
    return rng.randrange(0, 1 << 20)


def test_syscall_fuzz_in_process(tmp_path):
    """Random supported and unsupported syscalls with random arguments (huge values, bad
    pointers, odd paths): every run ends as a guest run does, never with an exception out of
    `run` or a 125, and nothing in the read-only rootfs changes."""
    from bdemu import Emulator
    from bdemu.cpu import by_name
    from guestasm import syscall_program
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "file").write_bytes(b"x" * 100)
    before = sorted((str(p), p.stat().st_mode, p.stat().st_mtime_ns) for p in root.rglob("*"))
    table = by_name("x86_64").syscall_numbers
    numbers = sorted(n for n, name in table.items() if name not in NOT_FUZZED)
    rng = random.Random(4242)
    guest = tmp_path / "calls"
    for case in range(SYSCALL_PROGRAMS):
        steps = [(rng.choice(numbers), *[_random_argument(rng) for _ in range(6)]) for _ in range(30)]
        guest.write_bytes(syscall_program(steps))
        guest.chmod(0o755)
        emu = Emulator(str(guest), rootfs=str(root), read_only=True)
        emu.warn = lambda message: None  # unsupported syscalls: ENOSYS, as documented
        result = emu.run(capture_output=True, input=b"", max_insns=100_000, timeout=0.5)
        assert result.exit_code != 125, (case, result.message, [table.get(s[0]) for s in steps])
    after = sorted((str(p), p.stat().st_mode, p.stat().st_mtime_ns) for p in root.rglob("*"))
    assert after == before
