"""Trace recording and reading (`bdemu record`, `show`, `export`, `bdemu.open_trace`).

duckdb and pyarrow are imported only when a trace is written or read, so
`bdemu run` never pays for them.
"""
from __future__ import annotations


def open_trace(path: str):
    """Open a trace file written by `bdemu record`: `.meta`, `.sql(query)`, `.table(name)`."""
    from .reader import open_trace as _open
    return _open(path)


__all__ = ["open_trace"]
