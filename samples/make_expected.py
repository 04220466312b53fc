#!/usr/bin/env python3
"""Run every case of samples/cases.json on every ISA and store the results.

    python samples/make_expected.py [--isa NAME ...] [--case NAME ...] [--check]

x86_64 and i386 run natively; the others under qemu-user (qemu-aarch64,
qemu-arm, qemu-riscv64, qemu-mipsel, qemu-mips).  Each case runs with:
  - cwd = the repository root and GUEST = "samples/bin/<isa>/<sample>"
    (relative), which is also the guest's argv[0], so `hello` prints it;
  - environment {"PATH": "/usr/bin:/bin"} plus the case's "env";
  - stdin = /dev/null, core dumps disabled;
  - "{tmp}" in an argument replaced by a fresh, empty temporary directory.
The result goes to tests/expected/<isa>/<case>.json as
{"stdout": str, "stderr": str, "status": int}, where status is the
shell-style status: the exit code, or 128 + the *guest's* signal number when
the guest was killed by a signal.  qemu's own "qemu: uncaught target
signal ..." lines are removed from stderr.

A case may carry per-ISA "overrides" for known qemu-user deviations from
Linux: {"status": N} replaces the status, {"from_isa": "x86_64"} copies that
ISA's result.  Each override states its reason.  A case may list "isas": the only
ISAs it runs on, for a feature bdemu has on some ISAs only (signal delivery needs the
ISA's signal frame description); the others get no expectation and no test. A case's
"bdemu_args" are options tests/test_samples.py gives `bdemu run` (e.g. --net, which a
native or qemu-user run has anyway); they play no part here.

--check compares instead of writing and exits 1 on any difference.
"""
import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXPECTED = ROOT / "tests" / "expected"
ISAS = ["x86_64", "i386", "aarch64", "arm", "riscv64", "mipsel", "mips"]
RUNNER = {
    "x86_64": [], "i386": [],
    "aarch64": ["qemu-aarch64"], "arm": ["qemu-arm"],
    "riscv64": ["qemu-riscv64"], "mipsel": ["qemu-mipsel"], "mips": ["qemu-mips"],
}
BASE_ENV = {"PATH": "/usr/bin:/bin"}
TIMEOUT = 300

# Signals whose numbers differ on MIPS (all others match the generic ABI).
# qemu kills itself with the *host* signal, so translate it back.
MIPS_SIGNALS = {
    "SIGBUS": 10, "SIGSYS": 12, "SIGUSR1": 16, "SIGUSR2": 17, "SIGCHLD": 18,
    "SIGPWR": 19, "SIGWINCH": 20, "SIGURG": 21, "SIGIO": 22, "SIGSTOP": 23,
    "SIGTSTP": 24, "SIGCONT": 25, "SIGTTIN": 26, "SIGTTOU": 27,
    "SIGVTALRM": 28, "SIGPROF": 29, "SIGXCPU": 30, "SIGXFSZ": 31,
}
QEMU_NOISE = re.compile(r"^qemu: uncaught target signal [^\n]*\n", re.M)


def guest_signal(isa, host_sig):
    if isa in ("mips", "mipsel"):
        name = signal.Signals(host_sig).name
        return MIPS_SIGNALS.get(name, host_sig)
    return host_sig


def no_core():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_case(isa, case):
    guest = f"samples/bin/{isa}/{case['sample']}"
    with tempfile.TemporaryDirectory(prefix="bdemu-expected-") as tmp:
        args = [a.replace("{tmp}", tmp) for a in case["args"]]
        env = dict(BASE_ENV, **case.get("env", {}))
        p = subprocess.run(RUNNER[isa] + [guest] + args, cwd=ROOT, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=TIMEOUT, preexec_fn=no_core)
    status = p.returncode
    if status < 0:
        status = 128 + guest_signal(isa, -status)
    stderr = p.stderr.decode()
    if RUNNER[isa]:
        stderr = QEMU_NOISE.sub("", stderr)
    return {"stdout": p.stdout.decode(), "stderr": stderr, "status": status}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", nargs="+", choices=ISAS, default=ISAS)
    ap.add_argument("--case", nargs="+", help="case names (default: all)")
    ap.add_argument("--check", action="store_true",
                    help="compare with the stored files instead of writing")
    args = ap.parse_args()

    cases = json.loads((HERE / "cases.json").read_text())
    if args.case:
        cases = [c for c in cases if c["name"] in args.case]
    # ISAs that other ISAs copy from run first.
    isas = sorted(args.isa, key=lambda i: i != "x86_64")
    results = {}
    bad = 0
    for isa in isas:
        for case in cases:
            if isa not in case.get("isas", ISAS):
                continue
            ov = case.get("overrides", {}).get(isa, {})
            if "from_isa" in ov:
                src = ov["from_isa"]
                res = results.get((src, case["name"]))
                if res is None:
                    res = run_case(src, case)
            else:
                res = run_case(isa, case)
                if "status" in ov:
                    res["status"] = ov["status"]
            results[(isa, case["name"])] = res
            out = EXPECTED / isa / f"{case['name']}.json"
            text = json.dumps(res, indent=2) + "\n"
            tag = "override" if ov else ""
            if args.check:
                old = out.read_text() if out.exists() else None
                ok = old == text
                bad += not ok
                print(f"{'same' if ok else 'DIFF':6} {isa:8} {case['name']:18} "
                      f"status={res['status']} {tag}")
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text)
                print(f"wrote  {isa:8} {case['name']:18} status={res['status']} {tag}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
