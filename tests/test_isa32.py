"""The 32-bit ISAs' ABI details, with keystone-assembled guests (tests/elfgen.py).

64-bit syscall arguments in register pairs (and on MIPS the stack), the MIPS
a3/errno convention, i386 TLS through set_thread_area and %gs, the ARM kuser
helpers and Thumb entry, and the backdoor instruction on ARM and MIPS.
"""
from __future__ import annotations

import pytest

from bdemu import Emulator, Plugin
from bdemu.cpu import by_name
from elfgen import write_elf

OFFSET = (1 << 32) + 3  # the high word of a 64-bit argument matters


def _numbers(isa: str) -> dict[str, int]:
    return by_name(isa).syscall_by_name


def _run(path: str, plugin: Plugin | None = None, cwd: str | None = None):
    emu = Emulator(path, argv=[path], env={}, cwd=cwd)
    if plugin is not None:
        emu.add_plugin(plugin)
    return emu.run(capture_output=True, timeout=30)


PWRITE64 = {
    # openat(AT_FDCWD, "out", O_RDWR|O_CREAT, 0644); pwrite64(fd, "ZZZZ", 4, OFFSET); exit(result)
    "i386": """
        sub esp, 16
        mov dword ptr [esp], 0x0074756f
        mov dword ptr [esp+4], 0x5a5a5a5a
        mov ebx, -100
        mov ecx, esp
        mov edx, 0x42
        mov esi, 0x1a4
        mov eax, {openat}
        int 0x80
        mov ebx, eax
        lea ecx, [esp+4]
        mov edx, 4
        mov esi, 3
        mov edi, 1
        mov eax, {pwrite64}
        int 0x80
        mov ebx, eax
        mov eax, {exit_group}
        int 0x80
    """,
    # EABI: the 64-bit offset takes the even pair r4:r5; r3 is padding.
    "arm": """
        sub sp, sp, #16
        movw r0, #0x756f
        movt r0, #0x0074
        str r0, [sp]
        movw r0, #0x5a5a
        movt r0, #0x5a5a
        str r0, [sp, #4]
        mvn r0, #99
        mov r1, sp
        mov r2, #0x42
        movw r3, #0x1a4
        movw r7, #{openat}
        svc #0
        add r1, sp, #4
        mov r2, #4
        mov r3, #0xee
        mov r4, #3
        mov r5, #1
        movw r7, #{pwrite64}
        svc #0
        movw r7, #{exit_group}
        svc #0
    """,
    # o32: a3 is padding, the offset is the 5th and 6th argument words at sp+16 and sp+20, in
    # memory order (the low word first on mipsel, the high word first on mips).
    "mipsel": """
        addiu $sp, $sp, -32
        lui $t0, {path_high}
        ori $t0, $t0, {path_low}
        sw $t0, 24($sp)
        lui $t0, 0x5a5a
        ori $t0, $t0, 0x5a5a
        sw $t0, 28($sp)
        addiu $a0, $zero, -100
        addiu $a1, $sp, 24
        addiu $a2, $zero, 0x102
        addiu $a3, $zero, 0x1a4
        addiu $v0, $zero, {openat}
        syscall
        move $a0, $v0
        addiu $a1, $sp, 28
        addiu $a2, $zero, 4
        addiu $a3, $zero, 0xee
        addiu $t0, $zero, {offset_first}
        sw $t0, 16($sp)
        addiu $t0, $zero, {offset_second}
        sw $t0, 20($sp)
        addiu $v0, $zero, {pwrite64}
        syscall
        move $a0, $v0
        addiu $v0, $zero, {exit_group}
        syscall
    """,
}


PWRITE64["mips"] = PWRITE64["mipsel"]
MIPS = ["mipsel", "mips"]


def _memory_words(isa: str) -> dict[str, int]:
    """The path "out" as one word, and OFFSET's words in memory order, as the ISA stores them."""
    order = by_name(isa).byteorder
    path = int.from_bytes(b"out\0", order)
    first, second = (OFFSET & 0xFFFFFFFF, OFFSET >> 32)[::1 if order == "little" else -1]
    return {"path_high": path >> 16, "path_low": path & 0xFFFF, "offset_first": first, "offset_second": second}


@pytest.mark.parametrize("isa", sorted(PWRITE64))
def test_64bit_argument_in_register_pair(isa, tmp_path):
    """pwrite64's offset arrives whole: both halves, the ABI's pair alignment, MIPS stack words."""
    guest = write_elf(tmp_path, isa, PWRITE64[isa].format(**_numbers(isa), **_memory_words(isa)))
    result = _run(guest, cwd=str(tmp_path))
    assert (result.exit_code, result.reason) == (4, "exit"), result.message
    out = tmp_path / "out"
    assert out.stat().st_size == OFFSET + 4
    with open(out, "rb") as handle:
        handle.seek(OFFSET - 1)
        assert handle.read(5) == b"\0ZZZZ"


@pytest.mark.parametrize("isa", MIPS)
def test_mips_error_flag_and_errno(isa, tmp_path):
    """MIPS: a failing syscall sets a3 = 1 and v0 = the MIPS errno (ENOSYS 89); success clears a3."""
    numbers = _numbers(isa)
    guest = write_elf(tmp_path, isa, f"""
        addiu $a3, $zero, 0
        addiu $v0, $zero, 4999
        syscall
        move $s0, $v0
        move $s1, $a3
        addiu $a3, $zero, 1
        addiu $v0, $zero, {numbers['getpid']}
        syscall
        move $s2, $a3
        sll $s1, $s1, 7
        sll $s2, $s2, 5
        addu $a0, $s0, $s1
        addu $a0, $a0, $s2
        addiu $v0, $zero, {numbers['exit_group']}
        syscall
    """)
    result = _run(guest)
    assert result.exit_code == 89 + 128  # v0 = 89, a3 = 1 after the failure, 0 after getpid


def test_i386_set_thread_area_and_gs(tmp_path):
    """set_thread_area picks GDT entry 6 for entry_number -1 and writes it back; %gs then
    addresses the descriptor's base."""
    numbers = _numbers("i386")
    guest = write_elf(tmp_path, "i386", f"""
        sub esp, 64
        mov dword ptr [esp], 0xffffffff
        lea eax, [esp+32]
        mov dword ptr [esp+4], eax
        mov dword ptr [esp+8], 0xfffff
        mov dword ptr [esp+12], 0x51
        mov ebx, esp
        mov eax, {numbers['set_thread_area']}
        int 0x80
        mov eax, dword ptr [esp]
        shl eax, 3
        or eax, 3
        mov gs, ax
        mov dword ptr gs:[4], 42
        mov ebx, dword ptr [esp+36]
        add ebx, dword ptr [esp]
        mov eax, {numbers['exit_group']}
        int 0x80
    """)
    result = _run(guest)
    assert (result.exit_code, result.reason) == (42 + 6, "exit"), result.message


def test_arm_thumb_entry_kuser_get_tls_and_cmpxchg(tmp_path):
    """A Thumb entry point (bit 0 set) runs as Thumb; set_tls is read back by __kuser_get_tls and
    __kuser_cmpxchg stores and returns 0; blx/bx interwork between Thumb and the ARM helpers."""
    guest = write_elf(tmp_path, "arm", """
        movw r0, #0x5678
        movt r0, #0x1234
        movw r7, #0x0005
        movt r7, #0x000f
        svc #0
        movw r3, #0x0fe0
        movt r3, #0xffff
        blx r3
        mov r4, r0
        sub sp, sp, #8
        movs r1, #5
        str r1, [sp]
        movs r0, #5
        movs r1, #9
        mov r2, sp
        movw r3, #0x0fc0
        movt r3, #0xffff
        blx r3
        ldr r1, [sp]
        add r0, r0, r1
        movw r5, #0x5678
        movt r5, #0x1234
        subs r4, r4, r5
        add r0, r0, r4
        movs r7, #248
        svc #0
    """, thumb=True)
    result = _run(guest)
    assert (result.exit_code, result.reason) == (9, "exit"), result.message


def test_arm_kuser_helper_version(tmp_path):
    guest = write_elf(tmp_path, "arm", """
        movw r1, #0x0ffc
        movt r1, #0xffff
        ldr r0, [r1]
        movw r7, #248
        svc #0
    """)
    assert _run(guest).exit_code == 5


class Answers(Plugin):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_backdoor_i8(self, emu, i8):
        self.calls.append((i8,))
        return i8 + 1

    def on_backdoor_i8_v32(self, emu, i8, v32):
        self.calls.append((i8, v32))
        return i8 ^ v32


ARM_UDF, THUMB_UDF = ".byte 0xf1, 0xd0, 0xfb, 0xe7", ".byte 0xfb, 0xf7, 0x01, 0xad"


@pytest.mark.parametrize("thumb", [False, True], ids=["a32", "thumb"])
def test_arm_backdoor_instruction(tmp_path, thumb):
    """`udf #0xbd01` (A32) / `udf.w #0xbd01` (T32): r0 = leaf, r1 = v32; r0 = the answer, r1..r3 = 0,
    and execution goes on after it in the same instruction set."""
    guest = write_elf(tmp_path, "arm", f"""
        movw r0, #0x1105
        movt r0, #0x4000
        movw r1, #0x30
        mov r2, #7
        mov r3, #7
        {THUMB_UDF if thumb else ARM_UDF}
        add r0, r0, r1
        add r0, r0, r2
        add r0, r0, r3
        movw r7, #248
        svc #0
    """, thumb=thumb)
    plugin = Answers()
    result = _run(guest, plugin)
    assert (result.exit_code, result.reason) == (5 ^ 0x30, "exit"), result.message
    assert plugin.calls == [(5, 0x30)]


def test_arm_other_undefined_instruction_is_sigill(tmp_path):
    guest = write_elf(tmp_path, "arm", ".byte 0xf0, 0x00, 0xf0, 0xe7")  # udf #0
    plugin = Answers()
    result = _run(guest, plugin)
    assert (result.exit_code, result.signal) == (132, 4)
    assert plugin.calls == []


@pytest.mark.parametrize("isa", MIPS)
def test_mips_backdoor_instruction(isa, tmp_path):
    """`syscall 0xbd01` with v0 = leaf, a0 = v32: v0 = the answer; a plain `syscall` with the same
    v0 stays a syscall (ENOSYS), as on Linux."""
    exit_group = _numbers(isa)["exit_group"]
    guest = write_elf(tmp_path, isa, f"""
        lui $v0, 0x4000
        ori $v0, $v0, 0x1105
        addiu $a0, $zero, 0x30
        .word 0x002f404c
        move $s0, $v0
        lui $v0, 0x4000
        ori $v0, $v0, 0x1005
        syscall
        addu $a0, $s0, $v0
        addiu $v0, $zero, {exit_group}
        syscall
    """)
    plugin = Answers()
    result = _run(guest, plugin)
    assert (result.exit_code, result.reason) == ((5 ^ 0x30) + 89, "exit"), result.message
    assert plugin.calls == [(5, 0x30)]


def test_i386_time64_and_old_timespec_layouts(tmp_path):
    """clock_gettime writes a 32-bit timespec (8 bytes), clock_gettime64 a 64-bit one (16 bytes)."""
    import time
    numbers = _numbers("i386")
    guest = write_elf(tmp_path, "i386", f"""
        sub esp, 64
        mov ecx, 32
        mov edi, esp
        mov eax, 0xaaaaaaaa
        rep stosb
        mov ebx, 0
        mov ecx, esp
        mov eax, {numbers['clock_gettime']}
        int 0x80
        mov ebx, 0
        lea ecx, [esp+16]
        mov eax, {numbers['clock_gettime64']}
        int 0x80
        mov ebx, 0
        mov eax, {numbers['exit_group']}
        int 0x80
    """)
    emu = Emulator(guest, argv=[guest], env={})
    before = int(time.time())
    assert emu.run(capture_output=True).exit_code == 0
    raw = emu.read_memory(emu.reg("esp"), 32)
    old_seconds, old_nanos = int.from_bytes(raw[0:4], "little"), int.from_bytes(raw[4:8], "little")
    assert before <= old_seconds <= before + 5 and old_nanos < 10**9
    assert raw[8:16] == b"\xaa" * 8  # nothing beyond the 8-byte timespec
    new_seconds, new_nanos = int.from_bytes(raw[16:24], "little"), int.from_bytes(raw[24:32], "little")
    assert before <= new_seconds <= before + 5 and new_nanos < 10**9


def test_arm_futex_time64_wait(tmp_path):
    """futex_time64: a changed word is EAGAIN at once; an unchanged one sleeps out its 64-bit
    timeout and returns ETIMEDOUT (there is no other thread to wake it). The word after the 32-bit
    tv_nsec is padding a 32-bit kernel ignores."""
    numbers = _numbers("arm")
    guest = write_elf(tmp_path, "arm", f"""
        sub sp, sp, #32
        mov r0, #7
        str r0, [sp]
        mov r0, #0
        str r0, [sp, #8]
        str r0, [sp, #12]
        movw r0, #0xe100
        movt r0, #0x05f5
        str r0, [sp, #16]
        movw r0, #0xbeef
        movt r0, #0xdead
        str r0, [sp, #20]
        mov r0, sp
        mov r1, #0
        mov r2, #8
        add r3, sp, #8
        movw r7, #{numbers['futex_time64']}
        svc #0
        rsb r6, r0, #0
        mov r0, sp
        mov r1, #0
        mov r2, #7
        add r3, sp, #8
        movw r7, #{numbers['futex_time64']}
        svc #0
        rsb r0, r0, #0
        add r0, r0, r6
        movw r7, #248
        svc #0
    """)
    import time
    start = time.monotonic()
    result = _run(guest)
    assert result.exit_code == 11 + 110  # EAGAIN, then ETIMEDOUT
    assert time.monotonic() - start >= 0.1  # the 0.1 s timeout (tv_nsec 100000000) was slept


def test_i386_old_mmap_takes_a_pointer(tmp_path):
    """i386 syscall 90 is old_mmap: its six arguments are words in memory."""
    numbers = _numbers("i386")
    guest = write_elf(tmp_path, "i386", f"""
        sub esp, 32
        mov dword ptr [esp], 0
        mov dword ptr [esp+4], 8192
        mov dword ptr [esp+8], 3
        mov dword ptr [esp+12], 0x22
        mov dword ptr [esp+16], 0xffffffff
        mov dword ptr [esp+20], 0
        mov ebx, esp
        mov eax, {numbers['mmap']}
        int 0x80
        mov dword ptr [eax+8188], 77
        mov ebx, dword ptr [eax+8188]
        mov eax, {numbers['exit_group']}
        int 0x80
    """)
    result = _run(guest)
    assert (result.exit_code, result.reason) == (77, "exit"), result.message


def test_arm_vfp_and_neon_run(tmp_path):
    """Hard-float code runs: VFP double arithmetic and a NEON vector add (FPEXC.EN is set)."""
    guest = write_elf(tmp_path, "arm", """
        vmov.f64 d0, #1.5
        vadd.f64 d1, d0, d0
        vcvt.s32.f64 s4, d1
        vmov r4, s4
        mov r0, #20
        vdup.32 q1, r0
        vadd.i32 q2, q1, q1
        vmov.32 r5, d4[1]
        add r0, r4, r5
        movw r7, #248
        svc #0
    """)
    result = _run(guest)
    assert (result.exit_code, result.reason) == (3 + 40, "exit"), result.message


def test_arm_thumb_fork_child_resumes_in_thumb(tmp_path):
    """A forked child restarts Unicorn at its pc; in Thumb state the restart keeps Thumb."""
    numbers = _numbers("arm")
    guest = write_elf(tmp_path, "arm", f"""
        movw r7, #{numbers['fork']}
        svc #0
        cmp r0, #0
        bne parent
        movs r0, #7
        movw r7, #{numbers['exit_group']}
        svc #0
    parent:
        mov r4, r0
        sub sp, sp, #8
        mov r0, r4
        mov r1, sp
        movs r2, #0
        movs r3, #0
        movw r7, #{numbers['wait4']}
        svc #0
        ldr r0, [sp]
        lsrs r0, r0, #8
        movw r7, #{numbers['exit_group']}
        svc #0
    """, thumb=True)
    result = _run(guest)
    assert (result.exit_code, result.reason) == (7, "exit"), result.message


# clone(CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SETTLS)
THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x80000


@pytest.mark.parametrize("valid", [True, False])
def test_i386_clone_settls_installs_user_desc_per_thread(tmp_path, capfd, valid):
    """i386 clone(CLONE_SETTLS) takes a `struct user_desc` (tls in esi, the fourth argument): the
    new thread's %gs addresses its base at once and after a reload, while the parent's GDT entry
    keeps the parent's base (the TLS entries are per thread, as Linux switches them). An entry
    number of -1 is no TLS slot for clone: one warning, and the thread keeps the parent's TLS."""
    numbers = _numbers("i386")
    entry = "eax" if valid else "0xffffffff"
    guest = write_elf(tmp_path, "i386", f"""
        sub esp, 512
        mov ebp, esp
        mov dword ptr [ebp+128], 11
        mov dword ptr [ebp+160], 22
        mov dword ptr [ebp+64], 0
        mov dword ptr [ebp], 0xffffffff
        lea eax, [ebp+128]
        mov dword ptr [ebp+4], eax
        mov dword ptr [ebp+8], 0xfffff
        mov dword ptr [ebp+12], 0x51
        mov ebx, ebp
        mov eax, {numbers['set_thread_area']}
        int 0x80
        mov eax, dword ptr [ebp]
        mov dword ptr [ebp+16], {entry}
        shl eax, 3
        or eax, 3
        mov gs, ax
        lea eax, [ebp+160]
        mov dword ptr [ebp+20], eax
        mov dword ptr [ebp+24], 0xfffff
        mov dword ptr [ebp+28], 0x51
        mov ebx, {THREAD_FLAGS}
        lea ecx, [ebp+480]
        xor edx, edx
        lea esi, [ebp+16]
        xor edi, edi
        mov eax, {numbers['clone']}
        int 0x80
        test eax, eax
        jnz parent
        mov eax, dword ptr gs:[0]
        mov ecx, gs
        mov gs, cx
        add eax, dword ptr gs:[0]
        mov dword ptr [ebp+64], eax
        xor ebx, ebx
        mov eax, {numbers['exit']}
        int 0x80
    parent:
        mov eax, {numbers['sched_yield']}
        int 0x80
        cmp dword ptr [ebp+64], 0
        je parent
        mov ecx, gs
        mov gs, cx
        mov ebx, dword ptr gs:[0]
        add ebx, dword ptr [ebp+64]
        mov eax, {numbers['exit_group']}
        int 0x80
    """)
    result = _run(guest)
    warnings = [line for line in capfd.readouterr().err.splitlines() if "TLS argument is invalid" in line]
    if valid:
        # child: 22 + 22 (its own descriptor before and after a reload); parent: 11 after a reload
        assert (result.exit_code, result.reason, warnings) == (22 + 22 + 11, "exit", []), result.message
    else:
        assert (result.exit_code, result.reason, len(warnings)) == (11 + 11 + 11, "exit", 1), result.message


@pytest.mark.parametrize("isa", MIPS)
def test_mips_thread_futex_timeout_is_mips_errno(isa, tmp_path):
    """MIPS clone takes tls fourth (a3) and the child tid pointer from the stack; a thread's futex
    wait that times out while another thread waits resumes with a3 = 1 and v0 = MIPS ETIMEDOUT (145);
    the child starts with CLONE_SETTLS's value in UserLocal (rdhwr $29)."""
    numbers = _numbers(isa)
    guest = write_elf(tmp_path, isa, f"""
        addiu $sp, $sp, -256
        move $s0, $sp
        sw $zero, 64($s0)
        sw $zero, 72($s0)
        addiu $t0, $zero, 1000
        sll $t0, $t0, 10
        sw $t0, 76($s0)
        lui $a0, {THREAD_FLAGS >> 16}
        ori $a0, $a0, {THREAD_FLAGS & 0xFFFF}
        addiu $a1, $s0, 224
        move $a2, $zero
        lui $a3, 0x1234
        sw $zero, 16($sp)
        addiu $v0, $zero, {numbers['clone']}
        syscall
        bnez $v0, parent
        nop
        rdhwr $t1, $29
        lui $t2, 0x1234
        bne $t1, $t2, wrong_tls
        nop
        addiu $a0, $s0, 64
        move $a1, $zero
        move $a2, $zero
        move $a3, $zero
        addiu $v0, $zero, {numbers['futex']}
        syscall
    parent:
        addiu $a0, $s0, 68
        sw $zero, 0($a0)
        move $a1, $zero
        move $a2, $zero
        addiu $a3, $s0, 72
        addiu $v0, $zero, {numbers['futex']}
        syscall
        addu $a0, $v0, $a3
        addiu $v0, $zero, {numbers['exit_group']}
        syscall
    wrong_tls:
        addiu $a0, $zero, 3
        addiu $v0, $zero, {numbers['exit_group']}
        syscall
    """)
    result = _run(guest)
    assert (result.exit_code, result.reason) == (145 + 1, "exit"), result.message


def test_arm_clone3_thread_and_join(tmp_path):
    """ARM clone3: `struct clone_args` has 64-bit fields on a 32-bit ISA too. The thread starts on
    stack + stack_size with TPIDRURO = tls; CLONE_PARENT_SETTID stores its tid, and its exit
    clears the CLONE_CHILD_CLEARTID word and wakes the parent's futex wait on it (a join)."""
    numbers = _numbers("arm")
    flags = THREAD_FLAGS | 0x100000 | 0x200000  # CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID
    guest = write_elf(tmp_path, "arm", f"""
        sub sp, sp, #256
        mov r8, sp
        mov r0, #0
        mov r1, #0
    zero:
        str r0, [r8, r1]
        add r1, r1, #4
        cmp r1, #128
        bne zero
        movw r0, #{flags & 0xFFFF}
        movt r0, #{flags >> 16}
        str r0, [r8]
        add r0, r8, #100
        str r0, [r8, #16]
        add r0, r8, #104
        str r0, [r8, #24]
        add r0, r8, #128
        str r0, [r8, #40]
        mov r0, #64
        str r0, [r8, #48]
        movw r0, #0x5678
        movt r0, #0x1234
        str r0, [r8, #56]
        mvn r0, #0
        str r0, [r8, #100]
        mov r0, r8
        mov r1, #64
        movw r7, #{numbers['clone3']}
        svc #0
        cmp r0, #0
        bne parent
        mrc p15, #0, r1, c13, c0, #3
        movw r2, #0x5678
        movt r2, #0x1234
        sub r1, r1, r2
        sub r2, sp, r8
        add r1, r1, r2
        str r1, [r8, #108]
        mov r0, #0
        mov r7, #{numbers['exit']}
        svc #0
    parent:
        mov r9, r0
    wait:
        ldr r2, [r8, #100]
        cmp r2, #0
        beq joined
        add r0, r8, #100
        mov r1, #0
        mov r3, #0
        mov r7, #{numbers['futex']}
        svc #0
        b wait
    joined:
        ldr r0, [r8, #104]
        sub r0, r0, r9
        ldr r1, [r8, #108]
        add r0, r0, r1
        mov r7, #{numbers['exit_group']}
        svc #0
    """)
    result = _run(guest)
    assert (result.exit_code, result.reason) == (192, "exit"), result.message  # sp = stack + 64

