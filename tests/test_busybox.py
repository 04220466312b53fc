"""Differential runs of Debian's busybox-static: each applet invocation gives the stdout and exit
status of the same binary run natively (x86-64) or under qemu-user (other ISAs).

The cases live in tests/busybox_cases.json; the reference results in
tests/expected/busybox/<isa>.json were recorded by scripts/make_busybox_expected.py,
never by bdemu. The binaries are fetched by scripts/fetch_busybox.sh (apt-get
download) into tests/.cache/ and never committed; a missing one is fetched here,
and a failed fetch fails the test rather than skipping it.
"""
from __future__ import annotations

import functools
import json
import subprocess

import pytest

from conftest import EXPECTED, ISAS, ROOT, run_bdemu

FETCH = ROOT / "scripts" / "fetch_busybox.sh"
CASES = json.loads((ROOT / "tests" / "busybox_cases.json").read_text())
BUSYBOX_ISAS = [isa for isa in ISAS if (EXPECTED / "busybox" / f"{isa}.json").exists()]


@functools.cache
def _fetch(isa: str) -> str:
    """Run the fetch script once per ISA; returns "" on success, else what went wrong."""
    try:
        done = subprocess.run(["sh", str(FETCH), isa], cwd=ROOT, capture_output=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if done.returncode != 0:
        return f"status {done.returncode}:\n{done.stdout.decode()}{done.stderr.decode()}"
    return ""


def _busybox(isa: str) -> str:
    """The busybox binary for `isa` (relative to the repo root), fetched on first use."""
    relative = f"tests/.cache/busybox/{isa}/busybox"
    if not (ROOT / relative).exists():
        problem = _fetch(isa)
        if problem or not (ROOT / relative).exists():
            pytest.fail(f"busybox-static for {isa} is missing and {FETCH.relative_to(ROOT)} "
                        f"could not fetch it: {problem or 'no binary after the fetch'}", pytrace=False)
    return relative


def _guest_stderr(stderr: bytes) -> str:
    """bdemu's own lines start with `bdemu: `; the rest is what the guest wrote."""
    return "".join(line for line in stderr.decode(errors="replace").splitlines(keepends=True)
                   if not line.startswith("bdemu: "))


@pytest.fixture(scope="module")
def expected() -> dict[str, dict]:
    return {isa: json.loads((EXPECTED / "busybox" / f"{isa}.json").read_text())["cases"]
            for isa in BUSYBOX_ISAS}


def test_table_covers_the_acceptance_applets():
    """Issue 3 names the applets (and `sh -c` forms) that must be exercised: keep them all."""
    used = {case["args"][0] for case in CASES}
    scripts = " ".join(case["args"][-1] for case in CASES if case["args"][0] == "sh")
    for applet in ("echo", "printf", "seq", "expr", "wc", "sort", "uniq", "cut", "tr", "sed", "awk",
                   "grep", "sha256sum", "md5sum", "base64", "cat", "head", "tail", "od", "find",
                   "basename", "dirname", "ls", "true", "false", "sh"):
        assert applet in used or f"{applet} " in scripts, applet
    assert "$((" in scripts and " | " in scripts
    assert len(CASES) >= 30


def test_expectations_match_the_table(expected):
    """A stale expectation file (case added, renamed or edited) must be regenerated, not trusted."""
    for isa, cases in expected.items():
        assert {c["id"]: c["args"] for c in CASES} == {k: v["args"] for k, v in cases.items()}, (
            f"tests/expected/busybox/{isa}.json is stale: run scripts/make_busybox_expected.py {isa}")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
@pytest.mark.parametrize("isa_name", BUSYBOX_ISAS)
def test_busybox_applet(isa_name, case, expected):
    reference = expected[isa_name][case["id"]]
    done = run_bdemu("run", _busybox(isa_name), *case["args"],
                     input=case.get("stdin", "").encode(), timeout=120)
    stderr = done.stderr.decode(errors="replace")
    assert "Traceback" not in stderr, stderr
    assert done.stdout.decode(errors="replace") == reference["stdout"], stderr
    assert done.returncode == reference["status"], stderr
    # stderr only loosely: the guest complains exactly when the reference run did.
    assert bool(_guest_stderr(done.stderr)) == bool(reference["stderr"]), stderr
