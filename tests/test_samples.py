"""Differential runs: every sample on every ISA gives the output and status of a native/qemu-user run.

Expectations in tests/expected/<isa>/<case>.json were recorded by
samples/make_expected.py (natively or under qemu-user), never by bdemu.
"""
from __future__ import annotations

import json

import pytest

from conftest import EXPECTED, ISAS, ROOT, run_bdemu, sample

CASES = [c for c in json.loads((ROOT / "samples" / "cases.json").read_text())]


def _guest_stderr(stderr: bytes) -> str:
    """bdemu's own lines start with `bdemu: `; the rest is what the guest wrote."""
    return "".join(line for line in stderr.decode().splitlines(keepends=True)
                   if not line.startswith("bdemu: "))


# A case's "isas" limits it to the ISAs with the feature it needs (see samples/make_expected.py).
RUNS = [(isa, case) for case in CASES for isa in ISAS if isa in case.get("isas", ISAS)]


@pytest.mark.parametrize(("isa_name", "case"), RUNS, ids=[f"{isa}-{case['name']}" for isa, case in RUNS])
def test_sample_matches_reference(isa_name, case, tmp_path):
    expected = json.loads((EXPECTED / isa_name / f"{case['name']}.json").read_text())
    args = [a.replace("{tmp}", str(tmp_path)) for a in case["args"]]
    env = {"PATH": "/usr/bin:/bin", **case["env"]}
    done = run_bdemu("run", *case.get("bdemu_args", ()), sample(isa_name, case["sample"]), *args, env=env)
    stdout = done.stdout.decode().replace(str(tmp_path), "{tmp}")
    assert stdout == expected["stdout"].replace(str(tmp_path), "{tmp}")
    assert done.returncode == expected["status"], done.stderr.decode()
    assert _guest_stderr(done.stderr) == expected["stderr"]


@pytest.mark.parametrize("isa_name", ISAS)
def test_fault_is_reported_on_one_line(isa_name):
    """SPEC 3: a guest killed by a signal gives 128+N and one `bdemu:` line naming it and the pc."""
    done = run_bdemu("run", sample(isa_name, "crash"), "segv")
    assert done.returncode == 139
    lines = [l for l in done.stderr.decode().splitlines() if l.startswith("bdemu: ")]
    assert len(lines) == 1
    assert "SIGSEGV" in lines[0] and "pc 0x" in lines[0] and "write" in lines[0]
