"""The architecture description every other layer reads instead of branching on an ISA.

One frozen `Arch` per ISA lives in `bdemu/cpu/<isa>.py`; `bdemu.cpu.registry`
selects it from ELF header fields. Behaviour that differs per ISA and cannot
be data (TLS set-up, how a trap is recognised) is a small function stored in
the description, defined next to the table it belongs to.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol


class RegisterAccess(Protocol):
    """What ISA hooks need from the emulator: read and write registers by name."""

    def reg(self, name: str) -> int: ...

    def set_reg(self, name: str, value: int) -> None: ...


@dataclass(frozen=True)
class SyscallABI:
    """How a syscall arrives and where its number, arguments and result live.

    `trap` is either ("insn", unicorn instruction id) for a hookable
    instruction, or ("intr", interrupt number) for an interrupt hook.
    `error_flag` names a register that is set to 1 on error (MIPS `a3`), in
    which case the result register holds the positive errno. On 32-bit ABIs
    a 64-bit argument (kind "off64") takes two argument slots, low word first
    on little-endian; `pair_align` starts such a pair at an even slot (ARM
    EABI, MIPS o32). Slots beyond `args` are stack words at
    `sp + stack_args_offset` (MIPS o32: 16); None means the ABI has none.
    """

    number: str
    args: tuple[str, ...]
    result: str
    trap: tuple[str, int]
    error_flag: str | None = None
    pair_align: bool = False
    stack_args_offset: int | None = None
    #: Bytes of the syscall instruction, or a function of the registers giving them (ARM:
    #: Thumb's svc is 2): a restarted syscall (SA_RESTART) resumes that far back.
    insn_size: int | Callable[[RegisterAccess], int] = 4


@dataclass(frozen=True)
class CallABI:
    """The C calling convention, as function hooks see it at a function's first instruction.

    Integer arguments are in `args`, then in stack words from `sp + stack_args_offset`
    (i386: all of them, above the return address; MIPS o32: after the 16-byte home area).
    The return address is in register `return_register`, or (x86) the word at `sp`, which
    returning pops.
    """

    args: tuple[str, ...]
    result: str
    stack_args_offset: int
    return_register: str | None = None


@dataclass(frozen=True)
class BackdoorInsn:
    """The backdoor's instruction interface on one ISA (SPEC 2), as data.

    The guest puts `0x40001000 | type << 8 | i8` in `leaf` and v32 in
    `value`, then runs the instruction; afterwards `results` hold
    (return value, 0, 0, 0), as CPUID's EAX, EBX, ECX, EDX do. `trap` is
    ("insn", unicorn instruction id) for an instruction Unicorn hooks (x86
    CPUID), ("intr", interrupt number) for a reserved encoding that raises
    an exception, or ("invalid", 0) for one Unicorn stops on as an invalid
    instruction (32-bit ARM; caught by its UC_HOOK_INSN_INVALID, which costs
    nothing per instruction): then `encoding` is its bytes, checked at the faulting pc,
    and the guest resumes `len(encoding)` bytes further on. `pc_past` says
    how far past the instruction the pc already is when the hook runs (RISC-V).
    `other_encodings` are accepted too (ARM: the Thumb form), each as long as `encoding`.
    When `trap` is the syscall trap itself (MIPS: `syscall` with a code), the
    CPU reports pc after the instruction; the encoding is checked just before
    pc, only for syscall numbers above 0x3fffffff (leaf values), and pc stays.
    """

    trap: tuple[str, int]
    leaf: str
    value: str
    results: tuple[str, str, str, str]
    #: How error messages name the instruction ("CPUID").
    name: str = ""
    encoding: bytes = b""
    pc_past: int = 0
    other_encodings: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class FixedPage:
    """Memory the kernel provides at a fixed address in every image (ARM's kuser helpers, an
    x86 descriptor table): mapped at load, kept away from mmap/brk, `content` at its start."""

    address: int
    size: int
    perms: int
    name: str
    content: bytes = b""


@dataclass(frozen=True)
class SignalFrame:
    """How the kernel builds a signal handler's frame on this ISA, as data (Linux rt_sigframe).

    Offsets are from the frame's start: `siginfo` and `ucontext`; inside the ucontext,
    `sigmask` and `mcontext`, and `mcontext_registers` pairs a register name with its offset
    in the mcontext (so libc finds the interrupted pc and sp where it looks). The handler gets
    (signo, &siginfo, &ucontext) in `arguments`; it returns to the restorer through
    `return_register`, or, when that is None, through a word at the frame's start (x86).
    The frame is placed below `red_zone` bytes under sp, aligned to 16 and then lowered by
    `entry_misalign` (x86-64 enters a function with sp = 8 mod 16). At rt_sigreturn the frame
    starts `sigreturn_sp_offset` bytes below sp. `sigaction_*` are the offsets of the flags,
    restorer (None: the struct has none) and mask fields of the kernel's struct sigaction.
    """

    size: int
    siginfo: int
    ucontext: int
    sigmask: int
    mcontext: int
    mcontext_registers: tuple[tuple[str, int], ...]
    #: Each a register name, or the frame offset of a stack word (i386 passes them on the stack).
    arguments: tuple[str | int, str | int, str | int]
    return_register: str | None
    sigaction_flags: int
    sigaction_restorer: int | None
    sigaction_mask: int
    red_zone: int = 0
    entry_misalign: int = 0
    sigreturn_sp_offset: int = 0
    #: The old `sigreturn` (i386 libcs return from non-SA_SIGINFO handlers through it, having
    #: popped the signal number): where the frame starts below sp then; None: not used.
    old_sigreturn_sp_offset: int | None = None
    #: Registers that also point at the frame (AArch64's frame pointer), by name -> offset.
    frame_registers: tuple[tuple[str, int], ...] = ()
    #: Where the handler returns when the sigaction gives no restorer: an rt_sigreturn
    #: sequence in one of the Arch's `fixed_pages` (Linux uses its vDSO, which bdemu lacks).
    trampoline: int = 0
    #: Where si_code lies in the siginfo (MIPS swaps si_code and si_errno: 4).
    siginfo_code: int = 8
    #: The word-sized slots of `stack_t` (sigaltstack), in order (MIPS: sp, size, flags).
    stack_fields: tuple[str, str, str] = ("sp", "flags", "size")
    #: A register that also gets the handler's address (MIPS PIC code expects it in t9).
    handler_register: str | None = None

    def stack_offset(self, name: str, word: int) -> int:
        """Where field `name` ("sp", "flags" or "size") of `stack_t` lies: one word-sized slot each."""
        return self.stack_fields.index(name) * word


@dataclass(frozen=True)
class CodeModes:
    """An ISA with more than one instruction set (ARM and Thumb): which one a block is in.

    Block hooks report only an address, so the native block tables read `register` when a
    block first runs; bits `shift`.. of its value index `cs_modes`, the Capstone mode to
    decode that block with, and `names`, what trace files call it (`code.mode`).
    """

    register: str
    shift: int
    cs_modes: tuple[int, ...]
    names: tuple[str, ...]

    def cs_mode(self, value: int) -> int:
        return self.cs_modes[(value >> self.shift) & (len(self.cs_modes) - 1)]

    def name(self, value: int) -> str:
        return self.names[(value >> self.shift) & (len(self.names) - 1)]

    def cs_mode_named(self, name: str | None, default: int) -> int:
        return self.cs_modes[self.names.index(name)] if name in self.names else default


@dataclass(frozen=True)
class Arch:
    """Everything bdemu needs to know about one ISA, as data."""

    name: str
    bits: int
    byteorder: str
    elf_machine: int
    uc_arch: int
    uc_mode: int
    cs_arch: int
    cs_mode: int
    ks_arch: int
    ks_mode: int
    registers: Mapping[str, int]
    general_registers: tuple[str, ...]
    pc: str
    sp: str
    syscall: SyscallABI
    syscall_numbers: Mapping[int, str]
    #: Unicorn interrupt number -> the Linux signal its fault raises.
    fault_signals: Mapping[int, int]
    uname_machine: str
    platform: str
    hwcap: int
    hwcap2: int
    #: Layout of `struct stat` for fstat/newfstatat (see bdemu/linux/structs.py).
    stat_layout: str
    stack_top: int
    stack_size: int
    mmap_top: int
    pie_base: int
    #: The control page of the backdoor device; the data window follows it.
    backdoor_control_addr: int
    set_tls: Callable[[RegisterAccess, int], None]
    #: The register that holds the thread pointer once `set_tls` ran.
    tls_register: str
    initial_registers: Mapping[str, int] = field(default_factory=dict)
    #: Registers written through Unicorn before start-up that are not plain ints (e.g. x87 control word).
    cpu_model: int | None = None
    page_size: int = 4096
    #: Per-ISA errno numbers that differ from the generic ones (MIPS), name -> number.
    errno_overrides: Mapping[str, int] = field(default_factory=dict)
    #: Named ABI variants where an ISA departs from the common Linux layout
    #: (e.g. "open_flags": "arm"); the Linux layer looks them up by name.
    variants: Mapping[str, str | int] = field(default_factory=dict)
    map_anonymous: int = 0x20
    #: Size of the kernel's `struct sigaction` and the offset of its handler field.
    sigaction_size: int = 32
    sigaction_handler_offset: int = 0
    #: Linux signal numbers where this ISA differs from the common ones (MIPS), name -> number.
    signal_overrides: Mapping[str, int] = field(default_factory=dict)
    #: Socket ABI numbers (SOCK_*, SOL_SOCKET, SO_*) where this ISA differs from the common ones
    #: (MIPS), name -> number; bdemu/linux/sockabi.py holds the common table.
    socket_overrides: Mapping[str, int] = field(default_factory=dict)
    #: ioctl request numbers (FIONREAD, FIONBIO, TCGETS...) where this ISA differs from the
    #: common ones (MIPS), name -> number; bdemu/linux/files.py holds the common table.
    ioctl_overrides: Mapping[str, int] = field(default_factory=dict)
    #: Resource numbers of getrlimit/setrlimit/prlimit64 where this ISA's differ from the common
    #: ones (MIPS), this ISA's number -> the common one (the host's).
    rlimit_overrides: Mapping[int, int] = field(default_factory=dict)
    #: Bytes of the kernel's sigset_t (MIPS: 16, for its 128 signals).
    sigset_size: int = 8
    #: The backdoor's instruction interface (None: this ISA has none yet).
    backdoor_insn: BackdoorInsn | None = None
    #: Pages every image gets at a fixed address (see FixedPage).
    fixed_pages: tuple[FixedPage, ...] = ()
    #: Called with the Emulator once an image is loaded: CPU state that is not a plain register.
    start_cpu: Callable[[Any], None] | None = None
    #: `set_thread_area(2)` of this ISA, called with (kernel, argument); None: the argument is
    #: the thread pointer itself (MIPS), set with `set_tls`.
    thread_area: Callable[[Any, int], int] | None = None
    #: How clone(CLONE_SETTLS) installs its `tls` argument in the new thread, called with
    #: (kernel, tls) on the new thread's registers; None: `tls` is the thread pointer, set with
    #: `set_tls` (i386 passes a `struct user_desc` instead).
    clone_tls: Callable[[Any, int], None] | None = None
    #: Guest memory ranges (address, size) that hold per-thread CPU state, as i386's GDT TLS
    #: entries do: a thread switch saves and restores them along with the registers.
    thread_memory: tuple[tuple[int, int], ...] = ()
    #: Syscall names this ISA's table uses for a different call (i386's `mmap` is old_mmap).
    syscall_aliases: Mapping[str, str] = field(default_factory=dict)
    #: Bits to OR into a code address so execution resumes in the current instruction set
    #: (ARM: 1 while in Thumb state); None: addresses need none.
    pc_mode_bits: Callable[[RegisterAccess], int] | None = None
    #: The C calling convention (function hooks: bdemu/funchooks.py).
    call_abi: CallABI | None = None
    #: How to tell the instruction set of a block (ARM/Thumb); None: this ISA has one.
    code_modes: CodeModes | None = None
    #: Run with Unicorn's instruction counter on even without a limit. Unicorn 2.1's MIPS
    #: translator crashes the host on basic blocks of more than ~700 instructions unless every
    #: instruction is counted (costs ~2x on compute-bound code).
    always_count_insns: bool = False
    #: The `until` address given to emu_start, one guest code never reaches; None: the last
    #: address. (Unicorn's MIPS reports a bogus fault on every stop if it lies outside kuseg.)
    run_until: int | None = None
    #: The signal frame's layout; None: guest handlers are not run (signals they would catch are
    #: dropped with a warning).
    signal_frame: SignalFrame | None = None
    #: What riscv_hwprobe(2) reports, key -> value; keys not here are unknown to the "kernel".
    hwprobe: Mapping[int, int] = field(default_factory=dict)
    #: What `uname -m` says on a machine whose own programs are of this ISA (bdemu's host
    #: may be one: bdemu/cpu/__init__.py host_arch). Not `uname_machine`, the guest's answer.
    host_machines: tuple[str, ...] = ()

    @property
    def word_size(self) -> int:
        return self.bits // 8

    @property
    def word_mask(self) -> int:
        return (1 << self.bits) - 1

    @property
    def syscall_by_name(self) -> dict[str, int]:
        return {name: nr for nr, name in self.syscall_numbers.items()}
