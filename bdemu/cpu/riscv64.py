"""RISC-V 64 (RV64GC, little endian) Linux user mode."""
from __future__ import annotations

import capstone
import unicorn
from unicorn import riscv_const

from bdemu.linux.tables.riscv64 import SYSCALLS

from .base import Arch, BackdoorInsn, CallABI, FixedPage, RegisterAccess, SignalFrame, SyscallABI
from .x86_64 import _unicorn_registers


def _set_tls(regs: RegisterAccess, value: int) -> None:
    regs.set_reg("tp", value)


# Unicorn knows both the x0..x31 and the ABI names (a0, s2, tp, fp...).
REGISTERS = _unicorn_registers(riscv_const, "UC_RISCV_REG_")

# AT_HWCAP: one bit per single-letter extension ('A' = bit 0): I, M, A, F, D, C.
_HWCAP = sum(1 << (ord(letter) - ord("A")) for letter in "IMAFDC")

#: mstatus.FS = Dirty: without it every floating-point instruction is illegal.
_MSTATUS_FS = 0x6000

#: The signal return trampoline (`li a7, 139; ecall`: rt_sigreturn), below mmap_min_addr where
#: no guest mapping can be.
SIGRETURN_PAGE = 0x8000
_SIGRETURN_CODE = (0x08B00893).to_bytes(4, "little") + (0x00000073).to_bytes(4, "little")

# rt_sigframe: siginfo (128), then the ucontext: flags, link, stack_t (24), the mask (8 + 120
# unused), the mcontext at 176: pc, x1..x31, then the 528-byte FP state.
SIGNAL_FRAME = SignalFrame(size=128 + 176 + 256 + 528, siginfo=0, ucontext=128, sigmask=40, mcontext=176,
                           mcontext_registers=(("pc", 0),) + tuple((f"x{i}", 8 * i) for i in range(1, 32)),
                           arguments=("a0", "a1", "a2"), return_register="ra",
                           sigaction_flags=8, sigaction_restorer=None, sigaction_mask=16,
                           trampoline=SIGRETURN_PAGE)

#: riscv_hwprobe(2) keys 0-7 of Linux's asm/hwprobe.h and this CPU's values (later keys read as unknown).
HWPROBE = {
    0: 0, 1: 0, 2: 0,  # mvendorid, marchid, mimpid: not a vendor's core
    3: 1,  # BASE_BEHAVIOR: the IMA base (RISCV_HWPROBE_BASE_BEHAVIOR_IMA)
    4: 0b11,  # IMA_EXT_0: F and D, C; Unicorn's RV64GC has no V nor bit-manipulation extensions
    5: 0,  # CPUPERF_0: misaligned access speed unknown
    6: 0,  # ZICBOZ_BLOCK_SIZE: no Zicboz
    7: 0x3FFFFFFFFF,  # HIGHEST_VIRT_ADDRESS: Sv39's user half, as stack_top below
}

ARCH = Arch(
    name="riscv64",
    bits=64,
    byteorder="little",
    elf_machine=243,  # EM_RISCV
    uc_arch=unicorn.UC_ARCH_RISCV,
    uc_mode=unicorn.UC_MODE_RISCV64,
    cs_arch=capstone.CS_ARCH_RISCV,
    cs_mode=capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC,
    ks_arch=0,  # keystone has no RISC-V
    ks_mode=0,
    registers=REGISTERS,
    general_registers=tuple(f"x{i}" for i in range(1, 32)),
    pc="pc",
    sp="sp",
    # `ecall` raises the user-mode environment-call exception (8); Unicorn has already moved pc past it.
    call_abi=CallABI(args=tuple(f"a{i}" for i in range(8)), result="a0", stack_args_offset=0, return_register="ra"),
    syscall=SyscallABI(number="a7", args=("a0", "a1", "a2", "a3", "a4", "a5"), result="a0",
                       trap=("intr", 8)),
    syscall_numbers=SYSCALLS,
    # misaligned fetch/load/store, access faults, illegal instruction, breakpoint, page faults
    fault_signals={0: 7, 1: 11, 2: 4, 3: 5, 4: 7, 5: 11, 6: 7, 7: 11, 12: 11, 13: 11, 15: 11},
    uname_machine="riscv64",
    host_machines=("riscv64",),
    platform="riscv64",
    hwcap=_HWCAP,
    hwcap2=0,
    stat_layout="generic64",
    # Sv39 layout, as a riscv64 Linux kernel gives a process (user space ends at 256 GiB).
    stack_top=0x3FFFFFF000,
    stack_size=8 << 20,
    mmap_top=0x3FE7FFF000,
    pie_base=0x2AAAAAA000,
    backdoor_control_addr=0x3FE8000000,  # room for 65536 data pages below the stack
    set_tls=_set_tls,
    tls_register="tp",
    initial_registers={"mstatus": _MSTATUS_FS, "fcsr": 0},
    variants={"clone": "tls_fourth"},
    # riscv has no sa_restorer: handler, flags, mask.
    sigaction_size=24,
    signal_frame=SIGNAL_FRAME,
    fixed_pages=(FixedPage(SIGRETURN_PAGE, 4096, 5, "[sigreturn]", _SIGRETURN_CODE),),
    # A word in the custom-3 major opcode (0x7b), which the ISA reserves for non-standard
    # extensions and no compiler emits for a standard target (gem5's m5ops live there too).
    # Unicorn raises illegal instruction (2) with pc already 4 bytes past the instruction.
    backdoor_insn=BackdoorInsn(trap=("intr", 2), leaf="a0", value="a1", results=("a0", "a1", "a2", "a3"),
                               name="custom-3 word 0xbd00007b",
                               encoding=(0xBD00007B).to_bytes(4, "little"), pc_past=4),
    hwprobe=HWPROBE,
)
