"""The GDB remote stub (`bdemu run --gdb PORT`, `Emulator.serve_gdb`)."""
from __future__ import annotations

from .packets import parse_address
from .server import GdbServer

__all__ = ["GdbServer", "parse_address"]
