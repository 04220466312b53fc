"""Design rules that keep the code base in shape (STYLE habit 1)."""
from __future__ import annotations

import re

from conftest import ROOT

ARCH_BRANCH = re.compile(r"arch(\.name)? *(==|!=|in) *['\"(]|isinstance\([^)]*Arch")


def test_no_isa_branching_outside_cpu():
    """ISA knowledge lives in bdemu/cpu/ tables; nowhere else compares an arch by name."""
    offenders = []
    for path in list((ROOT / "bdemu").rglob("*.py")) + list((ROOT / "plugins").rglob("*.py")):
        if path.is_relative_to(ROOT / "bdemu" / "cpu"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if ARCH_BRANCH.search(line) or re.search(r"\.name *== *['\"](x86_64|aarch64|arm|i386|mips|riscv)", line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_every_isa_table_is_complete():
    from bdemu.cpu import NAMES, by_name
    for name in NAMES:
        arch = by_name(name)
        for register in (arch.pc, arch.sp, arch.syscall.number, arch.syscall.result, *arch.syscall.args,
                         *arch.general_registers, arch.tls_register):
            assert register in arch.registers, (name, register)
        assert "pc" in arch.registers and "sp" in arch.registers
        names = set(arch.syscall_numbers.values())
        assert {"read", "write", "exit_group", "openat", "mmap" if arch.bits == 64 else "mmap2"} <= names


def test_plain_run_leaves_heavy_modules_unimported():
    """Start-up is part of speed (DESIGN.md): running a guest without recording must not pay for
    numpy, DuckDB, pyarrow or LIEF imports (numpy alone costs ~65 ms, LIEF ~0.5 s)."""
    import subprocess
    import sys
    script = ("import sys; from bdemu import Emulator; "
              "r = Emulator('samples/bin/x86_64/hello').run(capture_output=True); "
              "assert r.exit_code == 0, r; "
              "print(sorted(m for m in ('numpy', 'duckdb', 'pyarrow', 'lief') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
