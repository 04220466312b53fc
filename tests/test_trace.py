"""`bdemu record`: the trace tables (SPEC 5), their order, and agreement with independent observers."""
from __future__ import annotations

import json
import os

import duckdb
import pytest

from bdemu import Emulator, Plugin, open_trace
from bdemu.trace.recorder import RecordOptions, make_recorder
from conftest import ROOT, run_bdemu, sample
from trace_helpers import read_drcov

HELLO = sample("x86_64", "hello")


class Observer(Plugin):
    """The test's own per-event view: every block, instruction and syscall, live."""

    name = "observer"

    def __init__(self) -> None:
        super().__init__()
        self.blocks, self.insns, self.syscalls = [], [], []

    def on_block(self, emu, address, size):
        self.blocks.append((address, size))

    def on_insn(self, emu, address, size):
        self.insns.append((address, size))

    def on_syscall(self, emu, number, args):
        self.syscalls.append([number, None])

    def on_syscall_return(self, emu, number, result):
        self.syscalls[-1][1] = result


def record_api(tmp_path, guest=HELLO, argv=None, **options):
    path = str(tmp_path / "api.db")
    emu = Emulator(str(ROOT / guest), argv=argv)
    emu.add_plugin(make_recorder(path, RecordOptions(status=False, **options)))
    observer = emu.add_plugin(Observer())
    result = emu.run(capture_output=True)
    return open_trace(path), observer, result


def seqs_of(trace, tables=("blocks", "insns", "mem", "syscalls", "backdoor")):
    union = " UNION ALL ".join(f"SELECT seq FROM {t}" for t in tables)
    return [row[0] for row in trace.con.execute(union).fetchall()]


@pytest.fixture(scope="module")
def hello_trace(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hello")
    path = directory / "hello.db"
    cov = directory / "cov.drcov"
    strace = directory / "strace.txt"
    done = run_bdemu("record", "-o", str(path), "-p", f"coverage,out={cov}", "-p", "strace",
                     "--plugin-output", str(strace), HELLO, "x", "y z")
    assert done.returncode == 2, done.stderr  # hello exits with its argument count minus one
    return path, cov, strace, done


def test_meta_says_what_ran(hello_trace):
    path, *_ = hello_trace
    with open_trace(str(path)) as trace:
        meta = trace.meta
        assert meta["format_version"] == "1"
        assert meta["arch"] == "x86_64"
        assert meta["guest"] == HELLO
        assert json.loads(meta["argv"]) == [HELLO, "x", "y z"]
        assert (meta["exit_code"], meta["reason"]) == ("2", "exit")
        assert trace.sql("SELECT count(*) AS n FROM modules").column("n")[0].as_py() == 1
        module = trace.table("modules").to_pylist()[0]
        assert module["path"] == str(ROOT / HELLO) and module["base"] < module["entry"] < module["end"]


def test_blocks_equal_coverage_plugin(hello_trace):
    path, cov, *_ = hello_trace
    _, modules, blocks = read_drcov(str(cov))
    bases = {ident: base for ident, base, _, _ in modules}
    covered = {(bases[m] + offset, size) for offset, size, m in blocks}
    with open_trace(str(path)) as trace:
        recorded = set(trace.con.execute("SELECT DISTINCT pc, size FROM blocks").fetchall())
    assert recorded == covered


def test_syscalls_match_strace(hello_trace):
    path, _, strace, _ = hello_trace
    names = [line.split("(", 1)[0] for line in open(strace).read().splitlines()
             if "(" in line and not line.startswith("+++")]
    with open_trace(str(path)) as trace:
        rows = trace.sql("SELECT name, ret, args FROM syscalls ORDER BY seq").to_pylist()
    assert [r["name"] for r in rows] == names
    writes = [r for r in rows if r["name"] in ("write", "writev")]
    assert writes and all(r["ret"] > 0 for r in writes)
    assert rows[-1]["name"] == "exit_group" and rows[-1]["ret"] is None and rows[-1]["args"][0] == 2


def test_order_and_content_match_live_hooks(tmp_path):
    trace, observer, result = record_api(tmp_path, insns=True)
    assert result.exit_code == 0
    seqs = seqs_of(trace)
    assert len(seqs) == len(set(seqs))
    blocks = trace.sql("SELECT pc, size FROM blocks ORDER BY seq").to_pylist()
    assert [(b["pc"], b["size"]) for b in blocks] == observer.blocks
    insns = trace.sql("SELECT pc, size FROM insns ORDER BY seq").to_pylist()
    assert [(i["pc"], i["size"]) for i in insns] == observer.insns
    calls = trace.sql("SELECT nr, ret FROM syscalls ORDER BY seq").to_pylist()
    assert [[c["nr"], c["ret"]] for c in calls] == observer.syscalls
    assert int(trace.meta["instructions"]) == len(observer.insns)
    # Each syscall comes after the block holding its syscall instruction and before the next block.
    merged = trace.sql("SELECT seq, 'b' AS t, pc, size FROM blocks UNION ALL "
                       "SELECT seq, 's', pc, 0 FROM syscalls ORDER BY seq").to_pylist()
    for before, row in zip(merged, merged[1:]):
        if row["t"] == "s":
            assert before["t"] == "b" and before["pc"] <= row["pc"] <= before["pc"] + before["size"]


def test_seq_strictly_increasing_within_each_table(tmp_path):
    trace, *_ = record_api(tmp_path, insns=True, mem=True)
    for table in ("blocks", "insns", "mem", "syscalls"):
        seqs = [r[0] for r in trace.con.execute(f"SELECT seq FROM {table}").fetchall()]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), table
    assert len(set(seqs_of(trace))) == len(seqs_of(trace))


def test_mem_rows(tmp_path):
    trace, *_ = record_api(tmp_path, mem=True)
    rows = trace.sql("SELECT access, address, size, value, pc FROM mem ORDER BY seq").to_pylist()
    assert {r["access"] for r in rows} == {"r", "w"}
    assert all(r["size"] in (1, 2, 4, 8, 16) for r in rows)
    stack = [r for r in rows if r["access"] == "w" and r["address"] > 0x7FF000000000]
    assert stack, "a C program pushes on the stack"


def test_no_blocks_flag(tmp_path):
    trace, *_ = record_api(tmp_path, blocks=False)
    assert trace.count("blocks") == 0 and trace.count("syscalls") > 0


@pytest.mark.parametrize("how", ["segv", "max-insns"])
def test_stopped_runs_keep_their_rows(tmp_path, how):
    path = tmp_path / "t.db"
    if how == "segv":
        done = run_bdemu("record", "-o", str(path), sample("x86_64", "crash"), "segv")
        expected = ("139", "signal")
    else:
        done = run_bdemu("record", "-o", str(path), "--max-insns", "200000", sample("x86_64", "compute"))
        expected = ("124", "limit")
    assert str(done.returncode) == expected[0], done.stderr
    con = duckdb.connect(str(path), read_only=True)  # plain duckdb, no bdemu
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    assert (meta["exit_code"], meta["reason"]) == expected
    assert con.execute("SELECT count(*) FROM blocks").fetchone()[0] > 100
    if how == "segv":
        assert meta["signal"] == "11" and "SIGSEGV" in meta["message"]
        last = con.execute("SELECT pc FROM blocks ORDER BY seq DESC LIMIT 1").fetchone()[0]
        assert last <= int(meta["end_pc"], 16) < last + 64
    else:
        assert 200000 <= int(meta["instructions"]) < 200000 + 100


def _signal_a_recording(path, iterations: str, after: float, number: int, output: int):
    """Start `bdemu record` of a long compute run, send it `number` `after` seconds past the file's
    creation; the process, its output going to `output` (subprocess.PIPE or DEVNULL)."""
    import subprocess
    import sys
    import time
    process = subprocess.Popen([sys.executable, "-P", "-m", "bdemu", "record", "-o", str(path),
                                sample("x86_64", "compute"), iterations], cwd=ROOT, stdout=output, stderr=output)
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(after)
    process.send_signal(number)
    return process


def test_sigterm_mid_compute_keeps_rows(tmp_path):
    import signal
    import subprocess
    path = tmp_path / "t.db"
    process = _signal_a_recording(path, "400000000", 1.5, signal.SIGTERM, subprocess.PIPE)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert b"SIGTERM" in err
    con = duckdb.connect(str(path), read_only=True)
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    assert (meta["exit_code"], meta["reason"], meta["signal"]) == ("143", "signal", "15")
    blocks = con.execute("SELECT count(*), max(seq) FROM blocks").fetchone()
    assert blocks[0] > 10000 and blocks[1] == blocks[0] - 1 + 2  # every block kept; 2 syscalls before
    assert int(meta["instructions"]) > 1_000_000


def test_hard_kill_keeps_a_readable_trace(tmp_path):
    """SIGKILL gives the recorder no chance to close: what it committed (the schema at once, rows every
    second even while a long loop adds none) must still open with plain duckdb."""
    import signal
    import subprocess
    path = tmp_path / "t.db"
    process = _signal_a_recording(path, "4000000000", 4, signal.SIGKILL, subprocess.DEVNULL)
    process.wait(timeout=60)
    con = duckdb.connect(str(path), read_only=True)
    tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"meta", "modules", "blocks", "insns", "mem", "syscalls", "backdoor", "code"} <= tables
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    assert meta["reason"] == "running" and meta["arch"] == "x86_64"
    assert con.execute("SELECT count(*) FROM modules").fetchone()[0] >= 1


def test_plugin_error_keeps_rows(tmp_path):
    plugin = tmp_path / "boom.py"
    plugin.write_text("from bdemu import Plugin\nclass Boom(Plugin):\n"
                      "    def on_syscall(self, emu, number, args):\n"
                      "        if number == 1: raise ValueError('boom')\n")
    path = tmp_path / "t.db"
    done = run_bdemu("record", "-o", str(path), "-p", str(plugin), sample("x86_64", "compute"), "1000")
    assert done.returncode == 125, done.stderr
    with open_trace(str(path)) as trace:
        assert trace.meta["reason"] == "error" and "boom" in trace.meta["message"]
        assert trace.count("blocks") > 100 and trace.count("syscalls") >= 3


def test_show_summarizes(hello_trace):
    path, *_ = hello_trace
    done = run_bdemu("show", str(path))
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    for text in ("x86_64", HELLO, "exit", "blocks", "syscalls", "writev", "top"):
        assert text in out, text
    assert "hello+0x" in out


def test_cli_errors(tmp_path):
    done = run_bdemu("show", str(tmp_path / "missing.db"))
    assert done.returncode == 2 and done.stderr.startswith(b"bdemu: ")
    done = run_bdemu("record", HELLO)
    assert done.returncode == 2
    assert run_bdemu("run", HELLO).returncode == 0


@pytest.mark.parametrize("missing, status", [("guest", 127), ("plugin", 2)])
def test_record_that_cannot_start_leaves_no_trace_file(tmp_path, missing, status):
    """The trace file is created while the guest loads; a guest or plugin that fails to load removes it."""
    guest = str(tmp_path / "missing-guest") if missing == "guest" else HELLO
    plugin = ["--plugin", "no-such-plugin"] if missing == "plugin" else []
    done = run_bdemu("record", "-o", str(tmp_path / "t.db"), *plugin, guest)
    assert done.returncode == status, done.stderr
    assert done.stderr.startswith(b"bdemu: ") and b"Traceback" not in done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_open_trace_api(hello_trace):
    path, *_ = hello_trace
    trace = open_trace(str(path))
    assert set(["meta", "modules", "blocks", "syscalls", "backdoor"]) <= set(trace.tables)
    table = trace.table("blocks")
    assert table.column_names[:3] == ["seq", "pc", "size"] and table.num_rows > 100
    assert trace.sql("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    with pytest.raises(KeyError):
        trace.table("nope")
    trace.close()
    assert os.path.getsize(path) > 0


def _layout(path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT table_name, table_type, column_name, data_type FROM information_schema.columns "
                           "JOIN information_schema.tables USING (table_name) ORDER BY ALL").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("options", [{}, {"insns": True, "mem": True}])
def test_schema_from_cached_template_is_the_schema(tmp_path, monkeypatch, options):
    """The schema is made once into the user's cache and copied; a trace made without the cache, with a
    fresh one and with a damaged one must have exactly the same tables, views and columns."""
    def record_with(cache) -> list[tuple]:
        monkeypatch.setenv("XDG_CACHE_HOME", cache)
        path = tmp_path / f"t{len(list(tmp_path.iterdir()))}.db"
        emu = Emulator(HELLO)
        emu.add_plugin(make_recorder(str(path), RecordOptions(status=False, **options)))
        assert emu.run(capture_output=True).exit_code == 0
        assert duckdb.connect(str(path), read_only=True).execute("SELECT count(*) FROM syscalls").fetchone()[0] > 0
        return _layout(path)

    uncached = record_with("relative/cache")  # not absolute: no cache is used
    assert record_with(str(tmp_path / "no-home" / ".cache")) == uncached
    assert not (tmp_path / "no-home").exists()  # a missing home is not made
    cache = tmp_path / "cache"
    fresh = record_with(str(cache))
    templates = list((cache / "bdemu").glob("trace-schema-*.duckdb"))
    assert len(templates) == 1
    again = record_with(str(cache))
    templates[0].write_bytes(b"not a database" * 100)
    damaged = record_with(str(cache))
    assert uncached == fresh == again == damaged and len(uncached) > 30
