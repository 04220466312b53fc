"""Shared helpers: where the samples are, and how to run `bdemu` as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "bin"
EXPECTED = ROOT / "tests" / "expected"
#: ISAs bdemu runs today (a new ISA module adds itself here through bdemu.cpu.NAMES).
from bdemu.cpu import NAMES as ISAS  # noqa: E402


def sample(isa: str, name: str) -> str:
    """Path of a prebuilt sample, relative to the repo root (the form the expectations use)."""
    return f"samples/bin/{isa}/{name}"


def run_bdemu(*args: str, env: dict | None = None, input: bytes | None = None,
              timeout: float = 120, cwd: Path | str = ROOT, pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess:
    """Run `python -m bdemu ARGS` from the repo root; returns the completed process (bytes).
    `pass_fds`: fds of this process bdemu inherits (at the same numbers)."""
    environment = {"PATH": "/usr/bin:/bin"} if env is None else env
    environment = {**environment, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-P", "-m", "bdemu", *args], cwd=cwd, env=environment,
                          input=input if input is not None else b"", capture_output=True,
                          timeout=timeout, pass_fds=pass_fds)


@pytest.fixture(params=ISAS)
def isa(request) -> str:
    return request.param
