"""ARM (32-bit, EABI hard-float, little endian) Linux user mode.

Syscalls are `svc #0` with the number in r7; 64-bit arguments take an even
register pair. The kernel's user helpers (kuser helpers) at 0xffff0000 are
real guest code, so calling them needs no hook; Thumb code is entered
through bit 0 of a code address, as on the hardware.
"""
from __future__ import annotations

import capstone
import unicorn
from unicorn import arm_const

from bdemu.linux.tables.arm import SYSCALLS

from .base import Arch, BackdoorInsn, CallABI, CodeModes, FixedPage, RegisterAccess, SignalFrame, SyscallABI
from .x86_64 import _unicorn_registers

KUSER_PAGE = 0xFFFF0000


def _words(*words: int) -> bytes:
    return b"".join(w.to_bytes(4, "little") for w in words)


#: The kuser helpers (Documentation/arm/kernel_user_helpers.rst), ARM-state code at their fixed
#: addresses; a single emulated CPU never interrupts them, so plain loads and stores are atomic.
_KUSER_HELPERS = {
    # __kuser_cmpxchg64(oldval *r0, newval *r1, ptr r2): push {r4-r7}; ldrd r4,r5,[r0];
    # ldrd r6,r7,[r2]; eors r3,r4,r6; eorseq r3,r5,r7; ldrdeq r6,r7,[r1]; strdeq r6,r7,[r2];
    # rsbs r0,r3,#0; pop {r4-r7}; bx lr
    0xF60: _words(0xE92D00F0, 0xE1C040D0, 0xE1C260D0, 0xE0343006, 0x00353007, 0x01C160D0,
                  0x01C260F0, 0xE2730000, 0xE8BD00F0, 0xE12FFF1E),
    # __kuser_memory_barrier: dmb ish; bx lr
    0xFA0: _words(0xF57FF05B, 0xE12FFF1E),
    # __kuser_cmpxchg(oldval r0, newval r1, ptr r2): ldr r3,[r2]; subs r3,r3,r0; streq r1,[r2];
    # rsbs r0,r3,#0 (0 and C set when stored); bx lr
    0xFC0: _words(0xE5923000, 0xE0533000, 0x05821000, 0xE2730000, 0xE12FFF1E),
    # __kuser_get_tls: mrc p15, 0, r0, c13, c0, 3 (TPIDRURO); bx lr
    0xFE0: _words(0xEE1D0F70, 0xE12FFF1E),
    # __kuser_helper_version: 5 helpers (cmpxchg64 included)
    0xFFC: _words(5),
}


def _kuser_page() -> bytes:
    page = bytearray(4096)
    for offset, code in _KUSER_HELPERS.items():
        page[offset:offset + len(code)] = code
    return bytes(page)


def _set_tls(regs: RegisterAccess, value: int) -> None:
    regs.set_reg("tpidruro", value)


def _thumb_bit(regs: RegisterAccess) -> int:
    """CPSR.T: a code address passed to Unicorn needs bit 0 set to continue in Thumb state."""
    return (regs.reg("cpsr") >> 5) & 1


def _svc_size(regs: RegisterAccess) -> int:
    """svc is 2 bytes in Thumb state, 4 in ARM state."""
    return 2 if _thumb_bit(regs) else 4


REGISTERS = {**_unicorn_registers(arm_const, "UC_ARM_REG_"), "tpidruro": arm_const.UC_ARM_REG_C13_C0_3}

# SWP HALF THUMB FAST_MULT VFP EDSP NEON VFPv3 TLS VFPv4 IDIVA IDIVT VFPD32 LPAE
_HWCAP = 0x1 | 0x2 | 0x4 | 0x10 | 0x40 | 0x80 | 0x1000 | 0x2000 | 0x8000 | 0x10000 | 0x20000 \
    | 0x40000 | 0x80000 | 0x100000

CONTROL_ADDR = 0xAE000000

# rt_sigframe: siginfo (128), then the ucontext: flags, link, stack_t (12), the sigcontext
# (trap_no, error_code, oldmask, r0..r10, fp, ip, sp, lr, pc, cpsr, fault_address), the mask
# (8 + 120 unused), then the 512-byte register space (VFP; zeros here).
_SIGCONTEXT = tuple((f"r{i}", 12 + 4 * i) for i in range(13)) + (("sp", 64), ("lr", 68), ("pc", 72))
SIGNAL_FRAME = SignalFrame(size=128 + 232 + 512, siginfo=0, ucontext=128, sigmask=104, mcontext=20,
                           mcontext_registers=_SIGCONTEXT, arguments=("r0", "r1", "r2"), return_register="lr",
                           sigaction_flags=4, sigaction_restorer=8, sigaction_mask=12,
                           old_sigreturn_sp_offset=0)

ARCH = Arch(
    name="arm",
    bits=32,
    byteorder="little",
    elf_machine=40,  # EM_ARM
    uc_arch=unicorn.UC_ARCH_ARM,
    uc_mode=unicorn.UC_MODE_ARM,
    cs_arch=capstone.CS_ARCH_ARM,
    cs_mode=capstone.CS_MODE_ARM,
    ks_arch=1,  # keystone KS_ARCH_ARM
    ks_mode=1,  # KS_MODE_ARM
    registers=REGISTERS,
    general_registers=tuple(f"r{i}" for i in range(13)) + ("lr",),
    pc="pc",
    sp="sp",
    call_abi=CallABI(args=("r0", "r1", "r2", "r3"), result="r0", stack_args_offset=0, return_register="lr"),
    syscall=SyscallABI(number="r7", args=("r0", "r1", "r2", "r3", "r4", "r5"), result="r0",
                       trap=("intr", 2), pair_align=True,  # EXCP_SWI
                       insn_size=_svc_size),
    syscall_numbers=SYSCALLS,
    # EXCP_UDEF, EXCP_PREFETCH_ABORT, EXCP_DATA_ABORT, EXCP_BKPT
    fault_signals={1: 4, 3: 11, 4: 11, 7: 5},
    uname_machine="armv7l",
    host_machines=("armv7l", "armv7hl", "armv6l", "armv8l"),
    platform="v7l",
    hwcap=_HWCAP,
    hwcap2=0,
    stat_layout="stat64",
    stack_top=0xBF000000,
    stack_size=8 << 20,
    mmap_top=CONTROL_ADDR,
    pie_base=0x00400000,
    backdoor_control_addr=CONTROL_ADDR,
    set_tls=_set_tls,
    tls_register="tpidruro",
    # FPEXC.EN: VFP/NEON instructions run instead of trapping as undefined.
    initial_registers={"fpexc": 0x40000000},
    variants={"open_flags": "arm", "clone": "tls_fourth", "shmlba": 4 * 4096},
    # its *ctl calls are the kernel's old_*ctl: the 64-bit layouts only with IPC_64
    syscall_aliases={"shmctl": "old_shmctl", "semctl": "old_semctl", "msgctl": "old_msgctl"},
    cpu_model=arm_const.UC_CPU_ARM_CORTEX_A15,
    sigaction_size=20,
    signal_frame=SIGNAL_FRAME,
    # A32 `udf #0xbd01` (0xe7fbd0f1) and, from Thumb code, T32 `udf.w #0xbd01` (0xf7fb 0xad01):
    # permanently undefined; Unicorn stops on them as invalid instructions with pc at the
    # instruction, which its UC_HOOK_INSN_INVALID answers.
    backdoor_insn=BackdoorInsn(trap=("invalid", 0), leaf="r0", value="r1", results=("r0", "r1", "r2", "r3"),
                               name="udf #0xbd01", encoding=_words(0xE7FBD0F1),
                               other_encodings=(bytes.fromhex("fbf701ad"),)),
    fixed_pages=(FixedPage(KUSER_PAGE, 4096, 5, "[vectors]", _kuser_page()),),
    pc_mode_bits=_thumb_bit,
    code_modes=CodeModes("cpsr", 5, (capstone.CS_MODE_ARM, capstone.CS_MODE_THUMB), ("arm", "thumb")),  # CPSR.T
)
