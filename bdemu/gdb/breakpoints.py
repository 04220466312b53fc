"""The client's breakpoints and watchpoints (`Z` and `z` packets) as Unicorn hooks: the guest's
memory is never patched, so the client reads the guest's own code, and a forked child or an
exec'd program drops them with the hooks."""
from __future__ import annotations

from typing import Callable

from unicorn import UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE

#: Z packet kinds of a breakpoint: software and hardware are the same code hook here.
BREAK_KINDS = ("0", "1")
#: Z packet kind -> (the Unicorn hooks of that watchpoint, the stop reply's name for it).
WATCH_KINDS = {"2": ((UC_HOOK_MEM_WRITE,), b"watch"), "3": ((UC_HOOK_MEM_READ,), b"rwatch"),
               "4": ((UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE), b"awatch")}


class Breakpoints:
    """One emulator's breakpoints and watchpoints. `hit()` runs in a breakpoint's code hook,
    before its instruction; `watched(reply_extra)` in a watchpoint's memory hook, during the access."""

    def __init__(self, uc, hit: Callable[[], None], watched: Callable[[bytes], None]) -> None:
        self.uc = uc
        self.hit = hit
        self.watched = watched
        #: (Z kind, address, length) -> its Unicorn hooks
        self.hooks: dict[tuple[str, int, int], list[int]] = {}

    def packet(self, insert: bool, body: str) -> bytes:
        """The reply to `Z<body>` (insert) or `z<body>`: KIND,ADDRESS,LENGTH[;conditions]."""
        kind, address, length = body.split(",", 2)
        address, length = int(address, 16), int(length.split(";")[0], 16)
        if kind in BREAK_KINDS:
            key = (kind, address, 1)
            hooks = [(UC_HOOK_CODE, self._code_hook)]
        elif kind in WATCH_KINDS and length:
            key = (kind, address, length)
            hooks = [(hook, self._memory_hook(WATCH_KINDS[kind][1], address)) for hook in WATCH_KINDS[kind][0]]
        else:
            return b""
        if insert and key not in self.hooks:
            self.hooks[key] = [self.uc.hook_add(hook, callback, begin=address, end=address + length - 1)
                               for hook, callback in hooks]
        elif not insert and key in self.hooks:
            for handle in self.hooks.pop(key):
                self.uc.hook_del(handle)
        if kind in BREAK_KINDS:
            self.uc.ctl_remove_cache(address, address + 1)  # translated code gets (or loses) the hook
        return b"OK"

    def clear(self) -> None:
        for handles in self.hooks.values():
            for handle in handles:
                self.uc.hook_del(handle)
        self.hooks.clear()

    def _code_hook(self, uc, address: int, size: int, _user) -> None:
        self.hit()

    def _memory_hook(self, name: bytes, start: int):
        def hook(uc, access, address, size, value, _user) -> None:
            self.watched(b"%s:%x;" % (name, max(address, start)))
        return hook
