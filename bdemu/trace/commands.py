"""The bodies of `bdemu record`, `bdemu show` and `bdemu export`; bdemu/cli.py only parses options."""
from __future__ import annotations

import os
import sys

from ..errors import UsageError


def need_trace_libraries() -> None:
    try:
        import duckdb  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as error:
        raise UsageError(f"traces need duckdb and pyarrow ({error.name} is missing): "
                         "pip install 'bdemu[trace]'") from None


def record(emu_factory, plugin_specs, trace: str, max_insns, timeout, *, insns: bool, mem: bool,
           regs: bool, no_blocks: bool, data_bytes: int):
    """Record one run of the guest into `trace`; returns (emulator, RunResult)."""
    from .recorder import RecordOptions, make_recorder
    from .stop import stop_on_signals
    need_trace_libraries()
    if data_bytes < 0:
        raise UsageError("--data-bytes must be 0 or more")
    parent = os.path.dirname(os.path.abspath(trace))
    if not os.path.isdir(parent):
        raise UsageError(f"cannot write trace {trace!r}: no directory {parent!r}")
    if os.path.isdir(trace):
        raise UsageError(f"cannot write trace {trace!r}: it is a directory")
    options = RecordOptions(blocks=not no_blocks, insns=insns, mem=mem, regs=regs, data_bytes=data_bytes)
    recorder = make_recorder(trace, options)
    recorder.open()  # DuckDB starts in the writer thread while the guest loads
    try:
        emu = emu_factory()
        emu.add_plugin(recorder)  # first: it sees backdoor data before other plugins
        for name, plugin_options in plugin_specs:
            emu.add_plugin(name, **plugin_options)
    except BaseException:
        recorder.discard()  # no run, no trace file
        raise
    with stop_on_signals(emu):
        return emu, emu.run(max_insns=max_insns, timeout=timeout)


def open_for_cli(path: str):
    from .reader import Trace
    need_trace_libraries()
    try:
        return Trace(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such trace file") from None
    except ValueError as error:
        raise UsageError(str(error)) from None


def show(path: str, top: int = 10) -> None:
    from .show import render
    with open_for_cli(path) as trace:
        render(trace, top)


def export(path: str, fmt: str, out: str) -> None:
    from .export import EXPORTERS
    with open_for_cli(path) as trace:
        try:
            EXPORTERS[fmt](trace, out)
        except OSError as error:  # the output: like `record -o` into a missing directory
            raise UsageError(f"cannot write {out!r}: {error.strerror or error}") from None
    print(f"bdemu: wrote {out}", file=sys.stderr)
