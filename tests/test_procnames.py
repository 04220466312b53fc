"""The guest's name in /proc: its own, not the host's `python` (bdemu/linux/procnames.py)."""
from __future__ import annotations

from conftest import run_bdemu
from guestasm import BufferAt, Result, parse_output, write_program


def test_proc_self_names_the_guest_not_bdemu(tmp_path):
    """/proc/self/comm, stat and status give the program's base name, then what PR_SET_NAME set
    (busybox names each applet it runs without an exec so), never the host's `python`."""
    steps = [("open", "/proc/self/comm", 0), ("read", Result(0), BufferAt(0), 64),
             (157, 15, "renamed-by-guest-x"),  # prctl(PR_SET_NAME): 15 bytes kept
             ("open", "/proc/self/comm", 0), ("read", Result(3), BufferAt(64), 64),
             ("open", "/proc/self/stat", 0), ("read", Result(5), BufferAt(128), 512),
             ("open", "/proc/self/status", 0), ("read", Result(7), BufferAt(1024), 3000), (39,)]
    guest = write_program(tmp_path / "namedguest", steps)
    done = run_bdemu("run", guest)
    assert done.returncode == 0, done.stderr
    results, buffer = parse_output(done.stdout, len(steps))
    text = lambda offset, size: buffer[offset:offset + size].decode()
    assert text(0, results[1]) == "namedguest\n"
    assert text(64, results[4]) == "renamed-by-gues\n"
    assert text(128, results[6]).startswith(f"{results[9]} (renamed-by-gues) ")
    assert "Name:\trenamed-by-gues\n" in text(1024, results[8])


def test_other_guest_processes_see_the_first_one_by_its_name():
    """A child reading its parent's /proc/PID/comm (ps, pidof, killall do) read the host's `python`:
    a bdemu command's process now bears the guest's name, as forked children already did."""
    from test_busybox import _busybox
    done = run_bdemu("run", _busybox("x86_64"), "sh", "-c", "cat /proc/$$/comm; exec cat /proc/$$/comm")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split("\n")[:2] == ["busybox", "cat"]
