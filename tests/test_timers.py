"""POSIX timers seen from real programs: coreutils `timeout` arms one with timer_create, and a
forked child or an execve'd image starts with none (samples/src/timers.c covers the rest on
every ISA)."""
from __future__ import annotations

import os
import time

from conftest import run_bdemu

ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}

#: A host python3 guest that creates a CLOCK_MONOTONIC SIGEV_NONE timer through glibc (whose
#: timer_t is the kernel's id for a signal-less timer), arms it, and reports what
#: timer_gettime says about that id here, in a forked child and after execve.
TIMER_PROBE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def gettime(timer):
    spec = (ctypes.c_long * 4)()
    ok = libc.timer_gettime(timer, spec)
    return "ok armed" if ok == 0 and (spec[2] or spec[3]) else f"{ok} {os.strerror(ctypes.get_errno())}"
if sys.argv[1] == "exec":
    print("after exec:", gettime(ctypes.c_void_p(int(sys.argv[2]))), flush=True)
    sys.exit(0)
event = (ctypes.c_int * 16)()
event[3] = 1  # sigev_notify = SIGEV_NONE (after an 8-byte sigev_value and sigev_signo)
timer = ctypes.c_void_p()
assert libc.timer_create(1, event, ctypes.byref(timer)) == 0
spec = (ctypes.c_long * 4)(0, 0, 30, 0)
assert libc.timer_settime(timer, 0, spec, None) == 0
print("parent:", gettime(timer), flush=True)
child = os.fork()
if child == 0:
    print("child:", gettime(timer), flush=True)
    os._exit(0)
os.waitpid(child, 0)
os.execv(sys.executable, [sys.executable, __file__, "exec", str(timer.value or 0)])
"""


def test_timeout_arms_a_posix_timer_silently():
    done = run_bdemu("run", "/usr/bin/timeout", "5", "true", env=ENV, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""


def test_timeout_kills_a_command_that_overruns():
    started = time.monotonic()
    done = run_bdemu("run", "/usr/bin/timeout", "1", "sleep", "10", env=ENV, timeout=60)
    took = time.monotonic() - started
    assert done.returncode == 124, done.stderr.decode()
    assert done.stderr == b""
    assert 1 <= took < 6


def test_fork_and_exec_drop_timers(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(TIMER_PROBE)
    done = run_bdemu("run", "/usr/bin/python3", str(probe), "start", env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == [
        "parent: ok armed", "child: -1 Invalid argument", "after exec: -1 Invalid argument"]
