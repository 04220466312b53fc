"""Does nothing: loading it must cost nothing (the overhead baseline)."""
from __future__ import annotations

from bdemu import Plugin


class Empty(Plugin):
    """Does nothing: loading it must cost nothing (the overhead baseline)."""

    name = "empty"
