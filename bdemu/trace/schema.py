"""The trace file's tables (SPEC section 5), as DuckDB DDL and matching Arrow schemas.

`format_version` in `meta` changes whenever a column changes meaning. New
columns and tables may be added without bumping it; readers select columns
by name.
"""
from __future__ import annotations

FORMAT_VERSION = "1"

#: table -> ((column, DuckDB type), ...), in column order.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "meta": (("key", "VARCHAR"), ("value", "VARCHAR")),
    "modules": (("id", "INTEGER"), ("path", "VARCHAR"), ("base", "UBIGINT"), ("end", "UBIGINT"),
                ("entry", "UBIGINT"), ("bias", "UBIGINT")),
    "blocks": (("seq", "UBIGINT"), ("pc", "UBIGINT"), ("size", "UINTEGER")),
    "insns": (("seq", "UBIGINT"), ("pc", "UBIGINT"), ("size", "UTINYINT")),
    "mem": (("seq", "UBIGINT"), ("pc", "UBIGINT"), ("access", "VARCHAR"), ("address", "UBIGINT"),
            ("size", "UTINYINT"), ("value", "UBIGINT")),
    "syscalls": (("seq", "UBIGINT"), ("pc", "UBIGINT"), ("nr", "BIGINT"), ("name", "VARCHAR"),
                 ("args", "UBIGINT[]"), ("ret", "BIGINT")),
    "backdoor": (("seq", "UBIGINT"), ("pc", "UBIGINT"), ("kind", "VARCHAR"), ("cmd", "UBIGINT"),
                 ("i8", "INTEGER"), ("v32", "UBIGINT"), ("data", "BLOB")),
    # Register values at the start of instruction `seq` that changed since the previous one
    # (all of them at the first recorded instruction): Tenet's model. Only with --regs.
    "regs": (("seq", "UBIGINT"), ("name", "VARCHAR"), ("value", "UBIGINT")),
    # The bytes of every distinct executed block, so `show` and exporters need no guest file.
    "code": (("pc", "UBIGINT"), ("size", "UINTEGER"), ("bytes", "BLOB")),
}


def ddl(table: str) -> str:
    columns = ", ".join(f'"{name}" {kind}' for name, kind in TABLES[table])
    return f'CREATE TABLE IF NOT EXISTS "{table}" ({columns})'


def arrow_schema(table: str):
    import pyarrow as pa
    kinds = {"VARCHAR": pa.string(), "UBIGINT": pa.uint64(), "BIGINT": pa.int64(),
             "INTEGER": pa.int32(), "UINTEGER": pa.uint32(), "UTINYINT": pa.uint8(),
             "BLOB": pa.binary(), "UBIGINT[]": pa.list_(pa.uint64())}
    return pa.schema([(name, kinds[kind]) for name, kind in TABLES[table]])
