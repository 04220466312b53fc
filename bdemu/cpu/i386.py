"""i386 (IA-32) Linux user mode: `int 0x80` syscalls, TLS through a GDT entry and %gs."""
from __future__ import annotations

import errno
import struct

import capstone
import unicorn
from unicorn import x86_const

from bdemu.linux.tables.i386 import SYSCALLS

from .base import Arch, BackdoorInsn, CallABI, FixedPage, RegisterAccess, SignalFrame, SyscallABI
from .x86_64 import _unicorn_registers

#: Where the CPU's global descriptor table lives; reserved, so mmap never hands it out.
GDT_BASE = 0xBF700000
GDT_ENTRIES = 32
#: The GDT slots Linux gives threads for set_thread_area (GDT_ENTRY_TLS_MIN..MAX on i386).
TLS_ENTRIES = (6, 7, 8)
#: Linux's flat segments: __KERNEL_CS/DS (entries 12, 13) and __USER_CS/DS (14, 15). Unicorn
#: runs at ring 0, so CS and SS hold the ring-0 pair; DS and ES the user data segment.
KERNEL_CS, KERNEL_DS, USER_CS, USER_DS = 12 << 3, 13 << 3, 14 << 3 | 3, 15 << 3 | 3


def _flat(kind: int, dpl: int) -> bytes:
    return struct.pack("<II", 0xFFFF, 0x00CF9000 | kind << 8 | dpl << 13)


_GDT = bytes(8 * 12) + _flat(0xB, 0) + _flat(0x3, 0) + _flat(0xB, 3) + _flat(0x3, 3)
_USER_DESC = struct.Struct("<IIII")


def _descriptor(base: int, limit: int, flags: int) -> bytes:
    """A segment descriptor from `struct user_desc` fields, as Linux's fill_ldt builds it."""
    seg_32bit, contents = flags & 1, (flags >> 1) & 3
    read_exec_only, limit_in_pages = (flags >> 3) & 1, (flags >> 4) & 1
    not_present, useable = (flags >> 5) & 1, (flags >> 6) & 1
    kind = (read_exec_only ^ 1) << 1 | contents << 2 | 1
    low = (limit & 0xFFFF) | (base & 0xFFFF) << 16
    high = ((base >> 16) & 0xFF | kind << 8 | 1 << 12 | 3 << 13 | (not_present ^ 1) << 15
            | (limit & 0xF0000) | useable << 20 | seg_32bit << 22 | limit_in_pages << 23
            | (base & 0xFF000000))
    return struct.pack("<II", low, high)


def _set_thread_area(kernel, address: int, allocate: bool = True) -> int:
    """Install a TLS descriptor in the GDT; an entry_number of -1 asks for a free slot."""
    entry, base, limit, flags = _USER_DESC.unpack(kernel.read(address, _USER_DESC.size))
    if entry == 0xFFFFFFFF and allocate:
        used = [int.from_bytes(kernel.read(GDT_BASE + 8 * e, 8), "little") for e in TLS_ENTRIES]
        free = [e for e, value in zip(TLS_ENTRIES, used) if value == 0]
        if not free:
            from bdemu.linux.errors import SyscallError
            raise SyscallError(errno.ESRCH)
        entry = free[0]
        kernel.write_int(address, entry)
    if entry not in TLS_ENTRIES:
        from bdemu.linux.errors import SyscallError
        raise SyscallError(errno.EINVAL)
    empty = base == 0 and limit == 0 and flags & 0x28 == 0x28
    kernel.write(GDT_BASE + 8 * entry, bytes(8) if empty else _descriptor(base, limit, flags))
    return 0


def _start_cpu(emu) -> None:
    """Point GDTR at the reserved table and load Linux's flat user segments from it, so that
    segment loads (`mov %ax, %gs` after set_thread_area) work as on Linux."""
    uc = emu.uc
    uc.reg_write(x86_const.UC_X86_REG_GDTR, (0, GDT_BASE, 8 * GDT_ENTRIES - 1, 0))
    uc.reg_write(x86_const.UC_X86_REG_CS, KERNEL_CS)
    uc.reg_write(x86_const.UC_X86_REG_SS, KERNEL_DS)
    uc.reg_write(x86_const.UC_X86_REG_DS, USER_DS)
    uc.reg_write(x86_const.UC_X86_REG_ES, USER_DS)


def _set_tls(regs: RegisterAccess, value: int) -> None:
    """Unused: i386 has no call that takes the thread pointer itself (see `_clone_tls`)."""


def _clone_tls(kernel, address: int) -> None:
    """clone(CLONE_SETTLS): `address` is a `struct user_desc` for one of the TLS entries, as in
    set_thread_area but without picking a free one. The new thread keeps the parent's %gs
    selector; loading it again makes the CPU read the new descriptor's base."""
    _set_thread_area(kernel, address, allocate=False)
    kernel.emu.set_reg("gs", kernel.emu.reg("gs"))


REGISTERS = {**_unicorn_registers(x86_const, "UC_X86_REG_"), "pc": x86_const.UC_X86_REG_EIP,
             "sp": x86_const.UC_X86_REG_ESP}

CONTROL_ADDR = 0xAF000000

# rt_sigframe: the return address, the handler's three arguments (signo, &info, &uc) on the
# stack, the siginfo (128), then the ucontext: flags, link, stack_t (12), the 88-byte
# sigcontext (gs fs es ds edi esi ebp esp ebx edx ecx eax trapno err eip cs eflags ...), the
# mask. The segment registers come back from the saved CPU context, not the frame.
_SIGCONTEXT = (("edi", 16), ("esi", 20), ("ebp", 24), ("esp", 28), ("ebx", 32), ("edx", 36), ("ecx", 40),
               ("eax", 44), ("eip", 56), ("eflags", 64))
SIGNAL_FRAME = SignalFrame(size=16 + 128 + 116, siginfo=16, ucontext=144, sigmask=108, mcontext=20,
                           mcontext_registers=_SIGCONTEXT, arguments=(4, 8, 12), return_register=None,
                           sigaction_flags=4, sigaction_restorer=8, sigaction_mask=12,
                           entry_misalign=4, sigreturn_sp_offset=4,
                           old_sigreturn_sp_offset=8)

ARCH = Arch(
    name="i386",
    bits=32,
    byteorder="little",
    elf_machine=3,  # EM_386
    uc_arch=unicorn.UC_ARCH_X86,
    uc_mode=unicorn.UC_MODE_32,
    cs_arch=capstone.CS_ARCH_X86,
    cs_mode=capstone.CS_MODE_32,
    ks_arch=4,  # keystone KS_ARCH_X86
    ks_mode=4,  # KS_MODE_32
    registers=REGISTERS,
    general_registers=("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp"),
    pc="eip",
    sp="esp",
    call_abi=CallABI(args=(), result="eax", stack_args_offset=4),
    syscall=SyscallABI(number="eax", args=("ebx", "ecx", "edx", "esi", "edi", "ebp"), result="eax",
                       trap=("intr", 0x80), insn_size=2),  # int 0x80
    syscall_numbers=SYSCALLS,
    # #DE, #DB, #BP, #OF, #BR, #UD, #NP, #SS, #GP, #PF, #MF, #AC, #XM
    fault_signals={0: 8, 1: 5, 3: 5, 4: 11, 5: 11, 6: 4, 11: 7, 12: 7, 13: 11, 14: 11,
                   16: 8, 17: 7, 19: 8},
    uname_machine="x86_64",  # as an x86-64 kernel reports to 32-bit programs (the reference is native)
    host_machines=("i386", "i486", "i586", "i686"),
    platform="i686",
    # CPUID.1 EDX: FPU, TSC, CX8, CMOV, MMX, FXSR, SSE, SSE2...
    hwcap=0x078BFBFF,
    hwcap2=0,
    stat_layout="stat64",
    stack_top=0xC0000000,
    stack_size=8 << 20,
    mmap_top=CONTROL_ADDR,
    pie_base=0x56555000,
    backdoor_control_addr=CONTROL_ADDR,
    set_tls=_set_tls,
    tls_register="gs",
    initial_registers={"eflags": 0x202, "fpcw": 0x37F, "mxcsr": 0x1F80},
    sigaction_size=20,
    signal_frame=SIGNAL_FRAME,
    backdoor_insn=BackdoorInsn(trap=("insn", x86_const.UC_X86_INS_CPUID), leaf="eax", value="ecx",
                               results=("eax", "ebx", "ecx", "edx"), name="CPUID"),
    fixed_pages=(FixedPage(GDT_BASE, 4096, 1, "[gdt]", _GDT),),
    start_cpu=_start_cpu,
    thread_area=_set_thread_area,
    clone_tls=_clone_tls,
    # Linux keeps the TLS entries per thread and loads them into the GDT on a switch
    thread_memory=((GDT_BASE + 8 * TLS_ENTRIES[0], 8 * len(TLS_ENTRIES)),),
    # the pre-2.4 calls that take one pointer to their arguments
    syscall_aliases={"mmap": "old_mmap", "select": "old_select"},
    # i386 aligns a u64 to 4 bytes, so `struct epoll_event` is 12 bytes, as packed on x86-64,
    # and `struct flock64` 24
    variants={"epoll_event": "packed", "clone": "tls_fourth", "flock64": "packed"},
)
