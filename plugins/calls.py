"""Function calls by symbol, as a tree (like ltrace): arguments, caller and return value."""
from __future__ import annotations

from bdemu import Plugin


class Calls(Plugin):
    """Function calls by symbol, as a tree (like ltrace): arguments, caller and return value."""

    name = "calls"
    options = {
        "match": (str, "*", "functions to trace: a glob on the symbol name, or MODULE!GLOB (e.g. libc.so.6!str*)"),
        "args": (int, 3, "how many arguments to show"),
        "ret": (bool, True, "also show each call's return value"),
        "strings": (int, 32, "show an argument that points to a printable C string as that string, up to this "
                             "many bytes (0: never)"),
        "limit": (int, 0, "stop after this many calls (0: no limit)"),
        "out": (str, "", "write to this file instead of the plugin output"),
    }

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.calls = 0
        self._depth: dict[int, int] = {}

    def on_start(self, emu) -> None:
        self._out = self.open_output(emu, self.out)
        emu.hook_function(self.match, self._entered, self._returned if self.ret else None)

    def _entered(self, emu) -> None:
        if self.limit and self.calls >= self.limit:
            return
        self.calls += 1
        depth = self._depth.get(emu.tid, 0)
        arguments = ", ".join(self._show(emu, emu.functions.argument(i)) for i in range(self.args))
        caller = emu.symbolize(emu.functions.return_address()) or f"{emu.functions.return_address():#x}"
        print(f"{'  ' * depth}{self._name(emu, emu.pc)}({arguments}) from {caller}", file=self._out)
        if self.ret:
            self._depth[emu.tid] = depth + 1

    def _returned(self, emu, result: int) -> None:
        depth = self._depth.get(emu.tid, 0)
        if not depth:  # its entry was over the limit
            return
        self._depth[emu.tid] = depth - 1
        print(f"{'  ' * (depth - 1)}= {result:#x}", file=self._out)

    def _show(self, emu, value: int) -> str:
        """The value in hex, or the C string it points to (ltrace's guess at a `char *`)."""
        if self.strings and value >= 0x1000:
            try:
                data = emu.read_memory(value, self.strings + 1)
            except Exception:
                data = b""
            text, nul, _ = data.partition(b"\0")
            if text and all(32 <= byte < 127 or byte in (9, 10) for byte in text):
                shown = text[:self.strings].decode().replace("\\", "\\\\").replace('"', '\\"')
                shown = shown.replace("\n", "\\n").replace("\t", "\\t")
                return f'"{shown}"' + ("" if nul else "...")
        return f"{value:#x}"

    @staticmethod
    def _name(emu, address: int) -> str:
        name = emu.symbolize(address) or f"{address:#x}"
        return name.split("!", 1)[-1]

    def on_exit(self, emu, result) -> None:
        if not self.calls:
            print(f"calls: no call to a function matching {self.match!r} (a stripped program has only its "
                  "exported symbols)", file=self._out)
        if self.out:
            self._out.close()
        else:
            self._out.flush()
