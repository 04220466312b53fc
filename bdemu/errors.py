"""Errors of the public API, each tied to the exit status the CLI reports for it."""
from __future__ import annotations


class BdemuError(Exception):
    """Base class; `exit_status` is what `bdemu run` exits with."""

    exit_status = 125


class UsageError(BdemuError):
    exit_status = 2


class GuestNotFound(BdemuError):
    exit_status = 127


class NotExecutable(BdemuError):
    exit_status = 126


class RunStopped(BdemuError):
    """bdemu stopped the run: a plugin raised, an invalid backdoor request, strict mode."""

    exit_status = 125


class StrictError(RunStopped):
    pass


class PluginError(RunStopped):
    pass
