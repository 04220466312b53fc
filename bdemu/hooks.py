"""The plugin API (`Plugin`, the hook specification) and the hook bus that feeds it.

Only the hooks some plugin overrides are installed in Unicorn, one Unicorn
hook per event kind, fanning out over a prebuilt tuple of bound methods. A
plugin that overrides none of the per-instruction hooks adds no
per-instruction cost.
"""
from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import PluginError, RunStopped, UsageError

if TYPE_CHECKING:
    from .emulator import Emulator, RunResult


class Plugin:
    """Base class of every plugin. Override the `on_*` hooks you need; the rest cost nothing.

    Options: declare them as class attribute `options = {"name": (type, default, "help")}`;
    `--plugin NAME,key=value` and `add_plugin(NAME, key=value)` pass them as keyword
    arguments to `__init__`, converted to the declared type; the base `__init__`
    stores each as an attribute. A keyword parameter of the plugin's own `__init__`
    takes an option too (converted by its annotation or default: bool, int, float;
    else the string). Hooks an instance does not need after all (it
    depends on its options) can be switched off in `__init__` by setting them to
    None: only hooks some plugin still implements are installed.
    """

    #: Short name (defaults to the module or class name).
    name: ClassVar[str] = ""
    #: Declared options: name -> (type, default, help).
    options: ClassVar[dict[str, tuple[type, Any, str]]] = {}

    def __init__(self, **options: Any) -> None:
        for key, (kind, default, _) in type(self).options.items():
            setattr(self, key, options.pop(key, default))
        if options:
            raise UsageError(f"plugin {self.plugin_name()}: unknown option {sorted(options)[0]!r}")

    @classmethod
    def plugin_name(cls) -> str:
        return cls.name or cls.__name__.lower()

    def open_output(self, emu: "Emulator", path: str = "", binary: bool = False):
        """Where to report: the file `path` if given (the plugin closes it), else `emu.output`.

        With `binary`, the byte stream beneath `emu.output` (flushed first), for
        plugins that write a lot and format into bytes.
        """
        if path:
            try:
                return open(path, "wb" if binary else "w")
            except OSError as error:
                raise UsageError(f"plugin {self.plugin_name()}: cannot write {path!r}: {error.strerror}") from None
        stream = emu.output
        if binary:
            stream.flush()
            return getattr(stream, "buffer", stream)
        return stream

    def on_start(self, emu: "Emulator") -> None:
        """Once, after loading and before the guest's first instruction."""

    def on_block(self, emu: "Emulator", address: int, size: int) -> None:
        """Before each basic block runs, registers live. Costs a Python call per block (~0.6 us).

        Prefer `on_block_batch` or `on_block_counts` unless you need the registers.
        """

    def on_block_batch(self, emu: "Emulator", pcs, sizes) -> None:
        """Executed blocks in execution order, in batches: `pcs` (uint64) and `sizes` (uint32, bytes).

        Gathered by a native hook (a few ns per block) and delivered every 65536
        blocks and at the end of the run (before `on_exit`), so registers are *not*
        those of these blocks. The arrays are yours to keep. The last block of a
        run that ends by a fault or a limit may have run only in part.
        """

    def on_block_counts(self, emu: "Emulator", pcs, sizes, counts) -> None:
        """Once, at the end of the run (before `on_exit`): every distinct block executed, with counts.

        Numpy arrays sorted by pc; `counts[i]` is how often the block (`pcs[i]`,
        `sizes[i]` bytes) ran. Counted natively in a hash table: the cheapest
        hook after none at all. Use `emu.disassemble(pc, size)` for its instructions.
        """

    def on_insn(self, emu: "Emulator", address: int, size: int) -> None:
        """Before each instruction, registers live. Exact, and the most expensive hook (~0.6 us each)."""

    def on_mem_read(self, emu: "Emulator", address: int, size: int) -> None:
        """Before each guest memory read (a Python call per access)."""

    def on_mem_write(self, emu: "Emulator", address: int, size: int, value: int) -> None:
        """Before each guest memory write, with the value being written (a Python call per access)."""

    def on_mem_batch(self, emu: "Emulator", accesses) -> None:
        """Guest memory accesses in order, in batches: a numpy structured array.

        Fields: `pc`, `address`, `value`, `size`, `write` (0 read, 1 write). A
        read is recorded after it happened, with the value read. Gathered natively
        and delivered every 65536 accesses and at the end of the run.
        """

    def on_syscall(self, emu: "Emulator", number: int, args: tuple[int, ...]) -> None:
        """Before a syscall runs; `args` are the six raw argument registers. See `emu.syscall_name`."""

    def on_syscall_return(self, emu: "Emulator", number: int, result: int) -> None:
        """After a syscall ran, with its raw result (negative errno on failure)."""

    def on_backdoor_init(self, emu: "Emulator", data_size: int) -> None:
        """Once, before the first guest instruction: the backdoor data window's size."""

    def on_backdoor(self, emu: "Emulator", cmd: int, data: memoryview) -> None:
        """A guest wrote the 8-byte command register; `data` is the live data window."""

    def on_backdoor_i8(self, emu: "Emulator", i8: int) -> int | None:
        """Instruction interface, type 0. The return value (low 32 bits) goes to the guest."""

    def on_backdoor_i8_v32(self, emu: "Emulator", i8: int, v32: int) -> int | None:
        """Instruction interface, type 1. The return value (low 32 bits) goes to the guest."""

    def on_exit(self, emu: "Emulator", result: "RunResult") -> None:
        """Once, after the run ended for any reason (after the last batches). Report here."""


HOOK_NAMES: tuple[str, ...] = tuple(name for name in vars(Plugin) if name.startswith("on_"))


def overrides(plugin: Plugin, hook: str) -> bool:
    """Whether `plugin` implements `hook`. An instance may opt out in `__init__` (`self.on_insn = None`)."""
    method = getattr(plugin, hook, None)
    if method is None:
        return False
    return getattr(method, "__func__", method) is not getattr(Plugin, hook)


def check_plugin(plugin: Plugin) -> None:
    """Reject unknown `on_*` names and hooks whose signature cannot take the hook's arguments."""
    for name, member in inspect.getmembers(type(plugin)):
        if not name.startswith("on_") or not callable(member):
            continue
        if name not in HOOK_NAMES:
            raise UsageError(f"plugin {plugin.plugin_name()}: unknown hook {name!r}")
        expected = inspect.signature(getattr(Plugin, name))
        try:
            inspect.signature(member).bind(*expected.parameters)
        except TypeError:
            raise UsageError(f"plugin {plugin.plugin_name()}: hook {name} has the wrong signature, "
                             f"expected {name}{expected}") from None
    for name, member in vars(plugin).items():
        if not name.startswith("on_") or member is None:
            continue
        if name not in HOOK_NAMES or not callable(member):
            raise UsageError(f"plugin {plugin.plugin_name()}: unknown hook {name!r}")
        expected = list(inspect.signature(getattr(Plugin, name)).parameters)[1:]
        try:
            inspect.signature(member).bind(*expected)
        except TypeError:
            raise UsageError(f"plugin {plugin.plugin_name()}: hook {name} has the wrong signature") from None


class HookBus:
    """Holds the plugins of one emulator and the bound methods each event fans out to."""

    def __init__(self) -> None:
        self.plugins: list[Plugin] = []
        self.detached = False

    def add(self, plugin: Plugin) -> None:
        check_plugin(plugin)
        self.plugins.append(plugin)

    def methods(self, hook: str) -> tuple:
        """Bound methods of the plugins that override `hook`, in registration order."""
        if self.detached:
            return ()
        return tuple(getattr(p, hook) for p in self.plugins if overrides(p, hook))

    def call(self, hook: str, emu: "Emulator", *args: Any) -> Any:
        """Call `hook` on every plugin that overrides it; a raised exception stops the run (125)."""
        result = None
        for method in self.methods(hook):
            result = self.guarded(method, hook, emu, *args)
        return result

    def guarded(self, method, hook: str, emu: "Emulator", *args: Any, detail=None) -> Any:
        """Call one plugin hook; an exception becomes PluginError naming plugin, hook, pc (and
        `detail()`, e.g. the backdoor command, computed only on error)."""
        try:
            return method(emu, *args)
        except RunStopped:
            raise
        except Exception as error:
            plugin = method.__self__.plugin_name()
            where = f" ({detail()})" if detail is not None else ""
            raise PluginError(f"plugin {plugin} raised in {hook}{where} at pc {emu.pc:#x}: "
                              f"{type(error).__name__}: {error}") from error
