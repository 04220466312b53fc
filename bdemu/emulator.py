"""The Emulator: owns the Unicorn engine, the address space, the kernel and the plugins; runs the guest.

Everything about one guest hangs off its Emulator, so two emulators in one
process never see each other. `run` hands the guest to the run loop
(runloop.py), which turns every way a run can end into a `RunResult`.
"""
from __future__ import annotations

import ctypes
import errno
import functools
import os
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import unicorn
from unicorn import UC_HOOK_INSN, UC_HOOK_INTR, UC_HOOK_MEM_INVALID, Uc

from . import guest_image, loaders
from .cpu import Arch
from .errors import GuestNotFound, RunStopped, UsageError
from .hooks import HookBus, Plugin
from .linux import procnames
from .linux.errors import ExecRequest, GuestSignal, StopRun
from .linux.fs import VirtualFile, VirtualFS, parse_mounts
from .linux.kernel import Kernel
from .memory import AddressSpace
from .regs import INTERRUPT_HOOK, SYSCALL_INSN_HOOK, RegisterFile, add_raw_hook
from .runloop import RunResult, StopRecord, run_loop, safe_pc

if TYPE_CHECKING:
    from .funchooks import FunctionHooks
    from .symbols import GuestSymbols

_ACCESS_NAMES = {unicorn.UC_MEM_READ_UNMAPPED: "read", unicorn.UC_MEM_WRITE_UNMAPPED: "write",
                 unicorn.UC_MEM_FETCH_UNMAPPED: "exec", unicorn.UC_MEM_READ_PROT: "read",
                 unicorn.UC_MEM_WRITE_PROT: "write", unicorn.UC_MEM_FETCH_PROT: "exec"}


class Emulator:
    """One guest program on one Unicorn engine.

    `rootfs` confines every guest path; `mounts` (`HOST:GUEST[:ro]`) bind host
    directories into it; `read_only` makes every guest write to a host file or
    directory fail with EROFS; `net` lets the guest open AF_INET/AF_INET6 sockets, which AF_UNIX
    sockets never need (docs/security.md). `host_exec`: an execve of a program of the host's
    own ISA by a guest of another runs it natively and unconfined (bdemu/linux/hostexec.py);
    off (the default), and always under `rootfs` or `read_only`, it fails with ENOEXEC.
    """

    def __init__(self, path: str, argv: Sequence[str | bytes] | None = None,
                 env: Mapping[str, str] | None = None, rootfs: str | None = None,
                 backdoor_pages: int = 1, cwd: str | None = None, strict: bool = False,
                 backdoor_path: str | None = None, max_memory: int | None = None,
                 read_only: bool = False, mounts: Sequence[str] = (), net: bool = False,
                 host_exec: bool = False) -> None:
        if not 1 <= backdoor_pages <= 65536:
            raise UsageError(f"--backdoor-pages must be between 1 and 65536, not {backdoor_pages}")
        if rootfs is not None and not os.path.isdir(rootfs):
            raise UsageError(f"rootfs {rootfs!r} is not a directory")
        self.path = os.fsdecode(path)
        if not os.path.lexists(self.path) or not os.path.exists(self.path):
            raise GuestNotFound(f"{self.path}: no such file")
        self.image = guest_image.describe(self.path)
        self.arch: Arch = self.image.arch
        self.argv: list[bytes] = [os.fsencode(a) for a in (argv if argv is not None else [self.path])]
        environment = dict(os.environ) if env is None else dict(env)
        self.envp: list[bytes] = [os.fsencode(f"{k}={v}") for k, v in environment.items()]
        self.backdoor_pages = backdoor_pages
        self.backdoor_path = backdoor_path
        self.hooks = HookBus()
        self.output = sys.stderr  # where plugins write their reports (the CLI's --output)
        self.modules: list[loaders.LoadedImage] = []
        self._warnings: list[str] = []
        self.uc = Uc(self.arch.uc_arch, self.arch.uc_mode)
        self._stops = StopRecord(self.uc)
        if self.arch.cpu_model is not None:
            self.uc.ctl_set_cpu_model(self.arch.cpu_model)
        self.regs = RegisterFile(self.uc, self.arch)
        self.memory = AddressSpace(self.uc, self.arch.mmap_top, max_memory)
        guest_cwd = os.path.abspath(cwd) if cwd else os.getcwd()
        self.vfs = VirtualFS(rootfs, guest_cwd if rootfs is None else "/",
                             parse_mounts(mounts, rootfs), read_only)
        if rootfs is not None and cwd:
            self.vfs.cwd = self.vfs.absolute(cwd)
            if not self._is_guest_directory(self.vfs.cwd):
                raise UsageError(f"--cwd {cwd!r} is not a directory in rootfs {rootfs!r}")
        self.kernel = Kernel(self, self.arch, self.vfs, strict, net)
        self.host_exec = host_exec
        self._install_syscall_insn_hook()  # before the device's CPUID hook: see the method
        from .devices import BackdoorDevice
        self.device = BackdoorDevice(self, backdoor_pages, backdoor_path)
        for guest_path, content, mappable in self.device.nodes():
            self.vfs.add_node(self.vfs.absolute(guest_path), VirtualFile(content, mappable))
        self._load(self.path, self.argv, self.envp, self._guest_path_of(self.path))
        self._install_core_hooks()
        #: The GDB stub (`serve_gdb`), served by the run loop; None: no debugger.
        self.debugger = None

    # -- public API --------------------------------------------------------------------------------
    @property
    def pc(self) -> int:
        return self.regs.reg("pc" if "pc" in self.arch.registers else self.arch.pc)

    def reg(self, name: str) -> int:
        try:
            return self.regs.reg(name.lower())
        except KeyError:
            raise UsageError(f"unknown register {name!r} for {self.arch.name}") from None

    def set_reg(self, name: str, value: int) -> None:
        try:
            self.regs.set_reg(name.lower(), value)
        except KeyError:
            raise UsageError(f"unknown register {name!r} for {self.arch.name}") from None

    def set_pc(self, address: int) -> None:
        """Move the pc, staying in the CPU's instruction set: Unicorn takes ARM's Thumb state from
        bit 0 of a pc write, so an even address alone would switch a Thumb guest to ARM code."""
        mode_bits = self.arch.pc_mode_bits
        self.regs.set_reg(self.arch.pc, address | (mode_bits(self.regs) if mode_bits is not None else 0))

    def read_memory(self, address: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(address, size))

    def write_memory(self, address: int, data: bytes) -> None:
        self.uc.mem_write(address, bytes(data))

    def serve_gdb(self, address: str = "127.0.0.1:0"):
        """Let a GDB client debug the guest: `run` first waits for it on `address` ([HOST:]PORT, port 0:
        any free one, see `.address` of the returned server), stopped before the first instruction."""
        from .gdb import GdbServer, parse_address
        self.debugger = GdbServer(self, *parse_address(address))
        return self.debugger

    def add_plugin(self, plugin: Plugin | str | type, **options: Any) -> Plugin:
        """Add a plugin by instance, class, built-in name, `file.py[:Class]` or `module:Class`."""
        from .plugin_loader import instantiate
        instance = instantiate(plugin, options)
        self.hooks.add(instance)
        return instance

    @functools.cached_property
    def decoder(self):
        """Guest code decoded once per block (bdemu/decode.py): `block(address, size)` gives its
        `(address, size, bytes, mnemonic, op_str)` instructions, `count(address, size)` their number."""
        from .decode import BlockDecoder
        return BlockDecoder(self.arch, self.uc, self._block_mode if self.arch.code_modes else None)

    def disassemble(self, address: int, size: int) -> tuple:
        """Instructions of the guest code at [address, address+size), decoded once (`decoder`)."""
        return self.decoder.block(address, size)

    def _block_mode(self, address: int, size: int) -> int:
        """The Capstone mode of a block (ARM or Thumb): as it first ran if a native block table saw
        it (hookinstall.py keeps one for ISAs with code modes), else the CPU's mode now (right
        inside a block or instruction hook)."""
        modes = self.arch.code_modes
        table = self.__dict__.get("_mode_table")
        value = table.mode_of(address, size) if table is not None else None
        if value is None:
            value = self.reg(modes.register)
        return modes.cs_mode(value)

    @functools.cached_property
    def symbols(self) -> "GuestSymbols":
        """Symbols of the loaded modules, by address and by name (bdemu/symbols.py)."""
        from .symbols import GuestSymbols
        return GuestSymbols(self)

    @functools.cached_property
    def functions(self) -> "FunctionHooks":
        """Function hooks and, inside one, the call's arguments and return (bdemu/funchooks.py)."""
        from .funchooks import FunctionHooks
        return FunctionHooks(self)

    def symbolize(self, address: int) -> str | None:
        """`module!symbol+0x12` for a guest address (None outside every loaded module)."""
        return self.symbols.symbolize(address)

    def hook_function(self, target: str | int, on_entry: Callable[["Emulator"], None] | None = None,
                      on_return: Callable[["Emulator", int], None] | None = None) -> None:
        """Call `on_entry(emu)` when function `target` (a symbol, `module!symbol`, a glob such as
        `str*`, or an address) is entered, and `on_return(emu, result)` when that call returns.
        Inside them `emu.functions.argument(i)` reads the call's arguments, and on entry
        `emu.functions.return_now(value)` skips the function."""
        self.functions.add(target, on_entry, on_return)

    def syscall_name(self, number: int) -> str:
        """The syscall's name on this ISA (`syscall_<n>` if unknown)."""
        return self.kernel.name_of(number)

    def syscall_signature(self, number: int) -> tuple[str, ...] | None:
        """Argument kinds of the syscall (bdemu/linux/registry.py ARG_KINDS), None if unsupported."""
        handler = self.kernel.handler_of(number)
        return handler.args if handler is not None else None

    def request_stop(self, signal: int) -> None:
        """End the run as if bdemu got host signal `signal` (exit 128+signal). Safe from any thread."""
        self._stops.stop_run(signal)

    def request_reschedule(self) -> None:
        """From a syscall: stop after it so the run loop can switch guest threads."""
        self._stops.request("threads")

    def request_signal_work(self) -> None:
        """From a syscall: stop after it so the run loop delivers a signal or ends a handler."""
        self._stops.request("resume")

    def wake_for_host_signals(self, ends_run: bool = True) -> None:
        """From a host-signal watcher thread: stop so the run loop takes the host signals that
        arrived (SignalState.arrived). `ends_run`: one of them kills the guest (no handler)."""
        self._stops.wake(ends_run)

    def set_syscall_result(self, result: int, number: int | None = None) -> None:
        """Write a syscall's return value (-host errno on failure) the way this ISA's ABI returns
        it (a thread resuming). With `number`, plugins see that syscall return now: its thread
        waited, and its first return was a placeholder they did not see."""
        result = self._guest_errno(result)
        if number is not None:
            for method in self._syscall_return_observers:
                self.hooks.guarded(method, "on_syscall_return", self, number, result)
        self._write_syscall_result(result)
        if number is not None and self.debugger is not None and self.debugger.catching:
            self.debugger.syscall_returned(number)

    @property
    def tid(self) -> int:
        """The running guest thread's id (the pid for the first thread), e.g. for plugins that
        follow syscalls across threads: a waiting syscall returns after other threads' ones."""
        return self.kernel.threads.current.tid

    def _guest_errno(self, result: int) -> int:
        """A failing result's host errno as the ISA numbers it (MIPS differs)."""
        if self._errno_map and -4096 < result < 0:
            return -self._errno_map.get(-result, -result)
        return result

    def _write_syscall_result(self, result: int) -> None:
        """Into the result register, with the error-flag convention where the ABI has one."""
        if self._error_flag_id is not None:
            failed = -4096 < result < 0
            self.regs.write_id(self._error_flag_id, int(failed))
            result = -result if failed else result
        self.regs.write_id(self._result_id, result)

    def check_stop(self) -> None:
        """Raise StopRun if the host asked to stop or the timeout passed (for blocking syscalls)."""
        stops = self._stops
        if stops.host_signal or (stops.deadline is not None and time.monotonic() >= stops.deadline):
            raise StopRun()

    def open_flag_values(self) -> Mapping[str, int]:
        """The guest's `O_*` flag values by name (they differ between ISAs), for decoding."""
        from .linux.files import open_flags
        return open_flags(self.kernel)

    def warn(self, message: str) -> None:
        self._warnings.append(message)
        print(f"bdemu: warning: {message}", file=sys.stderr, flush=True)

    def run(self, max_insns: int | None = None, timeout: float | None = None,
            capture_output: bool = False, input: bytes | None = None) -> RunResult:
        """Run the guest to its end (or a limit) and return how it ended."""
        stdio, captured = self._stdio(capture_output, input)
        self.kernel.open_stdio(stdio)
        for fd in set(stdio) - {0, 1, 2}:
            os.close(fd)
        result = None
        try:
            self._install_plugin_hooks()
            self.hooks.call("on_start", self)
            self.device.start()
            self.kernel.host_signals.activate()
            result = run_loop(self, max_insns, timeout)
            if self.debugger is not None:
                self.debugger.finish(result)
        except RunStopped as error:
            result = RunResult(125, "error", message=str(error), pc=self._safe_pc())
        except Exception as error:  # a bug in bdemu: the parent's `bdemu run` reports it
            if not self.kernel.is_child:
                raise
            result = RunResult(125, "error", message=f"internal error: {type(error).__name__}: {error}",
                               pc=self._safe_pc())
        finally:
            if result is None:
                result = RunResult(125, "error", message="interrupted", pc=self._safe_pc())
            self.kernel.shared_files.release_all()
            self.kernel.host_signals.close()
            self.kernel.ipc.close()
            if self.kernel.is_child:
                self._end_child(result)
            self.kernel.fds.close_all()
            if captured:
                result.stdout, result.stderr = (self._drain(f) for f in captured)
        failures: list[RunStopped] = []
        try:
            from .hookinstall import drain_plugin_hooks
            drain_plugin_hooks(self)
        except RunStopped as error:
            failures.append(error)
        for method in self.hooks.methods("on_exit"):  # each runs, even after another one raised
            try:
                self.hooks.guarded(method, "on_exit", self, result)
            except RunStopped as error:
                failures.append(error)
        if failures and result.reason != "error":  # an earlier error stays the one reported
            result.exit_code, result.reason, result.message = 125, "error", str(failures[0])
        return result

    # -- loading -----------------------------------------------------------------------------------
    def note_mapped_code(self, host_fd: int, address: int, offset: int) -> None:
        """An executable file mapping appeared (ld.so loading a library): list its ELF as a module."""
        placed = guest_image.module_of_mapping(host_fd, address, offset, self.arch)
        if placed is not None and not any(m.start == placed.start and m.image.path == placed.image.path
                                          for m in self.modules):
            self.modules.append(placed)
            if "functions" in self.__dict__:
                self.functions.resolve()

    def _is_guest_directory(self, guest_path: str) -> bool:
        from .linux.errors import SyscallError
        try:
            return os.path.isdir(self.vfs.host_path(guest_path))
        except SyscallError:
            return False

    def _guest_path_of(self, host_path: str) -> str:
        return self.vfs.guest_path_of_host(os.path.abspath(host_path))

    def _load(self, host_path: str, argv: list[bytes], envp: list[bytes], guest_path: str) -> None:
        guest_image.load(self, host_path, argv, envp, guest_path)
        if "symbols" in self.__dict__:
            self.symbols.forget_addresses()
        if "functions" in self.__dict__:
            self.functions.after_exec()
        #: The process's name (prctl PR_GET_NAME), as Linux sets it at exec: the file's base name.
        self.kernel.comm = os.path.basename(os.fsencode(guest_path))[:15]
        procnames.publish(self.kernel)

    def resolve_exec(self, guest: str, host: str, argv: list[bytes]) -> tuple[str, str, list[bytes], bool]:
        """What execve of `guest` runs (see guest_image.resolve_exec)."""
        confined = self.vfs.confining or self.vfs.read_only  # a rootfs, a chroot, --read-only
        return guest_image.resolve_exec(self.vfs, self.arch, guest, host, argv, None if confined else self.host_exec)

    def _exec(self, request: ExecRequest) -> None:
        from .hookinstall import before_exec
        before_exec(self)
        self.kernel.fds.close_on_exec()
        self.kernel.signals.reset_for_exec()
        self.kernel.host_signals.refresh()
        self.kernel.shared_files.release_all()
        self.kernel.threads.keep_only_current()
        self.kernel.threads.current.name = b""  # named after the new program
        self.memory.clear()
        self.argv, self.envp = list(request.argv), list(request.envp)
        self._load(request.host_path, self.argv, self.envp, request.path)

    # -- hooks ------------------------------------------------------------------------------------
    def _install_syscall_insn_hook(self) -> None:
        """The syscall instruction's hook (x86-64), first of the UC_HOOK_INSN hooks: Unicorn's
        helper walks them in order and gives up once a stop is requested, so a stop from
        another thread (a host signal, a timeout) landing on a `syscall` would skip any hook
        after the first, yet move past the instruction: the syscall would be lost."""
        self._raw_hooks: list = []
        kind, number = self.arch.syscall.trap
        if kind == "insn":
            add_raw_hook(self.uc, UC_HOOK_INSN, SYSCALL_INSN_HOOK, self._syscall, self._raw_hooks,
                         ctypes.c_int(number))

    def _install_core_hooks(self) -> None:
        abi = self.arch.syscall
        self._number_id = self.regs.id_of(abi.number)
        self._arg_ids = tuple(self.regs.id_of(name) for name in abi.args)
        self._result_id = self.regs.id_of(abi.result)
        self._error_flag_id = self.regs.id_of(abi.error_flag) if abi.error_flag else None
        #: Plugins see six argument words; an ABI with fewer registers (MIPS o32) adds stack words.
        self._stack_arg_slots = 6 if abi.stack_args_offset is not None and len(abi.args) < 6 else None
        self._errno_map = {getattr(errno, name): number for name, number in self.arch.errno_overrides.items()
                           if hasattr(errno, name)}
        kind, number = abi.trap
        self._syscall_intno = number if kind == "intr" else None
        insn = self.device.insn
        #: The backdoor instruction when it is a form of the syscall instruction (MIPS).
        self._backdoor_in_syscall = insn.on_syscall if insn is not None and insn.spec.trap == abi.trap else None
        add_raw_hook(self.uc, UC_HOOK_INTR, INTERRUPT_HOOK, self._on_interrupt, self._raw_hooks)
        self.uc.hook_add(UC_HOOK_MEM_INVALID, self._on_invalid_memory)

    def _install_plugin_hooks(self) -> None:
        self._syscall_observers = self.hooks.methods("on_syscall")
        self._syscall_return_observers = self.hooks.methods("on_syscall_return")
        from .hookinstall import install_plugin_hooks
        self._plugin_hooks = install_plugin_hooks(self)

    def _on_interrupt(self, intno: int) -> None:
        if intno == self._syscall_intno:
            self._syscall()
            return
        handled = self.device.on_interrupt(intno)
        if handled:
            return
        signal = self.arch.fault_signals.get(intno, 4)
        raise GuestSignal(signal, f"{self._fault_kinds().get(signal, 'CPU exception')} (CPU exception {intno})",
                          fault=True)

    def _fault_kinds(self) -> dict[int, str]:
        """What a CPU exception that raises each signal is, in this ISA's signal numbers."""
        generic = {"SIGILL": (4, "invalid instruction"), "SIGTRAP": (5, "breakpoint"),
                   "SIGBUS": (7, "bus error"), "SIGFPE": (8, "arithmetic exception"),
                   "SIGSEGV": (11, "memory fault")}
        overrides = self.arch.signal_overrides
        return {overrides.get(name, number): kind for name, (number, kind) in generic.items()}

    def _on_invalid_memory(self, uc, access: int, address: int, size: int, value: int, _user) -> bool:
        self._stops.fault = (_ACCESS_NAMES.get(access, "access"), address)
        return False

    def _syscall(self) -> None:
        """The syscall trap: the number, then only the arguments its handler takes."""
        read = self.regs.read_gpr
        number = read(self._number_id)
        if number > 0x3FFFFFFF and self._backdoor_in_syscall is not None and self._backdoor_in_syscall():
            return
        debugger = self.debugger
        if debugger is not None and debugger.catching:  # gdb's `catch syscall`
            debugger.syscall_stop(number, returning=False)
        observers = self._syscall_observers
        if observers:
            args = (tuple(read(i) for i in self._arg_ids) if self._stack_arg_slots is None
                    else self.kernel.observed_args(self._stack_arg_slots, read, self._arg_ids))
            for method in observers:
                self.hooks.guarded(method, "on_syscall", self, number, args)
        result = self._guest_errno(self.kernel.dispatch(number, read, self._arg_ids))
        catching = debugger is not None and debugger.catching
        returns_now = not ((self._syscall_return_observers or catching) and self.kernel.threads.defer_return(number))
        if returns_now:
            for method in self._syscall_return_observers:
                self.hooks.guarded(method, "on_syscall_return", self, number, result)
        self._write_syscall_result(result)
        if catching and returns_now:
            debugger.syscall_stop(number, returning=True)

    # -- processes -------------------------------------------------------------------------------
    def become_child(self) -> None:
        """In a forked guest child: stop feeding plugins, write nothing to the parent's outputs."""
        self.kernel.is_child = True
        self.hooks.detached = True
        self._syscall_observers = self._syscall_return_observers = ()
        self._stops.request("detach")
        if self.debugger is not None:  # the client debugs the parent
            self.debugger.forget()
            self.debugger = None

    def _end_child(self, result: RunResult) -> None:
        """A guest child process ends like the guest did: same exit status, or the same signal.
        It never returns to `bdemu run`, so it says itself why bdemu stopped it. One that exec'd
        a host program becomes that program."""
        self.kernel.flush_host_stdio()
        if "host_exec" in result.extra:
            result.extra["host_exec"].execute()
        if result.reason == "error" and result.message:
            print(f"bdemu: {result.message}", file=sys.stderr, flush=True)
        if result.reason == "signal" and result.signal:
            import resource
            import signal as host_signal
            number = self.kernel.signals.to_host.get(result.signal, result.signal)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if number not in (host_signal.SIGKILL, host_signal.SIGSTOP):  # no handler to reset
                host_signal.signal(number, host_signal.SIG_DFL)
            host_signal.pthread_sigmask(host_signal.SIG_UNBLOCK, [number])
            os.kill(os.getpid(), number)
        os._exit(result.exit_code & 0xFF)

    def _safe_pc(self) -> int:
        return safe_pc(self)


    # -- stdio -------------------------------------------------------------------------------------
    def _stdio(self, capture: bool, data: bytes | None):
        stdin = 0
        if data is not None:
            handle = tempfile.TemporaryFile()
            handle.write(data)
            handle.seek(0)
            stdin = os.dup(handle.fileno())
            handle.close()
        if not capture:
            return (stdin, 1, 2), None
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        return (stdin, os.dup(out.fileno()), os.dup(err.fileno())), (out, err)

    @staticmethod
    def _drain(handle) -> bytes:
        handle.seek(0)
        data = handle.read()
        handle.close()
        return data
