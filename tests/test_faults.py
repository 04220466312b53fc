"""Guest faults: one line with pc, faulting address, access kind and the nearest symbol."""
from __future__ import annotations

import random
import struct

import pytest

from bdemu import Emulator
from bdemu.loaders.symbols import nearest_symbol
from conftest import run_bdemu, sample
from elfgen import BASE, assemble, make_elf

CODE = BASE + 0x1000
PROLOGUE = "nop\nnop\nnop\nnop\n"  # 4 bytes: `start` covers them, the faulting function follows


def _with_symbols(source: str, symbols: list[tuple[str, int, int, int]]) -> bytes:
    """make_elf(source) plus .symtab/.strtab/.shstrtab; symbols are (name, value, size, type)."""
    image = bytearray(make_elf("x86_64", source))
    strtab = bytearray(b"\0")
    symtab = bytearray(24)  # the null symbol
    for name, value, size, kind in symbols:
        symtab += struct.pack("<IBBHQQ", len(strtab), 0x10 | kind, 0, 1, value, size)
        strtab += name.encode() + b"\0"
    shstrtab = b"\0.symtab\0.strtab\0.shstrtab\0"
    offsets = []
    for blob in (symtab, strtab, shstrtab):
        offsets.append(len(image))
        image += blob
    shoff = (len(image) + 7) & ~7
    image = image.ljust(shoff, b"\0")
    image += bytes(64)
    image += struct.pack("<IIQQQQIIQQ", 1, 2, 0, 0, offsets[0], len(symtab), 2, 1, 8, 24)
    image += struct.pack("<IIQQQQIIQQ", 9, 3, 0, 0, offsets[1], len(strtab), 0, 0, 1, 0)
    image += struct.pack("<IIQQQQIIQQ", 17, 3, 0, 0, offsets[2], len(shstrtab), 0, 0, 1, 0)
    struct.pack_into("<Q", image, 40, shoff)
    struct.pack_into("<HHH", image, 58, 64, 4, 3)  # e_shentsize, e_shnum, e_shstrndx
    return bytes(image)


FAULTS = {
    # name: (function body, signal, message fragment)
    "write": ("xor eax, eax\nmov qword ptr [rax + 8], rbx", 11, "write to unmapped memory at 0x8 (write)"),
    "read": ("mov rax, 0x7000\nmov rbx, qword ptr [rax]", 11, "read of unmapped memory at 0x7000 (read)"),
    "exec": ("mov rax, 0x12345000\njmp rax", 11, "at 0x12345000 (exec)"),
    "write-to-code": (f"mov rax, {CODE:#x}\nmov byte ptr [rax], 1", 11,
                      f"write to protected memory at {CODE:#x} (write)"),
    "invalid": ("nop\nud2", 4, "invalid instruction"),
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_fault_names_pc_address_access_and_symbol(tmp_path, kind):
    body, signal, fragment = FAULTS[kind]
    function = assemble("x86_64", body)
    guest = tmp_path / "faulty"
    guest.write_bytes(_with_symbols(PROLOGUE + body, [("start", CODE, 4, 2), ("faulty_function", CODE + 4,
                                                                               len(function), 2)]))
    guest.chmod(0o755)
    done = run_bdemu("run", str(guest))
    assert done.returncode == 128 + signal
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bdemu: guest killed by SIG"), lines
    assert fragment in lines[0]
    if kind != "exec":  # an exec fault is reported at the address jumped to
        pc = int(lines[0].split(" at pc ")[1].split()[0], 16)
        assert f"(faulty_function+{pc - CODE - 4:#x})" in lines[0]
        assert CODE + 4 <= pc < CODE + 4 + len(function)


def test_fault_without_symbols_still_has_one_line():
    done = run_bdemu("run", sample("x86_64", "crash"), "segv")
    lines = [line for line in done.stderr.decode().splitlines() if line.startswith("bdemu: ")]
    assert done.returncode == 139 and len(lines) == 1
    assert "write to unmapped memory at 0x0 (write)" in lines[0] and "pc 0x" in lines[0]


def test_nearest_symbol_prefers_the_closest_below_and_respects_sizes(tmp_path):
    path = tmp_path / "syms"
    path.write_bytes(_with_symbols("nop\n" * 64, [("a", CODE, 16, 2), ("b", CODE + 32, 8, 2),
                                                  ("table", CODE + 48, 0, 1)]))
    assert nearest_symbol(str(path), CODE + 5) == ("a", 5)
    assert nearest_symbol(str(path), CODE + 33) == ("b", 1)
    assert nearest_symbol(str(path), CODE + 20) is None  # past the end of `a`, before `b`
    assert nearest_symbol(str(path), CODE + 60) == ("table", 12)  # size 0: nearest below
    assert nearest_symbol(str(path), CODE - 1) is None


def test_nearest_symbol_survives_corrupt_section_tables(tmp_path):
    good = _with_symbols("nop\n" * 16, [("a", CODE, 16, 2)])
    shoff = struct.unpack_from("<Q", good, 40)[0]
    rng = random.Random(8)
    path = tmp_path / "corrupt"
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            where = rng.choice([rng.randrange(40, 64), rng.randrange(shoff, len(data)),
                                rng.randrange(0x1000, len(data))])
            data[where] = rng.randrange(256)
        path.write_bytes(bytes(data[:rng.choice([len(data), rng.randrange(len(data))])]))
        found = nearest_symbol(str(path), CODE + 3)
        assert found is None or (isinstance(found[0], str) and found[1] >= 0)


def test_fault_in_a_running_emulator_reports_through_the_api(tmp_path):
    guest = tmp_path / "api"
    guest.write_bytes(_with_symbols(PROLOGUE + FAULTS["write"][0], [("boom", CODE + 4, 8, 2)]))
    result = Emulator(str(guest)).run()
    assert result.reason == "signal" and result.signal == 11 and "(boom+0x" in result.message


@pytest.mark.parametrize("isa", ["aarch64", "riscv64"])  # all zeros: udf #0, and RISC-V's defined illegal one
def test_undefined_instruction_is_named_on_every_isa(tmp_path, isa):
    """Unicorn reports these as a CPU exception, not an invalid instruction: still SIGILL, named."""
    from elfgen import elf_with_code
    guest = tmp_path / "undefined"
    guest.write_bytes(elf_with_code(isa, bytes(4)))
    guest.chmod(0o755)
    done = run_bdemu("run", str(guest))
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 132 and len(lines) == 1
    assert lines[0].startswith("bdemu: guest killed by SIGILL") and "invalid instruction" in lines[0], lines
