"""Count syscalls by name (a user-style plugin: one class, reporting at exit)."""
from collections import Counter

from bdemu import Plugin


class SysCount(Plugin):
    """Count syscalls by name."""

    options = {"top": (int, 5, "how many names to show")}

    def __init__(self, **options):
        super().__init__(**options)
        self.calls = Counter()

    def on_syscall(self, emu, number, args):
        self.calls[emu.syscall_name(number)] += 1

    def on_exit(self, emu, result):
        for name, count in self.calls.most_common(self.top):
            print(f"syscount: {name} {count}", file=emu.output)
