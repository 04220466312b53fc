"""Signal delivery to guest handlers (samples/src/signals.c); the full sample's output is
compared with native/qemu runs in test_samples.py (case "signals")."""
from __future__ import annotations

import json

import pytest

from bdemu.cpu import by_name
from conftest import ISAS, ROOT, run_bdemu, sample

WITH_FRAME = [name for name in ISAS if by_name(name).signal_frame is not None]
WITHOUT_FRAME = [name for name in ISAS if by_name(name).signal_frame is None]


def test_signals_case_covers_every_isa_with_a_frame():
    """The differential case runs wherever delivery is implemented, and only there."""
    cases = json.loads((ROOT / "samples" / "cases.json").read_text())
    case = next(c for c in cases if c["name"] == "signals")
    assert sorted(case["isas"]) == sorted(WITH_FRAME)


@pytest.mark.parametrize("isa_name", WITH_FRAME)
def test_fault_handler_that_returns_reruns_the_instruction_until_the_timeout(isa_name):
    """Linux re-runs the faulting store after the handler returns, forever; --timeout ends it."""
    done = run_bdemu("run", "--timeout", "1", sample(isa_name, "signals"), "segv-loop")
    assert done.returncode == 124, done.stderr.decode()
    assert done.stdout == b"segv handler returned\n"
    assert "timeout reached" in done.stderr.decode()


@pytest.mark.parametrize("isa_name", WITHOUT_FRAME)
def test_isa_without_a_frame_drops_handled_signals_with_a_warning(isa_name):
    """No frame description yet: a handled signal is dropped (one warning), the run goes on."""
    done = run_bdemu("run", "--timeout", "20", sample(isa_name, "signals"))
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "raise: count=0 signo_is_usr1=0"
    assert "delivery is not supported yet" in done.stderr.decode()
