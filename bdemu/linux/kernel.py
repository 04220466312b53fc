"""The Linux user-mode kernel of one guest: dispatch by number, shared state, guest memory helpers.

Dispatch is a dict from syscall number to a bound handler built once from the
ISA's number table and the name registry (bdemu/linux/registry.py), so the
hot path is one lookup and one call.
"""
from __future__ import annotations

import errno
import os
import select
import sys
import time
import weakref
from typing import TYPE_CHECKING, Callable

from unicorn import UcError

from ..cpu import Arch
# Importing a module registers its handlers.
from . import chroot, clock, epoll, eventfd, fifo, files, fsops, futex, hwprobe, identity, inotify  # noqa: F401
from . import ioctl, ipc, itimer, locks, mm, msg, pidfd, poll, process, procnames, sem, shm, signals  # noqa: F401
from . import sigdelivery, signalfd, sigqueue, sockets, sockmsg, splice, statfs, timerfd, xattr  # noqa: F401
from .errors import DebuggerStop, SyscallError, WouldBlock
from .fds import FdTable, OpenFile
from .fs import VirtualFile, VirtualFS, VirtualLink
from .hostsignals import HostSignals
from .ipcinfo import proc_nodes as ipc_proc_nodes
from .ipcns import IpcNamespace
from .registry import HANDLERS, Handler
from .shared import SharedFiles
from .sockabi import SocketABI, SocketState
from .threads import ThreadTable

SIGPIPE = 13
MAX_ARG_STRLEN, MAX_ARG_TOTAL = 128 << 10, 2 << 20  # execve's limits, as Linux with an 8 MiB stack
#: Reads above this many bytes are first bounded by the guest memory mapped at the buffer.
LARGE_IO = 1 << 16
#: Blocking syscalls wait at most this long (seconds) before checking for a stop or the deadline.
WAIT_SLICE = 0.05

if TYPE_CHECKING:
    from ..emulator import Emulator


class Kernel:
    """Syscall state and dispatch for one guest process."""

    def __init__(self, emu: "Emulator", arch: Arch, vfs: VirtualFS, strict: bool = False,
                 net: bool = False) -> None:
        self.emu = emu
        self.arch = arch
        self.vfs = vfs
        self.strict = strict
        self.sockets = SocketState(SocketABI.of(arch.socket_overrides), net)
        self.fds = FdTable()
        vfs.file_of = self.fds.find  # /proc/self/fd/N is the guest's fd N
        vfs.is_guest_pid = lambda pid: pid != os.getpid() and process.is_guest_process(self, pid)
        self.byteorder = arch.byteorder
        self.word = arch.word_size
        self._sign_bit = 1 << (arch.bits - 1)
        self._full = 1 << arch.bits
        self.signals = signals.SignalState(signals.default_ignored(arch.signal_overrides),
                                           arch.signal_overrides, arch.sigset_size)
        self.shared_files = SharedFiles(emu.uc)
        self.ipc = IpcNamespace()
        #: The signalfd nodes alive (signalfd.py), kept up to date at each wait slice.
        self.signalfds: weakref.WeakSet = weakref.WeakSet()
        self.comm = b""  # the process's name: set as the guest is loaded (Emulator._load)
        self.rlimits: dict[int, tuple[int, int]] = {}  # what the guest set (identity.py)
        self.fifo_opens: dict = {}  # FIFO opens a signal interrupted, still waiting (fifo.py)
        self.publish_name = False  # whether the host process bears it too: in forked children
        self._exec_fd: int | None = None  # see keep_for_exec
        self.threads = ThreadTable(self)
        self.signals.threads = self.threads
        self.signals.timer_code = arch.variants.get("si_timer", signals.SI_TIMER)
        self.host_signals = HostSignals(self)
        self.exe_guest_path = ""
        self.exe_host_path = ""
        self.warned: set[int] = set()
        self.children: set[int] = set()
        #: Every process of this guest (the first and its forks) holds this host fd, and no other
        #: process does: the guest may signal only processes showing it (see process.py).
        self.marker_fd = os.pipe2(os.O_CLOEXEC)[0]
        self.marker = os.readlink(f"/proc/self/fd/{self.marker_fd}")
        weakref.finalize(self, os.close, self.marker_fd)
        self.is_child = False
        self.table: dict[int, tuple[Callable[..., int], int, Handler]] = {}
        #: Argument slots of handlers that need more than one register per argument, or the stack.
        self.slot_plans: dict[int, tuple[tuple[int, ...], ...]] = {}
        register_count = len(arch.syscall.args)
        for number, name in arch.syscall_numbers.items():
            handler = HANDLERS.get(arch.syscall_aliases.get(name, name))
            if handler is not None:
                plan = self._slot_plan(handler.args)
                simple = all(len(slots) == 1 for slots in plan) and len(plan) <= register_count
                if not simple:
                    self.slot_plans[number] = plan
                self.table[number] = (handler.function, len(handler.args) if simple else -1, handler)
        self._install_proc_nodes()

    # -- set-up -------------------------------------------------------------------------------
    def open_stdio(self, host_fds: tuple[int, int, int]) -> None:
        for guest_fd, host_fd in enumerate(host_fds):
            self.fds.place(guest_fd, OpenFile(os.dup(host_fd), f"/dev/fd/{guest_fd}"))

    def _install_proc_nodes(self) -> None:
        vfs = self.vfs
        vfs.add_node("/proc/self/exe", VirtualLink(lambda: self.exe_guest_path))
        vfs.add_node("/proc/self/maps", VirtualFile(lambda: self.emu.memory.maps_text().encode()))
        vfs.add_node("/proc/self/cmdline", VirtualFile(lambda: b"".join(a + b"\0" for a in self.emu.argv)))
        for path, node in ipc_proc_nodes(self):
            vfs.add_node(path, node)
        procnames.install(self)

    def _slot_plan(self, kinds: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
        """Which ABI argument slots make up each argument (a 64-bit one takes a pair on 32-bit ISAs)."""
        abi, plan, slot = self.arch.syscall, [], 0
        for kind in kinds:
            if kind == "off64" and self.word == 4:
                if abi.pair_align and slot % 2:
                    slot += 1
                low_first = self.byteorder == "little"
                plan.append((slot, slot + 1) if low_first else (slot + 1, slot))
                slot += 2
            else:
                plan.append((slot,))
                slot += 1
        return tuple(plan)

    def read_slots(self, count: int, read_arg: Callable[[int], int], arg_ids: tuple[int, ...]) -> list[int]:
        """The first `count` argument slots: registers, then stack words (MIPS o32)."""
        words = [read_arg(i) for i in arg_ids[:count]]
        offset = self.arch.syscall.stack_args_offset
        if count > len(words) and offset is not None:
            sp = self.emu.regs.reg(self.arch.sp)
            for index in range(count - len(words)):
                words.append(self.read_word(sp + offset + self.word * index))
        return words + [0] * (count - len(words))

    def observed_args(self, count: int, read_arg: Callable[[int], int], arg_ids: tuple[int, ...]) -> tuple:
        """The first `count` argument words for plugins (0 for a stack word that cannot be read)."""
        try:
            return tuple(self.read_slots(count, read_arg, arg_ids))
        except SyscallError:
            return tuple(read_arg(i) for i in arg_ids) + (0,) * (count - len(arg_ids))

    def _gather(self, number: int, read_arg: Callable[[int], int], arg_ids: tuple[int, ...]) -> list[int]:
        plan = self.slot_plans[number]
        words = self.read_slots(max(s for slots in plan for s in slots) + 1, read_arg, arg_ids)
        return [words[slots[0]] if len(slots) == 1 else words[slots[0]] | words[slots[1]] << 32
                for slots in plan]

    def forked(self) -> None:
        """In a forked child: what belongs to each process rather than to the run."""
        self.ipc.forked()
        signalfd.after_fork(self)
        self.publish_name = True
        procnames.publish(self)
        fifo.forget_after_fork(self)

    # -- values -------------------------------------------------------------------------------
    def signed(self, value: int) -> int:
        return value - self._full if value & self._sign_bit else value

    def signed32(self, value: int) -> int:
        value &= 0xFFFFFFFF
        return value - (1 << 32) if value & 0x80000000 else value

    # -- guest memory ---------------------------------------------------------------------------
    def read(self, address: int, size: int) -> bytes:
        if size == 0:
            return b""
        try:
            return bytes(self.emu.uc.mem_read(address, size))
        except UcError:
            raise SyscallError(errno.EFAULT) from None

    def write(self, address: int, data: bytes) -> None:
        if not data:
            return
        try:
            self.emu.uc.mem_write(address, bytes(data))
        except UcError:
            raise SyscallError(errno.EFAULT) from None

    def io_size(self, address: int, count: int, limit: int) -> int:
        """How many bytes a read into guest memory may move: at most `limit` and, for large
        counts, no more than is mapped at `address`, so a guest asking for gigabytes never
        makes bdemu allocate more than the guest itself holds (EFAULT if nothing is mapped)."""
        count = min(count, limit)
        if count <= LARGE_IO:
            return count
        covered, cursor = 0, address
        for region in self.emu.memory.regions:
            if region.end <= cursor:
                continue
            if region.start > cursor:
                break
            covered += region.end - cursor
            cursor = region.end
            if covered >= count:
                return count
        if not covered:
            raise SyscallError(errno.EFAULT)
        return covered

    def read_word(self, address: int) -> int:
        return int.from_bytes(self.read(address, self.word), self.byteorder)

    def write_word(self, address: int, value: int) -> None:
        self.write(address, (value & (self._full - 1)).to_bytes(self.word, self.byteorder))

    def write_int(self, address: int, value: int, size: int = 4) -> None:
        self.write(address, (value & ((1 << (8 * size)) - 1)).to_bytes(size, self.byteorder))

    def swap_ints(self, raw: bytes) -> bytes:
        """4-byte ints between the guest's byte order and the host's (host structs the guest sees)."""
        if self.byteorder == sys.byteorder:
            return raw
        return b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw) - 3, 4)) + raw[len(raw) & ~3:]

    def bitmap(self, raw: bytes) -> int:
        """A kernel bitmap (sigset_t, fd_set) is an array of longs, bit n in long n / bits-per-long:
        on a big-endian 32-bit ISA a 64-bit sigset is not one 64-bit integer."""
        word, order = self.word, self.byteorder
        return sum(int.from_bytes(raw[i:i + word], order) << (8 * i) for i in range(0, len(raw), word))

    def bitmap_bytes(self, value: int, size: int) -> bytes:
        """`size` bytes of the array of longs holding `value` (see `bitmap`)."""
        word, mask = self.word, self._full - 1
        return b"".join(((value >> (8 * i)) & mask).to_bytes(word, self.byteorder) for i in range(0, size, word))

    def keep_for_exec(self, host_fd: int) -> str:
        """A host path of the file behind `host_fd` that stays valid while execve closes the
        guest's close-on-exec fds and loads it (fexecve of a memfd): a private duplicate, kept
        until the next such exec."""
        if self._exec_fd is not None:
            os.close(self._exec_fd)
        self._exec_fd = os.dup(host_fd)
        return f"/proc/self/fd/{self._exec_fd}"

    def read_cstring(self, address: int, limit: int = 4096) -> bytes:
        if address == 0:
            raise SyscallError(errno.EFAULT)
        out = bytearray()
        while len(out) < limit:
            chunk = 4096 - (address & 4095)
            data = self.read(address, min(chunk, 256))
            nul = data.find(b"\0")
            if nul >= 0:
                return bytes(out + data[:nul])
            out += data
            address += len(data)
        raise SyscallError(errno.ENAMETOOLONG)

    def read_path(self, address: int) -> str:
        return os.fsdecode(self.read_cstring(address))

    def read_string_array(self, address: int) -> list[bytes]:
        """argv/envp of execve, with Linux's limits (E2BIG): 128 KiB a string, 2 MiB in all, so a
        guest repeating one pointer cannot make bdemu copy gigabytes."""
        items, total = [], 0
        while address:
            pointer = self.read_word(address)
            if pointer == 0:
                break
            try:
                item = self.read_cstring(pointer, MAX_ARG_STRLEN)
            except SyscallError as error:
                raise SyscallError(errno.E2BIG if error.code == errno.ENAMETOOLONG else error.code) from None
            items.append(item)
            total += len(item) + 1 + self.word
            address += self.word
            if total > MAX_ARG_TOTAL:
                raise SyscallError(errno.E2BIG)
        return items

    # -- dispatch -------------------------------------------------------------------------------
    def dispatch(self, number: int, read_arg: Callable[[int], int], arg_ids: tuple[int, ...]) -> int:
        """Run syscall `number`, reading only the argument registers its handler takes.

        Returns the raw result (negative errno on failure).
        """
        entry = self.table.get(number)
        if entry is None:
            return self.unknown(number)
        function, count, _ = entry
        try:
            if count == 0:
                return function(self)
            if count < 0:
                return function(self, *self._gather(number, read_arg, arg_ids))
            return function(self, *[read_arg(i) for i in arg_ids[:count]])
        except signals.Interrupted:
            return sigdelivery.note_interrupted(self, self.name_of(number))
        except DebuggerStop:
            self.emu.debugger.restart_syscall(sigdelivery.restart_point(self, self.name_of(number))[1])
            return -errno.EINTR  # (written, then undone by the rewind)
        except SyscallError as error:
            return -error.code
        except OSError as error:
            return self.host_error(error)
        except (OverflowError, ValueError):  # a guest value out of the host call's range
            return -errno.EINVAL
        except WouldBlock as wait:  # other threads run until it can complete (threads.py)
            if wait.resume is not None:
                return self.threads.park(wait, wait.resume, ())
            args = (() if count == 0 else self._gather(number, read_arg, arg_ids) if count < 0
                    else [read_arg(i) for i in arg_ids[:count]])
            # A signal may end the wait; a SA_RESTART handler then runs the call again from here.
            return self.threads.park(wait, function, tuple(args), sigdelivery.restart_point(self, self.name_of(number)))

    def run_handler(self, function: Callable[..., int], args: tuple[int, ...]) -> int:
        """Run a parked syscall's handler again (WouldBlock passes through): its raw result."""
        try:
            return function(self, *args)
        except SyscallError as error:
            return -error.code
        except OSError as error:
            return self.host_error(error)
        except (OverflowError, ValueError):
            return -errno.EINVAL

    def host_error(self, error: OSError) -> int:
        """A host call failed: -errno for the guest; a broken pipe also raises SIGPIPE, as Linux does."""
        code = error.errno or errno.EIO
        if code == errno.EPIPE:
            process.signal_self(self, SIGPIPE)
        return -code

    def name_of(self, number: int) -> str:
        return self.arch.syscall_numbers.get(number, f"syscall_{number}")

    def handler_of(self, number: int) -> Handler | None:
        entry = self.table.get(number)
        return entry[2] if entry else None

    def unknown(self, number: int) -> int:
        if self.strict:
            from ..errors import StrictError
            raise StrictError(f"unsupported syscall {self.name_of(number)} ({number}) at pc {self.emu.pc:#x} "
                              "(--strict)")
        if number not in self.warned:
            self.warned.add(number)
            self.emu.warn(f"unsupported syscall {self.name_of(number)} ({number}) returns ENOSYS")
        return -errno.ENOSYS

    def warn_once(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)  # type: ignore[arg-type]
            self.emu.warn(message)

    # -- blocking -----------------------------------------------------------------------------
    def wait_slice(self, remaining: float | None = None) -> float:
        """How long a blocking syscall may wait now; raises StopRun once the run must end.

        Blocking host calls are cut in slices so Ctrl-C, SIGTERM and --timeout end the run
        even while the guest sleeps or waits for input (Python retries interrupted calls), and
        a signal for the guest interrupts the call (signals.Interrupted: EINTR or a restart).
        """
        self.emu.check_stop()
        self.signals.check_interrupt()
        debugger = self.emu.debugger
        if debugger is not None and debugger.interrupted and self.threads.alone:
            raise DebuggerStop()
        if self.signalfds:
            signalfd.sync(self)
        return WAIT_SLICE if remaining is None else max(0.0, min(WAIT_SLICE, remaining))

    def wait_to_retry(self, seconds: float) -> None:
        """A blocking syscall whose condition no fd reports (a child's exit, a lock let go) will
        look again: with several threads its thread parks (the call runs again at each
        switch); alone, it sleeps `seconds` at most (a stop or a signal cuts that short)."""
        if not self.threads.alone:
            self.threads.wait(recheck=True)
        time.sleep(self.wait_slice(seconds))

    def wait_readable(self, host_fd: int) -> None:
        """Block (interruptibly) until a read of a blocking `host_fd` would not block."""
        self._wait_ready(host_fd, select.POLLIN | select.POLLERR | select.POLLHUP)

    def wait_writable(self, host_fd: int) -> None:
        """Block (interruptibly) until a blocking `host_fd` takes a write (a pipe: one buffer)."""
        self._wait_ready(host_fd, select.POLLOUT | select.POLLERR | select.POLLHUP)

    def _wait_ready(self, host_fd: int, events: int) -> None:
        try:
            if not os.get_blocking(host_fd):
                return
        except OSError:
            return
        if not self.threads.alone:
            self.threads.wait(((host_fd, events),))
            return
        poller = select.poll()
        poller.register(host_fd, events)
        while not poller.poll(self.wait_slice() * 1000):
            pass

    def flush_host_stdio(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
