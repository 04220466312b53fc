"""Dynamically linked guests: PT_INTERP from the guest's root, ld.so and glibc start-up,
file-backed mmap. Each case compares bdemu's stdout, stderr and exit status with the same
program run natively (x86-64 host programs) or under `qemu-aarch64 -L ROOTFS` or
`qemu-riscv64 -L ROOTFS` (Debian arm64 (bookworm) and riscv64 (trixie, or forky) root filesystems made
by scripts/make_rootfs.sh, cached in tests/.cache/, never committed; a missing one is built
here, and a failed build fails the test).
"""
from __future__ import annotations

import functools
import itertools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, run_bdemu

#: The environment of every run, native or emulated (run_bdemu adds PYTHONPATH: so do we).
ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "TZ": "UTC", "HOME": "/nonexistent",
       "BDEMU_TEST": "dynamic", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
#: 2020-01-02 03:04:05 UTC: every fixture file and directory carries this mtime.
STAMP = 1577934245
MAKE_ROOTFS = ROOT / "scripts" / "make_rootfs.sh"
ROOTFS_CACHE = ROOT / "tests" / ".cache" / "rootfs"
FETCH_QEMU = ROOT / "scripts" / "fetch_qemu.sh"


def _fixture(folder: Path) -> Path:
    """A small folder with deterministic names, contents and timestamps."""
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"hello\n")
    (folder / "b.txt").write_bytes(b"pear\napple\nfig\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "c.bin").write_bytes(bytes(range(256)) * 20)
    (folder / "link").symlink_to("a.txt")
    for path in (folder / "sub" / "c.bin", folder / "sub", folder / "a.txt", folder / "b.txt"):
        os.utime(path, (STAMP, STAMP))
    os.utime(folder / "link", (STAMP, STAMP), follow_symlinks=False)
    os.utime(folder, (STAMP, STAMP))
    return folder


def _assert_same(native: subprocess.CompletedProcess, emulated: subprocess.CompletedProcess) -> None:
    detail = emulated.stderr.decode(errors="replace")
    assert "Traceback" not in detail, detail
    assert emulated.stdout == native.stdout, detail
    assert emulated.stderr == native.stderr
    assert emulated.returncode == native.returncode, detail


# -- x86-64: the host's own dynamically linked programs, interpreter from the host's / ------------
HOST_CASES = {
    "ls_la": (["/bin/ls", "-la", "{dir}"], b""),
    "ls_missing": (["/bin/ls", "-l", "a.txt", "missing"], b""),
    "env": (["/usr/bin/env"], b""),
    "cat": (["/bin/cat", "a.txt", "-", "b.txt"], b"from stdin\n"),
    "sort": (["/usr/bin/sort", "-r", "b.txt"], b""),
    "sha256sum": (["/usr/bin/sha256sum", "a.txt", "b.txt", "sub/c.bin"], b""),
    "bash": (["/bin/bash", "-c", "for i in 1 2 3; do echo $i; done | tac; n=$(ls | wc -l); echo $n"], b""),
    # Process substitution and here-strings go through /dev/fd/N and /dev/stdin: the guest's fds.
    "bash_fd_paths": (["/bin/bash", "-c", "cat <(echo from-a-pipe); cat /dev/stdin <<< here; exec 5< a.txt; "
                       "cat /proc/self/fd/5 /dev/fd/5; echo to-stderr > /dev/stderr"], b""),
    "sh_pipeline": (["/bin/sh", "-c", "printf 'b\\na\\n' | sort | head -1; echo done $((6*7))"], b""),
    "python3": (["/usr/bin/python3", "-c", "print(6*7)"], b""),
    "nice": (["/usr/bin/nice", "-n", "3", "/usr/bin/nice"], b""),  # setpriority, then getpriority
    # Idempotent, since the native run and bdemu's share the fixture: "hello" -> "Jello".
    "python3_mmap": (["/usr/bin/python3", "-c",
                      ("import mmap; f = open('a.txt', 'r+b'); m = mmap.mmap(f.fileno(), 0); "
                       "m[0:1] = b'J'; m.flush(); print(open('a.txt', 'rb').read())")], b""),
    "python3_threads": (["/usr/bin/python3", "-c",
                         ("import threading, queue, concurrent.futures as cf; q = queue.Queue(); "
                          "ts = [threading.Thread(target=q.put, args=(i * i,)) for i in range(4)]; "
                          "[t.start() for t in ts]; [t.join() for t in ts]; "
                          "print(sorted(q.get() for _ in ts), threading.active_count()); "
                          "print(list(cf.ThreadPoolExecutor(3).map(lambda n: sum(range(n)), [10, 10**5])))")],
                        b""),
    # Memory shared across fork: a Lock the parent hands over to a waiting child (a futex wait on
    # memory another process stores to), a Value the child writes, a worker pool's pipes and locks,
    # and an Event a thread of the parent waits for.
    "python3_multiprocessing": (["/usr/bin/python3", "-c",
                                 ("import multiprocessing as mp, time; lock = mp.Lock(); v = mp.Value('i', 0); "
                                  "lock.acquire(); p = mp.Process(target=lambda: (lock.acquire(), "
                                  "setattr(v, 'value', v.value + 42), lock.release())); p.start(); "
                                  "time.sleep(0.2); v.value = 1; lock.release(); p.join(); print(v.value, p.exitcode)\n"
                                  "with mp.Pool(1) as pool: print(pool.map(abs, [-1, -2, 3]))\n"
                                  # a thread of the parent waits for an Event the child sets
                                  "import threading; e = mp.Event(); got = []; "
                                  "t = threading.Thread(target=lambda: got.append(e.wait(10))); t.start(); "
                                  "q = mp.Process(target=lambda: (time.sleep(0.2), e.set())); q.start(); "
                                  "t.join(); q.join(); print(got, q.exitcode)")], b""),
    # A dropper's fileless exec: an ELF written to a memfd, run by fexecve and by its /proc/self/fd path.
    "python3_memfd_exec": (["/usr/bin/python3", "-c",
                            ("import os; fd = os.memfd_create('payload', os.MFD_CLOEXEC); "
                             "os.write(fd, open('/bin/echo', 'rb').read()); print(os.readlink(f'/proc/self/fd/{fd}'), "
                             "flush=True)\n"
                             "for how in (fd, f'/proc/self/fd/{fd}'):\n"
                             "    pid = os.fork()\n"
                             "    if pid == 0: os.execve(how, ['echo', 'ran', str(type(how).__name__)], {})\n"
                             "    print(os.waitpid(pid, 0)[1], flush=True)")], b""),
    # pidfd_open polls readable once the child exits; pidfd_send_signal kills the next one.
    "python3_pidfd": (["/usr/bin/python3", "-c",
                       ("import os, select, signal, time\n"
                        "pid = os.fork()\n"
                        "if pid == 0: time.sleep(0.2); os._exit(7)\n"
                        "fd = os.pidfd_open(pid); p = select.poll(); p.register(fd, select.POLLIN)\n"
                        "print(p.poll(0), [e for _, e in p.poll(5000)], os.waitpid(pid, 0)[1] >> 8)\n"
                        "pid = os.fork()\n"
                        "if pid == 0: time.sleep(5); os._exit(0)\n"
                        "signal.pidfd_send_signal(os.pidfd_open(pid), signal.SIGTERM)\n"
                        "print(os.waitid(os.P_PID, pid, os.WEXITED).si_status)")], b""),
    # sigqueue of a blocked real-time signal queues each instance; a standard signal is pending once.
    "python3_sigqueue": (["/usr/bin/python3", "-c",
                          ("import ctypes, os, signal\n"
                           "class sigval(ctypes.Union): _fields_ = [('i', ctypes.c_int), ('p', ctypes.c_void_p)]\n"
                           "signal.pthread_sigmask(signal.SIG_BLOCK, [34, signal.SIGUSR1]); libc = ctypes.CDLL(None)\n"
                           "for v in (11, 22, 33): libc.sigqueue(os.getpid(), 34, sigval(i=v))\n"
                           "for _ in range(3): os.kill(os.getpid(), signal.SIGUSR1)\n"
                           "print([(i.si_signo, i.si_code) for i in (signal.sigwaitinfo([34]) for _ in range(3))])\n"
                           "print(sorted(signal.sigpending()), signal.sigwaitinfo([signal.SIGUSR1]).si_signo, "
                           "sorted(signal.sigpending()))")], b""),
    "python3_epoll": (["/usr/bin/python3", "-c",
                       ("import os, selectors; s = selectors.DefaultSelector(); r, w = os.pipe(); "
                        "s.register(r, selectors.EVENT_READ, 'pipe'); os.write(w, b'x'); "
                        "print(type(s).__name__, [(key.data, e) for key, e in s.select(5)])")], b""),
}


@pytest.mark.parametrize("name", sorted(HOST_CASES))
def test_host_program_matches_native(name, tmp_path):
    folder = _fixture(tmp_path / "fx")
    os.utime(tmp_path, (STAMP, STAMP))
    template, stdin = HOST_CASES[name]
    argv = [arg.replace("{dir}", str(folder)) for arg in template]
    native = subprocess.run(argv, cwd=folder, env=ENV, input=stdin, capture_output=True, timeout=60)
    emulated = run_bdemu("run", *argv, env=ENV, input=stdin, cwd=folder, timeout=120)
    _assert_same(native, emulated)
    assert native.returncode == (2 if name == "ls_missing" else 0)


def test_guest_gets_the_environment_bdemu_was_given(tmp_path):
    """Without any locale variable Python coerces its own C locale and sets LC_CTYPE (PEP 538);
    the guest still sees exactly the environment bdemu was started with, as natively."""
    env = {"PATH": "/usr/bin:/bin", "A": "1"}
    native = subprocess.run(["/usr/bin/printenv"], env={**env, "PYTHONPATH": ENV["PYTHONPATH"]},
                            capture_output=True, timeout=60)
    emulated = run_bdemu("run", "/usr/bin/printenv", env=env, cwd=tmp_path)
    _assert_same(native, emulated)
    assert b"LC_CTYPE" not in emulated.stdout and b"A=1\n" in emulated.stdout


def test_threads_that_all_wait_forever_end_the_run(tmp_path):
    """Natively this python hangs (its only other thread waits on a lock held by the joiner);
    bdemu sees that no thread can ever run again and stops with 125 and one line."""
    code = ("import threading; lock = threading.Lock(); lock.acquire(); "
            "t = threading.Thread(target=lock.acquire); t.start(); t.join()")
    done = run_bdemu("run", "/usr/bin/python3", "-c", code, env=ENV, cwd=tmp_path, timeout=120)
    assert done.returncode == 125
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bdemu: deadlock: all 2 guest threads wait"), lines


def test_python_imports_and_runs_a_child(tmp_path):
    """A heavier python3: many shared objects (hashlib's libcrypto), directory listing, a child."""
    folder = _fixture(tmp_path / "fx")
    code = ("import hashlib, json, os, subprocess, sys; "
            "print(json.dumps(sorted(os.listdir('.')))); "
            "print(hashlib.sha256(open('a.txt', 'rb').read()).hexdigest()); "
            "print(subprocess.run(['/bin/echo', 'child'], capture_output=True).stdout.decode().strip()); "
            "sys.exit(3)")
    argv = ["/usr/bin/python3", "-c", code]
    native = subprocess.run(argv, cwd=folder, env=ENV, capture_output=True, timeout=60)
    emulated = run_bdemu("run", *argv, env=ENV, cwd=folder, timeout=120)
    _assert_same(native, emulated)
    assert native.returncode == 3 and b"child" in native.stdout


# -- arm64 and riscv64: Debian root filesystems, interpreter and libraries from --rootfs ----------
#: The packages each rootfs is made of (with their dependencies).
ROOTFS_PACKAGES = {"arm64": ("coreutils",),
                   "riscv64": ("coreutils", "bash", "sed", "grep", "gawk", "findutils", "diffutils")}


@functools.cache
def _rootfs_cache(debian_arch: str) -> str:
    """Build (or reuse) the cached rootfs; returns "" on success, else what went wrong."""
    try:
        done = subprocess.run(["sh", str(MAKE_ROOTFS), debian_arch, str(ROOTFS_CACHE / debian_arch),
                               *ROOTFS_PACKAGES[debian_arch]], cwd=ROOT, capture_output=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if done.returncode != 0:
        return f"status {done.returncode}:\n{done.stdout.decode()}{done.stderr.decode()}"
    return ""


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _private_rootfs(debian_arch: str, tmp_path_factory) -> Path:
    """A private copy (hard links) of the cached rootfs, with the fixture folder at /work."""
    problem = _rootfs_cache(debian_arch)
    cache = ROOTFS_CACHE / debian_arch
    if problem or not (cache / "bin" / "ls").exists():
        pytest.fail(f"the {debian_arch} rootfs is missing and {MAKE_ROOTFS.relative_to(ROOT)} could "
                    f"not build it: {problem or 'no bin/ls after the build'}", pytrace=False)
    root = tmp_path_factory.mktemp(debian_arch) / "root"
    shutil.copytree(cache, root, symlinks=True, copy_function=_link_or_copy)
    _fixture(root / "work")
    return root


@pytest.fixture(scope="module")
def arm64_rootfs(tmp_path_factory) -> Path:
    return _private_rootfs("arm64", tmp_path_factory)


@pytest.fixture(scope="module")
def riscv64_rootfs(tmp_path_factory) -> Path:
    return _private_rootfs("riscv64", tmp_path_factory)


@functools.cache
def _qemu(name: str) -> str:
    """The machine's qemu-user `name`, or else Debian's static build fetched into tests/.cache."""
    found = shutil.which(name)
    if found:
        return found
    try:
        done = subprocess.run(["sh", str(FETCH_QEMU), name], capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.fail(f"no {name} here and {FETCH_QEMU.relative_to(ROOT)} failed: {error}", pytrace=False)
    fetched = ROOT / "tests" / ".cache" / "qemu" / name
    if done.returncode != 0 or not fetched.exists():
        pytest.fail(f"no {name} here and {FETCH_QEMU.relative_to(ROOT)} could not fetch it: "
                    f"{done.stderr.decode()}", pytrace=False)
    return str(fetched)


def _compare_with_qemu(qemu: str, rootfs: Path, template: list[str], stdin: bytes) -> int:
    """Run `template` (a program inside `rootfs`, then its arguments) in /work under qemu-user
    and bdemu; asserts they agree and returns the exit status."""
    program, *args = template
    guest = str(rootfs / program)
    work = rootfs / "work"
    native = subprocess.run([_qemu(qemu), "-L", str(rootfs), guest, *args], cwd=work,
                            env=ENV, input=stdin, capture_output=True, timeout=60)
    emulated = run_bdemu("run", "--rootfs", str(rootfs), "--cwd", "/work", guest, *args,
                         env=ENV, input=stdin, cwd=work, timeout=120)
    _assert_same(native, emulated)
    return native.returncode


ARM64_CASES = {
    "ls_lan": (["bin/ls", "-lan"], b""),
    "ls_missing": (["bin/ls", "-ln", "a.txt", "missing"], b""),
    "ls_recursive": (["bin/ls", "-R", "-1", "--indicator-style=classify"], b""),
    "sha256sum": (["usr/bin/sha256sum", "a.txt", "b.txt", "sub/c.bin"], b""),
    "sha256sum_stdin": (["usr/bin/sha256sum", "-"], b"from stdin\n"),
}


@pytest.mark.parametrize("name", sorted(ARM64_CASES))
def test_arm64_program_matches_qemu(name, arm64_rootfs):
    template, stdin = ARM64_CASES[name]
    status = _compare_with_qemu("qemu-aarch64", arm64_rootfs, template, stdin)
    assert status == (2 if name == "ls_missing" else 0)


#: trixie's glibc 2.41 or forky's 2.43 (which asks riscv_hwprobe(2) which string functions to use), coreutils
#: 9.7 (128-bit long double, soft-float on riscv64; libgmp; OpenSSL's libcrypto), bash (fork for
#: $(...) and pipelines of builtins), sed, grep -P (pcre2), gawk -M (mpfr), find and diff.
RISCV64_CASES = {
    "ls_lan": (["usr/bin/ls", "-lan"], b"", 0),
    "ls_missing": (["usr/bin/ls", "-ln", "a.txt", "missing"], b"", 2),
    "ls_recursive": (["bin/ls", "-R", "-1", "--indicator-style=classify"], b"", 0),
    "sha256sum": (["usr/bin/sha256sum", "a.txt", "b.txt", "sub/c.bin"], b"", 0),
    "sha256sum_stdin": (["usr/bin/sha256sum", "-"], b"from stdin\n", 0),
    "b2sum": (["usr/bin/b2sum", "-l", "128", "sub/c.bin", "a.txt"], b"", 0),
    "sort_uniq_stdin": (["usr/bin/sort", "-r", "b.txt", "-"], b"kiwi\napple\n", 0),
    "tac_missing": (["usr/bin/tac", "b.txt", "missing", "a.txt"], b"", 1),
    "od": (["usr/bin/od", "-A", "x", "-t", "x1z", "-N", "40", "sub/c.bin"], b"", 0),
    "stat": (["usr/bin/stat", "-c", "%s %Y %F %n", "a.txt", "sub", "link", "sub/c.bin"], b"", 0),
    "wc": (["usr/bin/wc", "a.txt", "b.txt", "sub/c.bin"], b"", 0),
    "seq_float": (["usr/bin/seq", "-s", " ", "0", "0.25", "2"], b"", 0),
    "printf_long_double": (["usr/bin/printf", "%.15Lf %g %e %a\n", "3.14159265358979323846",
                            "1e300", "-0.000123", "0.1"], b"", 0),
    "factor_gmp": (["usr/bin/factor", "600851475143", "18446744073709551617",
                    "340282366920938463463374607431768211507"], b"", 0),
    "date": (["usr/bin/date", "-u", "-d", "@1577934245", "+%F %T %s %j %A"], b"", 0),
    "numfmt": (["usr/bin/numfmt", "--to=iec", "--format=%.3f", "1234567890"], b"", 0),
    "base64": (["usr/bin/base64", "-w", "20", "b.txt"], b"", 0),
    "bash": (["usr/bin/bash", "-c",
              'for i in 1 2 3; do echo $i; done; echo $((2**40)); f() { local x=$1; echo ${x^^}; }; '
              'f abc; declare -A m=([a]=1 [b]=2); echo ${#m[@]} ${m[b]}; [[ abc == a* ]] && echo glob; '
              'read -r line; echo "got $line"; printf "%s %05.1f\\n" x 3.14159; exit 7'],
             b"from stdin\n", 7),
    "bash_subshells": (["bin/bash", "-c",
                        'n=$(echo sub; exit 3); echo "$n $?"; echo a b | { read x y; echo $y; }; '
                        '(exit 4); echo $?; nosuchcommand; echo after $?; cd /missing; echo s* *.txt; '
                        'wait; kill -0 $$ && echo alive'], b"", 0),
    "sed": (["usr/bin/sed", "-n", "-e", "s/p\\(.*\\)r/P\\1R/p", "-e", "$=", "b.txt"], b"", 0),
    "grep_pcre": (["usr/bin/grep", "-n", "-P", "-o", "(?<=p)[a-z]+", "b.txt", "missing"], b"", 2),
    "gawk_mpfr": (["usr/bin/gawk", "-M", '{ n += length($0) } END { print NR, n, 2^100, '
                   'toupper("abc"), strftime("%F", 86400 * 365, 1); printf "%.20f\\n", atan2(0, -1) }',
                   "b.txt"], b"", 0),
    "find": (["usr/bin/find", ".", "-printf", "%p %s %y %TY %m\\n"], b"", 0),
    "diff": (["usr/bin/diff", "-u", "a.txt", "b.txt"], b"", 1),
    "cmp": (["usr/bin/cmp", "a.txt", "b.txt"], b"", 1),
    "nice": (["usr/bin/nice"], b"", 0),
}


@pytest.mark.parametrize("name", sorted(RISCV64_CASES))
def test_riscv64_program_matches_qemu(name, riscv64_rootfs):
    template, stdin, status = RISCV64_CASES[name]
    assert _compare_with_qemu("qemu-riscv64", riscv64_rootfs, template, stdin) == status


def test_foreign_guest_without_its_interpreter_is_refused(arm64_rootfs, tmp_path):
    """No ld-linux-aarch64 on the host, or in an empty --rootfs: exit 126, one line naming it."""
    guest = str(arm64_rootfs / "bin" / "ls")
    empty = tmp_path / "empty"
    empty.mkdir()
    for options in ([], ["--rootfs", str(empty)]):
        done = run_bdemu("run", *options, guest, env=ENV)
        assert done.returncode == 126
        lines = done.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"bdemu: {guest}: interpreter /lib/ld-linux-aarch64.so.1")
        assert lines[0].endswith("No such file or directory")
        assert ("--rootfs" in lines[0]) == (not options)


def test_arm64_interpreter_comes_from_the_rootfs(arm64_rootfs):
    """The guest's PT_INTERP path names a file inside --rootfs, not the host's (absent) one."""
    assert not Path("/lib/ld-linux-aarch64.so.1").exists()
    done = run_bdemu("run", "-p", "strace", "--rootfs", str(arm64_rootfs), "--cwd", "/work",
                     str(arm64_rootfs / "usr/bin/sha256sum"), "a.txt", env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.endswith(b"  a.txt\n")
    trace = done.stderr.decode(errors="replace")
    # The loader opened libc inside the rootfs by its guest path and mapped it from the fd.
    assert '"/lib/aarch64-linux-gnu/libc.so.6"' in trace, trace
    assert "mmap(" in trace and "mprotect(" in trace


def test_riscv64_interpreter_and_libc_come_from_the_rootfs(riscv64_rootfs):
    """trixie and forky are /usr-merged: PT_INTERP /lib/ld-linux-riscv64-lp64d.so.1 and the libraries
    resolve through the rootfs's lib -> usr/lib link; glibc asks riscv_hwprobe(2), which answers
    (no ENOSYS warning)."""
    assert not Path("/lib/ld-linux-riscv64-lp64d.so.1").exists()
    done = run_bdemu("run", "-p", "strace", "--rootfs", str(riscv64_rootfs), "--cwd", "/work",
                     str(riscv64_rootfs / "usr/bin/sha256sum"), "a.txt", env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.endswith(b"  a.txt\n")
    trace = done.stderr.decode(errors="replace")
    # The loader opened libc (and OpenSSL's libcrypto) by guest paths through the lib link.
    assert '"/lib/riscv64-linux-gnu/libc.so.6", O_RDONLY|O_CLOEXEC' in trace, trace
    assert '"/lib/riscv64-linux-gnu/libcrypto"...' in trace, trace
    probes = [line for line in trace.splitlines() if line.startswith("riscv_hwprobe(")]
    assert probes and all(line.endswith(" = 0") for line in probes), trace
    assert "bdemu: warning" not in trace


def test_record_lists_libraries_as_modules(tmp_path):
    """SPEC 5: `modules` holds every loaded image; libraries arrive through ld.so's mmap, and every
    executed block of a dynamically linked guest lies in one of them."""
    import duckdb
    folder = _fixture(tmp_path / "fx")
    trace = tmp_path / "ls.db"
    done = run_bdemu("record", "-o", str(trace), "/bin/ls", "-l", env=ENV, cwd=folder)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    with duckdb.connect(str(trace), read_only=True) as con:
        modules = con.execute('SELECT id, path, base, "end" FROM modules ORDER BY id').fetchall()
        outside = con.execute('SELECT count(*) FROM blocks b WHERE NOT EXISTS (SELECT 1 FROM modules m '
                              'WHERE b.pc >= m.base AND b.pc < m."end")').fetchone()[0]
        in_libc = con.execute('SELECT count(*) FROM blocks b JOIN modules m ON b.pc >= m.base '
                              'AND b.pc < m."end" WHERE m.path LIKE \'%/libc.so.6\'').fetchone()[0]
    names = [os.path.basename(path) for _, path, _, _ in modules]
    assert names[0] == "ls" and names[1].startswith("ld-linux") and "libc.so.6" in names
    assert [ident for ident, *_ in modules] == list(range(len(modules)))
    spans = sorted((base, end) for _, _, base, end in modules)
    assert all(a_end <= b_base for (_, a_end), (b_base, _) in itertools.pairwise(spans))
    assert outside == 0 and in_libc > 1000
