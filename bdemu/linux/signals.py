"""Signal syscalls. Dispositions and masks are recorded; delivery to guest handlers comes later."""
from __future__ import annotations

import errno

from .errors import SyscallError
from .registry import syscall

SIG_DFL, SIG_IGN = 0, 1
#: Signals whose default action is to be ignored, by name and generic number.
DEFAULT_IGNORED_NAMES = {"SIGCHLD": 17, "SIGCONT": 18, "SIGURG": 23, "SIGWINCH": 28}
DEFAULT_IGNORED = frozenset(DEFAULT_IGNORED_NAMES.values())


def default_ignored(overrides) -> frozenset[int]:
    """The default-ignored signal numbers of an ISA whose numbers differ by name (MIPS)."""
    return frozenset(overrides.get(name, number) for name, number in DEFAULT_IGNORED_NAMES.items())


class SignalState:
    """Per-process signal bookkeeping: raw sigaction records, the mask, the alternate stack."""

    def __init__(self, ignored: frozenset[int] = DEFAULT_IGNORED) -> None:
        self.ignored = ignored
        self.actions: dict[int, bytes] = {}
        self.handlers: dict[int, int] = {}
        self.mask = 0
        self.altstack = b""

    def disposition(self, signal: int) -> str:
        handler = self.handlers.get(signal, SIG_DFL)
        if handler == SIG_IGN or (handler == SIG_DFL and signal in self.ignored):
            return "ignore"
        return "default" if handler == SIG_DFL else "handler"

    def reset_for_exec(self) -> None:
        """execve keeps ignored signals ignored and resets handled ones to default."""
        for signal, handler in list(self.handlers.items()):
            if handler not in (SIG_DFL, SIG_IGN):
                del self.handlers[signal]
                self.actions.pop(signal, None)


@syscall("signal", "ptr", "ptr", "size")
def sys_rt_sigaction(k, signal, action, old_action, size):
    state = k.signals
    if not 0 < signal < 65 or signal in (9, 19) and action:
        raise SyscallError(errno.EINVAL)
    record_size = k.arch.sigaction_size
    if old_action:
        k.write(old_action, state.actions.get(signal, bytes(record_size)))
    if action:
        record = k.read(action, record_size)
        state.actions[signal] = record
        offset = k.arch.sigaction_handler_offset
        state.handlers[signal] = int.from_bytes(record[offset:offset + k.word], k.byteorder)
    return 0


@syscall("int", "ptr", "ptr", "size")
def sys_rt_sigprocmask(k, how, new, old, size):
    state = k.signals
    if old:
        k.write(old, state.mask.to_bytes(8, k.byteorder))
    if new:
        value = int.from_bytes(k.read(new, 8), k.byteorder)
        how -= k.arch.variants.get("sigprocmask_how_base", 0)  # MIPS: SIG_BLOCK is 1
        if how == 0:
            state.mask |= value
        elif how == 1:
            state.mask &= ~value
        elif how == 2:
            state.mask = value
        else:
            raise SyscallError(errno.EINVAL)
    return 0


@syscall("ptr", "ptr")
def sys_sigaltstack(k, new, old):
    size = 3 * k.word if k.word == 4 else 24
    if old:
        k.write(old, k.signals.altstack or (2).to_bytes(4, k.byteorder).rjust(size, b"\0")[:size])
    if new:
        k.signals.altstack = k.read(new, size)
    return 0


@syscall("ptr", "size")
def sys_rt_sigsuspend(k, mask, size):
    raise SyscallError(errno.EINTR)
