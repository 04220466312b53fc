"""The trace file's tables (SPEC section 5), as DuckDB DDL and matching Arrow schemas.

`TABLES` is what readers see. A recording made by the native stream (every
mode but `--regs` and `--mem --insns`) stores the block stream compactly and
makes `blocks` and `insns` views over that storage (`STORED`, `VIEWS`): a
loop's body is one `block_runs` row per block however often it ran, other
blocks are one narrow `block_steps` row each, and instructions are never
stored, only each distinct block's list. Plain DuckDB expands the views on
query, so `SELECT ... FROM blocks` reads the same from either layout, in
`seq` order like a table (the views sort, which a count or a histogram
can avoid by reading the stored tables).

`format_version` in `meta` changes whenever a column changes meaning. New
columns and tables may be added without bumping it; readers select columns
by name.
"""
from __future__ import annotations

FORMAT_VERSION = "1"

#: `mem.access`: 'r' or 'w', stored as one byte (reads and compares like VARCHAR).
ACCESS = "ENUM('r', 'w')"

#: table -> ((column, DuckDB type), ...), in column order.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "meta": (("key", "VARCHAR"), ("value", "VARCHAR")),
    "modules": (("id", "INTEGER"), ("path", "VARCHAR"), ("base", "UBIGINT"), ("end", "UBIGINT"),
                ("entry", "UBIGINT"), ("bias", "UBIGINT")),
    "blocks": (("seq", "UBIGINT"), ("pc", "UBIGINT"), ("size", "UINTEGER")),
    "insns": (("seq", "UBIGINT"), ("pc", "UBIGINT"), ("size", "UTINYINT")),
    "mem": (("seq", "UBIGINT"), ("pc", "UBIGINT"), ("access", ACCESS), ("address", "UBIGINT"),
            ("size", "UTINYINT"), ("value", "UBIGINT")),
    "syscalls": (("seq", "UBIGINT"), ("pc", "UBIGINT"), ("nr", "BIGINT"), ("name", "VARCHAR"),
                 ("args", "UBIGINT[]"), ("ret", "BIGINT"), ("tid", "BIGINT")),
    "backdoor": (("seq", "UBIGINT"), ("pc", "UBIGINT"), ("kind", "VARCHAR"), ("cmd", "UBIGINT"),
                 ("i8", "INTEGER"), ("v32", "UBIGINT"), ("data", "BLOB")),
    # Register values at the start of instruction `seq` that changed since the previous one
    # (all of them at the first recorded instruction): Tenet's model. Only with --regs.
    "regs": (("seq", "UBIGINT"), ("name", "VARCHAR"), ("value", "UBIGINT")),
    # The bytes of every distinct executed block, so `show` and exporters need no guest file;
    # `mode`: its instruction set where the ISA has two ('arm' or 'thumb'), else NULL.
    "code": (("pc", "UBIGINT"), ("size", "UINTEGER"), ("bytes", "BLOB"), ("mode", "VARCHAR")),
}


#: The native layout's storage of the block stream.
STORED: dict[str, tuple[tuple[str, str], ...]] = {
    # Block `id` ran at seq `seq` (blocks outside loops).
    "block_steps": (("seq", "UBIGINT"), ("id", "UINTEGER")),
    # Block `id` ran `reps` times, at seq `seq`, `seq + span`, ... (a loop: one row per block of its body).
    "block_runs": (("seq", "UBIGINT"), ("reps", "BIGINT"), ("span", "UBIGINT"), ("id", "UINTEGER")),
    # The instructions of each distinct block (--insns): instruction `idx` has seq `block's seq + 1 + idx`.
    "insn_info": (("block", "UINTEGER"), ("idx", "UINTEGER"), ("pc", "UBIGINT"), ("size", "UTINYINT")),
}

#: The native layout numbers every distinct executed block: `code.id` (a column the other layout lacks).
CODE_ID = ("id", "UINTEGER")

#: The native layout's views: block ids, the block stream as (seq, id), then `blocks` and `insns` as in
#: TABLES. (Each a view of what it needs: a table the last checkpoint writes costs ~1.5 ms more.)
VIEWS: dict[str, str] = {
    "block_info": "SELECT id, pc, size FROM code",
    # (unnest in the select list: ten times faster in DuckDB than a lateral join with range())
    "block_seq": "SELECT seq, id FROM block_steps UNION ALL "
                 "SELECT r.seq + r.span * unnest(range(r.reps))::UBIGINT, r.id FROM block_runs r",
    "blocks": "SELECT s.seq, i.pc, i.size FROM block_seq s JOIN block_info i ON i.id = s.id ORDER BY s.seq",
    "insns": "SELECT s.seq + 1 + n.idx AS seq, n.pc, n.size FROM block_seq s JOIN insn_info n ON n.block = s.id "
             "ORDER BY seq",
}


def layout(native: bool, blocks: bool = True) -> tuple[dict, dict]:
    """(tables, views) to create for a recording; `blocks=False` leaves the `blocks` view empty."""
    if not native:
        return dict(TABLES), {}
    tables = {name: columns for name, columns in TABLES.items() if name not in VIEWS}
    tables["code"] = (*tables["code"], CODE_ID)
    tables.update(STORED)
    views = dict(VIEWS)
    if not blocks:
        views["blocks"] = views["blocks"].replace(" ORDER BY", " WHERE false ORDER BY")
    return tables, views


def ddl(table: str, columns=None) -> str:
    columns = ", ".join(f'"{name}" {kind}' for name, kind in (columns or TABLES[table]))
    return f'CREATE TABLE IF NOT EXISTS "{table}" ({columns})'


def arrow_schema(table: str, columns=None):
    import pyarrow as pa
    kinds = {"VARCHAR": pa.string(), "UBIGINT": pa.uint64(), "BIGINT": pa.int64(),
             "INTEGER": pa.int32(), "UINTEGER": pa.uint32(), "UTINYINT": pa.uint8(),
             "BLOB": pa.binary(), "UBIGINT[]": pa.list_(pa.uint64()), ACCESS: pa.dictionary(pa.int8(), pa.string())}
    return pa.schema([(name, kinds[kind]) for name, kind in (columns or TABLES[table])])
