"""Signal numbers on the wire: GDB's own numbering (gdb's include/gdb/signals.def), not the guest's.

gdbserver translates its host's signal numbers to GDB's by name; the stub does the same with
the guest ISA's Linux numbers: the common ones (asm-generic/signal.h) with the ISA's
`Arch.signal_overrides` (MIPS numbers most of them differently). Real-time signals follow
GDB's three runs: 32 is 77, 33..63 are 45..75, 64..127 (MIPS) are 78..141.
"""
from __future__ import annotations

from typing import Mapping

#: Linux's common signal numbers (asm-generic/signal.h), by name.
LINUX = {"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGBUS": 7,
         "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13,
         "SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16, "SIGCHLD": 17, "SIGCONT": 18, "SIGSTOP": 19,
         "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22, "SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25,
         "SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29, "SIGPWR": 30, "SIGSYS": 31}
#: GDB's numbers (GDB_SIGNAL_*), by the Linux name; SIGSTKFLT has none (GDB_SIGNAL_UNKNOWN).
GDB = {"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGEMT": 7,
       "SIGFPE": 8, "SIGKILL": 9, "SIGBUS": 10, "SIGSEGV": 11, "SIGSYS": 12, "SIGPIPE": 13, "SIGALRM": 14,
       "SIGTERM": 15, "SIGURG": 16, "SIGSTOP": 17, "SIGTSTP": 18, "SIGCONT": 19, "SIGCHLD": 20,
       "SIGTTIN": 21, "SIGTTOU": 22, "SIGIO": 23, "SIGXCPU": 24, "SIGXFSZ": 25, "SIGVTALRM": 26,
       "SIGPROF": 27, "SIGWINCH": 28, "SIGUSR1": 30, "SIGUSR2": 31, "SIGPWR": 32}
GDB_UNKNOWN = 143
SIGTRAP, SIGINT = GDB["SIGTRAP"], GDB["SIGINT"]


def _realtime(guest: int) -> int | None:
    if guest == 32:
        return 77
    if 33 <= guest <= 63:
        return 45 + guest - 33
    if 64 <= guest <= 127:
        return 78 + guest - 64
    return None


class SignalNumbers:
    """One ISA's signals both ways: guest (Linux) number <-> GDB number."""

    def __init__(self, overrides: Mapping[str, int], count: int) -> None:
        taken = set(overrides.values())
        by_name = {name: number for name, number in LINUX.items() if number not in taken or name in overrides}
        by_name.update(overrides)
        self.to_gdb: dict[int, int] = {}
        for name, number in by_name.items():
            if name in GDB:
                self.to_gdb[number] = GDB[name]
        for guest in range(32, count + 1):
            number = _realtime(guest)
            if number is not None:
                self.to_gdb[guest] = number
        self.from_gdb = {number: guest for guest, number in self.to_gdb.items()}

    def gdb(self, guest: int) -> int:
        return self.to_gdb.get(guest, GDB_UNKNOWN)

    def guest(self, number: int) -> int | None:
        """The guest's number for GDB's `number` (0 stays 0: no signal); None: the guest has none."""
        return 0 if number == 0 else self.from_gdb.get(number)


def parse_list(text: str) -> frozenset[int]:
    """`QPassSignals:` / `QProgramSignals:` bodies: GDB numbers in hex, separated by `;`."""
    return frozenset(int(item, 16) for item in text.split(";") if item)


class SignalChoices:
    """What the client decided about signals: which pass without a stop (QPassSignals), which may
    reach the guest at all (QProgramSignals), and the signal its last resume packet carries."""

    def __init__(self, overrides: Mapping[str, int], count: int) -> None:
        self.numbers = SignalNumbers(overrides, count)
        self.passing: frozenset[int] = frozenset()  # GDB numbers
        self.program: frozenset[int] | None = None  # GDB numbers; None: all
        #: The guest signal the last `C`/`S`/`vCont;C` asked for (0: none).
        self.resume_with = 0
        #: Guest signals the client sent itself (a `C` outside a signal stop): delivered unstopped.
        self.granted: set[int] = set()
        #: The signal let through at the last signal stop or without one (0: none), so that a
        #: guest it kills is not shown again at the run's end.
        self.delivered = 0

    def packet(self, text: str) -> bytes | None:
        """The reply to `QPassSignals:` or `QProgramSignals:`; None for another packet."""
        name, _, body = text.partition(":")
        if name == "QPassSignals":
            self.passing = parse_list(body)
        elif name == "QProgramSignals":
            self.program = parse_list(body)
        else:
            return None
        return b"OK"

    def resume(self, field: str) -> None:
        """A resume packet's signal field (hex GDB number; "" for none)."""
        guest = self.numbers.guest(int(field, 16)) if field else 0
        self.resume_with = guest or 0  # a signal the guest's ISA lacks is dropped

    def passed(self, signal: int) -> int | None:
        """Delivered without a stop: the signal (0 where QProgramSignals keeps it from the guest);
        None: the client is to be told."""
        if signal in self.granted:
            self.granted.discard(signal)
            self.delivered = signal
            return signal
        number = self.numbers.gdb(signal)
        if number not in self.passing:
            return None
        self.delivered = signal if self.program is None or number in self.program else 0
        return self.delivered

    def chosen(self) -> int:
        """After a signal stop: the signal the client resumed with (0: it discarded the one shown)."""
        self.delivered, self.resume_with = self.resume_with, 0
        return self.delivered

    def grant(self, state, signal: int) -> None:
        """The client sends `signal` (not the one a stop showed): pending for the running thread
        of SignalState `state`, as sent by kill (SI_USER), and delivered without a stop."""
        state.threads.current.signal_pending.add(signal, (0, 0))
        self.granted.add(signal)
