"""The Emulator: owns the Unicorn engine, the address space, the kernel and the plugins; runs the guest.

Everything about one guest hangs off its Emulator, so two emulators in one
process never see each other. Hook exceptions stop Unicorn and come back out
of `emu_start` (the binding's policy), where the run loop turns them into a
`RunResult`: one central place for every way a run can end.
"""
from __future__ import annotations

import ctypes
import errno
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from unicorn import UC_HOOK_INSN, UC_HOOK_INTR, UC_HOOK_MEM_INVALID, Uc, UcError
import unicorn

from . import guest_image, loaders
from .cpu import Arch
from .errors import GuestNotFound, RunStopped, UsageError
from .hooks import HookBus, Plugin
from .linux import signals
from .linux.errors import ExecRequest, GuestExit, GuestSignal, StopRun
from .linux.fs import VirtualFile, VirtualFS, parse_mounts
from .linux.kernel import Kernel
from .memory import AddressSpace
from .regs import INTERRUPT_HOOK, SYSCALL_INSN_HOOK, RegisterFile, add_raw_hook

SIGNAL_NAMES = {2: "SIGINT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL",
                11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM"}
_FAULT_ERRORS = {
    unicorn.UC_ERR_READ_UNMAPPED: (11, "read of unmapped memory"),
    unicorn.UC_ERR_WRITE_UNMAPPED: (11, "write to unmapped memory"),
    unicorn.UC_ERR_FETCH_UNMAPPED: (11, "execution of unmapped memory"),
    unicorn.UC_ERR_READ_PROT: (11, "read of protected memory"),
    unicorn.UC_ERR_WRITE_PROT: (11, "write to protected memory"),
    unicorn.UC_ERR_FETCH_PROT: (11, "execution of non-executable memory"),
    unicorn.UC_ERR_INSN_INVALID: (4, "invalid instruction"),
    unicorn.UC_ERR_READ_UNALIGNED: (7, "unaligned read"),
    unicorn.UC_ERR_WRITE_UNALIGNED: (7, "unaligned write"),
    unicorn.UC_ERR_FETCH_UNALIGNED: (7, "unaligned fetch"),
    unicorn.UC_ERR_EXCEPTION: (4, "unhandled CPU exception"),
}
_PROT_ERRORS = (unicorn.UC_ERR_READ_PROT, unicorn.UC_ERR_WRITE_PROT, unicorn.UC_ERR_FETCH_PROT)
_ACCESS_NAMES = {unicorn.UC_MEM_READ_UNMAPPED: "read", unicorn.UC_MEM_WRITE_UNMAPPED: "write",
                 unicorn.UC_MEM_FETCH_UNMAPPED: "exec", unicorn.UC_MEM_READ_PROT: "read",
                 unicorn.UC_MEM_WRITE_PROT: "write", unicorn.UC_MEM_FETCH_PROT: "exec"}


@dataclass
class RunResult:
    """How a run ended. `exit_code` follows the exit-status table of `bdemu run`."""

    exit_code: int
    reason: str  # "exit", "signal", "limit", "error"
    signal: int | None = None
    message: str = ""
    pc: int = 0
    stdout: bytes | None = None
    stderr: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Emulator:
    """One guest program on one Unicorn engine.

    `rootfs` confines every guest path; `mounts` (`HOST:GUEST[:ro]`) bind host
    directories into it; `read_only` makes every guest write to a host file or
    directory fail with EROFS; `net` lets the guest open AF_INET/AF_INET6 sockets, which AF_UNIX
    sockets never need (docs/security.md).
    """

    def __init__(self, path: str, argv: Sequence[str | bytes] | None = None,
                 env: Mapping[str, str] | None = None, rootfs: str | None = None,
                 backdoor_pages: int = 1, cwd: str | None = None, strict: bool = False,
                 backdoor_path: str | None = None, max_memory: int | None = None,
                 read_only: bool = False, mounts: Sequence[str] = (), net: bool = False) -> None:
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
        self._stop_reason: str | None = None
        self._stop_signal: int | None = None
        self._deadline: float | None = None  # time.monotonic() value of --timeout
        self._fault: tuple[str, int] | None = None
        self.uc = Uc(self.arch.uc_arch, self.arch.uc_mode)
        if self.arch.cpu_model is not None:
            self.uc.ctl_set_cpu_model(self.arch.cpu_model)
        self.regs = RegisterFile(self.uc, self.arch)
        self.memory = AddressSpace(self.uc, self.arch.mmap_top, max_memory)
        guest_cwd = os.path.abspath(cwd) if cwd else os.getcwd()
        self.vfs = VirtualFS(rootfs, guest_cwd if rootfs is None else "/",
                             parse_mounts(mounts, rootfs), read_only)
        if rootfs is not None and cwd:
            self.vfs.cwd = self.vfs.absolute(cwd)
        self.kernel = Kernel(self, self.arch, self.vfs, strict, net)
        from .devices import BackdoorDevice
        self.device = BackdoorDevice(self, backdoor_pages, backdoor_path)
        for guest_path, content, mappable in self.device.nodes():
            self.vfs.add_node(self.vfs.absolute(guest_path), VirtualFile(content, mappable))
        self._load(self.path, self.argv, self.envp, self._guest_path_of(self.path))
        self._install_core_hooks()

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

    def read_memory(self, address: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(address, size))

    def write_memory(self, address: int, data: bytes) -> None:
        self.uc.mem_write(address, bytes(data))

    def add_plugin(self, plugin: Plugin | str | type, **options: Any) -> Plugin:
        """Add a plugin by instance, class, built-in name, `file.py[:Class]` or `module:Class`."""
        from .plugin_loader import instantiate
        instance = instantiate(plugin, options)
        self.hooks.add(instance)
        return instance

    def disassemble(self, address: int, size: int) -> tuple:
        """Instructions of the guest code at [address, address+size), decoded once and cached.

        Each is `(address, size, bytes, mnemonic, op_str)`; see bdemu/decode.py.
        """
        decoder = self.__dict__.get("_decoder")
        if decoder is None:
            from .decode import BlockDecoder
            decoder = self._decoder = BlockDecoder(self.arch, self.uc)
        return decoder.block(address, size)

    def syscall_name(self, number: int) -> str:
        """The syscall's name on this ISA (`syscall_<n>` if unknown)."""
        return self.kernel.name_of(number)

    def syscall_signature(self, number: int) -> tuple[str, ...] | None:
        """Argument kinds of the syscall (bdemu/linux/registry.py ARG_KINDS), None if unsupported."""
        handler = self.kernel.handler_of(number)
        return handler.args if handler is not None else None

    def request_stop(self, signal: int) -> None:
        """End the run as if bdemu got host signal `signal` (exit 128+signal). Safe from any thread."""
        self._stop_signal = signal
        self.uc.emu_stop()

    def request_reschedule(self) -> None:
        """From a syscall: stop after it so the run loop can switch guest threads."""
        self._stop_reason = "threads"
        self.uc.emu_stop()

    def request_signal_work(self) -> None:
        """From a syscall: stop after it so the run loop delivers a signal or ends a handler."""
        self._stop_reason = "resume"
        self.uc.emu_stop()

    def set_syscall_result(self, result: int, number: int | None = None) -> None:
        """Write a syscall's return value (-host errno on failure) the way this ISA's ABI returns
        it (a thread resuming). With `number`, plugins see that syscall return now: its thread
        waited, and its first return was a placeholder they did not see."""
        result = self._guest_errno(result)
        if number is not None:
            for method in self._syscall_return_observers:
                self.hooks.guarded(method, "on_syscall_return", self, number, result)
        self._write_syscall_result(result)

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
        if self._stop_signal or (self._deadline is not None and time.monotonic() >= self._deadline):
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
            result = self._loop(max_insns, timeout)
        except RunStopped as error:
            result = RunResult(125, "error", message=str(error), pc=self._safe_pc())
        finally:
            if result is None:
                result = RunResult(125, "error", message="interrupted", pc=self._safe_pc())
            self.kernel.shared_files.release_all()
            self.kernel.host_signals.close()
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
        if failures:
            result.exit_code, result.reason, result.message = 125, "error", str(failures[0])
        return result

    # -- loading -----------------------------------------------------------------------------------
    def note_mapped_code(self, host_fd: int, address: int, offset: int) -> None:
        """An executable file mapping appeared (ld.so loading a library): list its ELF as a module."""
        placed = guest_image.module_of_mapping(host_fd, address, offset, self.arch)
        if placed is not None and not any(m.start == placed.start and m.image.path == placed.image.path
                                          for m in self.modules):
            self.modules.append(placed)

    def _guest_path_of(self, host_path: str) -> str:
        return self.vfs.guest_path_of_host(os.path.abspath(host_path))

    def _load(self, host_path: str, argv: list[bytes], envp: list[bytes], guest_path: str) -> None:
        guest_image.load(self, host_path, argv, envp, guest_path)

    def resolve_exec(self, guest: str, host: str, argv: list[bytes]) -> tuple[str, str, list[bytes]]:
        """What execve of `guest` runs (see guest_image.resolve_exec)."""
        return guest_image.resolve_exec(self.vfs, self.arch, guest, host, argv)

    def _exec(self, request: ExecRequest) -> None:
        from .hookinstall import before_exec
        before_exec(self)
        self.kernel.fds.close_on_exec()
        self.kernel.signals.reset_for_exec()
        self.kernel.host_signals.refresh()
        self.kernel.shared_files.release_all()
        self.kernel.threads.keep_only_current()
        self.memory.clear()
        self.argv, self.envp = list(request.argv), list(request.envp)
        self._load(request.host_path, self.argv, self.envp, request.path)

    # -- hooks ------------------------------------------------------------------------------------
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
        self._raw_hooks: list = []
        kind, number = abi.trap
        if kind == "insn":
            add_raw_hook(self.uc, UC_HOOK_INSN, SYSCALL_INSN_HOOK, self._syscall, self._raw_hooks,
                         ctypes.c_int(number))
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
        self._plugin_hook_handles = install_plugin_hooks(self)

    def _on_interrupt(self, intno: int) -> None:
        if intno == self._syscall_intno:
            self._syscall()
            return
        handled = self.device.on_interrupt(intno)
        if handled:
            return
        signal = self.arch.fault_signals.get(intno, 4)
        raise GuestSignal(signal, f"CPU exception {intno}", fault=True)

    def _on_invalid_memory(self, uc, access: int, address: int, size: int, value: int, _user) -> bool:
        self._fault = (_ACCESS_NAMES.get(access, "access"), address)
        return False

    def _syscall(self) -> None:
        """The syscall trap: the number, then only the arguments its handler takes."""
        read = self.regs.read_gpr
        number = read(self._number_id)
        if number > 0x3FFFFFFF and self._backdoor_in_syscall is not None and self._backdoor_in_syscall():
            return
        observers = self._syscall_observers
        if observers:
            args = (tuple(read(i) for i in self._arg_ids) if self._stack_arg_slots is None
                    else self.kernel.observed_args(self._stack_arg_slots, read, self._arg_ids))
            for method in observers:
                self.hooks.guarded(method, "on_syscall", self, number, args)
        result = self._guest_errno(self.kernel.dispatch(number, read, self._arg_ids))
        if self._syscall_return_observers and not self.kernel.threads.defer_return(number):
            for method in self._syscall_return_observers:
                self.hooks.guarded(method, "on_syscall_return", self, number, result)
        self._write_syscall_result(result)

    # -- processes -------------------------------------------------------------------------------
    def become_child(self) -> None:
        """In a forked guest child: stop feeding plugins, write nothing to the parent's outputs."""
        self.kernel.is_child = True
        self.hooks.detached = True
        self._syscall_observers = self._syscall_return_observers = ()
        self._stop_reason = "detach"
        self.uc.emu_stop()

    def _end_child(self, result: RunResult) -> None:
        """A guest child process ends like the guest did: same exit status, or the same signal."""
        self.kernel.flush_host_stdio()
        if result.reason == "signal" and result.signal:
            import resource
            import signal as host_signal
            number = self.kernel.signals.to_host.get(result.signal, result.signal)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            host_signal.signal(number, host_signal.SIG_DFL)
            host_signal.pthread_sigmask(host_signal.SIG_UNBLOCK, [number])
            os.kill(os.getpid(), number)
        os._exit(result.exit_code & 0xFF)

    # -- the run loop ------------------------------------------------------------------------------
    def _loop(self, max_insns: int | None, timeout: float | None) -> RunResult:
        deadline = self._deadline = None if timeout is None else time.monotonic() + timeout
        until = self.arch.word_mask if self.arch.run_until is None else self.arch.run_until
        unlimited_count = 1 << 62 if self.arch.always_count_insns else 0
        switch_threads = False
        while True:
            if self._stop_signal:
                return self._stopped_by_host()
            self._stop_reason = None
            self._fault = None
            self.kernel.signals.woken = False
            timeout_us = 0
            if deadline is not None:
                timeout_us = max(1, int((deadline - time.monotonic()) * 1e6))
            # Threads take turns by time (0 while the guest has one thread), unless an instruction
            # limit is set: a slice could not tell Unicorn's count running out from the slice ending.
            time_slice = self.kernel.threads.time_slice_us()
            sliced = bool(time_slice) and not max_insns and (not timeout_us or time_slice < timeout_us)
            started = time.monotonic()
            budget = time_slice if sliced else timeout_us
            alarm_us = self.kernel.signals.alarm_remaining_us()  # SIGALRM ends the slice on time
            if alarm_us is not None:
                budget = min(budget or alarm_us, alarm_us)
            try:
                if switch_threads:  # in the try: waiting for a parked thread may end the run
                    switch_threads = False
                    self.kernel.threads.reschedule()
                    continue  # the slice and timeout are measured from now
                if self.kernel.signals.has_work():
                    signals.deliver_pending(self.kernel)
                self._emu_start(self._resume_pc(), until, budget, max_insns or unlimited_count)
            except GuestExit as done:
                return RunResult(done.status, "exit", pc=self._safe_pc())
            except GuestSignal as killed:
                if killed.fault and signals.catch_fault(self.kernel, killed.signal, 0, 1):
                    if self._past(deadline):  # a handler that fixes nothing faults again and again
                        return RunResult(124, "limit", message="timeout reached", pc=self._safe_pc())
                    continue
                return self._signal_result(killed.signal, killed.detail)
            except ExecRequest as request:
                self._exec(request)
                continue
            except StopRun:  # a blocking syscall or the wait for a parked thread: stopped or timed out
                if not self._stop_signal:
                    return RunResult(124, "limit", message="timeout reached", pc=self._safe_pc())
            except RunStopped as error:
                return RunResult(125, "error", message=str(error), pc=self._safe_pc())
            except UcError as error:
                signal, what = _FAULT_ERRORS.get(error.errno, (11, str(error)))
                detail = what
                address = self._fault[1] if self._fault is not None else 0
                code = 2 if error.errno in _PROT_ERRORS else 1  # SEGV_ACCERR, else SEGV_MAPERR / ILL_ILLOPC
                if signals.catch_fault(self.kernel, signal, address, code):
                    if self._past(deadline):
                        return RunResult(124, "limit", message="timeout reached", pc=self._safe_pc())
                    continue
                if self._fault is not None:
                    access, address = self._fault
                    detail = f"{what} at {address:#x} ({access})"
                return self._signal_result(signal, detail)
            except KeyboardInterrupt:
                return RunResult(130, "signal", signal=2, message="interrupted", pc=self._safe_pc())
            if self._stop_signal:
                return self._stopped_by_host()
            reason = self._stop_reason
            if reason == "threads":
                switch_threads = True
                continue
            if reason is None and (self.kernel.signals.has_work() or self.kernel.signals.woken):
                continue  # SIGALRM's time came, or a host signal arrived
            if reason is None and alarm_us is not None and (time.monotonic() - started) * 1e6 >= alarm_us:
                continue  # stopped for a signal's expiry, a hair before it is due (alarm_us rounds down)
            if reason is None and sliced and (time.monotonic() - started) * 1e6 >= time_slice:
                self.kernel.threads.preempt()  # the running thread used up its time slice
                switch_threads = True
                continue
            if reason in ("detach", "resume"):
                if reason == "detach":
                    from .hookinstall import remove_plugin_hooks
                    remove_plugin_hooks(self)
                    self.kernel.host_signals.after_fork()  # only now: emu_start has joined its timer
                continue
            timed_out = deadline is not None and time.monotonic() >= deadline
            if not timed_out and not max_insns:
                continue  # a stop with nothing left to do (a host signal's, raced by its delivery)
            what = "timeout" if timed_out else "instruction limit"
            return RunResult(124, "limit", message=f"{what} reached", pc=self._safe_pc())

    @staticmethod
    def _past(deadline: float | None) -> bool:
        return deadline is not None and time.monotonic() >= deadline

    def _emu_start(self, begin: int, until: int, timeout_us: int, count: int) -> None:
        """emu_start, where a hook's exception wins over a fault the CPU hit before it stopped
        (Unicorn may run on a few instructions after a stop requested in an interrupt hook)."""
        try:
            self.uc.emu_start(begin, until, timeout_us, count)
        except UcError:
            pending = self.uc._hook_exception
            if pending is None:
                raise
            raise pending from None

    def _stopped_by_host(self) -> RunResult:
        name = SIGNAL_NAMES.get(self._stop_signal, f"signal {self._stop_signal}")
        return RunResult(128 + self._stop_signal, "signal", signal=self._stop_signal,
                         message=f"stopped by {name}", pc=self._safe_pc())

    def _resume_pc(self) -> int:
        pc = self.regs.reg(self.arch.pc)
        mode_bits = self.arch.pc_mode_bits
        return pc | mode_bits(self.regs) if mode_bits is not None else pc

    def _signal_result(self, signal: int, detail: str) -> RunResult:
        name = SIGNAL_NAMES.get(signal, f"signal {signal}")
        pc = self._safe_pc()
        return RunResult(128 + signal, "signal", signal=signal,
                         message=f"guest killed by {name} at pc {pc:#x}{self._symbol_of(pc)}: {detail}", pc=pc)

    def _symbol_of(self, address: int) -> str:
        """` (name+0x12)` for an address inside a loaded module with symbols, else ""."""
        from .loaders.symbols import nearest_symbol
        for module in self.modules:
            if module.start <= address < module.end:
                found = nearest_symbol(module.image.path, address - module.base)
                if found:
                    return f" ({found[0]}+{found[1]:#x})"
        return ""

    def _safe_pc(self) -> int:
        try:
            return self.regs.reg(self.arch.pc)
        except Exception:
            return 0

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
