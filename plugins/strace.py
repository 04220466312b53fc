"""Syscalls as strace prints them: decoded strings, flags and errno names."""
from __future__ import annotations

import errno
import os
import signal as host_signal

from bdemu import Plugin

PROT_FLAGS = [("PROT_READ", 1), ("PROT_WRITE", 2), ("PROT_EXEC", 4)]
MAP_FLAGS = [("MAP_SHARED", 1), ("MAP_PRIVATE", 2), ("MAP_FIXED", 0x10), ("MAP_ANONYMOUS", 0x20),
             ("MAP_GROWSDOWN", 0x100), ("MAP_DENYWRITE", 0x800), ("MAP_EXECUTABLE", 0x1000),
             ("MAP_LOCKED", 0x2000), ("MAP_NORESERVE", 0x4000), ("MAP_POPULATE", 0x8000),
             ("MAP_NONBLOCK", 0x10000), ("MAP_STACK", 0x20000), ("MAP_FIXED_NOREPLACE", 0x100000)]
CLOCKS = ["CLOCK_REALTIME", "CLOCK_MONOTONIC", "CLOCK_PROCESS_CPUTIME_ID", "CLOCK_THREAD_CPUTIME_ID",
          "CLOCK_MONOTONIC_RAW", "CLOCK_REALTIME_COARSE", "CLOCK_MONOTONIC_COARSE", "CLOCK_BOOTTIME"]
POINTER_RESULTS = {"mmap", "mmap2", "brk", "mremap", "shmat"}


def flags(value: int, table, zero: str = "0") -> str:
    names = [name for name, bit in table if value & bit == bit]
    rest = value & ~sum(bit for name, bit in table if value & bit == bit)
    if rest:
        names.append(f"{rest:#x}")
    return "|".join(names) or zero


def quote(data: bytes, limit: int) -> str:
    shown = data[:limit]
    text = "".join(_CHAR.get(b, chr(b) if 32 <= b < 127 else f"\\x{b:02x}") for b in shown)
    return f'"{text}"' + ("..." if len(data) > limit else "")


_CHAR = {ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r", ord('"'): '\\"', ord("\\"): "\\\\", 0: "\\0"}


class Strace(Plugin):
    """Syscalls as strace prints them: decoded strings, flags and errno names."""

    name = "strace"
    options = {"strsize": (int, 32, "how many bytes of each string or buffer to show")}

    def __init__(self, **options) -> None:
        super().__init__(**options)
        #: The last syscall made, not returned yet: (tid, number, args, formatted call).
        self._pending = None
        #: Syscalls that wait while other threads run, by thread id.
        self._unfinished: dict[int, tuple] = {}
        self._tids: set[int] = set()
        self.lines: list[str] = []

    def on_start(self, emu) -> None:
        self._emu = emu
        self._out = self.open_output(emu)
        bits = emu.arch.bits
        self._sign_bit, self._mask = 1 << (bits - 1), (1 << bits) - 1
        self._errno = dict(errno.errorcode)
        for name, number in getattr(emu.arch, "errno_overrides", {}).items():
            self._errno[number] = name
        self._open_flags = sorted(emu.open_flag_values().items(), key=lambda item: item[1])
        anonymous = emu.arch.map_anonymous  # 0x800 on MIPS, where it displaces MAP_DENYWRITE
        self._map_flags = [(name, anonymous if name == "MAP_ANONYMOUS" else value) for name, value in MAP_FLAGS
                           if name == "MAP_ANONYMOUS" or value != anonymous]
        self._signals = {s.value: s.name for s in host_signal.Signals}
        for name, number in getattr(emu.arch, "signal_overrides", {}).items():
            self._signals[number] = name

    def _signed(self, value: int) -> int:
        value &= self._mask
        return value - (self._mask + 1) if value & self._sign_bit else value

    def _string(self, emu, address: int) -> str:
        if address == 0:
            return "NULL"
        data = b""
        try:
            while len(data) <= self.strsize and b"\0" not in data:
                data += emu.read_memory(address + len(data), 64 - (address + len(data)) % 64)
        except Exception:
            if not data:
                return f"{address:#x}"
        return quote(data.split(b"\0")[0], self.strsize)

    def _buffer(self, emu, address: int, size: int) -> str:
        try:
            return quote(emu.read_memory(address, min(size, self.strsize + 1)), self.strsize)
        except Exception:
            return f"{address:#x}"

    def _iov(self, emu, address: int, count: int) -> str:
        word = emu.arch.bits // 8
        order = emu.arch.byteorder
        items = []
        try:
            for i in range(min(count, 8)):
                raw = emu.read_memory(address + 2 * word * i, 2 * word)
                base, length = int.from_bytes(raw[:word], order), int.from_bytes(raw[word:], order)
                items.append(f"{{iov_base={self._buffer(emu, base, length)}, iov_len={length}}}")
        except Exception:
            return f"{address:#x}"
        return "[" + ", ".join(items) + ("..." if count > 8 else "") + "]"

    def _argument(self, emu, kind: str, value: int, args, index: int, kinds, result) -> str:
        if kind in ("int", "fd"):
            return str(self._signed(value))
        if kind == "dirfd":
            return "AT_FDCWD" if self._signed(value) == -100 else str(self._signed(value))
        if kind in ("uint", "size", "off", "off64"):
            return str(value)
        if kind in ("path", "str"):
            return self._string(emu, value)
        if kind == "buf_in":
            return self._buffer(emu, value, self._size_after(args, index, kinds))
        if kind == "buf_out":
            if result is None or self._signed(result) < 0:
                return f"{value:#x}"
            return self._buffer(emu, value, self._signed(result))
        if kind == "iov":
            return self._iov(emu, value, args[index + 1] if index + 1 < len(args) else 0)
        if kind == "oflags":
            return ("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")[value & 3] + \
                "".join(f"|{name}" for name in flags(value & ~3, self._open_flags, "").split("|") if name)
        if kind == "mode":
            return f"{value:#o}".replace("0o", "0")
        if kind == "prot":
            return flags(value, PROT_FLAGS, "PROT_NONE")
        if kind == "mflags":
            return flags(value, self._map_flags)
        if kind == "signal":
            return self._signals.get(value, str(value))
        if kind == "clock":
            return CLOCKS[value] if value < len(CLOCKS) else str(self._signed(value))
        if kind == "ptr":
            return "NULL" if value == 0 else f"{value:#x}"
        return f"{value:#x}"

    @staticmethod
    def _size_after(args, index: int, kinds) -> int:
        for later in range(index + 1, len(kinds)):
            if kinds[later] == "size":
                return args[later]
        return 0

    def _format(self, emu, number: int, args, result) -> str:
        kinds = emu.syscall_signature(number)
        name = emu.syscall_name(number)
        if kinds is None:
            shown = ", ".join(f"{a:#x}" for a in args)
        else:
            shown = ", ".join(self._argument(emu, kind, args[i], args, i, kinds, result)
                              for i, kind in enumerate(kinds))
        return f"{name}({shown})"

    def _result(self, emu, number: int, result: int) -> str:
        value = self._signed(result)
        if -4096 < value < 0:
            code = -value
            return f"-1 {self._errno.get(code, f'E{code}')} ({os.strerror(code)})"
        if emu.syscall_name(number) in POINTER_RESULTS:
            return f"{result & self._mask:#x}"
        return str(value)

    def _emit(self, text: str, tid: int | None = None) -> None:
        if tid is not None and len(self._tids) > 1:  # strace -f's prefix, once threads interleave
            text = f"[pid {tid}] {text}"
        self.lines.append(text)
        print(text, file=self._out, flush=True)

    def on_syscall(self, emu, number, args) -> None:
        tid = emu.tid
        self._tids.add(tid)
        self._set_aside(tid)
        self._flush_pending()
        self._pending = (tid, number, tuple(args), self._format(emu, number, args, None))

    def on_syscall_return(self, emu, number, result) -> None:
        """The return of the running thread's last syscall: just made, or one that waited while
        other threads made theirs (printed as strace does, `<... name resumed>`)."""
        tid = emu.tid
        self._set_aside(tid)
        pending, resumed = self._pending, ""
        if pending is not None:
            self._pending = None
        else:
            pending = self._unfinished.pop(tid, None)
            if pending is None:
                return
            resumed = f"<... {emu.syscall_name(number)} resumed> "
        _, _, args, head = pending
        kinds = emu.syscall_signature(number) or ()
        if "buf_out" in kinds:
            head = self._format(emu, number, args, result)
        self._emit(f"{resumed}{head} = {self._result(emu, number, result)}", tid)

    def _set_aside(self, tid: int) -> None:
        """Thread `tid` runs while another's syscall has not returned: that one waits, or the
        other thread called exit (which never returns) and is gone."""
        pending = self._pending
        if pending is not None and pending[0] != tid:
            self._pending = None
            if self._emu.syscall_name(pending[1]) == "exit":
                self._emit(f"{pending[3]} = ?", pending[0])
                self._emit(f"+++ exited with {pending[2][0] & 0xFF} +++", pending[0])
                return
            self._emit(f"{pending[3]} <unfinished ...>", pending[0])
            self._unfinished[pending[0]] = pending

    def _flush_pending(self) -> None:
        if self._pending is not None:
            self._emit(f"{self._pending[3]} = ?", self._pending[0])
            self._pending = None

    def on_exit(self, emu, result) -> None:
        self._flush_pending()
        for tid, (_, number, _, head) in self._unfinished.items():
            self._emit(f"<... {emu.syscall_name(number)} resumed> {head} = ?", tid)
        self._unfinished.clear()
        if result.reason == "exit":
            self._emit(f"+++ exited with {result.exit_code} +++")
        elif result.reason == "signal":
            self._emit(f"+++ killed by {self._signals.get(result.signal, result.signal)} +++")
