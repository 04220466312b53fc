"""Each ISA's registers as GDB sees them, as data: the stub's target description and `g` packet.

A target lists GDB features (the names GDB looks for, e.g. `org.gnu.gdb.i386.core`) and
in each, registers in GDB's order: GDB's name, size in bits, and the bdemu register
(a key of `Arch.registers`) that holds it. `None` stands for a register GDB requires but
the guest cannot have changed from zero here (x87 pointers, MIPS `badvaddr`); writes to
it are ignored. `regnum` pins a register's number where GDB's numbering has a gap (ARM's
cpsr is 25). Every value goes on the wire in the target's byte order.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GdbRegister:
    name: str
    bits: int
    source: str | None
    type: str = "int"
    regnum: int | None = None


@dataclass(frozen=True)
class GdbTarget:
    architecture: str
    features: tuple[tuple[str, tuple[GdbRegister, ...]], ...]

    @property
    def registers(self) -> tuple[GdbRegister, ...]:
        """In the description's order."""
        return tuple(r for _, registers in self.features for r in registers)

    def numbered(self) -> dict[int, GdbRegister]:
        """GDB's register numbers, in their order (the `g` packet's): each is the one given or
        the previous one's plus one."""
        numbers, current = {}, 0
        for register in self.registers:
            current = register.regnum if register.regnum is not None else current
            numbers[current] = register
            current += 1
        return dict(sorted(numbers.items()))


def _regs(names, bits: int, sources=None, kind: str = "int") -> tuple[GdbRegister, ...]:
    sources = names if sources is None else sources
    return tuple(GdbRegister(n, bits, s, kind) for n, s in zip(names, sources))


_X87 = (_regs([f"st{i}" for i in range(8)], 80, kind="i387_ext")
        + _regs(["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"], 32,
                ["fpcw", "fpsw", "fptag", "fcs", "fip", "fds", "fdp", "fop"]))
_SEGMENTS = _regs(["cs", "ss", "ds", "es", "fs", "gs"], 32)

X86_64 = GdbTarget("i386:x86-64", (
    ("org.gnu.gdb.i386.core",
     _regs(["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp"], 64) + (GdbRegister("rsp", 64, "rsp", "data_ptr"),)
     + _regs([f"r{i}" for i in range(8, 16)], 64) + (GdbRegister("rip", 64, "rip", "code_ptr"),)
     + _regs(["eflags"], 32) + _SEGMENTS + _X87),
    ("org.gnu.gdb.i386.sse", _regs([f"xmm{i}" for i in range(16)], 128, kind="uint128") + _regs(["mxcsr"], 32)),
    ("org.gnu.gdb.i386.linux", (GdbRegister("orig_rax", 64, None),)),
    ("org.gnu.gdb.i386.segments", _regs(["fs_base", "gs_base"], 64)),
))

I386 = GdbTarget("i386", (
    ("org.gnu.gdb.i386.core",
     _regs(["eax", "ecx", "edx", "ebx"], 32) + (GdbRegister("esp", 32, "esp", "data_ptr"),)
     + _regs(["ebp", "esi", "edi"], 32) + (GdbRegister("eip", 32, "eip", "code_ptr"),)
     + _regs(["eflags"], 32) + _SEGMENTS + _X87),
    ("org.gnu.gdb.i386.sse", _regs([f"xmm{i}" for i in range(8)], 128, kind="uint128") + _regs(["mxcsr"], 32)),
    ("org.gnu.gdb.i386.linux", (GdbRegister("orig_eax", 32, None),)),
))

AARCH64 = GdbTarget("aarch64", (
    ("org.gnu.gdb.aarch64.core",
     _regs([f"x{i}" for i in range(31)], 64) + (GdbRegister("sp", 64, "sp", "data_ptr"),
                                                  GdbRegister("pc", 64, "pc", "code_ptr"),
                                                  GdbRegister("cpsr", 32, "pstate"))),
    ("org.gnu.gdb.aarch64.fpu",
     _regs([f"v{i}" for i in range(32)], 128, [f"q{i}" for i in range(32)], "uint128")
     + _regs(["fpsr", "fpcr"], 32)),
))

ARM = GdbTarget("arm", (
    ("org.gnu.gdb.arm.core",
     _regs([f"r{i}" for i in range(13)], 32) + (GdbRegister("sp", 32, "sp", "data_ptr"), GdbRegister("lr", 32, "lr"),
                                                 GdbRegister("pc", 32, "pc", "code_ptr"),
                                                 GdbRegister("cpsr", 32, "cpsr", regnum=25))),
))

_RISCV_NAMES = ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "fp", "s1"] + [f"a{i}" for i in range(8)] \
    + [f"s{i}" for i in range(2, 12)] + [f"t{i}" for i in range(3, 7)]
_RISCV_FP = [f"ft{i}" for i in range(8)] + ["fs0", "fs1"] + [f"fa{i}" for i in range(8)] \
    + [f"fs{i}" for i in range(2, 12)] + [f"ft{i}" for i in range(8, 12)]

RISCV64 = GdbTarget("riscv:rv64", (
    ("org.gnu.gdb.riscv.cpu",
     _regs(_RISCV_NAMES, 64, [f"x{i}" for i in range(32)]) + (GdbRegister("pc", 64, "pc", "code_ptr"),)),
    ("org.gnu.gdb.riscv.fpu",
     _regs(_RISCV_FP, 64, [f"f{i}" for i in range(32)], "ieee_double")
     + tuple(GdbRegister(n, 32, n, regnum=66 + i) for i, n in enumerate(["fflags", "frm", "fcsr"]))),
))

#: GDB's MIPS numbering: r0-r31, status, lo, hi, badvaddr, cause, pc, f0-f31, fcsr, fir, restart.
MIPS32 = GdbTarget("mips", (
    ("org.gnu.gdb.mips.cpu",
     _regs([f"r{i}" for i in range(32)], 32, [str(i) for i in range(32)])
     + (GdbRegister("lo", 32, "lo", regnum=33), GdbRegister("hi", 32, "hi", regnum=34),
        GdbRegister("pc", 32, "pc", "code_ptr", regnum=37))),
    ("org.gnu.gdb.mips.cp0",
     (GdbRegister("status", 32, None, regnum=32), GdbRegister("badvaddr", 32, None, regnum=35),
      GdbRegister("cause", 32, None, regnum=36))),
    ("org.gnu.gdb.mips.fpu",
     tuple(GdbRegister(f"f{i}", 32, f"f{i}", "ieee_single", regnum=38 + i) for i in range(32))
     + (GdbRegister("fcsr", 32, "fcsr", regnum=70), GdbRegister("fir", 32, "fir", regnum=71))),
    ("org.gnu.gdb.mips.linux", (GdbRegister("restart", 32, None, regnum=72),)),
))

#: Arch.name -> its target.
TARGETS: dict[str, GdbTarget] = {
    "x86_64": X86_64, "i386": I386, "aarch64": AARCH64, "arm": ARM, "riscv64": RISCV64, "mipsel": MIPS32,
    "mips": MIPS32,
}
