"""x86-64 (AMD64) Linux user mode."""
from __future__ import annotations

import capstone
import unicorn
from unicorn import x86_const

from bdemu.linux.tables.x86_64 import SYSCALLS

from .base import Arch, BackdoorInsn, CallABI, RegisterAccess, SignalFrame, SyscallABI


def _unicorn_registers(module, prefix: str) -> dict[str, int]:
    """Lower-case register names (as Capstone prints them) -> Unicorn ids."""
    return {name[len(prefix):].lower(): value for name, value in vars(module).items()
            if name.startswith(prefix) and not name.endswith(("ENDING", "INVALID"))}


def _set_tls(regs: RegisterAccess, value: int) -> None:
    regs.set_reg("fs_base", value)


# struct sigcontext: r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags (8 bytes each).
_SIGCONTEXT = tuple((name, 8 * i) for i, name in enumerate(
    ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx", "rdx",
     "rax", "rcx", "rsp", "rip", "eflags")))

# rt_sigframe: the return address (pretcode), the ucontext (flags, link, stack_t, a 256-byte
# sigcontext, the 8-byte mask), then the siginfo.
SIGNAL_FRAME = SignalFrame(size=8 + 304 + 128, siginfo=8 + 304, ucontext=8, sigmask=296, mcontext=40,
                           mcontext_registers=_SIGCONTEXT, arguments=("rdi", "rsi", "rdx"),
                           return_register=None, sigaction_flags=8, sigaction_restorer=16,
                           sigaction_mask=24, red_zone=128, entry_misalign=8, sigreturn_sp_offset=8)

REGISTERS = {**_unicorn_registers(x86_const, "UC_X86_REG_"), "pc": x86_const.UC_X86_REG_RIP,
             "sp": x86_const.UC_X86_REG_RSP}

ARCH = Arch(
    name="x86_64",
    bits=64,
    byteorder="little",
    elf_machine=62,  # EM_X86_64
    uc_arch=unicorn.UC_ARCH_X86,
    uc_mode=unicorn.UC_MODE_64,
    cs_arch=capstone.CS_ARCH_X86,
    cs_mode=capstone.CS_MODE_64,
    ks_arch=4,  # keystone KS_ARCH_X86
    ks_mode=8,  # KS_MODE_64
    registers=REGISTERS,
    general_registers=("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10",
                       "r11", "r12", "r13", "r14", "r15", "fs_base", "gs_base"),
    pc="rip",
    sp="rsp",
    call_abi=CallABI(args=("rdi", "rsi", "rdx", "rcx", "r8", "r9"), result="rax", stack_args_offset=8),
    syscall=SyscallABI(number="rax", args=("rdi", "rsi", "rdx", "r10", "r8", "r9"), result="rax",
                       trap=("insn", x86_const.UC_X86_INS_SYSCALL), insn_size=2),
    syscall_numbers=SYSCALLS,
    # #DE, #DB, #BP, #OF, #BR, #UD, #NP, #SS, #GP, #PF, #MF, #AC, #XM
    fault_signals={0: 8, 1: 5, 3: 5, 4: 11, 5: 11, 6: 4, 11: 7, 12: 7, 13: 11, 14: 11,
                   16: 8, 17: 7, 19: 8},
    uname_machine="x86_64",
    host_machines=("x86_64", "amd64"),
    platform="x86_64",
    hwcap=0x178BFBFF,
    hwcap2=0x2,  # HWCAP2_FSGSBASE
    stat_layout="x86_64",
    stack_top=0x7FFFFFFFF000,
    stack_size=8 << 20,
    mmap_top=0x7FFFF7FFF000,
    pie_base=0x555555554000,
    backdoor_control_addr=0x7FFE00000000,
    set_tls=_set_tls,
    tls_register="fs_base",
    initial_registers={"eflags": 0x202, "fpcw": 0x37F, "mxcsr": 0x1F80},
    variants={"epoll_event": "packed", "clone": "tls_fifth", "ipc": "x86_64"},
    signal_frame=SIGNAL_FRAME,
    backdoor_insn=BackdoorInsn(trap=("insn", x86_const.UC_X86_INS_CPUID), leaf="rax", value="rcx",
                               results=("rax", "rbx", "rcx", "rdx"), name="CPUID"),
)
