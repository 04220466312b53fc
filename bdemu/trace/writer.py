"""The DuckDB side of recording: tables created up front, rows appended in Arrow batches.

Inserting into DuckDB releases the GIL, and so does Unicorn while the guest
runs, so a writer thread turns queued column batches into Arrow tables and
inserts them while the guest keeps running. The queue is bounded: if the
guest produces events faster than DuckDB stores them, the recorder waits
instead of growing without limit. The recorder may also run its own
functions there (`call`), e.g. to encode block runs off the guest's thread.
During the run every batch is committed when inserted; at the end (`hold`)
the last batches and `meta` go in one transaction, committed by `close`, so
a file opened after any kind of stop holds everything recorded before it.
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Any, Mapping

from .schema import arrow_schema, ddl, layout

_STOP = object()


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

    def __init__(self, path: str, threaded: bool = True, native: bool = False, blocks: bool = True) -> None:
        self.path = os.fspath(path)
        for stale in (self.path, self.path + ".wal"):
            if os.path.exists(stale):
                os.remove(stale)
        self.con = None
        self._held = False
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
        self.con = duckdb.connect(self.path)
        self.con.execute("BEGIN")  # one commit (one WAL sync) for the whole schema
        for table, columns in self._tables.items():
            self.con.execute(ddl(table, columns))
        for view, query in self._views.items():
            self.con.execute(f'CREATE VIEW "{view}" AS {query}')
        self.con.execute("COMMIT")
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

    def set_meta(self, values: Mapping[str, str]) -> None:
        """Replace `meta` rows (after everything queued before)."""
        self._submit(self._set_meta, dict(values))

    def _submit(self, function, *args) -> None:
        if self._queue is None:
            function(*args)
        else:
            self._queue.put((function, args))

    def hold(self) -> None:
        """From here to `close`, store everything in one transaction: one WAL sync, not one per batch
        (each costs milliseconds, as much as a whole loop's rows). For the end of a run."""
        self._submit(self._begin)

    def _begin(self) -> None:
        self.con.execute("BEGIN")
        self._held = True

    def _set_meta(self, values: Mapping[str, str]) -> None:
        keys, texts = list(values), [str(value) for value in values.values()]
        if not self._held:
            self.con.execute("BEGIN")
        self.con.execute("DELETE FROM meta WHERE list_contains(?, key)", [keys])
        self.con.execute("INSERT INTO meta SELECT unnest(?), unnest(?)", [keys, texts])
        if not self._held:
            self.con.execute("COMMIT")

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
        try:
            self._check()
        finally:
            if self.con is not None:
                if self._held:
                    self._held = False
                    try:
                        self.con.execute("COMMIT")
                    except Exception:  # an insert failed (reported by _check): keep what committed before
                        self.con.execute("ROLLBACK")
                self.con.execute("CHECKPOINT")
                self.con.close()

    # -- internals --------------------------------------------------------------------------------
    def _check(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"cannot write trace {self.path!r}: {error}") from error

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
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
        batch = pa.Table.from_pydict(columns, schema=schema)
        self.con.register("_bdemu_batch", batch)
        try:
            self.con.execute(f'INSERT INTO "{table}" SELECT * FROM _bdemu_batch')
        finally:
            self.con.unregister("_bdemu_batch")
