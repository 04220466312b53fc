"""The run loop's reading of why emu_start returned (bdemu/runloop.py): a run ends at the
timeout or the instruction limit only when that limit was really reached, however often
another thread stops the engine meanwhile."""
from __future__ import annotations

import threading
import time

import pytest

from bdemu import Emulator
from bdemu.runloop import Stop, after_stop
from elfgen import write_elf

NOTHING = Stop(requested=frozenset(), woken=False, timed_out=False, deadline_passed=False,
               slice_used=False, counting=False)


def stop(**facts) -> Stop:
    return Stop(**{**NOTHING.__dict__, **facts})


@pytest.mark.parametrize("facts, action", [
    ({"requested": frozenset({"threads"})}, "switch"),
    ({"requested": frozenset({"threads", "resume"})}, "switch"),
    ({"requested": frozenset({"resume"}), "counting": True}, "continue"),
    ({"requested": frozenset({"detach"}), "counting": True, "deadline_passed": True}, "continue"),
    # A watcher's stop: even with the count and the deadline spent, the next round decides.
    ({"woken": True, "counting": True}, "continue"),
    ({"woken": True, "timed_out": True, "deadline_passed": True}, "continue"),
    # Unicorn's timeout: the run's deadline, the thread's slice, or a signal's expiry.
    ({"timed_out": True, "deadline_passed": True}, "timeout"),
    ({"timed_out": True, "deadline_passed": True, "counting": True}, "timeout"),
    ({"timed_out": True, "slice_used": True}, "preempt"),
    ({"timed_out": True}, "continue"),  # a signal's expiry, or a budget that ended a hair early
    ({"timed_out": True, "counting": True}, "continue"),
    # Nothing recorded and no timeout: the count ran out, if one was given.
    ({"counting": True}, "instruction limit"),
    ({"counting": True, "deadline_passed": True}, "instruction limit"),
    ({}, "continue"),
    ({"deadline_passed": True}, "continue"),  # the next emu_start's 1 us budget reports it
])
def test_after_stop(facts, action):
    assert after_stop(stop(**facts)) == action


COUNTDOWN = "mov rcx, 2000000\nagain: dec rcx\njnz again\nmov rax, 60\nmov rdi, 7\nsyscall"


def _run_while_woken(emu: Emulator, **limits):
    """Run `emu` while another thread stops its engine as host-signal wake-ups do, as often as
    it can, so some stops land just before emu_start begins and some just after."""
    done = threading.Event()
    wakes = 0

    def hammer() -> None:
        nonlocal wakes
        while not done.is_set():
            emu.wake_for_host_signals()
            wakes += 1
            time.sleep(0.0001 * (wakes % 3))

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        return emu.run(**limits), wakes
    finally:
        done.set()
        thread.join()


def test_stops_from_another_thread_are_not_the_instruction_limit(tmp_path):
    """4M instructions under a 1G limit: each wake-up restarts emu_start, none ends the run."""
    emu = Emulator(write_elf(tmp_path, "x86_64", COUNTDOWN))
    result, wakes = _run_while_woken(emu, max_insns=10**9)
    assert (result.exit_code, result.reason) == (7, "exit"), result.message
    assert wakes > 10


def test_stops_from_another_thread_are_not_the_timeout(tmp_path):
    emu = Emulator(write_elf(tmp_path, "x86_64", COUNTDOWN))
    started = time.monotonic()
    result, _ = _run_while_woken(emu, timeout=60)
    assert (result.exit_code, result.reason) == (7, "exit"), result.message
    assert time.monotonic() - started < 30


def test_the_timeout_still_ends_a_run_stopped_again_and_again(tmp_path):
    emu = Emulator(write_elf(tmp_path, "x86_64", "spin: jmp spin"))
    started = time.monotonic()
    result, _ = _run_while_woken(emu, timeout=0.3, max_insns=10**12)
    assert (result.exit_code, result.message) == (124, "timeout reached")
    assert time.monotonic() - started >= 0.3


def test_a_wake_up_before_the_run_is_harmless(tmp_path):
    emu = Emulator(write_elf(tmp_path, "x86_64", COUNTDOWN))
    emu.wake_for_host_signals()
    result = emu.run(max_insns=10**9)
    assert (result.exit_code, result.reason) == (7, "exit"), result.message
