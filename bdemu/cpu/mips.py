"""MIPS32, o32 ABI, Linux user mode, in either byte order: `mips` (big endian, most router and
IoT firmware) and `mipsel` (little endian) are one description, `o32(name, byteorder)`.

Syscalls are `syscall` with the number (4000 + n) in v0, arguments in
a0-a3 and further ones on the stack at sp+16; the result is in v0 with a3
= 1 on error, v0 then holding a positive MIPS errno. The thread pointer is
CP0 UserLocal, which guests read with `rdhwr $29`.
"""
from __future__ import annotations

import capstone
import unicorn
from unicorn import mips_const

from bdemu.linux.tables.mips import SYSCALLS

from .base import Arch, BackdoorInsn, CallABI, FixedPage, RegisterAccess, SignalFrame, SyscallABI
from .x86_64 import _unicorn_registers

EXCP_SYSCALL, EXCP_BREAK, EXCP_RI, EXCP_TRAP = 17, 18, 20, 22

#: errno values of arch/mips/include/uapi/asm/errno.h that differ from the generic ones.
ERRNO = {
    "ENOMSG": 35, "EIDRM": 36, "ECHRNG": 37, "EL2NSYNC": 38, "EL3HLT": 39, "EL3RST": 40,
    "ELNRNG": 41, "EUNATCH": 42, "ENOCSI": 43, "EL2HLT": 44, "EDEADLK": 45, "ENOLCK": 46,
    "EBADE": 50, "EBADR": 51, "EXFULL": 52, "ENOANO": 53, "EBADRQC": 54, "EBADSLT": 55,
    "EBFONT": 59, "ENOSTR": 60, "ENODATA": 61, "ETIME": 62, "ENOSR": 63, "ENONET": 64,
    "ENOPKG": 65, "EREMOTE": 66, "ENOLINK": 67, "EADV": 68, "ESRMNT": 69, "ECOMM": 70,
    "EPROTO": 71, "EDOTDOT": 73, "EMULTIHOP": 74, "EBADMSG": 77, "ENAMETOOLONG": 78,
    "EOVERFLOW": 79, "ENOTUNIQ": 80, "EBADFD": 81, "EREMCHG": 82, "ELIBACC": 83, "ELIBBAD": 84,
    "ELIBSCN": 85, "ELIBMAX": 86, "ELIBEXEC": 87, "EILSEQ": 88, "ENOSYS": 89, "ELOOP": 90,
    "ERESTART": 91, "ESTRPIPE": 92, "ENOTEMPTY": 93, "EUSERS": 94, "ENOTSOCK": 95,
    "EDESTADDRREQ": 96, "EMSGSIZE": 97, "EPROTOTYPE": 98, "ENOPROTOOPT": 99,
    "EPROTONOSUPPORT": 120, "ESOCKTNOSUPPORT": 121, "EOPNOTSUPP": 122, "EPFNOSUPPORT": 123,
    "EAFNOSUPPORT": 124, "EADDRINUSE": 125, "EADDRNOTAVAIL": 126, "ENETDOWN": 127,
    "ENETUNREACH": 128, "ENETRESET": 129, "ECONNABORTED": 130, "ECONNRESET": 131, "ENOBUFS": 132,
    "EISCONN": 133, "ENOTCONN": 134, "EUCLEAN": 135, "ENOTNAM": 137, "ENAVAIL": 138, "EISNAM": 139,
    "EREMOTEIO": 140, "ESHUTDOWN": 143, "ETOOMANYREFS": 144, "ETIMEDOUT": 145,
    "ECONNREFUSED": 146, "EHOSTDOWN": 147, "EHOSTUNREACH": 148, "EALREADY": 149,
    "EINPROGRESS": 150, "ESTALE": 151, "ECANCELED": 158, "ENOMEDIUM": 159, "EMEDIUMTYPE": 160,
    "ENOKEY": 161, "EKEYEXPIRED": 162, "EKEYREVOKED": 163, "EKEYREJECTED": 164,
    "EOWNERDEAD": 165, "ENOTRECOVERABLE": 166, "ERFKILL": 167, "EHWPOISON": 168, "EDQUOT": 1133,
}

#: Signal numbers of arch/mips/include/uapi/asm/signal.h that differ from the generic ones.
SIGNALS = {
    "SIGEMT": 7, "SIGBUS": 10, "SIGSYS": 12, "SIGUSR1": 16, "SIGUSR2": 17, "SIGCHLD": 18,
    "SIGPWR": 19, "SIGWINCH": 20, "SIGURG": 21, "SIGIO": 22, "SIGSTOP": 23, "SIGTSTP": 24,
    "SIGCONT": 25, "SIGTTIN": 26, "SIGTTOU": 27, "SIGVTALRM": 28, "SIGPROF": 29, "SIGXCPU": 30,
    "SIGXFSZ": 31,
}

#: Socket numbers of arch/mips/include/asm/socket.h and uapi/asm/socket.h that differ from the
#: generic ones: SOCK_DGRAM and SOCK_STREAM swap, SOL_SOCKET is 0xffff, SO_* follow IRIX.
#: Resource numbers of arch/mips/include/uapi/asm/resource.h that differ: MIPS -> generic.
RLIMITS = {5: 7, 6: 9, 7: 5, 8: 6, 9: 8}  # NOFILE, AS, RSS, NPROC, MEMLOCK

SOCKETS = {
    "SOCK_DGRAM": 1, "SOCK_STREAM": 2, "SOL_SOCKET": 0xFFFF,
    "SO_REUSEADDR": 0x0004, "SO_KEEPALIVE": 0x0008, "SO_DONTROUTE": 0x0010, "SO_BROADCAST": 0x0020,
    "SO_LINGER": 0x0080, "SO_OOBINLINE": 0x0100, "SO_REUSEPORT": 0x0200, "SO_SNDBUF": 0x1001,
    "SO_RCVBUF": 0x1002, "SO_SNDLOWAT": 0x1003, "SO_RCVLOWAT": 0x1004, "SO_SNDTIMEO_OLD": 0x1005,
    "SO_RCVTIMEO_OLD": 0x1006, "SO_ERROR": 0x1007, "SO_TYPE": 0x1008, "SO_ACCEPTCONN": 0x1009,
    "SO_PROTOCOL": 0x1028, "SO_DOMAIN": 0x1029, "SO_PASSCRED": 17, "SO_PEERCRED": 18,
}

#: arch/mips/include/uapi/asm/ioctls.h: MIPS numbers its ioctls its own way. Its struct termios
#: differs too (NCCS 23, other c_cc slots and c_lflag bits), which bdemu does not translate:
#: variants["termios"] tells files.py to refuse TCGETS/TCSETS* rather than copy the host's layout.
IOCTLS = {
    "TCGETS": 0x540D, "TCSETS": 0x540E, "TCSETSW": 0x540F, "TCSETSF": 0x5410,
    "TIOCGPGRP": 0x40047477, "TIOCGWINSZ": 0x40087468,
    "FIONREAD": 0x467F, "FIONBIO": 0x667E, "FIOCLEX": 0x6601, "FIONCLEX": 0x6602,
}


def _set_tls(regs: RegisterAccess, value: int) -> None:
    regs.set_reg("cp0_userlocal", value)


REGISTERS = {**_unicorn_registers(mips_const, "UC_MIPS_REG_"), "s8": mips_const.UC_MIPS_REG_FP}

CONTROL_ADDR = 0x6F000000
_ABI_NAMES = ("at", "v0", "v1", "a0", "a1", "a2", "a3", "t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7",
              "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "t8", "t9", "k0", "k1", "gp", "fp", "ra")

#: The signal return trampoline (`li v0, 4193; syscall`: rt_sigreturn), below mmap_min_addr
#: where no guest mapping can be (Linux puts the same two words in its vDSO).
SIGRETURN_PAGE = 0x8000
_SIGRETURN_WORDS = (0x24021061, 0x0000000C)
#: `syscall 0xbd01`, the backdoor instruction (see `o32`).
_BACKDOOR_WORD = 0x0C | 0xBD01 << 6

#: sc_regs[1..31] of struct sigcontext, by Unicorn name ($29 is sp, $30 fp).
_SIGCONTEXT_REGISTERS = _ABI_NAMES[:27] + ("sp",) + _ABI_NAMES[27:]


def _signal_frame(byteorder: str) -> SignalFrame:
    """The o32 rt_sigframe: 4 argument save words and 2 pad words, siginfo (128) at 24, the
    ucontext at 152: flags, link, stack_t (12), then at 24 the sigcontext (regmask, status,
    sc_pc, the 32 sc_regs as 64-bit slots at 16, 32 FP slots, 5 words, mdhi at 552, mdlo at
    560, 6 DSP words; 592 bytes), then the 16-byte sigmask at 616. A 32-bit register fills
    the low half of its 64-bit slot: its last 4 bytes on big endian. The o32 struct sigaction
    is flags, handler, mask, with no restorer; the SA_* bits delivery reads (ONSTACK,
    NODEFER, RESETHAND) are the generic ones (only SA_SIGINFO differs: 8)."""
    low = 4 if byteorder == "big" else 0
    slots = ((("pc", 8),) + tuple((name, 16 + 8 * i) for i, name in enumerate(_SIGCONTEXT_REGISTERS, 1))
             + (("hi", 552), ("lo", 560)))
    return SignalFrame(size=24 + 128 + 632, siginfo=24, ucontext=152, sigmask=616, mcontext=24,
                       mcontext_registers=tuple((name, offset + low) for name, offset in slots),
                       arguments=("a0", "a1", "a2"), return_register="ra",
                       sigaction_flags=0, sigaction_restorer=None, sigaction_mask=8,
                       trampoline=SIGRETURN_PAGE, siginfo_code=4,
                       stack_fields=("sp", "size", "flags"), handler_register="t9")


def o32(name: str, byteorder: str) -> Arch:
    """The MIPS32 o32 description in one byte order ("big" or "little")."""
    big = byteorder == "big"
    words = b"".join(word.to_bytes(4, byteorder) for word in _SIGRETURN_WORDS)
    return Arch(
        name=name,
        bits=32,
        byteorder=byteorder,
        elf_machine=8,  # EM_MIPS
        uc_arch=unicorn.UC_ARCH_MIPS,
        uc_mode=unicorn.UC_MODE_MIPS32 | (unicorn.UC_MODE_BIG_ENDIAN if big else unicorn.UC_MODE_LITTLE_ENDIAN),
        cs_arch=capstone.CS_ARCH_MIPS,
        cs_mode=capstone.CS_MODE_MIPS32 | (capstone.CS_MODE_BIG_ENDIAN if big else capstone.CS_MODE_LITTLE_ENDIAN),
        ks_arch=3,  # keystone KS_ARCH_MIPS
        ks_mode=4 | (1 << 30 if big else 0),  # KS_MODE_MIPS32 (| KS_MODE_BIG_ENDIAN)
        registers=REGISTERS,
        general_registers=_ABI_NAMES + ("hi", "lo"),
        pc="pc",
        sp="sp",
        call_abi=CallABI(args=("a0", "a1", "a2", "a3"), result="v0", stack_args_offset=16, return_register="ra"),
        syscall=SyscallABI(number="v0", args=("a0", "a1", "a2", "a3"), result="v0",
                           trap=("intr", EXCP_SYSCALL), error_flag="a3", pair_align=True,
                           stack_args_offset=16),
        syscall_numbers=SYSCALLS,
        # Reserved instruction -> SIGILL, `break` -> SIGTRAP, `teq` (division by zero) and
        # arithmetic overflow -> SIGFPE, address errors (unaligned) -> SIGBUS (MIPS number 10).
        fault_signals={EXCP_RI: 4, EXCP_BREAK: 5, EXCP_TRAP: 8, 21: 8, 23: 8, 12: 10, 13: 10},
        uname_machine="mips",
        host_machines=("mips",),  # both byte orders: host_arch tells them apart
        platform="mips",
        hwcap=0,
        hwcap2=0,
        stat_layout="stat64_mips",
        stack_top=0x7FFF0000,
        stack_size=8 << 20,
        mmap_top=CONTROL_ADDR,
        pie_base=0x00400000,
        backdoor_control_addr=CONTROL_ADDR,
        set_tls=_set_tls,
        tls_register="cp0_userlocal",
        cpu_model=mips_const.UC_CPU_MIPS32_24KF,
        always_count_insns=True,
        run_until=0x7FFFFFFC,  # above the stack, never mapped
        errno_overrides=ERRNO,
        variants={"open_flags": "mips", "pipe_second_fd": "v1", "sigprocmask_how_base": 1,
                  "statfs": "mips", "clone": "tls_fourth",
                  "si_timer": -3, "termios": "mips", "fcntl": "mips",
                  "ipc": "mips32", "shmlba": 0x40000},
        map_anonymous=0x800,
        sigaction_size=24,
        sigaction_handler_offset=4,
        signal_overrides=SIGNALS,
        socket_overrides=SOCKETS,
        ioctl_overrides=IOCTLS,
        rlimit_overrides=RLIMITS,
        sigset_size=16,
        signal_frame=_signal_frame(byteorder),
        fixed_pages=(FixedPage(SIGRETURN_PAGE, 4096, 5, "[sigreturn]", words),),
        # `syscall 0xbd01` (0x002f404c) with the leaf in v0: Unicorn reports the faulting pc only
        # for the syscall exception (for RI, break and teq the hook sees a stale pc), so the
        # backdoor is the syscall instruction with a code no libc uses, and leaves (>= 0x40000000)
        # no Linux syscall number reaches. Linux itself answers it with ENOSYS instead of trapping.
        backdoor_insn=BackdoorInsn(trap=("intr", EXCP_SYSCALL), leaf="v0", value="a0",
                                   results=("v0", "v1", "a0", "a1"), name="syscall 0xbd01",
                                   encoding=_BACKDOOR_WORD.to_bytes(4, byteorder)),
    )


ARCH = o32("mips", "big")
