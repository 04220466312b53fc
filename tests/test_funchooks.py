"""Function hooks (bdemu/funchooks.py): entries, arguments, returns and skipped calls, by symbol name,
on every ISA keystone assembles.

Each guest calls add3(1, 2, 3), then add3(that, 10, 20), then secret() (which returns 7), and
exits with the last sum plus secret's result: 43 when nothing interferes.
"""
from __future__ import annotations

import re

import capstone
import keystone
import pytest

from bdemu import Emulator
from bdemu.cpu import by_name
from conftest import run_bdemu
from test_dynamic import arm64_rootfs, riscv64_rootfs  # noqa: F401 (fixtures)
from elfgen import BASE, KS_MODE_THUMB, elf_with_code, with_symbols

START, ADD3, SECRET = BASE + 0x1000, BASE + 0x1100, BASE + 0x1180
PROGRAMS = {
    "x86_64": (f"""mov edi, 1; mov esi, 2; mov edx, 3; call {ADD3}; mov edi, eax; mov esi, 10; mov edx, 20;
                 call {ADD3}; mov ebx, eax; call {SECRET}; add eax, ebx; mov edi, eax; mov eax, 60; syscall""",
               "lea eax, [rdi + rsi]; add eax, edx; ret", "mov eax, 7; ret"),
    "i386": (f"""push 3; push 2; push 1; call {ADD3}; add esp, 12; push 20; push 10; push eax; call {ADD3};
               add esp, 12; mov esi, eax; call {SECRET}; add eax, esi; mov ebx, eax; mov eax, 1; int 0x80""",
             "mov eax, [esp + 4]; add eax, [esp + 8]; add eax, [esp + 12]; ret", "mov eax, 7; ret"),
    "aarch64": (f"""mov x0, #1; mov x1, #2; mov x2, #3; bl {ADD3}; mov x1, #10; mov x2, #20; bl {ADD3};
                  mov x19, x0; bl {SECRET}; add x0, x0, x19; mov x8, #93; svc #0""",
                "add x0, x0, x1; add x0, x0, x2; ret", "mov x0, #7; ret"),
    # add3 is Thumb code (entered with blx), secret ARM code
    "arm": (f"""mov r0, #1; mov r1, #2; mov r2, #3; blx {ADD3}; mov r1, #10; mov r2, #20; blx {ADD3};
              mov r4, r0; bl {SECRET}; add r0, r0, r4; mov r7, #1; svc #0""",
            "adds r0, r0, r1; adds r0, r0, r2; bx lr", "mov r0, #7; bx lr"),
    "mipsel": (f"""li $a0, 1; li $a1, 2; li $a2, 3; jal {ADD3}; nop; move $a0, $v0; li $a1, 10; li $a2, 20;
                 jal {ADD3}; nop; move $s0, $v0; jal {SECRET}; nop; addu $a0, $v0, $s0; li $v0, 4001; syscall""",
               "addu $v0, $a0, $a1; addu $v0, $v0, $a2; jr $ra; nop", "li $v0, 7; jr $ra; nop"),
}
PROGRAMS["mips"] = PROGRAMS["mipsel"]
ISAS = sorted(PROGRAMS)


def guest(tmp_path, isa: str) -> str:
    arch = by_name(isa)
    start, add3, secret = PROGRAMS[isa]
    thumb_add3 = isa == "arm"

    def assemble(source: str, address: int, thumb: bool = False) -> bytes:
        return bytes(keystone.Ks(arch.ks_arch, KS_MODE_THUMB if thumb else arch.ks_mode).asm(source, address)[0])

    code = (assemble(start, START).ljust(0x100, b"\0") + assemble(add3, ADD3, thumb_add3).ljust(0x80, b"\0")
            + assemble(secret, SECRET))
    path = tmp_path / "snippet"
    path.write_bytes(with_symbols(elf_with_code(isa, code), isa,
                                  {"_start": (START, 0x100), "add3": (ADD3 | thumb_add3, 16), "secret": (SECRET, 16)}))
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("isa", ISAS)
def test_entries_arguments_and_returns(tmp_path, isa):
    emu = Emulator(guest(tmp_path, isa))
    calls, returns = [], []
    emu.hook_function("add3", lambda emu: calls.append([emu.functions.argument(i) for i in range(3)]),
                      lambda emu, result: returns.append(result & 0xFFFFFFFF))
    result = emu.run(capture_output=True)
    assert result.exit_code == 43, result.message
    assert calls == [[1, 2, 3], [6, 10, 20]]
    assert returns == [6, 36]


@pytest.mark.parametrize("isa", ISAS)
def test_return_now_skips_the_function(tmp_path, isa):
    emu = Emulator(guest(tmp_path, isa))
    entered = []

    def skip(emu):
        entered.append(emu.symbolize(emu.pc))
        emu.functions.return_now(100)
    emu.hook_function("snippet!secret", skip)
    assert emu.run(capture_output=True).exit_code == 136
    assert entered == ["snippet!secret"]


@pytest.mark.parametrize("isa", ["x86_64", "arm"])
def test_globs_addresses_and_names(tmp_path, isa):
    emu = Emulator(guest(tmp_path, isa))
    seen = []
    emu.hook_function("[as]*", lambda emu: seen.append(emu.symbolize(emu.pc)))  # add3 and secret
    emu.hook_function(SECRET, lambda emu: seen.append("by address"))
    emu.run(capture_output=True)
    assert seen == ["snippet!add3", "snippet!add3", "snippet!secret", "by address"]
    assert emu.symbolize(ADD3 + 4) == "snippet!add3+0x4"
    assert emu.symbols.address_of("secret") == SECRET
    assert emu.symbolize(0x10) is None


def test_a_hook_that_raises_ends_the_run_with_its_name(tmp_path):
    emu = Emulator(guest(tmp_path, "x86_64"))
    emu.hook_function("add3", lambda emu: 1 / 0)
    result = emu.run(capture_output=True)
    assert result.exit_code == 125 and "function hook on add3 raised" in result.message
    assert "ZeroDivisionError" in result.message


def _cstring(emu, address: int) -> bytes:
    """The NUL-terminated string at `address`, read a page at a time (it may end near unmapped memory)."""
    text = b""
    while b"\0" not in text:
        text += emu.read_memory(address + len(text), 4096 - (address + len(text)) % 4096)
    return text.split(b"\0")[0]


def _string_at(emu, address: int) -> bytes | None:
    try:
        return emu.read_memory(address, 16).split(b"\0")[0]
    except Exception:
        return None


def test_library_functions_of_a_dynamic_program_are_hooked_when_ld_so_maps_them():
    """/bin/echo (host x86-64, glibc): libc is mapped by ld.so during the run, after the hook was asked for."""
    emu = Emulator("/bin/echo", argv=["echo", "hello", "world"], env={})
    strings, exits = [], []
    emu.hook_function("libc.so.6!*", lambda emu: strings.append(_string_at(emu, emu.functions.argument(0))))
    emu.hook_function("_exit", lambda emu: exits.append(emu.functions.argument(0)))
    result = emu.run(capture_output=True)
    assert (result.exit_code, result.stdout) == (0, b"hello world\n")
    assert b"hello" in strings and b"world" in strings  # each argument handed to a libc function
    assert exits == [0]
    assert emu.symbols.address_of("libc.so.6!_exit") is not None


def test_calls_plugin_prints_a_call_tree_with_results(tmp_path):
    out = tmp_path / "calls.txt"
    done = run_bdemu("run", "-p", f"calls,match=snippet![as]*,out={out}", guest(tmp_path, "x86_64"))
    assert done.returncode == 43
    code = keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64).asm(PROGRAMS["x86_64"][0], START)[0]
    after_calls = [insn.address + insn.size - START for insn in
                   capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64).disasm(bytes(code), START)
                   if insn.mnemonic == "call"]
    assert out.read_text().splitlines() == [
        f"add3(0x1, 0x2, 0x3) from snippet!_start+{after_calls[0]:#x}", "= 0x6",
        f"add3(0x6, 0xa, 0x14) from snippet!_start+{after_calls[1]:#x}", "= 0x24",
        f"secret(0x6, 0xa, 0x14) from snippet!_start+{after_calls[2]:#x}", "= 0x7"]


def test_hotblocks_and_show_name_blocks_by_symbol(tmp_path):
    program = guest(tmp_path, "aarch64")
    done = run_bdemu("run", "-p", "hotblocks,top=10,disasm=off", program)
    assert re.search(rf"^{ADD3:#x}  executions=2  insns=3  bytes=12  snippet!add3$", done.stderr.decode(), re.M)
    trace = tmp_path / "t.db"
    assert run_bdemu("record", "-o", str(trace), program).returncode == 43
    shown = run_bdemu("show", str(trace), env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert re.search(rf"{ADD3:#x} │ snippet!add3 ", shown.stdout.decode())


def test_calls_plugin_shows_string_arguments_of_library_calls(tmp_path):
    out = tmp_path / "calls.txt"
    done = run_bdemu("run", "-p", f"calls,match=libc.so.6!*,ret=off,out={out}", "/bin/echo", 'say "hi"')
    assert done.returncode == 0 and done.stdout == b'say "hi"\n'
    assert re.search(r'^\w+\("say \\"hi\\"", ', out.read_text(), re.M)  # echo hands its argument to libc


def test_calls_plugin_says_when_nothing_matched():
    done = run_bdemu("run", "-p", "calls,match=no_such_function", "samples/bin/x86_64/hello")
    assert done.returncode == 0
    assert "calls: no call to a function matching 'no_such_function'" in done.stderr.decode()


@pytest.mark.parametrize("debian_arch", ["arm64", "riscv64"])
def test_glibc_functions_of_foreign_programs_are_hooked(request, debian_arch):
    """Debian's echo and glibc under --rootfs (built by scripts/make_rootfs.sh, as in test_dynamic)."""
    rootfs = str(request.getfixturevalue(f"{debian_arch}_rootfs"))
    emu = Emulator(rootfs + "/bin/echo", argv=["echo", "hello"], env={}, rootfs=rootfs)
    strings, puts_results = [], []
    emu.hook_function("libc.so.6!*", lambda emu: strings.append(_string_at(emu, emu.functions.argument(0))))
    emu.hook_function("libc.so.6!fputs_unlocked", None, lambda emu, result: puts_results.append(result))
    result = emu.run(capture_output=True)
    assert (result.exit_code, result.stdout) == (0, b"hello\n")
    assert b"hello" in strings
    assert puts_results and all(value >= 0 for value in puts_results)


def test_ifunc_functions_are_hooked_at_the_implementation_their_resolver_picks():
    """glibc's strlen (x86-64) is an IFUNC: its symbol is a resolver, called when ld.so binds it."""
    emu = Emulator("/bin/echo", argv=["echo", "hello"], env={})
    calls, names = [], set()

    def entered(emu):
        names.add(emu.symbolize(emu.pc))
        calls.append([_cstring(emu, emu.functions.argument(0))])
    emu.hook_function("libc.so.6!strlen", entered, lambda emu, length: calls[-1].append(length))
    assert emu.run(capture_output=True).exit_code == 0
    assert calls and all(length == len(text) for text, length in calls)
    assert names == {"libc.so.6!strlen"}
