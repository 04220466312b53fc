"""bdemu: run Linux ELF guests on Unicorn, watch them with plugins, and let them talk to Python."""
from __future__ import annotations

from .emulator import Emulator, RunResult
from .errors import BdemuError, GuestNotFound, NotExecutable, PluginError, RunStopped, UsageError
from .hooks import Plugin

__version__ = "0.1.0"


def open_trace(path: str):
    """Open a trace file written by `bdemu record` (see bdemu.trace)."""
    from .trace import open_trace as _open
    return _open(path)


__all__ = ["Emulator", "Plugin", "RunResult", "open_trace", "BdemuError", "GuestNotFound",
           "NotExecutable", "PluginError", "RunStopped", "UsageError", "__version__"]
