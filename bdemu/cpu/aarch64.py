"""AArch64 (ARMv8-A, little endian) Linux user mode."""
from __future__ import annotations

import capstone
import unicorn
from unicorn import arm64_const

from bdemu.linux.tables.aarch64 import SYSCALLS

from .base import Arch, BackdoorInsn, CallABI, FixedPage, RegisterAccess, SignalFrame, SyscallABI
from .x86_64 import _unicorn_registers


def _set_tls(regs: RegisterAccess, value: int) -> None:
    regs.set_reg("tpidr_el0", value)


REGISTERS = {**_unicorn_registers(arm64_const, "UC_ARM64_REG_"),
             "fp": arm64_const.UC_ARM64_REG_X29, "lr": arm64_const.UC_ARM64_REG_X30}

#: Where a handler returns when the sigaction has no SA_RESTORER (glibc relies on the vDSO's
#: `mov x8, #139; svc #0`, rt_sigreturn, which bdemu lacks): below mmap_min_addr.
SIGRETURN_PAGE = 0x8000
_SIGRETURN_CODE = (0xD2801168).to_bytes(4, "little") + (0xD4000001).to_bytes(4, "little")

# rt_sigframe: siginfo (128), then the ucontext: flags, link, stack_t (24), the mask (8 + 120
# unused), the 16-aligned mcontext at 176: fault_address, x0..x30, sp, pc, pstate; then its
# 4096-byte __reserved (an empty record list: zeros), then the {fp, lr} frame record.
_MCONTEXT = tuple((f"x{i}", 8 + 8 * i) for i in range(31)) + (("sp", 256), ("pc", 264), ("nzcv", 272))
SIGNAL_FRAME = SignalFrame(size=128 + 176 + 288 + 4096 + 16, siginfo=0, ucontext=128, sigmask=40,
                           mcontext=176,
                           mcontext_registers=_MCONTEXT, arguments=("x0", "x1", "x2"), return_register="lr",
                           sigaction_flags=8, sigaction_restorer=16, sigaction_mask=24,
                           frame_registers=(("x29", 128 + 176 + 288 + 4096),), trampoline=SIGRETURN_PAGE)

# HWCAP_FP | ASIMD | AES | PMULL | SHA1 | SHA2 | CRC32 | ATOMICS: what Unicorn's "max" CPU implements.
_HWCAP = 0x1FB

ARCH = Arch(
    name="aarch64",
    bits=64,
    byteorder="little",
    elf_machine=183,  # EM_AARCH64
    uc_arch=unicorn.UC_ARCH_ARM64,
    uc_mode=unicorn.UC_MODE_ARM,
    cs_arch=capstone.CS_ARCH_ARM64,
    cs_mode=capstone.CS_MODE_ARM,
    ks_arch=2,  # keystone KS_ARCH_ARM64
    ks_mode=0,  # KS_MODE_LITTLE_ENDIAN
    registers=REGISTERS,
    general_registers=tuple(f"x{i}" for i in range(31)) + ("tpidr_el0",),
    pc="pc",
    sp="sp",
    call_abi=CallABI(args=tuple(f"x{i}" for i in range(8)), result="x0", stack_args_offset=0, return_register="x30"),
    syscall=SyscallABI(number="x8", args=("x0", "x1", "x2", "x3", "x4", "x5"), result="x0",
                       trap=("intr", 2)),  # EXCP_SWI
    syscall_numbers=SYSCALLS,
    # EXCP_UDEF, EXCP_PREFETCH_ABORT, EXCP_DATA_ABORT, EXCP_BKPT
    fault_signals={1: 4, 3: 11, 4: 11, 7: 5},
    uname_machine="aarch64",
    host_machines=("aarch64", "arm64"),
    platform="aarch64",
    hwcap=_HWCAP,
    hwcap2=0,
    stat_layout="generic64",
    stack_top=0x7FFFFFFFF000,
    stack_size=8 << 20,
    mmap_top=0x7FFFF7FFF000,
    pie_base=0x555555554000,
    backdoor_control_addr=0x7FFE00000000,
    set_tls=_set_tls,
    tls_register="tpidr_el0",
    initial_registers={"fpcr": 0, "fpsr": 0},
    variants={"open_flags": "arm", "clone": "tls_fourth"},
    cpu_model=arm64_const.UC_CPU_ARM64_MAX,
    signal_frame=SIGNAL_FRAME,
    fixed_pages=(FixedPage(SIGRETURN_PAGE, 4096, 5, "[sigreturn]", _SIGRETURN_CODE),),
    # `udf #0xbd01` (permanently undefined): raises EXCP_UDEF (interrupt 1) with pc at the instruction.
    backdoor_insn=BackdoorInsn(trap=("intr", 1), leaf="x0", value="x1", results=("x0", "x1", "x2", "x3"),
                               name="udf #0xbd01",
                               encoding=(0x0000BD01).to_bytes(4, "little")),
)
