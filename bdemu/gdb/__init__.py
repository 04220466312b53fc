"""The GDB remote stub (`bdemu run --gdb PORT`, `Emulator.serve_gdb`)."""
from __future__ import annotations

from .server import GdbServer, parse_address

__all__ = ["GdbServer", "parse_address"]
