"""`bdemu export` formats, each checked by a reader written here, and backdoor rows."""
from __future__ import annotations

import json
import os
import re

import pyarrow.parquet as pq
import pytest

from bdemu import Emulator, open_trace
from bdemu.trace.recorder import RecordOptions, make_recorder
from conftest import ROOT, run_bdemu, sample
from trace_helpers import TENET_LINE, elf64, read_drcov

HELLO = sample("x86_64", "hello")


@pytest.fixture(scope="module")
def full_trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("full") / "hello.db"
    done = run_bdemu("record", "-o", str(path), "--insns", "--mem", "--regs", HELLO)
    assert done.returncode == 0, done.stderr
    return path


def export(trace, fmt, out):
    done = run_bdemu("export", str(trace), "--format", fmt, "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_drcov(full_trace, tmp_path):
    header, modules, blocks = read_drcov(str(export(full_trace, "drcov", tmp_path / "c.drcov")))
    assert header["count"] == 1 and modules[0][3] == str(ROOT / HELLO)
    ident, base, end, _ = modules[0]
    with open_trace(str(full_trace)) as trace:
        distinct = set(trace.con.execute("SELECT DISTINCT pc, size FROM blocks").fetchall())
    assert {(base + offset, size) for offset, size, m in blocks} == distinct
    assert all(m == ident and offset < end - base for offset, _, m in blocks)


def test_tenet(full_trace, tmp_path):
    lines = open(export(full_trace, "tenet", tmp_path / "t.log")).read().splitlines()
    with open_trace(str(full_trace)) as trace:
        pcs = [r[0] for r in trace.con.execute("SELECT pc FROM insns ORDER BY seq").fetchall()]
        writes = trace.con.execute("SELECT count(*) FROM mem WHERE access = 'w'").fetchone()[0]
    assert len(lines) == len(pcs)
    assert all(TENET_LINE.match(line) for line in lines), next(l for l in lines if not TENET_LINE.match(l))
    first = dict(part.split("=", 1) for part in lines[0].split(","))
    assert {"rax", "rsp", "rip", "r15"} <= set(first)
    rips = [int(dict(p.split("=", 1) for p in line.split(",") if not p.startswith("m"))["rip"], 16)
            for line in lines]
    assert rips == pcs
    assert sum(line.count("mw=") for line in lines) == writes


def test_tenet_needs_regs(tmp_path):
    path = tmp_path / "t.db"
    assert run_bdemu("record", "-o", str(path), HELLO).returncode == 0
    done = run_bdemu("export", str(path), "--format", "tenet", "-o", str(tmp_path / "t.log"))
    assert done.returncode == 2 and b"--regs" in done.stderr


@pytest.mark.parametrize("fmt", ["drcov", "tenet", "parquet", "chrome"])
def test_export_to_an_unwritable_place_is_one_line(full_trace, tmp_path, fmt):
    """An output that cannot be written (missing directory; a file where parquet wants its
    directory) is one `bdemu: ` line naming it, exit 2, never an internal error."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker if fmt == "parquet" else tmp_path / "missing" / "out"
    done = run_bdemu("export", str(full_trace), "--format", fmt, "-o", str(out))
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("bdemu: cannot write") and str(out) in lines[0]


def test_parquet(full_trace, tmp_path):
    out = export(full_trace, "parquet", tmp_path / "pq")
    files = set(os.listdir(out))
    assert {"meta.parquet", "blocks.parquet", "insns.parquet", "mem.parquet", "syscalls.parquet",
            "regs.parquet", "modules.parquet", "backdoor.parquet"} <= files
    with open_trace(str(full_trace)) as trace:
        for name in ("blocks", "insns", "syscalls", "mem"):
            table = pq.read_table(os.path.join(out, f"{name}.parquet"))
            assert table.num_rows == trace.count(name)
            assert table.column("seq").to_pylist() == sorted(table.column("seq").to_pylist())


def test_chrome(full_trace, tmp_path):
    document = json.load(open(export(full_trace, "chrome", tmp_path / "c.json")))
    events = document["traceEvents"]
    assert isinstance(events, list)
    slices = [e for e in events if e["ph"] == "X"]
    for event in events:
        assert {"ph", "name", "pid", "tid"} <= set(event)
    with open_trace(str(full_trace)) as trace:
        names = [r[0] for r in trace.con.execute("SELECT name FROM syscalls ORDER BY seq").fetchall()]
        total = int(trace.meta["instructions"])
    assert [e["name"] for e in slices if e["cat"] == "syscall"] == names
    stamps = [e["ts"] for e in slices]
    assert stamps == sorted(stamps) and all(isinstance(t, int) and 0 < t <= total for t in stamps)


# mov rdi, 0x7ffe00001000 ; data window
# mov dword ptr [rdi], 0x64636261
# mov rax, 0x7ffe00000000 ; control window
# mov rbx, 0x1122334455667788 ; mov qword ptr [rax + 8], rbx
# mov dword ptr [rdi], 0x68676665 ; mov ebx, 0x42 ; mov qword ptr [rax + 8], rbx
# mov eax, 0x40001005 ; cpuid                         (i8 5)
# mov eax, 0x40001107 ; mov ecx, 0xdeadbeef ; cpuid   (i8_v32 7, 0xdeadbeef)
# mov eax, 60 ; mov edi, 3 ; syscall
BACKDOOR_ASM = """
mov rdi, 0x7ffe00001000
mov dword ptr [rdi], 0x64636261
mov rax, 0x7ffe00000000
mov rbx, 0x1122334455667788
mov qword ptr [rax + 8], rbx
mov dword ptr [rdi], 0x68676665
mov ebx, 0x42
mov qword ptr [rax + 8], rbx
mov eax, 0x40001005
cpuid
mov eax, 0x40001107
mov ecx, 0xdeadbeef
cpuid
mov eax, 60
mov edi, 3
syscall
"""


def test_backdoor_rows(tmp_path):
    """Calls through the fixed-address window and CPUID: cmd, data and order as the guest sent them."""
    keystone = pytest.importorskip("keystone")
    code, _ = keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64).asm(BACKDOOR_ASM)
    guest = tmp_path / "backdoor"
    guest.write_bytes(elf64(bytes(code)))
    guest.chmod(0o755)
    path = str(tmp_path / "b.db")
    emu = Emulator(str(guest))
    emu.add_plugin(make_recorder(path, RecordOptions(status=False, data_bytes=8)))
    result = emu.run()
    assert (result.reason, result.exit_code) == ("exit", 3), result.message
    with open_trace(path) as trace:
        rows = trace.sql("SELECT seq, kind, cmd, i8, v32, data FROM backdoor ORDER BY seq").to_pylist()
        block_seqs = [r[0] for r in trace.con.execute("SELECT seq FROM blocks").fetchall()]
        exit_seq = trace.con.execute("SELECT seq FROM syscalls").fetchone()[0]
    assert [(r["kind"], r["cmd"], r["i8"], r["v32"]) for r in rows] == [
        ("mmio", 0x1122334455667788, None, None), ("mmio", 0x42, None, None),
        ("i8", None, 5, None), ("i8_v32", None, 7, 0xDEADBEEF)]
    assert rows[0]["data"] == b"abcd" + bytes(4) and rows[1]["data"] == b"efgh" + bytes(4)
    assert rows[2]["data"] == rows[3]["data"] == b"efgh" + bytes(4)  # the window at those calls too
    seqs = [r["seq"] for r in rows] + [exit_seq]
    assert seqs == sorted(seqs) and min(block_seqs) < seqs[0]
    assert not set(seqs) & set(block_seqs)


@pytest.mark.parametrize("name", ["backdoor_fixed", "backdoor_sysfs"])
def test_backdoor_sample(tmp_path, name):
    """The backdoor sample guests (when built): every call the guest makes has its row, in order."""
    guest = ROOT / sample("x86_64", name)
    if not guest.exists():
        pytest.skip(f"{guest} not built")
    path = tmp_path / "b.db"
    done = run_bdemu("record", "-o", str(path), "-p", "backdoor", str(guest))
    with open_trace(str(path)) as trace:
        rows = trace.sql("SELECT seq, kind, cmd, data FROM backdoor ORDER BY seq").to_pylist()
        assert trace.meta["exit_code"] == str(done.returncode)
    assert rows, done.stderr
    assert [r["seq"] for r in rows] == sorted({r["seq"] for r in rows})
    # The `backdoor` plugin (recorded alongside) logs `backdoor: mmio cmd=0x.. data=HEX pc=..`.
    logged = re.findall(r"backdoor: mmio cmd=(0x[0-9a-f]+) data=([0-9a-f]*)", done.stderr.decode())
    mmio = [r for r in rows if r["kind"] == "mmio"]
    assert logged and len(logged) == len(mmio)
    for (cmd, data), row in zip(logged, mmio):
        assert row["cmd"] == int(cmd, 16) and row["data"].hex().startswith(data)
