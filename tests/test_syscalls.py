"""Syscall-layer rules checked with tiny assembled guests."""
from __future__ import annotations

from bdemu import Emulator

from conftest import run_bdemu
from elfgen import write_elf

UNKNOWN_THEN_EXIT = """
    mov eax, 999; syscall
    mov eax, 999; syscall
    mov rdi, rax; neg rdi
    mov eax, 60; syscall
"""


def test_unknown_syscall_is_enosys_and_warns_once(tmp_path):
    """STYLE habit 3: an unknown syscall warns once per number and returns -ENOSYS (38)."""
    guest = write_elf(tmp_path, "x86_64", UNKNOWN_THEN_EXIT)
    done = run_bdemu("run", guest)
    assert done.returncode == 38
    warnings = [l for l in done.stderr.decode().splitlines() if "999" in l]
    assert len(warnings) == 1 and warnings[0].startswith("bdemu: ")


def test_strict_mode_stops_with_125(tmp_path):
    guest = write_elf(tmp_path, "x86_64", UNKNOWN_THEN_EXIT)
    done = run_bdemu("run", "--strict", guest)
    assert done.returncode == 125
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and "999" in lines[0] and lines[0].startswith("bdemu: ")
    assert "at pc 0x401005" in lines[0]  # SPEC 3: what, where (the syscall instruction) and why


def test_aarch64_svc_result_lands_in_x0(tmp_path):
    guest = write_elf(tmp_path, "aarch64", """
        mov x8, #172        // getpid
        svc #0
        mov x19, x0
        mov x8, #173        // getppid
        svc #0
        mov x0, #7
        mov x8, #93         // exit
        svc #0
    """)
    emu = Emulator(guest)
    result = emu.run()
    assert result.exit_code == 7 and result.reason == "exit"
    import os
    assert emu.reg("x19") == os.getpid()


def test_mmap_munmap_and_maps_view(tmp_path):
    """Anonymous mmap hands out fresh zeroed pages that /proc/self/maps lists; munmap removes them."""
    guest = write_elf(tmp_path, "x86_64", """
        mov edi, 0; mov esi, 0x3000; mov edx, 3; mov r10d, 0x22; mov r8, -1; mov r9d, 0
        mov eax, 9; syscall          // mmap
        mov r12, rax
        mov rbx, [rax + 0x2ff8]      // zero-filled
        mov qword ptr [rax], 0x55
        mov rdi, rbx
        mov eax, 60; syscall
    """)
    emu = Emulator(guest)
    result = emu.run()
    assert result.exit_code == 0
    address = emu.reg("r12")
    assert emu.read_memory(address, 1) == b"\x55"
    assert f"{address:08x}-{address + 0x3000:08x} rw-p" in emu.memory.maps_text()


def test_riscv64_ecall_uses_abi_register_names():
    """RISC-V: a7 holds the number, a0.. the arguments, a0 the result; ABI names and xN agree."""
    from bdemu import Plugin
    from conftest import ROOT, sample

    class Seen(Plugin):
        def __init__(self):
            super().__init__()
            self.calls = []

        def on_syscall(self, emu, number, args):
            self.calls.append((number, emu.reg("a7"), emu.reg("x17"), args[0], emu.reg("a0")))

        def on_syscall_return(self, emu, number, result):
            self.calls[-1] += (result,)

    path = str(ROOT / sample("riscv64", "hello"))
    emu = Emulator(path, argv=[path, "x"], env={})
    seen = emu.add_plugin(Seen())
    result = emu.run(capture_output=True)
    assert result.exit_code == 1 and result.stdout.startswith(b"Hello from bdemu!")
    assert all(number == a7 == x17 and arg0 == a0 for number, a7, x17, arg0, a0, *_ in seen.calls)
    writes = [call for call in seen.calls if call[0] == 66]  # musl prints with writev(1, iov, n)
    assert writes and all(call[3] == 1 and call[5] > 0 for call in writes)
    assert seen.calls[-1][0] == 94 and seen.calls[-1][3] == 1  # exit_group(argc - 1)
    assert emu.reg("tp") != 0  # musl set its thread pointer itself


def test_priority_reaches_only_the_guests_own_processes(tmp_path):
    """getpriority returns 20 - nice for the guest itself; init (not a guest process) is ESRCH, and a
    process group or user (which would reach host processes outside the guest) is EPERM."""
    import os
    guest = write_elf(tmp_path, "x86_64", """
        xor edi, edi; xor esi, esi; mov eax, 140; syscall
        mov r12, rax
        xor edi, edi; mov esi, 1; mov eax, 140; syscall
        mov r13, rax
        mov edi, 2; xor esi, esi; mov eax, 140; syscall
        mov r14, rax
        mov edi, 1; xor esi, esi; mov edx, 5; mov eax, 141; syscall
        mov r15, rax
        xor edi, edi; mov eax, 60; syscall
    """)
    emu = Emulator(guest)
    assert emu.run().exit_code == 0
    errno_of = {name: (-number) & (2**64 - 1) for name, number in (("ESRCH", 3), ("EPERM", 1))}
    assert emu.reg("r12") == 20 - os.getpriority(os.PRIO_PROCESS, 0)
    assert (emu.reg("r13"), emu.reg("r14"), emu.reg("r15")) == (errno_of["ESRCH"], errno_of["EPERM"],
                                                               errno_of["EPERM"])


def _rv_addi(rd: int, rs1: int, imm: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (rd << 7) | 0x13


def _rv_sd(rs2: int, offset: int, rs1: int) -> int:
    return ((offset >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (3 << 12) | ((offset & 31) << 7) | 0x23


def test_riscv64_hwprobe_reports_the_cpu(tmp_path):
    """glibc asks riscv_hwprobe(2) at start-up: known keys get the CPU's values (RV64GC: IMA base,
    F+D and C), an unknown key comes back as -1, and WHICH_CPUS keeps the CPUs that match."""
    import os
    import struct
    from elfgen import elf_with_code
    sp, t0, s1, s2, s3, a0, a1, a2, a3, a4, a7 = 2, 5, 9, 18, 19, 10, 11, 12, 13, 14, 17
    ecall = 0x73
    words = [_rv_addi(sp, sp, -96)]
    for offset, value in ((0, 4), (16, 3), (32, 99), (48, 4), (56, 3), (64, -1)):
        words += [_rv_addi(t0, 0, value), _rv_sd(t0, offset, sp)]
    # riscv_hwprobe(pairs, 3, 0, NULL, 0): keys IMA_EXT_0, BASE_BEHAVIOR, 99
    words += [_rv_addi(a0, sp, 0), _rv_addi(a1, 0, 3), _rv_addi(a2, 0, 0), _rv_addi(a3, 0, 0),
              _rv_addi(a4, 0, 0), _rv_addi(a7, 0, 258), ecall, _rv_addi(s1, a0, 0)]
    # riscv_hwprobe({IMA_EXT_0: F+D|C}, 1, 8, &all_cpus, WHICH_CPUS)
    words += [_rv_addi(a0, sp, 48), _rv_addi(a1, 0, 1), _rv_addi(a2, 0, 8), _rv_addi(a3, sp, 64),
              _rv_addi(a4, 0, 1), _rv_addi(a7, 0, 258), ecall, _rv_addi(s2, a0, 0), _rv_addi(s3, sp, 0)]
    words += [_rv_addi(a0, 0, 0), _rv_addi(a7, 0, 93), ecall]
    guest = tmp_path / "hwprobe"
    guest.write_bytes(elf_with_code("riscv64", b"".join(w.to_bytes(4, "little") for w in words)))
    emu = Emulator(str(guest))
    result = emu.run(capture_output=True)
    assert (result.reason, result.exit_code, result.stderr) == ("exit", 0, b"")
    assert emu.reg("s1") == 0 and emu.reg("s2") == 0
    pairs = struct.unpack("<qQqQqQqQQ", emu.read_memory(emu.reg("s3"), 72))
    online = sum(1 << cpu for cpu in os.sched_getaffinity(0) if cpu < 64)
    assert pairs == (4, 0b11, 3, 1, -1, 0, 4, 0b11, online)


def test_aarch64_epoll_event_is_naturally_aligned(tmp_path):
    """struct epoll_event is packed (12 bytes) only on x86; on AArch64 `data` sits at offset 8.
    (x86-64's layout is exercised by python3's selectors in test_dynamic.py.)"""
    guest = write_elf(tmp_path, "aarch64", """
        sub sp, sp, #64
        mov x0, sp; mov x1, #0; mov x8, #59; svc #0          // pipe2(fds at sp)
        mov x0, #0; mov x8, #20; svc #0                       // epoll_create1(0)
        mov x19, x0
        ldr w20, [sp]
        mov w9, #1; str w9, [sp, #16]                         // EPOLLIN
        movz x9, #0x7788; movk x9, #0x5566, lsl #16
        movk x9, #0x3344, lsl #32; movk x9, #0x1122, lsl #48
        str x9, [sp, #24]                                     // data
        mov x0, x19; mov x1, #1; mov x2, x20; add x3, sp, #16
        mov x8, #21; svc #0                                   // epoll_ctl(ADD)
        mov x24, x0
        ldr w0, [sp, #4]; mov x1, sp; mov x2, #1; mov x8, #64; svc #0   // write 1 byte
        mov x0, x19; add x1, sp, #32; mov x2, #1; mov x3, #1000; mov x4, #0; mov x5, #8
        mov x8, #22; svc #0                                   // epoll_pwait
        mov x21, x0
        ldr w22, [sp, #32]
        ldr x23, [sp, #40]
        mov x0, #0; mov x8, #93; svc #0
    """)
    emu = Emulator(guest)
    assert emu.run().exit_code == 0
    assert emu.reg("x24") == 0 and emu.reg("x21") == 1
    assert emu.reg("x22") & 1 and emu.reg("x23") == 0x1122334455667788


def test_riscv64_floating_point_runs(tmp_path):
    """mstatus.FS starts enabled, so hard-float (lp64d) code does not trap: 6.0 + 6.0 -> exit 12."""
    from elfgen import elf_with_code
    words = [0x00600513,   # li a0, 6
             0xD2057553,   # fcvt.d.w fa0, a0
             0x02A57553,   # fadd.d fa0, fa0, fa0
             0xC2051553,   # fcvt.w.d a0, fa0, rtz
             0x05D00893,   # li a7, 93 (exit)
             0x00000073]   # ecall
    guest = tmp_path / "fp"
    guest.write_bytes(elf_with_code("riscv64", b"".join(w.to_bytes(4, "little") for w in words)))
    result = Emulator(str(guest)).run()
    assert (result.reason, result.exit_code) == ("exit", 12)


def test_scheduler_queries_answer_for_the_guest_only(tmp_path):
    """glibc 2.43's threads ask sched_getscheduler(0): SCHED_OTHER with priority 0, a range of
    1..99 only for the real-time policies, EPERM to become real-time, ESRCH for other pids."""
    guest = write_elf(tmp_path, "x86_64", """
        sub rsp, 16
        mov dword ptr [rsp], 7
        xor edi, edi; mov eax, 145; syscall; mov r12, rax        // sched_getscheduler(0)
        xor edi, edi; mov rsi, rsp; mov eax, 143; syscall         // sched_getparam(0, sp)
        mov r13d, dword ptr [rsp]
        mov edi, 1; mov eax, 146; syscall; mov r14, rax           // priority_max(SCHED_FIFO)
        xor edi, edi; mov eax, 146; syscall; mov r15, rax         // priority_max(SCHED_OTHER)
        xor edi, edi; mov esi, 1; mov rdx, rsp; mov eax, 144; syscall; mov rbx, rax  // set FIFO
        mov edi, 1; mov eax, 145; syscall; mov rbp, rax           // sched_getscheduler(init)
        mov edi, 9; mov eax, 146; syscall; mov r11, rax           // priority_max(9)
        xor edi, edi; mov eax, 60; syscall
    """)
    emu = Emulator(guest)
    result = emu.run(capture_output=True)
    assert (result.reason, result.exit_code, result.stderr) == ("exit", 0, b"")
    signed = lambda name: emu.reg(name) - (1 << 64) if emu.reg(name) >> 63 else emu.reg(name)
    assert [signed(r) for r in ("r12", "r13", "r14", "r15", "rbx", "rbp", "r11")] == [
        0, 0, 99, 0, -1, -3, -22]


def test_tcgets_writes_only_the_kernel_termios(tmp_path):
    """TCGETS fills the kernel's 36-byte struct termios: glibc's tcgetattr passes a local of
    that size, so the bytes after it (here 0xAA) must stay as they were."""
    import os
    import pty
    import subprocess
    import sys

    from conftest import ROOT
    guest = write_elf(tmp_path, "x86_64", """
        sub rsp, 64
        mov rax, 0xAAAAAAAAAAAAAAAA
        mov [rsp], rax; mov [rsp + 8], rax; mov [rsp + 16], rax; mov [rsp + 24], rax
        mov [rsp + 32], rax; mov [rsp + 40], rax; mov [rsp + 48], rax; mov [rsp + 56], rax
        xor edi, edi; mov esi, 0x5401; mov rdx, rsp; mov eax, 16; syscall   // ioctl(0, TCGETS)
        mov edi, 2
        test rax, rax
        jnz done
        mov edi, 1
        mov rax, 0xAAAAAAAAAAAAAAAA
        cmp dword ptr [rsp + 36], eax
        jne done
        cmp [rsp + 40], rax; jne done
        cmp [rsp + 48], rax; jne done
        cmp [rsp + 56], rax; jne done
        xor edi, edi
    done:
        mov eax, 60; syscall
    """)
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-P", "-m", "bdemu", "run", guest], cwd=ROOT, stdin=terminal,
                              capture_output=True, timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    assert done.returncode == 0, done.stderr


def test_eventfd_counts_blocks_and_counts_down_as_a_semaphore(tmp_path):
    """eventfd2: EFD_SEMAPHORE reads 1 per read until empty (then EAGAIN when non-blocking); a plain
    one sums the writes and a read takes it all."""
    guest = write_elf(tmp_path, "x86_64", """
        sub rsp, 64
        mov edi, 3; mov esi, 0x801; mov eax, 290; syscall; mov r12, rax   // eventfd2(3, SEMAPHORE|NONBLOCK)
        xor r13, r13
        mov rdi, r12; mov rsi, rsp; mov edx, 8; xor eax, eax; syscall; add r13, [rsp]
        mov rdi, r12; mov rsi, rsp; mov edx, 8; xor eax, eax; syscall; add r13, [rsp]
        mov rdi, r12; mov rsi, rsp; mov edx, 8; xor eax, eax; syscall; add r13, [rsp]
        mov rdi, r12; mov rsi, rsp; mov edx, 8; xor eax, eax; syscall; mov r14, rax
        xor edi, edi; mov esi, 0x800; mov eax, 290; syscall; mov rbx, rax     // eventfd2(0, NONBLOCK)
        mov qword ptr [rsp + 8], 2
        mov rdi, rbx; lea rsi, [rsp + 8]; mov edx, 8; mov eax, 1; syscall; mov r15, rax
        mov qword ptr [rsp + 8], 3
        mov rdi, rbx; lea rsi, [rsp + 8]; mov edx, 8; mov eax, 1; syscall
        mov rdi, rbx; mov rsi, rsp; mov edx, 8; xor eax, eax; syscall; mov rbp, [rsp]
        xor edi, edi; mov eax, 60; syscall
    """)
    emu = Emulator(guest)
    result = emu.run(capture_output=True)
    assert (result.reason, result.exit_code, result.stderr) == ("exit", 0, b"")
    signed = lambda name: emu.reg(name) - (1 << 64) if emu.reg(name) >> 63 else emu.reg(name)
    assert signed("r12") >= 3 and [signed(r) for r in ("r13", "r14", "r15", "rbp")] == [3, -11, 8, 5]


def test_capabilities_memory_policy_and_protection_keys(tmp_path):
    """capget answers with bdemu's own capabilities (the guest is this process) and names the
    preferred version for an unknown one; one memory node with the default policy; no pkeys."""
    import re
    guest = write_elf(tmp_path, "x86_64", """
        sub rsp, 64
        mov dword ptr [rsp], 0x20080522; mov dword ptr [rsp + 4], 0
        mov rdi, rsp; lea rsi, [rsp + 16]; mov eax, 125; syscall; mov r12, rax
        mov r13d, dword ptr [rsp + 16]
        mov r14d, dword ptr [rsp + 28]
        mov dword ptr [rsp], 0x12345678
        mov rdi, rsp; lea rsi, [rsp + 16]; mov eax, 125; syscall; mov r15, rax
        mov ebx, dword ptr [rsp]
        mov dword ptr [rsp + 8], 7
        lea rdi, [rsp + 8]; xor esi, esi; xor edx, edx; xor r10, r10; xor r8, r8; mov eax, 239; syscall
        mov ebp, dword ptr [rsp + 8]
        add rbp, rax
        xor edi, edi; xor esi, esi; mov eax, 330; syscall; mov r11, rax     // pkey_alloc
        xor edi, edi; mov eax, 60; syscall
    """)
    emu = Emulator(guest)
    result = emu.run(capture_output=True)
    assert (result.reason, result.exit_code, result.stderr) == ("exit", 0, b"")
    signed = lambda name: emu.reg(name) - (1 << 64) if emu.reg(name) >> 63 else emu.reg(name)
    with open("/proc/self/status") as status:
        effective = int(re.search(r"^CapEff:\s*([0-9a-f]+)$", status.read(), re.M).group(1), 16)
    assert signed("r12") == 0 and emu.reg("r13") | emu.reg("r14") << 32 == effective
    assert (signed("r15"), emu.reg("rbx"), emu.reg("rbp"), signed("r11")) == (-22, 0x20080522, 0, -28)


def test_timerfd_expires_and_reports_its_setting(tmp_path):
    """A 20 ms timer with a 10 ms interval: a blocking read waits for the first expiry (count >= 1),
    gettime gives the interval back; a non-blocking one not yet due reads EAGAIN."""
    guest = write_elf(tmp_path, "x86_64", """
        sub rsp, 128
        mov edi, 1; xor esi, esi; mov eax, 283; syscall; mov r12, rax           // timerfd_create(MONOTONIC)
        mov qword ptr [rsp], 0; mov qword ptr [rsp + 8], 10000000              // interval 10 ms
        mov qword ptr [rsp + 16], 0; mov qword ptr [rsp + 24], 20000000        // value 20 ms
        mov rdi, r12; xor esi, esi; mov rdx, rsp; xor r10, r10; mov eax, 286; syscall; mov r13, rax
        mov rdi, r12; lea rsi, [rsp + 32]; mov edx, 8; xor eax, eax; syscall   // read: waits
        mov r14, qword ptr [rsp + 32]
        mov rdi, r12; lea rsi, [rsp + 48]; mov eax, 287; syscall               // gettime
        mov r15, qword ptr [rsp + 56]
        mov edi, 1; mov esi, 0x800; mov eax, 283; syscall; mov rbx, rax         // NONBLOCK
        mov qword ptr [rsp + 24], 900000000
        mov rdi, rbx; xor esi, esi; mov rdx, rsp; xor r10, r10; mov eax, 286; syscall
        mov rdi, rbx; lea rsi, [rsp + 32]; mov edx, 8; xor eax, eax; syscall; mov rbp, rax
        xor edi, edi; mov eax, 60; syscall
    """)
    emu = Emulator(guest)
    result = emu.run(capture_output=True)
    assert (result.reason, result.exit_code, result.stderr) == ("exit", 0, b"")
    signed = lambda name: emu.reg(name) - (1 << 64) if emu.reg(name) >> 63 else emu.reg(name)
    assert signed("r12") >= 3 and signed("r13") == 0 and emu.reg("r14") >= 1
    assert emu.reg("r15") == 10000000 and signed("rbp") == -11


def test_process_name_is_the_programs_until_set(tmp_path):
    """PR_GET_NAME starts as the executable's base name; PR_SET_NAME keeps 15 bytes of the new one."""
    guest = write_elf(tmp_path, "x86_64", """
        sub rsp, 64
        mov edi, 16; mov rsi, rsp; mov eax, 157; syscall                 // PR_GET_NAME
        mov rax, 0x6867666564636261; mov [rsp + 16], rax                  // "abcdefghijklmnopq"
        mov rax, 0x706f6e6d6c6b6a69; mov [rsp + 24], rax
        mov word ptr [rsp + 32], 0x71
        mov edi, 15; lea rsi, [rsp + 16]; mov eax, 157; syscall           // PR_SET_NAME
        mov edi, 16; lea rsi, [rsp + 40]; mov eax, 157; syscall
        mov r12, [rsp]; mov r13, [rsp + 40]; mov r14, [rsp + 48]
        xor edi, edi; mov eax, 60; syscall
    """, name="namedprog")
    emu = Emulator(guest)
    result = emu.run(capture_output=True)
    assert (result.reason, result.exit_code) == ("exit", 0)
    assert emu.reg("r12").to_bytes(8, "little") == b"namedpro"
    assert (emu.reg("r13").to_bytes(8, "little") + emu.reg("r14").to_bytes(8, "little")) == b"abcdefghijklmno\0"


def test_inotify_reports_a_file_created_in_a_watched_directory(tmp_path):
    """The watch is the host kernel's: creating a file in the directory queues an IN_CREATE event
    with its name, in the same `struct inotify_event` on every ISA; IN_NONBLOCK reads EAGAIN after."""
    import struct

    from guestasm import BUFFER, Result, parse_output, write_program
    watched = tmp_path / "watched"
    watched.mkdir()
    steps = [(294, 0x800), (254, Result(0), str(watched), 0x100), (85, str(watched / "newfile"), 0o644),
             (0, Result(0), BUFFER, 4096), (0, Result(0), BUFFER, 4096), (255, Result(0), Result(1))]
    result = Emulator(write_program(tmp_path / "guest", steps)).run(capture_output=True)
    assert result.exit_code == 0, result
    results, buffer = parse_output(result.stdout, len(steps))
    assert results[0] >= 3 and results[1] >= 1 and results[2] >= 3 and results[4:] == [-11, 0]
    wd, mask, cookie, length = struct.unpack_from("<iIII", buffer)
    assert (wd, mask, cookie) == (results[1], 0x100, 0) and results[3] == 16 + length
    assert buffer[16:16 + length].rstrip(b"\0") == b"newfile"


def test_memory_locks_residency_cpu_and_personality(tmp_path):
    """mlock and mincore of a mapped page succeed (every page resident), of an unmapped one
    ENOMEM; getcpu says CPU 0, node 0; personality is PER_LINUX; an empty affinity is EINVAL."""
    guest = write_elf(tmp_path, "x86_64", """
        sub rsp, 64
        mov qword ptr [rsp + 8], 0
        mov rdi, rsp; and rdi, -4096; mov esi, 4096; mov eax, 149; syscall; mov r12, rax   // mlock
        mov edi, 0x10000; mov esi, 4096; mov eax, 149; syscall; mov r13, rax               // unmapped
        mov rdi, rsp; and rdi, -4096; mov esi, 4096; lea rdx, [rsp + 8]; mov eax, 27; syscall
        movzx r14, word ptr [rsp + 8]                                                     // mincore
        mov dword ptr [rsp + 16], 7; mov dword ptr [rsp + 20], 7
        lea rdi, [rsp + 16]; lea rsi, [rsp + 20]; xor edx, edx; mov eax, 309; syscall      // getcpu
        mov r15d, dword ptr [rsp + 16]; add r15d, dword ptr [rsp + 20]; add r15, rax
        mov edi, 0xffffffff; mov eax, 135; syscall; mov rbx, rax                          // personality
        mov qword ptr [rsp + 24], 0
        xor edi, edi; mov esi, 8; lea rdx, [rsp + 24]; mov eax, 203; syscall; mov rbp, rax  // setaffinity
        xor edi, edi; mov eax, 60; syscall
    """)
    emu = Emulator(guest)
    result = emu.run(capture_output=True)
    assert (result.reason, result.exit_code, result.stderr) == ("exit", 0, b"")
    signed = lambda name: emu.reg(name) - (1 << 64) if emu.reg(name) >> 63 else emu.reg(name)
    assert [signed(r) for r in ("r12", "r13", "r15", "rbx", "rbp")] == [0, -12, 0, 0, -22]
    assert emu.reg("r14") == 1  # one page, resident; the byte after it untouched


def test_strict_stop_in_a_forked_child_is_reported(tmp_path):
    """A child never returns to `bdemu run`: it must say itself why bdemu stopped it (exit 125)."""
    guest = write_elf(tmp_path, "x86_64", """
        mov eax, 57; syscall         // fork
        test rax, rax
        jnz parent
        mov eax, 999; syscall        // child: unknown syscall, --strict stops it
        mov edi, 0; mov eax, 60; syscall
    parent:
        mov rdi, -1; lea rsi, [rsp - 8]; xor edx, edx; xor r10d, r10d
        mov eax, 61; syscall         // wait4(-1, &status, 0, NULL)
        mov edi, [rsp - 8]; shr edi, 8; and edi, 0xff
        mov eax, 60; syscall         // exit(WEXITSTATUS(status))
    """)
    done = run_bdemu("run", "--strict", guest)
    assert done.returncode == 125
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and "999" in lines[0] and lines[0].startswith("bdemu: "), lines


def test_mknod_makes_fifos_and_never_device_nodes(tmp_path):
    """mknodat makes a FIFO (umask applied); a device node would reach host hardware, even for a
    guest run as root: EPERM, as without CAP_MKNOD (docs/security.md)."""
    import stat
    guest = write_elf(tmp_path, "x86_64", """
        mov rax, 0x6f666966; push rax    // "fifo"
        mov rdi, -100; mov rsi, rsp; mov edx, 0x11ff; xor r10d, r10d
        mov eax, 259; syscall            // mknodat(AT_FDCWD, "fifo", S_IFIFO | 0777, 0)
        mov r12, rax
        mov rax, 0x766564; push rax      // "dev"
        mov rdi, -100; mov rsi, rsp; mov edx, 0x2180; mov r10d, 0x103
        mov eax, 259; syscall            // mknodat(AT_FDCWD, "dev", S_IFCHR | 0600, makedev(1, 3))
        neg rax
        lea rdi, [rax + r12 * 8]
        mov eax, 60; syscall             // exit(-second + 8 * first)
    """)
    done = run_bdemu("run", guest, cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # EPERM, and the FIFO made (0)
    mode = (tmp_path / "fifo").stat().st_mode
    assert stat.S_ISFIFO(mode) and stat.S_IMODE(mode) == 0o755
    assert not (tmp_path / "dev").exists()


def _flock_guest(tmp_path, operation: int) -> str:
    return write_elf(tmp_path, "x86_64", f"""
        mov rax, 0x6b6c; push rax        // "lk"
        mov rdi, -100; mov rsi, rsp; xor edx, edx; xor r10d, r10d
        mov eax, 257; syscall            // openat(AT_FDCWD, "lk", O_RDONLY)
        mov rdi, rax; mov esi, {operation}
        mov eax, 73; syscall             // flock(fd, operation)
        mov rdi, rax; neg rdi
        mov eax, 60; syscall             // exit(-result)
    """, name=f"flock{operation}")


def test_flock_locks_the_host_file(tmp_path):
    """flock reaches the host file, so a lock held elsewhere is seen: LOCK_NB fails with EAGAIN
    (11) and a blocking request waits (here until --timeout); a free file locks at once."""
    import fcntl
    (tmp_path / "lk").write_text("")
    try_lock, lock = _flock_guest(tmp_path, 2 | 4), _flock_guest(tmp_path, 2)
    with open(tmp_path / "lk") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert run_bdemu("run", try_lock, cwd=tmp_path).returncode == 11
        assert run_bdemu("run", "--timeout", "1", lock, cwd=tmp_path).returncode == 124
    assert run_bdemu("run", try_lock, cwd=tmp_path).returncode == 0
    assert run_bdemu("run", lock, cwd=tmp_path).returncode == 0


def test_sync_succeeds(tmp_path):
    """sync(2) is a no-op like fsync (the host flushes its own page cache), not ENOSYS."""
    guest = write_elf(tmp_path, "x86_64", """
        mov eax, 162; syscall            // sync()
        mov rdi, rax
        mov eax, 60; syscall             // exit(result)
    """)
    done = run_bdemu("run", guest)
    assert done.returncode == 0 and not done.stderr, done.stderr
