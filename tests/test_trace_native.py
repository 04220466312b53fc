"""The native recording layout: loop runs in C, `blocks`/`insns` as views, accesses numbered in C."""
from __future__ import annotations

import duckdb
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bdemu import Emulator, Plugin
from bdemu._native import RunEncoder
from bdemu.trace.recorder import RecordOptions, make_recorder
from conftest import ROOT, sample

HELLO = sample("x86_64", "hello")
COMPUTE = sample("x86_64", "compute")


def expand(runs, ids: np.ndarray, seqs: np.ndarray, repeats: np.ndarray) -> list[tuple[int, int, int]]:
    """The (seq, id, repeats) entries the runs describe, ordered by seq."""
    entries = []
    for first, reps, span, start, length in zip(runs.first.tolist(), runs.reps.tolist(), runs.span.tolist(),
                                                runs.starts.tolist(), runs.lengths.tolist()):
        base = int(seqs[start])
        for rep in range(reps):
            for k in range(start, start + length):
                entries.append((first + rep * span + int(seqs[k]) - base, int(ids[k]), int(repeats[k])))
    return sorted(entries)


@st.composite
def block_streams(draw):
    """Streams of entries made of literal stretches and (nested) loops, with irregular seq steps."""
    ids: list[int] = []
    for _ in range(draw(st.integers(1, 12))):
        body = draw(st.lists(st.integers(0, 6), min_size=1, max_size=5))
        inner = draw(st.integers(1, 4))
        ids.extend(body * inner * draw(st.integers(1, 30)))
    steps = draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
    bumps = draw(st.sets(st.integers(0, len(ids) - 1), max_size=3))  # e.g. an access more this time
    gaps = [steps[block % len(steps)] + (i in bumps) for i, block in enumerate(ids)]
    seqs = np.cumsum([0] + gaps[:-1]).astype(np.uint64) + draw(st.integers(0, 1000))
    end = int(seqs[-1]) + gaps[-1] + draw(st.integers(0, 2))
    repeats = [1 + (block == 5) * (i % 3) for i, block in enumerate(ids)]  # one-block loops of varying length
    return np.array(ids, np.uint32), seqs, np.array(repeats, np.uint32), end


@settings(max_examples=200, deadline=None)
@given(block_streams())
def test_runs_describe_the_stream_exactly(stream):
    ids, seqs, repeats, end = stream
    encoder = RunEncoder()
    runs = encoder.encode(ids, seqs, repeats, end, 7)
    assert expand(runs, ids, seqs, repeats) == list(zip(seqs.tolist(), ids.tolist(), repeats.tolist()))
    assert len(runs.reps) <= len(ids)
    again = encoder.encode(ids, seqs, repeats, end, 7)  # scratch state is reset between calls
    assert again.reps.tolist() == runs.reps.tolist()


@settings(max_examples=200, deadline=None)
@given(block_streams(), st.lists(st.integers(1, 4), min_size=7, max_size=7))
def test_rows_describe_the_stream_exactly(stream, stride_list):
    """block_steps + block_runs rows (C) give every execution's seq, also inside one-block loops."""
    ids, _, repeats, _ = stream
    strides = np.array(stride_list, np.uint32)
    steps = strides[ids].astype(np.uint64) * repeats
    seqs = np.concatenate([[5], 5 + np.cumsum(steps)[:-1]]).astype(np.uint64)
    executions = np.zeros(7, np.uint64)
    step_rows, run_rows = RunEncoder().rows(ids, seqs, repeats, int(seqs[-1] + steps[-1]), 7, strides, executions)
    got = list(zip(step_rows["seq"].tolist(), step_rows["id"].tolist()))
    for seq, reps, span, block in zip(*(run_rows[k].tolist() for k in ("seq", "reps", "span", "id"))):
        got.extend((seq + k * span, block) for k in range(reps))
    expected = [(int(s) + k * int(strides[b]), int(b)) for b, n, s in zip(ids, repeats, seqs) for k in range(n)]
    assert sorted(got) == sorted(expected)
    assert executions.tolist() == np.bincount(ids, weights=repeats, minlength=7).astype(int).tolist()


def test_a_loop_is_one_run():
    ids = np.array([9] + [1, 2, 3] * 1000 + [4], np.uint32)
    seqs = np.arange(len(ids), dtype=np.uint64)
    runs = RunEncoder().encode(ids, seqs, np.ones(len(ids), np.uint32), len(ids), 10)
    assert sorted(zip(runs.lengths.tolist(), runs.reps.tolist())) == [(1, 1), (1, 1), (3, 1000)]


class BlockObserver(Plugin):
    """Blocks from the per-event Python hook, in order."""

    name = "block-observer"

    def __init__(self) -> None:
        super().__init__()
        self.events = []

    def on_block(self, emu, address, size):
        self.events.append(("b", address, size))


class AccessObserver(BlockObserver):
    """Blocks and accesses from the per-event Python hooks, in order."""

    name = "access-observer"

    def on_mem_read(self, emu, address, size):
        self.events.append(("r", address, size))

    def on_mem_write(self, emu, address, size, value):
        self.events.append(("w", address, size))


def record(tmp_path, guest, argv=None, observe=AccessObserver, **options):
    path = str(tmp_path / "t.db")
    emu = Emulator(str(ROOT / guest), argv=argv)
    emu.add_plugin(make_recorder(path, RecordOptions(status=False, **options)))
    observer = emu.add_plugin(observe()) if observe else None
    result = emu.run(capture_output=True)
    return duckdb.connect(path, read_only=True), observer, result


def test_native_mem_interleaves_like_live_hooks(tmp_path):
    con, observer, result = record(tmp_path, HELLO, mem=True)
    assert result.exit_code == 0
    rows = con.execute("SELECT seq, 'b' AS kind, pc, size FROM blocks UNION ALL "
                       "SELECT seq, access, address, size FROM mem ORDER BY seq").fetchall()
    assert [tuple(r[1:]) for r in rows] == observer.events
    # One counter numbers blocks, accesses and syscalls: together they are 0, 1, 2, ...
    every = [r[0] for r in con.execute("SELECT seq FROM blocks UNION ALL SELECT seq FROM mem UNION ALL "
                                       "SELECT seq FROM syscalls ORDER BY seq").fetchall()]
    assert every == list(range(len(every)))
    writes = con.execute("SELECT count(*) FROM mem WHERE access = 'w'").fetchone()[0]
    assert writes == sum(1 for e in observer.events if e[0] == "w")


def test_views_read_with_plain_duckdb(tmp_path):
    con, observer, result = record(tmp_path, COMPUTE, argv=[str(ROOT / COMPUTE), "300"], observe=BlockObserver,
                                   insns=True)
    assert result.exit_code == 0
    kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
    assert kinds["blocks"] == kinds["insns"] == "VIEW" and kinds["block_runs"] == "BASE TABLE"
    blocks = con.execute("SELECT pc, size FROM blocks ORDER BY seq").fetchall()
    assert blocks == [e[1:] for e in observer.events if e[0] == "b"]
    assert con.execute("SELECT count(*) FROM block_runs WHERE reps > 1").fetchone()[0] > 0, "compute loops"
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    assert con.execute("SELECT count(*) FROM insns").fetchone()[0] == int(meta["instructions"])
    # Each block's instructions follow it: seq + 1 .. seq + n, from the block's pc on.
    first = con.execute("SELECT b.pc, i.pc FROM blocks b JOIN insns i ON i.seq = b.seq + 1").fetchall()
    assert first and all(block == insn for block, insn in first)


def test_views_read_in_seq_order_like_tables(tmp_path):
    """SPEC: `blocks` holds executed blocks in order; a plain SELECT must not need ORDER BY."""
    con, observer, result = record(tmp_path, COMPUTE, argv=[str(ROOT / COMPUTE), "3000"], observe=BlockObserver,
                                   insns=True)
    assert result.exit_code == 0
    blocks = con.execute("SELECT seq, pc, size FROM blocks").fetchall()
    assert [b[1:] for b in blocks] == [e[1:] for e in observer.events if e[0] == "b"]
    assert all(a[0] < b[0] for a, b in zip(blocks, blocks[1:]))
    insns = [row[0] for row in con.execute("SELECT seq FROM insns").fetchall()]
    assert len(insns) > len(blocks) and insns == sorted(set(insns))


def test_counts_without_expanding_agree(tmp_path):
    from bdemu import open_trace
    for options in ({"insns": True}, {"blocks": False, "insns": True}, {}):
        con, _observer, _result = record(tmp_path, COMPUTE, argv=[str(ROOT / COMPUTE), "200"], observe=None,
                                         **options)
        con.close()
        with open_trace(str(tmp_path / "t.db")) as trace:
            for name in ("blocks", "insns"):
                assert trace.count(name) == trace.con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            assert trace.count("insns") == (int(trace.meta["instructions"]) if options else 0)


def test_no_blocks_keeps_insns(tmp_path):
    con, _observer, result = record(tmp_path, HELLO, blocks=False, insns=True)
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    assert con.execute("SELECT count(*) FROM blocks").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM insns").fetchone()[0] == int(meta["instructions"]) > 1000


class RowsKept:
    """A stand-in for the trace writer that keeps inserted rows."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, list]] = {}

    def insert(self, table, columns):
        mine = self.tables.setdefault(table, {k: [] for k in columns})
        for name, values in columns.items():
            mine[name].extend(np.asarray(values).tolist())


def test_rows_expand_to_every_execution():
    from bdemu.trace.native import RunStore
    # (block, back-to-back count) entries: a loop whose body has a one-block loop shorter than its trip
    # count, one with a longer one, a lone one-block loop, and single blocks; stride 2 for block 3.
    entries = [(9, 1)] + [(0, 1), (1, 3)] * 5 + [(2, 1), (3, 10)] * 2 + [(4, 7), (5, 1), (9, 1)]
    strides = np.array([1, 1, 1, 2, 1, 1, 1, 1, 1, 1], np.uint32)
    ids = np.array([e[0] for e in entries], np.uint32)
    repeats = np.array([e[1] for e in entries], np.uint32)
    steps = np.array([strides[b] * n for b, n in entries], np.uint64)
    seqs = np.concatenate([[0], np.cumsum(steps)[:-1]]).astype(np.uint64)
    writer = RowsKept()
    store = RunStore(writer, RunEncoder())
    store.add(ids, seqs, repeats, int(steps.sum()), lambda: None, None, 10, strides)
    store.write()
    expected = sorted((int(s) + k * int(strides[b]), b) for (b, n), s in zip(entries, seqs) for k in range(n))
    steps_rows = writer.tables.get("block_steps", {"seq": [], "id": []})
    runs = writer.tables["block_runs"]
    got = list(zip(steps_rows["seq"], steps_rows["id"]))
    for seq, reps, span, block in zip(runs["seq"], runs["reps"], runs["span"], runs["id"]):
        got.extend((seq + k * span, block) for k in range(reps))
    assert sorted(got) == expected
    assert len(runs["seq"]) + len(steps_rows["seq"]) < len(expected) / 2
    assert store.executions(10).tolist() == [5, 15, 2, 20, 7, 1, 0, 0, 0, 2]


def test_exports_read_the_views(tmp_path):
    import json

    import pyarrow.parquet as pq

    from bdemu import open_trace
    from conftest import run_bdemu
    from trace_helpers import read_drcov
    assert run_bdemu("run", "-p", f"coverage,out={tmp_path / 'cov'}", HELLO).returncode == 0
    done = run_bdemu("record", "-o", str(tmp_path / "n.db"), "--insns", HELLO)
    assert done.returncode == 0, done.stderr
    native = tmp_path / "n.db"
    for fmt, out in (("drcov", tmp_path / "n.drcov"), ("parquet", tmp_path / "pq"), ("chrome", tmp_path / "c.json")):
        done = run_bdemu("export", str(native), "--format", fmt, "-o", str(out))
        assert done.returncode == 0, done.stderr
    _, modules, entries = read_drcov(str(tmp_path / "n.drcov"))
    _, _, expected = read_drcov(str(tmp_path / "cov"))
    assert sorted(entries) == sorted(expected)
    with open_trace(str(native)) as trace:
        for name in ("blocks", "insns"):
            table = pq.read_table(tmp_path / "pq" / f"{name}.parquet")
            seqs = table.column("seq").to_pylist()
            assert len(seqs) == trace.count(name) > 100 and seqs == sorted(seqs)
        total = int(trace.meta["instructions"])
    stamps = [e["ts"] for e in json.load(open(tmp_path / "c.json"))["traceEvents"] if e["ph"] == "X"]
    assert stamps and stamps == sorted(stamps) and all(0 < t <= total for t in stamps)
