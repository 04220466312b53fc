"""`bdemu show TRACE`: what ran, how it ended, how much was recorded, where the time went."""
from __future__ import annotations

import json

from .schema import TABLES


def disassembler(arch_name: str, mode: str | None = None):
    """A Capstone instance for the trace's ISA (in instruction set `mode`, a `code.mode` value,
    where the ISA has two), or None if this bdemu does not know it."""
    try:
        import capstone

        from ..cpu import by_name
        arch = by_name(arch_name)
        modes = arch.code_modes
        return capstone.Cs(arch.cs_arch, arch.cs_mode if modes is None else modes.cs_mode_named(mode, arch.cs_mode))
    except Exception:
        return None


def code_rows(trace) -> str:
    """SELECT of the `code` table's pc, size, bytes, mode (NULL in files from before `mode`)."""
    mode = "mode" if "mode" in trace.columns("code") else "NULL::VARCHAR AS mode"
    return f"SELECT pc, size, bytes, {mode} FROM code"


def disassemble(cs, code: bytes, pc: int, limit: int = 4) -> str:
    if cs is None or not code:
        return "?"
    parts = [f"{m} {o}".strip() for _, _, m, o in cs.disasm_lite(code, pc)]
    text = "; ".join(parts[:limit])
    return text + (f"; … (+{len(parts) - limit})" if len(parts) > limit else "")


def module_of(modules: list, pc: int, tables: dict | None = None) -> str:
    """`module!symbol+0x12` (from the module file's symbols, if it is still there) or `module+0x...`."""
    import os

    from ..loaders.symbols import read_symbols
    for path, base, end, bias in modules:
        if base <= pc < end:
            if tables is not None:
                table = tables.get(path) or tables.setdefault(path, read_symbols(path))
                found = table.nearest(pc - bias)
                if found is not None:
                    return f"{os.path.basename(path)}!{found[0]}" + (f"+{found[1]:#x}" if found[1] else "")
            return f"{os.path.basename(path)}+{pc - base:#x}"
    return ""


def render(trace, top: int = 10) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    meta = trace.meta
    argv = json.loads(meta.get("argv", "[]") or "[]")
    summary = Table(title=f"trace {trace.path}", show_header=False)
    summary.add_column(style="bold")
    summary.add_column()
    ended = f"{meta.get('reason', '?')} (exit status {meta.get('exit_code', '?')})"
    if meta.get("message"):
        ended += f": {meta['message']}"
    for key, value in (("guest", meta.get("guest", "?")), ("arch", meta.get("arch", "?")),
                       ("argv", " ".join(argv)), ("ended", ended),
                       ("instructions", f"{int(meta.get('instructions') or 0):,}"),
                       ("seconds", meta.get("seconds", "?"))):
        summary.add_row(key, escape(value))
    console.print(summary)

    counts = Table(title="rows per table")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    for name in TABLES:
        if name in trace.tables and name not in ("meta", "code"):
            counts.add_row(name, f"{trace.count(name):,}")
    console.print(counts)

    disassemblers: dict = {}
    bias = "coalesce(bias, 0)" if "bias" in trace.columns("modules") else "0"  # files from before `bias`
    modules = trace.con.execute(f'SELECT path, base, "end", {bias} FROM modules ORDER BY id').fetchall()
    tables: dict = {}
    hot = trace.con.execute(
        f"SELECT b.pc, b.size, b.n, c.bytes, c.mode FROM ({trace.block_counts_query()} "
        f"ORDER BY n DESC, pc LIMIT ?) b LEFT JOIN ({code_rows(trace)}) c USING (pc, size) "
        "ORDER BY b.n DESC, b.pc", [top]).fetchall()
    if hot:
        blocks = Table(title=f"top {len(hot)} blocks")
        for column in ("pc", "where", "size", "executions", "code"):
            blocks.add_column(column, justify="right" if column in ("size", "executions") else "left")
        for pc, size, n, code, mode in hot:
            if mode not in disassemblers:
                disassemblers[mode] = disassembler(trace.arch, mode)
            blocks.add_row(f"{pc:#x}", module_of(modules, pc, tables), str(size), f"{n:,}",
                           escape(disassemble(disassemblers[mode], code, pc)))
        console.print(blocks)

    calls = trace.con.execute(
        "SELECT name, count(*), count(*) FILTER (WHERE ret < 0 AND ret > -4096) FROM syscalls "
        "GROUP BY name ORDER BY count(*) DESC, name").fetchall()
    if calls:
        table = Table(title="syscalls")
        table.add_column("name")
        table.add_column("calls", justify="right")
        table.add_column("errors", justify="right")
        for name, n, errors in calls:
            table.add_row(escape(name), f"{n:,}", f"{errors:,}")
        console.print(table)

    doors = trace.con.execute("SELECT kind, count(*) FROM backdoor GROUP BY kind ORDER BY kind").fetchall()
    if doors:
        table = Table(title="backdoor calls")
        table.add_column("kind")
        table.add_column("calls", justify="right")
        for kind, n in doors:
            table.add_row(kind, f"{n:,}")
        console.print(table)
