"""With --host-exec, a foreign-ISA guest's execve of a program built for the host's own ISA runs
it natively, as qemu-user with binfmt_misc does (bdemu/linux/hostexec.py): the process becomes the
host program with the guest's argv, envp, fds, cwd, umask, signal mask, ignored signals and limits.
Without it (the default: the host program would run unconfined), the exec fails with ENOEXEC.

The foreign guests are Debian's busybox-static (fetched as tests/test_busybox.py does) and
small AArch64 snippets; the host programs are this machine's own /bin/sh, /bin/echo, /bin/grep.
"""
from __future__ import annotations

import fcntl
import json
import os
import resource
import sys

import pytest
from conftest import ROOT, run_bdemu
from elfgen import elf_with_code, write_elf
from test_busybox import _busybox

from bdemu import Emulator, Plugin
from bdemu.cpu import NAMES, by_name, host_arch

pytestmark = pytest.mark.skipif(host_arch() is None or host_arch().name in ("aarch64", "mipsel"),
                                reason="the foreign guests here must not be of the host's ISA")
ENOEXEC = 8
SIGUSR1, SIGUSR2 = 10, 12  # AArch64's numbers, the generic ones


def _busybox_sh(isa: str, script: str, *options: str, cwd=ROOT, pass_fds=()):
    return run_bdemu("run", "--host-exec", *options, str(ROOT / _busybox(isa)), "sh", "-c", script, cwd=cwd,
                     pass_fds=pass_fds)


def _exec_guest(tmp_path, program: str, *args: str, prelude: str = "") -> str:
    """An AArch64 guest: `prelude`, then execve(program, [program, *args], NULL); if that fails,
    exit with its errno."""
    strings = (program, *args)
    pointers = "\n".join(f"  adr x9, s{i}\n  str x9, [sp, #{8 * i}]" for i in range(len(strings)))
    texts = "\n".join(f's{i}: .asciz "{text}"' for i, text in enumerate(strings))
    source = f"""
  sub sp, sp, #64
{pointers}
  str xzr, [sp, #{8 * len(strings)}]
{prelude}
  adr x0, s0
  mov x1, sp
  mov x2, #0
  mov x8, #221
  svc #0
  neg x0, x0
  mov x8, #93
  svc #0
.align 3
blocked: .quad {1 << (SIGUSR2 - 1):#x}
ignore: .quad 1, 0, 0, 0
{texts}
"""
    return write_elf(tmp_path, "aarch64", source, "exec-guest")


@pytest.mark.parametrize("isa", ["aarch64", "mipsel"])
def test_a_foreign_shell_runs_host_programs(isa):
    """The forked child execs /bin/echo, a program of the host's ISA: ENOEXEC made busybox read
    it as a script ("syntax error")."""
    done = _busybox_sh(isa, "echo a; /bin/echo b")
    assert (done.returncode, done.stdout) == (0, b"a\nb\n"), done.stderr


def test_awk_system_runs_the_host_shell():
    done = run_bdemu("run", "--host-exec", _busybox("aarch64"), "awk", 'BEGIN { system("echo hi"); print "done" }')
    assert (done.returncode, done.stdout) == (0, b"hi\ndone\n"), done.stderr


def test_the_host_programs_exit_status_is_the_guests():
    """From a forked child (`$?` of the shell) and from the first process, which busybox sh
    replaces with its last command: bdemu's own status is then the host program's."""
    done = _busybox_sh("aarch64", '/bin/sh -c "exit 3"; echo $?; /bin/sh -c "exit 7"')
    assert (done.returncode, done.stdout) == (7, b"3\n"), done.stderr


def test_fds_cwd_and_umask_pass_to_the_host_program(tmp_path):
    """A redirect and an fd the guest shell opened reach the host program at their numbers;
    bdemu's own fds do not, nor one bdemu inherited (ls lists 0-2, its own directory fd 3, and
    the guest's 5)."""
    (tmp_path / "sub").mkdir()
    script = ('exec 5> five; /bin/echo out > one; /bin/sh -c "echo 5 >&5"; /bin/ls /proc/self/fd > fds; '
              'cd sub; umask 027; /bin/sh -c "pwd; umask"')
    read_end, write_end = os.pipe()
    inherited = fcntl.fcntl(read_end, fcntl.F_DUPFD_CLOEXEC, 10)
    try:
        done = _busybox_sh("aarch64", script, cwd=tmp_path, pass_fds=(inherited,))
    finally:
        for fd in (read_end, write_end, inherited):
            os.close(fd)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path / 'sub'}\n0027\n".encode()
    assert (tmp_path / "one").read_text() == "out\n"
    assert (tmp_path / "five").read_text() == "5\n"
    assert (tmp_path / "fds").read_text().split() == ["0", "1", "2", "3", "5"]


def test_mips_signals_and_limits_reach_the_host_program_in_host_numbers():
    """MIPS numbers SIGUSR1 16 and RLIMIT_NOFILE 5; the host (generic) 10 and 7. The guest's
    own `ulimit -n` read the host's RLIMIT_RSS ("unlimited") before resources were translated."""
    script = 'ulimit -n; trap "" USR1; ulimit -n 64; /bin/sh -c "ulimit -n; grep SigIgn /proc/self/status"'
    done = _busybox_sh("mipsel", script)
    assert done.returncode == 0, done.stderr
    own, limit, ignored = done.stdout.decode().splitlines()
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert own == ("unlimited" if soft == resource.RLIM_INFINITY else str(soft))
    assert limit == "64"
    assert int(ignored.split()[1], 16) & 1 << (SIGUSR1 - 1)


def test_the_signal_mask_and_ignored_signals_pass_and_nothing_else(tmp_path):
    """rt_sigprocmask(SIG_BLOCK, {SIGUSR2}), sigaction(SIGUSR1, SIG_IGN), execve of grep: the
    host program blocks and ignores exactly those (not the SIGPIPE Python ignores)."""
    prelude = """
  mov x0, #0
  adr x1, blocked
  mov x2, #0
  mov x3, #8
  mov x8, #135
  svc #0
  mov x0, #10
  adr x1, ignore
  mov x2, #0
  mov x3, #8
  mov x8, #134
  svc #0
"""
    guest = _exec_guest(tmp_path, "/bin/grep", "-E", "Sig(Blk|Ign)", "/proc/self/status", prelude=prelude)
    done = run_bdemu("run", "--host-exec", guest)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [b"SigBlk:", f"{1 << (SIGUSR2 - 1):016x}".encode(),
                                   b"SigIgn:", f"{1 << (SIGUSR1 - 1):016x}".encode()]


def test_a_recording_ends_complete_before_the_host_program_runs(tmp_path):
    """The first process execs the host program: the trace is closed first, its meta says so,
    plugin output is written, and the host program's status is bdemu's."""
    import duckdb
    trace, report = tmp_path / "t.db", tmp_path / "report.txt"
    done = run_bdemu("record", "--host-exec", "-o", str(trace), "-p", "hotblocks", "--plugin-output", str(report),
                     _busybox("aarch64"), "sh", "-c", 'echo x; exec /bin/sh -c "echo y; exit 5"')
    assert (done.returncode, done.stdout) == (5, b"x\ny\n"), done.stderr
    assert report.read_text().strip()
    with duckdb.connect(str(trace), read_only=True) as db:
        meta = dict(db.sql("select key, value from meta").fetchall())
        last = db.sql("select name from syscalls order by seq desc limit 1").fetchall()[0][0]
    assert meta["reason"] == "host-exec" and "/bin/sh" in meta["message"]
    assert json.loads(meta["argv"])[1:] == ["sh", "-c", 'echo x; exec /bin/sh -c "echo y; exit 5"']
    assert last == "execve"


def test_the_api_reports_the_host_exec_and_leaves_the_exec_to_its_caller():
    seen = []

    class Ends(Plugin):
        def on_exit(self, emu, result):
            seen.append(result.reason)

    emu = Emulator(str(ROOT / _busybox("aarch64")), argv=["busybox", "sh", "-c", "exec /bin/true"], host_exec=True)
    emu.add_plugin(Ends())
    result = emu.run(capture_output=True)
    assert (result.reason, seen) == ("host-exec", ["host-exec"])
    assert result.extra["host_exec"].path == "/bin/true"


@pytest.mark.parametrize("command", ["run", "record"])
def test_without_host_exec_it_is_enoexec_and_bdemu_says_why(tmp_path, command):
    guest = _exec_guest(tmp_path, "/bin/true")
    options = ["-o", str(tmp_path / "t.db")] if command == "record" else []
    assert run_bdemu(command, *options, "--host-exec", guest).returncode == 0
    done = run_bdemu(command, *options, guest)
    assert done.returncode == ENOEXEC, done.stderr
    assert done.stderr.decode().splitlines() == [
        "bdemu: warning: /bin/true is a program for this machine, not for the aarch64 guest (ENOEXEC): "
        "--host-exec runs such programs natively, unconfined"]
    confined = run_bdemu(command, *options, "--host-exec", "--read-only", guest)  # no hint: it would not help
    assert (confined.returncode, confined.stderr) == (ENOEXEC, b"")


def test_a_program_of_a_third_isa_stays_enoexec(tmp_path):
    third = tmp_path / "riscv"
    third.write_bytes(elf_with_code("riscv64", bytes(4)))
    third.chmod(0o755)
    done = run_bdemu("run", "--host-exec", _exec_guest(tmp_path, str(third)))
    assert done.returncode == ENOEXEC, done.stderr


def test_the_host_isa_comes_from_the_arch_tables():
    """This machine's `uname -m` names exactly one ISA's host machines (bdemu runs on it)."""
    machine = os.uname().machine
    assert [name for name in NAMES if machine in by_name(name).host_machines
            and by_name(name).byteorder == sys.byteorder] == [host_arch().name]
