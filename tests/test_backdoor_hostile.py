"""The backdoor device against a hostile guest (docs/backdoor.md, "A hostile guest").

Assembled x86-64 guests poke the control page at every offset near both ends
with 1/2/4/8-byte reads and writes (aligned, unaligned, crossing into the data
window), and mmap `resource1`/`resource0` with odd lengths, offsets, flags and
protections. Nothing may crash; every outcome is the documented one.
"""
from __future__ import annotations

import struct

import pytest

from bdemu import Emulator, Plugin
from bdemu.cpu import by_name
from elfgen import assemble
from guestasm import TABLE, Result, image, parse_output, write_program

CONTROL = by_name("x86_64").backdoor_control_addr
DATA = CONTROL + 4096
WIDTH = {1: ("byte", "al"), 2: ("word", "ax"), 4: ("dword", "eax"), 8: ("qword", "rax")}
OFFSETS = list(range(0, 17)) + list(range(4080, 4096))
DATA_SIZE = 4096


class Recorder(Plugin):
    def __init__(self) -> None:
        super().__init__()
        self.cmds: list[int] = []

    def on_backdoor(self, emu, cmd, data):
        self.cmds.append(cmd)
        data[0:8] = (cmd ^ 0xFFFF).to_bytes(8, "little")  # visible to the guest's next read


def _value(offset: int, size: int) -> int:
    return int.from_bytes(bytes((offset * 7 + i + 1) & 0xFF for i in range(size)), "little")


def _program(accesses: list[tuple[str, int, int]]) -> bytes:
    lines = [f"mov r12, {CONTROL:#x}", f"mov r13, {TABLE:#x}"]
    for index, (kind, offset, size) in enumerate(accesses):
        width, register = WIDTH[size]
        if kind == "read":
            lines += ["xor eax, eax", f"mov {register}, {width} ptr [r12 + {offset}]",
                      f"mov qword ptr [r13 + {8 * index}], rax"]
        else:
            lines += [f"mov rax, {_value(offset, size):#x}", f"mov {width} ptr [r12 + {offset}], {register}"]
    count = len(accesses)
    lines += ["mov rax, 1", "mov rdi, 1", "mov rsi, r13", f"mov rdx, {8 * count}", "syscall",
              "mov rax, 60", "xor edi, edi", "syscall"]
    return image(assemble("x86_64", "\n".join(lines)), b"", 8 * count)


class Model:
    """The documented semantics: folding modulo 8; aligned accesses are one access (CMD calls when
    it ends on a multiple of 8), unaligned ones byte by byte; bytes past the page are the data window."""

    def __init__(self) -> None:
        self.cmd = bytearray(8)
        self.data = bytearray(DATA_SIZE)
        self.calls: list[int] = []

    def _call(self) -> None:
        cmd = int.from_bytes(self.cmd, "little")
        self.calls.append(cmd)
        self.data[0:8] = (cmd ^ 0xFFFF).to_bytes(8, "little")

    def write(self, offset: int, size: int, value: int) -> None:
        data = value.to_bytes(size, "little")
        aligned = offset % size == 0
        for i, byte in enumerate(data):
            where = offset + i
            if where >= 4096:
                self.data[where - 4096] = byte
                continue
            self.cmd[where % 8] = byte
            if not aligned and (where + 1) % 8 == 0:
                self._call()
        if aligned and (offset + size) % 8 == 0:
            self._call()

    def read(self, offset: int, size: int) -> int:
        folded = DATA_SIZE.to_bytes(8, "little")
        out = bytes(folded[(offset + i) % 8] if offset + i < 4096 else self.data[offset + i - 4096]
                    for i in range(size))
        return int.from_bytes(out, "little")


def test_every_offset_and_size_on_the_control_page(tmp_path):
    accesses = []
    for offset in OFFSETS:
        for size in (1, 2, 4, 8):
            accesses += [("write", offset, size), ("read", offset, size)]
    path = tmp_path / "poke"
    path.write_bytes(_program(accesses))
    path.chmod(0o755)
    emu = Emulator(str(path))
    recorder = emu.add_plugin(Recorder())
    result = emu.run(capture_output=True)
    assert result.exit_code == 0, result
    values = struct.unpack(f"<{len(accesses)}Q", result.stdout)
    model = Model()
    for (kind, offset, size), got in zip(accesses, values):
        if kind == "write":
            model.write(offset, size, _value(offset, size))
        else:
            assert got == model.read(offset, size), (offset, size, hex(got))
    assert recorder.cmds == model.calls


def _mmap_steps(path: str, length: int, prot: int, flags: int, offset: int) -> list[tuple]:
    return [("open", path, 2, 0), ("mmap", 0, length, prot, flags, Result(0), offset)]


RESOURCE1 = "/sys/bus/pci/devices/0000:00:04.0/resource1"
RESOURCE0 = "/sys/bus/pci/devices/0000:00:04.0/resource0"
EINVAL, ENOMEM = -22, -12
MAP_SHARED, MAP_PRIVATE, MAP_FIXED = 1, 2, 0x10

#: name -> (path, length, prot, flags, offset, expected: "ok" or -errno)
MMAPS = {
    "whole-window": (RESOURCE1, 8192, 3, MAP_SHARED, 0, "ok"),
    "odd-length-rounds-up": (RESOURCE1, 100, 3, MAP_SHARED, 0, "ok"),
    "second-page": (RESOURCE1, 4096, 3, MAP_SHARED, 4096, "ok"),
    "beyond-the-window": (RESOURCE1, 3 * 4096, 3, MAP_SHARED, 0, EINVAL),
    "offset-beyond": (RESOURCE1, 4096, 3, MAP_SHARED, 8192, EINVAL),
    "offset-not-page-aligned": (RESOURCE1, 4096, 3, MAP_SHARED, 100, EINVAL),
    "huge-offset": (RESOURCE1, 4096, 3, MAP_SHARED, 1 << 62, EINVAL),
    "zero-length": (RESOURCE1, 0, 3, MAP_SHARED, 0, EINVAL),
    "huge-length": (RESOURCE1, 2**63, 3, MAP_SHARED, 0, ENOMEM),
    "private-is-shared": (RESOURCE1, 4096, 3, MAP_PRIVATE, 0, "ok"),
    "exec-is-dropped": (RESOURCE1, 4096, 7, MAP_SHARED, 0, "ok"),
    "read-only": (RESOURCE1, 4096, 1, MAP_SHARED, 0, "ok"),
    "control-two-pages": (RESOURCE0, 8192, 3, MAP_SHARED, 0, EINVAL),
    "control-offset": (RESOURCE0, 4096, 3, MAP_SHARED, 4096, EINVAL),
    "control-odd-length": (RESOURCE0, 10, 3, MAP_SHARED, 0, "ok"),
    "fixed-over-the-fixed-window": (RESOURCE1, 4096, 3, MAP_SHARED | MAP_FIXED, DATA, EINVAL),
}


@pytest.mark.parametrize("case", sorted(MMAPS))
def test_odd_mmaps_of_the_resources(tmp_path, case):
    path, length, prot, flags, offset, expected = MMAPS[case]
    if case == "fixed-over-the-fixed-window":
        steps = [("open", path, 2, 0), ("mmap", DATA, 4096, prot, flags, Result(0), 0)]
    else:
        steps = _mmap_steps(path, length, prot, flags, offset)
    guest = write_program(tmp_path / "mapper", steps)
    emu = Emulator(guest, backdoor_pages=2)
    emu.add_plugin(Recorder())
    result = emu.run(capture_output=True, max_insns=100_000)
    assert result.exit_code == 0, result
    results, _ = parse_output(result.stdout, len(steps))
    assert results[0] >= 3
    if expected == "ok":
        address = results[1]
        assert address > 0
        region = next(r for r in emu.memory.regions if r.start == address)
        assert region.perms & 4 == 0  # the window is never executable
    else:
        assert results[1] == expected, results


def test_mapped_data_window_aliases_the_device_and_exec_faults(tmp_path):
    """Through a MAP_PRIVATE mapping the guest still sees the host's writes (documented: device memory
    is always shared)."""
    steps = [("open", RESOURCE1, 2, 0), ("mmap", 0, 4096, 7, MAP_PRIVATE, Result(0), 0)]
    guest = write_program(tmp_path / "alias", steps)
    emu = Emulator(guest)
    emu.device.data.view[0:4] = b"\x0f\x0b\x90\x90"  # ud2: executed only if the window were executable
    result = emu.run(capture_output=True)
    results, _ = parse_output(result.stdout, len(steps))
    address = results[1]
    assert emu.read_memory(address, 4) == b"\x0f\x0b\x90\x90"
    emu.write_memory(address, b"ABCD")
    assert bytes(emu.device.data.view[0:4]) == b"ABCD"


def test_a_plugin_writing_past_the_window_stops_cleanly(tmp_path):
    class Overflow(Plugin):
        def on_backdoor(self, emu, cmd, data):
            data[0:16] = b"x" * 16
            data[len(data) - 4:len(data) + 4] = b"y" * 8  # a bug in the plugin, not in bdemu

    guest = tmp_path / "call"
    guest.write_bytes(_program([("write", 8, 8), ("read", 0, 8)]))
    guest.chmod(0o755)
    emu = Emulator(str(guest))
    emu.add_plugin(Overflow())
    result = emu.run(capture_output=True)
    assert result.exit_code == 125 and "on_backdoor" in result.message and "\n" not in result.message


def test_jumping_into_a_prot_exec_mapping_of_the_window_faults(tmp_path):
    source = f"""
        mov eax, 2
        lea rdi, [rip + path]
        mov esi, 2
        xor edx, edx
        syscall
        mov r8, rax
        xor edi, edi
        mov esi, 4096
        mov edx, 7
        mov r10d, 1
        xor r9d, r9d
        mov eax, 9
        syscall
        jmp rax
    path: .ascii "{RESOURCE1}"
        .byte 0
    """
    guest = tmp_path / "jump"
    guest.write_bytes(image(assemble("x86_64", source), b"", 8))
    guest.chmod(0o755)
    emu = Emulator(str(guest))
    emu.device.data.view[0:2] = b"\x0f\x0b"  # ud2 (SIGILL) if it were executed
    result = emu.run(capture_output=True)
    assert result.exit_code == 139 and "(exec)" in result.message, result
