"""rt_sigqueueinfo and rt_tgsigqueueinfo: sigqueue(3) and pthread_sigqueue(3).

A signal queued to the guest's own process carries the sender's siginfo as it
gave it (si_code SI_QUEUE and si_value, most often) to the handler or to
sigwaitinfo; real-time signals queue every instance (signals.PendingSignals).
Another guest process is a host process, so a signal queued to it is sent as a
host signal and arrives without the sender's si_value.
"""
from __future__ import annotations

import errno
import os

from .errors import SyscallError
from .process import is_guest_process, sys_kill
from .registry import syscall
from .signals import SI_TKILL, SIGINFO_SIZE


def _queue(k, tgid: int, tid: int | None, signal: int, info: int) -> int:
    state = k.signals
    if not 0 <= signal <= state.count:
        raise SyscallError(errno.EINVAL)
    raw = k.read(info, SIGINFO_SIZE)
    layout = k.arch.signal_frame
    code_at = layout.siginfo_code if layout is not None else 8
    code = int.from_bytes(raw[code_at:code_at + 4], k.byteorder, signed=True)
    own = tgid == os.getpid()
    if (code >= 0 or code == SI_TKILL) and not own:  # only the kernel may claim to be one
        raise SyscallError(errno.EPERM)
    if not own:
        if not is_guest_process(k, tgid):
            raise SyscallError(errno.ESRCH)
        return sys_kill(k, tgid, signal)
    thread = None
    if tid is not None:
        thread = k.threads.threads.get(tid)
        if thread is None:
            raise SyscallError(errno.ESRCH)
    if signal == 0:
        return 0
    if thread is None:
        state.send_process(signal, code, raw)
    else:
        state.send_thread(thread, signal, code, raw)
    return 0


@syscall("int", "signal", "ptr")
def sys_rt_sigqueueinfo(k, tgid, signal, info):
    return _queue(k, k.signed32(tgid), None, signal, info)


@syscall("int", "int", "signal", "ptr")
def sys_rt_tgsigqueueinfo(k, tgid, tid, signal, info):
    return _queue(k, k.signed32(tgid), k.signed32(tid), signal, info)
