"""Reading a trace: `bdemu.open_trace(path)` -> `Trace` with `.meta`, `.sql()`, `.table()`.

The file is opened read-only, so a notebook can hold it open while another
process reads it too. Anything DuckDB can do works through `.sql()`;
`.con` is the DuckDB connection for the rest.
"""
from __future__ import annotations

import json
import os

from .schema import TABLES


#: Row counts of the native layout's views, from what they expand (see schema.py).
_EXECUTIONS = "SELECT id, 1 AS n FROM block_steps UNION ALL SELECT id, reps FROM block_runs"
_STORED_COUNTS = {
    "blocks": f"SELECT sum(n) FROM ({_EXECUTIONS})",
    "insns": f"SELECT sum(e.n * i.k) FROM ({_EXECUTIONS}) e "
             "JOIN (SELECT block, count(*) AS k FROM insn_info GROUP BY block) i ON i.block = e.id",
}


class Trace:
    """One recording. `meta` is a dict of strings; `table(name)` and `sql(query)` return pyarrow tables."""

    def __init__(self, path: str) -> None:
        import duckdb
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"{self.path}: no such trace file")
        try:
            self.con = duckdb.connect(self.path, read_only=True)
        except duckdb.Error as error:
            raise ValueError(f"{self.path}: not a bdemu trace ({error})") from None
        self.tables = [row[0] for row in self.con.execute(
            "SELECT table_name FROM information_schema.tables ORDER BY table_name").fetchall()]
        if "meta" not in self.tables:
            self.con.close()
            raise ValueError(f"{self.path}: not a bdemu trace (no meta table)")
        self.meta: dict[str, str] = dict(self.con.execute("SELECT key, value FROM meta").fetchall())

    def sql(self, query: str, params=None):
        """Run a query; the result as a pyarrow Table."""
        relation = self.con.sql(query, params=params)
        if relation is None:  # a statement without a result
            import pyarrow as pa
            return pa.table({})
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # duckdb 2 / 1
        return fetch()

    def table(self, name: str):
        """A whole table as a pyarrow Table (in `seq` order when it has one)."""
        if name not in self.tables:
            raise KeyError(f"no table {name!r} in {self.path} (have: {', '.join(self.tables)})")
        order = ' ORDER BY seq' if any(c == "seq" for c, _ in TABLES.get(name, ())) else ""
        return self.sql(f'SELECT * FROM "{name}"{order}')

    def columns(self, name: str) -> list[str]:
        """The column names of table `name` (files from older bdemus may lack newer ones)."""
        return [row[0] for row in self.con.execute(f'SELECT * FROM "{name}" LIMIT 0').description]

    def count(self, name: str) -> int:
        """Rows of a table or view; `blocks` and `insns` of a native recording without expanding them."""
        if name in _STORED_COUNTS and "block_runs" in self.tables:
            if name == "blocks" and not json.loads(self.meta.get("options") or "{}").get("blocks", True):
                return 0
            return int(self.con.execute(_STORED_COUNTS[name]).fetchone()[0] or 0)
        return self.con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]

    def block_counts_query(self) -> str:
        """SQL for (pc, size, n): how often each distinct block ran; no expansion of a native recording."""
        if "block_runs" in self.tables and json.loads(self.meta.get("options") or "{}").get("blocks", True):
            return (f"SELECT i.pc, i.size, sum(e.n)::BIGINT AS n FROM ({_EXECUTIONS}) e "
                    "JOIN block_info i USING (id) GROUP BY i.pc, i.size")
        return "SELECT pc, size, count(*) AS n FROM blocks GROUP BY pc, size"

    @property
    def arch(self) -> str:
        return self.meta.get("arch", "")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Trace":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Trace {self.path!r} {self.meta.get('guest', '?')} {self.meta.get('reason', '?')}>"


def open_trace(path: str) -> Trace:
    return Trace(path)
