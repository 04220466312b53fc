"""Signal delivery: entering a guest handler on an ISA's signal frame, and returning from it.

At a safe point (the run loop, between two `emu_start`s) `deliver_pending` takes the lowest
signal the running thread can take (signals.py keeps that state), builds the ISA's
rt_sigframe (`Arch.signal_frame`) on the guest stack and enters the handler. `rt_sigreturn`
restores the interrupted state: Unicorn's saved context (FP/SIMD included), then the frame's
registers and mask, so a handler's edits take effect. A syscall interrupted under a
SA_RESTART handler resumes at its own instruction instead.
"""
from __future__ import annotations

import errno

from .errors import GuestSignal, SyscallError
from .registry import syscall
from .signals import SI_USER, SIGINFO_SIZE, bit, siginfo

SA_SIGINFO, SA_ONSTACK, SA_NODEFER, SA_RESETHAND = 0x4, 0x08000000, 0x40000000, 0x80000000
SA_RESTORER, SA_RESTART = 0x04000000, 0x10000000
#: Syscalls a handled signal makes fail with EINTR even under SA_RESTART (signal(7)).
NEVER_RESTARTED = frozenset({
    "nanosleep", "clock_nanosleep", "clock_nanosleep_time64", "poll", "ppoll", "ppoll_time64",
    "select", "_newselect", "pselect6", "pselect6_time64", "epoll_wait", "epoll_pwait",
    "epoll_pwait2", "rt_sigsuspend", "sigsuspend", "pause", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "msgrcv", "msgsnd", "semop", "semtimedop", "io_getevents"})


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


def catch_fault(k, signal: int, address: int, code: int) -> bool:
    """A CPU fault: queue it for the guest's handler if one is installed and unblocked (the
    handler returning re-runs the faulting instruction, as on Linux); False: it is fatal."""
    state = k.signals
    if k.arch.signal_frame is None or state.disposition(signal) != "handler" or state.mask & bit(signal):
        return False
    state.threads.current.signal_pending[signal] = (code, address)
    return True


def restart_point(k, name: str) -> tuple[bool, dict[str, int]]:
    """What a SA_RESTART handler needs to run syscall `name` again, read before its result is
    written: whether Linux restarts it, and the registers the result overwrites."""
    abi = k.arch.syscall
    return name not in NEVER_RESTARTED, {reg: k.emu.regs.reg(reg) for reg in (abi.result, abi.error_flag) if reg}


def note_interrupted(k, name: str) -> int:
    """A blocking syscall of the running thread gave way to a signal (Interrupted): remember its
    restart point for the handler about to run, and fail it with EINTR."""
    interrupted_at(k, restart_point(k, name))
    return -errno.EINTR


def interrupted_at(k, point: tuple[bool, dict[str, int]]) -> None:
    """The running thread's syscall failed with EINTR for a signal; `point` (restart_point) is
    what a SA_RESTART handler, about to run, uses to return into it."""
    restartable, saved = point
    k.signals.interrupted = (restartable and k.threads.current, saved)
    k.emu.request_signal_work()


def _restart(k, flags: int) -> None:
    """The handler about to run interrupted a syscall: with SA_RESTART (and a syscall Linux
    restarts) the handler returns to the syscall instruction, its registers as they were."""
    interrupted, k.signals.interrupted = k.signals.interrupted, None
    if interrupted is None or interrupted[0] is not k.threads.current or not flags & SA_RESTART:
        return
    rewind_to_syscall(k, interrupted[1])


def rewind_to_syscall(k, saved: dict[str, int]) -> None:
    """After a syscall that gave way (emu_start returned past its instruction): put back the
    registers its result overwrote (`restart_point`) and the pc on the instruction, to run it again."""
    emu, abi = k.emu, k.arch.syscall
    for name, value in saved.items():
        emu.regs.set_reg(name, value)
    size = abi.insn_size if isinstance(abi.insn_size, int) else abi.insn_size(emu.regs)
    emu.set_pc(emu.regs.reg(k.arch.pc) - size)


def deliver_pending(k) -> None:
    """At a safe point: finish an rt_sigreturn, then enter the handler of a deliverable signal
    (or apply its default action: GuestSignal ends the run)."""
    state = k.signals
    if state.sigreturn is not None:
        offset, state.sigreturn = state.sigreturn, None
        _sigreturn(k, offset)
    signal = state.deliverable()
    if signal is None:
        state.interrupted = None
        return
    own = state.threads.current.signal_pending
    code, address = (own if signal in own else state.pending).take(signal)
    debugger = k.emu.debugger
    if debugger is not None and signal != state.kill_number:  # ptrace's signal-delivery-stop
        chosen = debugger.signal_stop(signal, siginfo(k, signal, code, address, consume=False))
        if chosen != signal:  # the debugger discarded it (0) or sends another one
            signal, code, address = chosen, SI_USER, 0
            if signal and state.mask & bit(signal):  # blocked: pending, as Linux requeues it
                state.send_thread(state.threads.current, signal, SI_USER)
                signal = 0
    action = state.disposition(signal) if signal else "ignore"
    if action == "ignore":
        _no_handler(k)
        return
    if action == "default":
        raise GuestSignal(signal, "sent by the guest to itself" if code != SI_USER or address
                          else "a signal with no guest handler")
    _enter_handler(k, signal, code, address)


def _no_handler(k) -> None:
    """A signal taken with no handler to run (ignored, or discarded by a debugger): the mask
    rt_sigsuspend replaced comes back, and the syscall it interrupted runs again if Linux
    restarts it (as it does for SA_RESTART)."""
    state = k.signals
    if state.suspended_mask is not None:
        state.mask, state.suspended_mask = state.suspended_mask, None
    _restart(k, SA_RESTART)


def _field(record: bytes, offset: int, size: int, byteorder: str) -> int:
    return int.from_bytes(record[offset:offset + size], byteorder)


def _enter_handler(k, signal: int, code: int, address: int) -> None:
    layout, state, emu = k.arch.signal_frame, k.signals, k.emu
    record = state.actions[signal]
    flags = _field(record, layout.sigaction_flags, k.word, k.byteorder)
    _restart(k, flags)
    sp = emu.reg(k.arch.sp)
    if flags & SA_ONSTACK and state.altstack:
        base = _field(state.altstack, layout.stack_offset("sp", k.word), k.word, k.byteorder)
        stack_flags = _field(state.altstack, layout.stack_offset("flags", k.word), 4, k.byteorder)
        size = _field(state.altstack, layout.stack_offset("size", k.word), k.word, k.byteorder)
        if not stack_flags & 2 and not base <= sp < base + size:  # not SS_DISABLE, not on it already
            sp = base + size
    frame = ((sp - layout.red_zone - layout.size) & ~15) - layout.entry_misalign
    context = bytearray(layout.size)
    info = layout.siginfo
    end = k.byteorder
    context[info:info + SIGINFO_SIZE] = siginfo(k, signal, code, address)
    ucontext = layout.ucontext
    saved_mask = state.mask if state.suspended_mask is None else state.suspended_mask
    state.suspended_mask = None
    size = state.sigset_size
    context[ucontext + layout.sigmask:ucontext + layout.sigmask + size] = k.bitmap_bytes(saved_mask, size)
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
    state.mask |= k.bitmap(record[layout.sigaction_mask:layout.sigaction_mask + size])
    if not flags & SA_NODEFER:
        state.mask |= bit(signal)
    handler = state.handlers[signal]
    if flags & SA_RESETHAND:
        state.handlers.pop(signal, None)
        state.actions.pop(signal, None)
        k.host_signals.follow(signal)
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
    state.mask = k.bitmap(context[mask_at:mask_at + state.sigset_size])
