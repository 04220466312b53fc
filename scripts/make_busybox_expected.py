#!/usr/bin/env python3
"""Record what Debian's busybox-static prints for each case in tests/busybox_cases.json.

The reference run is native for x86-64 (and i386) and qemu-user for the other
ISAs; results go to tests/expected/busybox/<isa>.json, which tests/test_busybox.py
compares bdemu's runs against. Cases marked `"execs": true` execve a busybox
binary again; qemu-user cannot do that for a foreign ISA unless binfmt_misc
routes it back to qemu, so without that their reference is the native x86-64
result (these cases print nothing ISA-specific), and the record says so.
Run from anywhere:

    scripts/fetch_busybox.sh && scripts/make_busybox_expected.py [ISA...]
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "busybox_cases.json"
CACHE = ROOT / "tests" / ".cache" / "busybox"
EXPECTED = ROOT / "tests" / "expected" / "busybox"
#: How each ISA's reference run is made: an empty list means natively on this (x86-64) host.
RUNNERS = {"x86_64": [], "i386": [], "aarch64": ["qemu-aarch64"], "arm": ["qemu-arm"],
           "mipsel": ["qemu-mipsel"], "riscv64": ["qemu-riscv64"]}
#: The environment of every run, reference and bdemu alike (tests/conftest.py run_bdemu).
ENV = {"PATH": "/usr/bin:/bin"}


def busybox_path(isa: str) -> str:
    """The binary as the cases name it: relative to the repo root, which is every run's cwd."""
    return f"tests/.cache/busybox/{isa}/busybox"


def load_cases() -> list[dict]:
    return json.loads(CASES.read_text())


def status_of(returncode: int) -> int:
    """A host return code as a shell (and `bdemu run`) reports it: 128+N for a signal."""
    return 128 - returncode if returncode < 0 else returncode


def can_exec_foreign(runner: list[str]) -> bool:
    """Whether an execve of this ISA's binary from under qemu-user would reach qemu again."""
    return not runner or Path(f"/proc/sys/fs/binfmt_misc/{runner[0]}").exists()


def run_case(runner: list[str], isa: str, case: dict) -> dict:
    if not (ROOT / busybox_path(isa)).exists():
        raise SystemExit(f"make_busybox_expected: no {busybox_path(isa)}; run scripts/fetch_busybox.sh {isa}")
    done = subprocess.run([*runner, busybox_path(isa), *case["args"]], cwd=ROOT, env=ENV,
                          input=case.get("stdin", "").encode(), capture_output=True, timeout=60)
    return {"args": case["args"], "stdout": done.stdout.decode(), "status": status_of(done.returncode),
            "stderr": done.stderr.decode(errors="replace")}


def record(isa: str) -> dict:
    runner = RUNNERS[isa]
    if runner and shutil.which(runner[0]) is None:
        raise SystemExit(f"make_busybox_expected: {runner[0]} is not installed")
    results = {}
    for case in load_cases():
        if case.get("execs") and not can_exec_foreign(runner):
            results[case["id"]] = {**run_case([], "x86_64", case), "reference": "native x86_64"}
        else:
            results[case["id"]] = run_case(runner, isa, case)
    version = (CACHE / isa / "VERSION").read_text().strip()
    return {"busybox": version, "reference": " ".join(runner) or "native", "cases": results}


def main(argv: list[str]) -> int:
    isas = argv or ["x86_64", "aarch64"]
    EXPECTED.mkdir(parents=True, exist_ok=True)
    for isa in isas:
        data = record(isa)
        (EXPECTED / f"{isa}.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        print(f"{isa}: {len(data['cases'])} cases from {data['busybox']} ({data['reference']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
