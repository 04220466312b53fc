"""Signal syscalls and delivery to guest handlers.

A signal the guest sends itself is queued; at the next safe point (the run loop, between two
`emu_start`s, right after the syscall that raised or unblocked it) the emulator calls
`deliver_pending`, which builds the ISA's rt_sigframe (`Arch.signal_frame`) on the guest stack
and enters the handler. `rt_sigreturn` restores the interrupted state: Unicorn's saved context
(FP/SIMD included), then the frame's registers and mask, so a handler's edits take effect.
"""
from __future__ import annotations

import errno
import os
import struct
import time

from .errors import SyscallError
from .registry import syscall

SIG_DFL, SIG_IGN = 0, 1
#: Signals whose default action is to be ignored, by name and generic number.
DEFAULT_IGNORED_NAMES = {"SIGCHLD": 17, "SIGCONT": 18, "SIGURG": 23, "SIGWINCH": 28}
DEFAULT_IGNORED = frozenset(DEFAULT_IGNORED_NAMES.values())


def default_ignored(overrides) -> frozenset[int]:
    """The default-ignored signal numbers of an ISA whose numbers differ by name (MIPS)."""
    return frozenset(overrides.get(name, number) for name, number in DEFAULT_IGNORED_NAMES.items())


SA_SIGINFO, SA_ONSTACK, SA_NODEFER, SA_RESETHAND = 0x4, 0x08000000, 0x40000000, 0x80000000
SA_RESTORER = 0x04000000
SI_USER, SI_KERNEL, SI_TKILL = 0, 0x80, -6
SIGALRM = 14
#: Signals a mask can never block (SIGKILL, SIGSTOP).
UNBLOCKABLE = (1 << 8) | (1 << 18)


def bit(signal: int) -> int:
    return 1 << (signal - 1)


class SignalState:
    """Per-process signal bookkeeping: raw sigaction records, the mask, the alternate stack,
    signals waiting for delivery and the saved contexts of the handlers running."""

    def __init__(self, ignored: frozenset[int] = DEFAULT_IGNORED) -> None:
        self.ignored = ignored
        self.actions: dict[int, bytes] = {}
        self.handlers: dict[int, int] = {}
        self.mask = 0
        self.altstack = b""
        #: signal -> its (si_code, si_addr), for signals raised but not delivered yet.
        self.pending: dict[int, tuple[int, int]] = {}
        #: ITIMER_REAL: when it next raises SIGALRM (time.monotonic()), and its interval.
        self.alarm_at: float | None = None
        self.alarm_interval = 0.0
        #: The mask rt_sigsuspend replaced: the handler's frame saves it, so sigreturn restores it.
        self.suspended_mask: int | None = None
        #: frame address -> (Unicorn context of the code the handler interrupted, the frame as
        #: written: rt_sigreturn takes from the frame only what the handler changed).
        self.frames: dict[int, tuple[object, bytes]] = {}
        #: Set by (rt_)sigreturn: how far below sp the frame to restore starts.
        self.sigreturn: int | None = None

    def deliverable(self) -> int | None:
        """The lowest pending signal the mask lets through (Linux delivers low numbers first)."""
        for signal in sorted(self.pending):
            if not self.mask & bit(signal):
                return signal
        return None

    def has_work(self) -> bool:
        self.check_alarm()
        return self.sigreturn is not None or self.deliverable() is not None

    def check_alarm(self) -> None:
        """Raise SIGALRM once ITIMER_REAL expired (checked at syscalls and in the run loop)."""
        if self.alarm_at is not None and time.monotonic() >= self.alarm_at:
            self.alarm_at = self.alarm_at + self.alarm_interval if self.alarm_interval else None
            if self.disposition(SIGALRM) != "ignore":
                self.pending.setdefault(SIGALRM, (SI_KERNEL, 0))

    def alarm_remaining_us(self) -> int | None:
        """Microseconds until SIGALRM (at least 1): the run loop's emu_start timeout."""
        if self.alarm_at is None:
            return None
        return max(1, int((self.alarm_at - time.monotonic()) * 1e6))

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
        self.frames.clear()  # the handlers' stacks are gone with the old image


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
        state.mask &= ~UNBLOCKABLE
        if state.deliverable() is not None:
            k.emu.request_signal_work()
    return 0


@syscall("ptr", "size")
def sys_rt_sigpending(k, pending, size):
    value = sum(bit(signal) for signal in k.signals.pending) & k.signals.mask
    k.write(pending, value.to_bytes(8, k.byteorder))
    return 0


@syscall()
def sys_rt_sigreturn(k):
    """Undone in `deliver_pending` once the syscall is over: the frame's registers win."""
    if k.arch.signal_frame is None:
        raise SyscallError(errno.ENOSYS)
    k.signals.sigreturn = k.arch.signal_frame.sigreturn_sp_offset
    k.emu.request_signal_work()
    return 0


@syscall()
def sys_sigreturn(k):
    """The old sigreturn: bdemu builds one frame layout for both, found a word further on."""
    layout = k.arch.signal_frame
    if layout is None or layout.old_sigreturn_sp_offset is None:
        raise SyscallError(errno.ENOSYS)
    k.signals.sigreturn = layout.old_sigreturn_sp_offset
    k.emu.request_signal_work()
    return 0


@syscall("ptr", "ptr")
def sys_sigaltstack(k, new, old):
    size = 3 * k.word if k.word == 4 else 24
    if old:
        k.write(old, k.signals.altstack or (2).to_bytes(4, k.byteorder).rjust(size, b"\0")[:size])
    if new:
        k.signals.altstack = k.read(new, size)
    return 0


def _wait_for_signal(k) -> None:
    """Sleep (interruptibly, in slices) until a signal can be delivered."""
    state = k.signals
    if not k.threads.alone and not state.has_work():  # other threads run until a signal is due
        k.threads.wait()
    while not state.has_work():
        remaining = None if state.alarm_at is None else max(0.0, state.alarm_at - time.monotonic())
        time.sleep(k.wait_slice(remaining))
    k.emu.request_signal_work()


@syscall("ptr", "size")
def sys_rt_sigsuspend(k, mask, size):
    state = k.signals
    if k.arch.signal_frame is None:
        raise SyscallError(errno.EINTR)
    new = int.from_bytes(k.read(mask, 8), k.byteorder) & ~UNBLOCKABLE
    state.suspended_mask, state.mask = state.mask, new
    try:
        _wait_for_signal(k)
    except BaseException:
        state.mask, state.suspended_mask = state.suspended_mask, None
        raise
    raise SyscallError(errno.EINTR)


@syscall()
def sys_pause(k):
    if k.arch.signal_frame is None:
        raise SyscallError(errno.EINTR)
    _wait_for_signal(k)
    raise SyscallError(errno.EINTR)


def _set_alarm(state: SignalState, value: float, interval: float) -> tuple[float, float]:
    """Arm (value > 0) or disarm ITIMER_REAL; returns the old (remaining, interval)."""
    now = time.monotonic()
    old = (max(0.0, state.alarm_at - now) if state.alarm_at is not None else 0.0, state.alarm_interval)
    state.alarm_at = now + value if value > 0 else None
    state.alarm_interval = interval if value > 0 else 0.0
    return old


def _rearm(k, value: float, interval: float) -> tuple[float, float]:
    old = _set_alarm(k.signals, value, interval)
    k.emu.request_signal_work()  # the run loop's emu_start timeout must follow the new expiry
    return old


@syscall("int")
def sys_alarm(k, seconds):
    remaining, _ = _rearm(k, float(seconds & 0xFFFFFFFF), 0.0)
    return int(remaining + 0.999999) if remaining else 0


def _timeval_format(k) -> str:
    return ("<" if k.byteorder == "little" else ">") + ("qq" if k.word == 8 else "ii")


def _timeval(k, address: int) -> float:
    seconds, micros = struct.unpack(_timeval_format(k), k.read(address, 2 * k.word))
    if seconds < 0 or not 0 <= micros < 1_000_000:
        raise SyscallError(errno.EINVAL)
    return seconds + micros / 1e6


def _write_timeval(k, address: int, value: float) -> None:
    seconds = int(value)
    micros = int(round((value - seconds) * 1e6))
    k.write(address, struct.pack(_timeval_format(k), seconds, micros))


@syscall("int", "ptr", "ptr")
def sys_setitimer(k, which, new, old):
    """ITIMER_REAL only (SIGALRM); the virtual and profiling timers are not emulated."""
    if which != 0:
        raise SyscallError(errno.EINVAL)
    interval = _timeval(k, new) if new else 0.0
    value = _timeval(k, new + 2 * k.word) if new else 0.0
    remaining, old_interval = _rearm(k, value, interval)
    if old:
        _write_timeval(k, old, old_interval)
        _write_timeval(k, old + 2 * k.word, remaining)
    return 0


@syscall("int", "ptr")
def sys_getitimer(k, which, current):
    if which != 0:
        raise SyscallError(errno.EINVAL)
    state = k.signals
    remaining = max(0.0, state.alarm_at - time.monotonic()) if state.alarm_at is not None else 0.0
    _write_timeval(k, current, state.alarm_interval)
    _write_timeval(k, current + 2 * k.word, remaining)
    return 0


def catch_fault(k, signal: int, address: int, code: int) -> bool:
    """A CPU fault: queue it for the guest's handler if one is installed and unblocked (the
    handler returning re-runs the faulting instruction, as on Linux); False: it is fatal."""
    state = k.signals
    if k.arch.signal_frame is None or state.disposition(signal) != "handler" or state.mask & bit(signal):
        return False
    state.pending[signal] = (code, address)
    return True


def deliver_pending(k) -> None:
    """At a safe point: finish an rt_sigreturn, then enter the handler of a deliverable signal
    (or apply its default action: GuestSignal ends the run)."""
    state = k.signals
    if state.sigreturn is not None:
        offset, state.sigreturn = state.sigreturn, None
        _sigreturn(k, offset)
    signal = state.deliverable()
    if signal is None:
        return
    code, address = state.pending.pop(signal)
    action = state.disposition(signal)
    if action == "ignore":
        return
    if action == "default":
        from .errors import GuestSignal
        raise GuestSignal(signal, "sent by the guest to itself")
    _enter_handler(k, signal, code, address)


def _field(record: bytes, offset: int, size: int, byteorder: str) -> int:
    return int.from_bytes(record[offset:offset + size], byteorder)


def _enter_handler(k, signal: int, code: int, address: int) -> None:
    layout, state, emu = k.arch.signal_frame, k.signals, k.emu
    record = state.actions[signal]
    flags = _field(record, layout.sigaction_flags, k.word, k.byteorder)
    sp = emu.reg(k.arch.sp)
    if flags & SA_ONSTACK and state.altstack:
        slot = {name: index * k.word for index, name in enumerate(layout.stack_fields)}
        base = _field(state.altstack, slot["sp"], k.word, k.byteorder)
        stack_flags = _field(state.altstack, slot["flags"], 4, k.byteorder)
        size = _field(state.altstack, slot["size"], k.word, k.byteorder)
        if not stack_flags & 2 and not base <= sp < base + size:  # not SS_DISABLE, not on it already
            sp = base + size
    frame = ((sp - layout.red_zone - layout.size) & ~15) - layout.entry_misalign
    context = bytearray(layout.size)
    info = layout.siginfo
    end = k.byteorder
    context[info:info + 4] = signal.to_bytes(4, end)
    context[info + layout.siginfo_code:info + layout.siginfo_code + 4] = (code & 0xFFFFFFFF).to_bytes(4, end)
    fields_at = info + (16 if k.word == 8 else 12)
    if address:  # a fault: si_addr
        context[fields_at:fields_at + k.word] = address.to_bytes(k.word, end)
    elif code in (SI_USER, SI_TKILL):
        context[fields_at:fields_at + 4] = os.getpid().to_bytes(4, end)
        context[fields_at + 4:fields_at + 8] = os.getuid().to_bytes(4, end)
    ucontext = layout.ucontext
    saved_mask = state.mask if state.suspended_mask is None else state.suspended_mask
    state.suspended_mask = None
    context[ucontext + layout.sigmask:ucontext + layout.sigmask + 8] = saved_mask.to_bytes(8, end)
    mcontext = ucontext + layout.mcontext
    for name, offset in layout.mcontext_registers:
        at = mcontext + offset
        context[at:at + k.word] = (emu.reg(name) & k.arch.word_mask).to_bytes(k.word, end)
    restorer = layout.trampoline
    if layout.sigaction_restorer is not None and flags & SA_RESTORER:
        restorer = _field(record, layout.sigaction_restorer, k.word, k.byteorder)
    if layout.return_register is None:
        context[0:k.word] = restorer.to_bytes(k.word, end)
    for where, value in zip(layout.arguments, (signal, frame + info, frame + ucontext)):
        if isinstance(where, int):  # an argument on the stack
            context[where:where + k.word] = value.to_bytes(k.word, end)
    for name, offset in layout.frame_registers:  # AArch64: the {fp, lr} record
        context[offset:offset + 2 * k.word] = (emu.reg(name).to_bytes(k.word, end)
                                                + emu.reg(k.arch.pc).to_bytes(k.word, end))
    k.write(frame, bytes(context))
    state.frames[frame] = (emu.uc.context_save(), bytes(context))
    state.mask |= _field(record, layout.sigaction_mask, 8, k.byteorder)
    if not flags & SA_NODEFER:
        state.mask |= bit(signal)
    state.mask &= ~UNBLOCKABLE
    handler = state.handlers[signal]
    if flags & SA_RESETHAND:
        state.handlers.pop(signal, None)
        state.actions.pop(signal, None)
    for where, value in zip(layout.arguments, (signal, frame + info, frame + ucontext)):
        if isinstance(where, str):
            emu.set_reg(where, value)
    if layout.return_register is not None:
        emu.set_reg(layout.return_register, restorer)
    for name, offset in layout.frame_registers:
        emu.set_reg(name, frame + offset)
    if layout.handler_register is not None:
        emu.set_reg(layout.handler_register, handler)
    emu.set_reg(k.arch.sp, frame)
    emu.set_reg(k.arch.pc, handler)


def _sigreturn(k, sp_offset: int) -> None:
    """Restore what the handler interrupted; a frame bdemu did not build is fatal (SIGSEGV)."""
    layout, state, emu = k.arch.signal_frame, k.signals, k.emu
    frame = emu.reg(k.arch.sp) - sp_offset
    saved = state.frames.pop(frame, None)
    if saved is None:
        from .errors import GuestSignal
        raise GuestSignal(11, "rt_sigreturn without a signal frame")
    for stale in [address for address in state.frames if address < frame]:  # left by siglongjmp
        del state.frames[stale]
    cpu, written = saved
    context = k.read(frame, layout.size)
    emu.uc.context_restore(cpu)
    mcontext = layout.ucontext + layout.mcontext
    for name, offset in layout.mcontext_registers:  # what the handler changed in uc_mcontext
        value = _field(context, mcontext + offset, k.word, k.byteorder)
        if value != _field(written, mcontext + offset, k.word, k.byteorder):
            emu.set_reg(name, value)
    mask_at = layout.ucontext + layout.sigmask
    state.mask = _field(context, mask_at, 8, k.byteorder) & ~UNBLOCKABLE
