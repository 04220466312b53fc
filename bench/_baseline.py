"""The bare-Unicorn baseline for the plugin benchmarks: the lead's `bench/_bare.py`, under the agreed name."""
from __future__ import annotations

from _bare import bare_unicorn_seconds, bdemu_seconds

__all__ = ["bare_unicorn_seconds", "bdemu_seconds"]
