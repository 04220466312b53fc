"""The DuckDB side of recording: tables created up front, rows appended in Arrow batches.

Inserting into DuckDB releases the GIL, and so does Unicorn while the guest
runs, so a writer thread turns queued column batches into Arrow tables and
inserts them while the guest keeps running. The queue is bounded: if the
guest produces events faster than DuckDB stores them, the recorder waits
instead of growing without limit. The recorder may also run its own
functions there (`call`), e.g. to encode block runs off the guest's thread.

Commits are what a trace file pays for most, not rows: each one writes the
write-ahead log, and the last one copies the log into the file (none syncs
them to the disk: a trace is a run's repeatable artifact; docs/traces.md). So the
schema is committed at once (a file killed early is still a trace file),
then rows go into a transaction that is committed once it has been open
`COMMIT_SECONDS` (checked at each write, and by an idle writer thread), and
at `close`. The last commit skips the log and
checkpoints straight into the file. Every stop the recorder sees (exit,
fault, limits, plugin errors, Ctrl-C, SIGTERM) reaches `close`; only a
hard kill (SIGKILL, power loss) loses up to `COMMIT_SECONDS` of rows.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import shutil
import threading
import time
from typing import Any, Mapping

from .schema import FORMAT_VERSION, arrow_schema, ddl, layout

_STOP = object()
COMMIT_SECONDS = 1.0
#: Bytes per block of a trace file without bulk tables. The last checkpoint writes (and zeroes) at
#: least a block per table it touches: 16 KiB blocks instead of DuckDB's default 256 KiB make it
#: ~3 ms cheaper; but millions of `mem` rows compress 4x worse in them.
SMALL_BLOCK_SIZE = 16384


def schema_template(statements: list[str], block_size: int | None) -> str | None:
    """A closed DuckDB file holding just the schema these statements make, kept in the user's cache
    (one per DuckDB version and layout): copying it takes ~2 ms, making the schema in a new file
    ~15 ms (DuckDB syncs the file twice). None if the cache cannot be used."""
    import duckdb
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base) or not os.path.isdir(os.path.dirname(base)):
        return None  # no home (HOME=/nonexistent...): make nothing outside it
    key = hashlib.sha256("\n".join([duckdb.__version__, FORMAT_VERSION, str(block_size), *statements]).encode()
                         ).hexdigest()[:20]
    directory = os.path.join(base, "bdemu")
    path = os.path.join(directory, f"trace-schema-{key}.duckdb")
    if os.path.isfile(path):
        return path
    scratch = os.path.join(directory, f".{key}-{os.getpid()}-{threading.get_ident()}.duckdb")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        con = duckdb.connect()
        try:
            attach_new(con, scratch, block_size)
            con.execute("BEGIN; " + "; ".join(statements) + "; COMMIT")
            con.execute("USE memory; DETACH trace")
        finally:
            con.close()
        os.replace(scratch, path)  # whole or not at all, also with recordings starting side by side
        return path
    except (OSError, duckdb.Error):
        for stale in (scratch, scratch + ".wal"):
            with contextlib.suppress(OSError):
                os.remove(stale)
        return None


def attach_new(con, path: str, block_size: int | None) -> None:
    """Attach (creating it) the DuckDB file `path` as `trace` and use it: with blocks of `block_size`
    bytes where this DuckDB can (1.2 and later), else of its default size."""
    import duckdb
    quoted = path.replace("'", "''")
    if block_size is not None:
        try:
            con.execute(f"ATTACH '{quoted}' AS trace (BLOCK_SIZE {block_size}); USE trace")
            return
        except duckdb.Error:
            if os.path.exists(path):
                os.remove(path)
    con.execute(f"ATTACH '{quoted}' AS trace; USE trace")


class Labels:
    """A string column given as numpy indices into `labels`; the writer thread makes it Arrow."""

    def __init__(self, indices, labels) -> None:
        self.indices, self.labels = indices, labels

    def __len__(self) -> int:
        return len(self.indices)

    def arrow(self, kind):
        import pyarrow as pa
        return pa.DictionaryArray.from_arrays(pa.array(self.indices.astype("int8")),
                                              pa.array(list(self.labels))).cast(kind)


class TraceWriter:
    """Owns one trace file: `append(table, columns)` from the recorder, `close()` at the end."""

    def __init__(self, path: str, threaded: bool = True, native: bool = False, blocks: bool = True,
                 bulk: bool = False) -> None:
        """`bulk`: tables will get millions of rows (accesses, registers), so DuckDB keeps its defaults,
        which suit big inserts and checkpoints. Otherwise it gets one thread (small inserts cost
        ~40% less; a --mem recording's would cost 1.2x bare more) and small blocks."""
        self.path = os.fspath(path)
        self._bulk = bulk
        for stale in (self.path, self.path + ".wal"):
            if os.path.exists(stale):
                os.remove(stale)
        self.con = None
        self._since: float | None = None  # when the open transaction began; None: none is open
        self._tables, self._views = layout(native, blocks)
        self.rows: dict[str, int] = {table: 0 for table in self._tables}
        self._error: BaseException | None = None
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        if threaded:  # importing duckdb and pyarrow and creating the file overlap the guest's start too
            self._queue = queue.Queue(maxsize=8)
            self._queue.put((self._open, ()))
            self._thread = threading.Thread(target=self._drain, name="bdemu-trace-writer", daemon=True)
            self._thread.start()
        else:
            self._open()

    def _open(self) -> None:
        import duckdb
        self.con = duckdb.connect(config={} if self._bulk else {"threads": 1})
        with contextlib.suppress(duckdb.Error):  # DuckDB 2.0 and later
            self.con.execute("SET fsync_mode = 'none'")
        block_size = None if self._bulk else SMALL_BLOCK_SIZE
        statements = [ddl(table, columns) for table, columns in self._tables.items()]
        statements += [f'CREATE VIEW "{view}" AS {query}' for view, query in self._views.items()]
        template = schema_template(statements, block_size)
        if template is not None:
            shutil.copyfile(template, self.path)
        # Attached to an in-memory instance: DETACH finishes the file without tearing the instance
        # down (see close).
        if template is not None:
            quoted = self.path.replace("'", "''")
            try:
                self.con.execute(f"ATTACH '{quoted}' AS trace; USE trace")
            except duckdb.Error:
                os.remove(self.path)  # a damaged cached template: make the schema here instead
                os.remove(template)
                template = None
        if template is None:
            attach_new(self.con, self.path, block_size)
            self.con.execute("BEGIN; " + "; ".join(statements) + "; COMMIT")  # one call, one log sync
            # Into the file now, while the guest runs: the last checkpoint then writes only what changed.
            self.con.execute("CHECKPOINT")
        self._schemas = {table: arrow_schema(table, columns) for table, columns in self._tables.items()}

    def append(self, table: str, columns: Mapping[str, Any]) -> None:
        """Queue rows for `table`: column name -> numpy array or list, all the same length."""
        self._check()
        count = len(next(iter(columns.values())))
        if not count:
            return
        self.rows[table] += count
        self._submit(self._insert, table, columns)

    def call(self, function, *args) -> None:
        """Run `function(*args)` in the writer thread, in order with the appends (which it may `insert`)."""
        self._check()
        self._submit(function, *args)

    def insert(self, table: str, columns: Mapping[str, Any]) -> None:
        """Store rows now: only from a function given to `call` (or without a thread)."""
        count = len(next(iter(columns.values())))
        if count:
            self.rows[table] += count
            self._insert(table, columns)

    def execute(self, sql: str, parameters: list) -> None:
        """Queue one statement (an update of rows stored already), run in order with the appends."""
        self._check()
        self._submit(self._execute, sql, parameters)

    def _execute(self, sql: str, parameters: list) -> None:
        self._transaction()
        self.con.execute(sql, parameters)

    def set_meta(self, values: Mapping[str, str]) -> None:
        """Replace `meta` rows (after everything queued before)."""
        self._submit(self._set_meta, dict(values))

    def _submit(self, function, *args) -> None:
        if self._queue is None:
            function(*args)
        else:
            self._queue.put((function, args))

    def _commit_if_old(self) -> None:
        if self._since is not None and time.monotonic() - self._since >= COMMIT_SECONDS:
            self.con.execute("COMMIT")
            self._since = None

    def _transaction(self) -> None:
        """Make sure a transaction is open (committing the open one first if it is old enough)."""
        self._commit_if_old()
        if self._since is None:
            self.con.execute("BEGIN")
            self._since = time.monotonic()

    def _set_meta(self, values: Mapping[str, str]) -> None:
        keys, texts = list(values), [str(value) for value in values.values()]
        self._transaction()
        self.con.execute("DELETE FROM meta WHERE list_contains(?, key)", [keys])
        self.con.execute("INSERT INTO meta SELECT unnest(?), unnest(?)", [keys, texts])

    def query(self, sql: str) -> list[tuple]:
        """Rows of `sql`, run in the writer thread after everything queued (the connection is its alone)."""
        rows: list[list[tuple]] = []
        self.call(lambda: rows.append(self.con.execute(sql).fetchall()))
        self.sync()
        return rows[0]

    def sync(self) -> None:
        """Wait until every queued batch is in the database."""
        if self._queue is not None:
            self._queue.join()
        self._check()

    def size(self) -> int:
        total = 0
        for name in (self.path, self.path + ".wal"):
            try:
                total += os.path.getsize(name)
            except OSError:
                pass
        return total

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        failed = self._error is not None
        try:
            self._check()
        finally:
            if self.con is not None:
                con, self.con = self.con, None
                try:
                    if self._since is not None:
                        self._since = None
                        if failed:  # an insert failed (reported by _check): keep what committed before
                            con.execute("ROLLBACK")
                        else:  # any log size triggers a checkpoint: this commit writes into the file
                            con.execute("SET checkpoint_threshold = '0b'; COMMIT")
                    con.execute("USE memory; DETACH trace")  # checkpointed, closed, unlocked: the file is done
                finally:
                    # Tearing down the (in-memory) DuckDB instance takes milliseconds and concerns no file,
                    # so it need not delay the run's end; not a daemon thread: exit waits for it.
                    threading.Thread(target=con.close, name="bdemu-trace-close").start()

    def discard(self) -> None:
        """Close without keeping anything: the file (and its log) is removed."""
        try:
            self.close()
        except RuntimeError:  # it could not even be created: nothing to remove but leftovers
            pass
        for name in (self.path, self.path + ".wal"):
            try:
                os.remove(name)
            except OSError:
                pass

    # -- internals --------------------------------------------------------------------------------
    def _check(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"cannot write trace {self.path!r}: {error}") from error

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=COMMIT_SECONDS)
            except queue.Empty:  # an idle writer still commits what it holds (a long loop inserts nothing)
                if self._error is None:
                    try:
                        self._commit_if_old()
                    except BaseException as error:
                        self._error = error
                continue
            try:
                if item is _STOP:
                    return
                if self._error is None:
                    function, args = item
                    function(*args)
            except BaseException as error:  # reported to the recorder on its next call
                self._error = error
            finally:
                self._queue.task_done()

    def _insert(self, table: str, columns: Mapping[str, Any]) -> None:
        import pyarrow as pa
        schema = self._schemas[table]
        columns = {name: value.arrow(schema.field(name).type) if isinstance(value, Labels) else value
                   for name, value in columns.items()}
        _bdemu_batch = pa.Table.from_pydict(columns, schema=schema)  # noqa: F841 (read by name below)
        self._transaction()
        # DuckDB finds the local by its name (a replacement scan): ~1 ms less per insert than
        # register()/unregister(), and a run ends with one insert per table.
        self.con.execute(f'INSERT INTO "{table}" SELECT * FROM _bdemu_batch')
