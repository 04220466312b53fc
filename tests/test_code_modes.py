"""ARM guests that mix ARM and Thumb code: every block is decoded in the instruction set it ran in.

Block hooks report only an address, so the native block tables note CPSR.T when a block
first runs (bdemu.cpu.base.CodeModes); plugins that decode batches after the fact (`trace`,
`insncount`, `hotblocks`) and recordings use it. The reference is a per-instruction hook,
which Unicorn calls with each instruction's real size.
"""
from __future__ import annotations

import os
import subprocess
import sys

import keystone
import pytest

from bdemu import Emulator, Plugin, open_trace
from bdemu.trace.recorder import RecordOptions, make_recorder
from elfgen import BASE, KS_MODE_THUMB, elf_with_code

ARM_CALLER = """
    mov r4, #3
    movw r5, #0x1101
    movt r5, #0x40
loop:
    blx r5
    subs r4, r4, #1
    bne loop
    mov r0, #0
    mov r7, #1
    svc #0
"""
THUMB_CALLEE = """
    movs r0, #1
    adds r0, #2
    lsls r0, r0, #1
    bx lr
"""


def mixed_guest(tmp_path) -> str:
    """ARM code at BASE+0x1000 calling a Thumb function at BASE+0x1100 three times."""
    arm = bytes(keystone.Ks(keystone.KS_ARCH_ARM, keystone.KS_MODE_ARM).asm(ARM_CALLER, BASE + 0x1000)[0])
    thumb = bytes(keystone.Ks(keystone.KS_ARCH_ARM, KS_MODE_THUMB).asm(THUMB_CALLEE, BASE + 0x1100)[0])
    path = tmp_path / "mixed"
    path.write_bytes(elf_with_code("arm", arm.ljust(0x100, b"\0") + thumb))
    path.chmod(0o755)
    return str(path)


class Reference(Plugin):
    """Each executed instruction as Unicorn reports it: (address, size)."""

    def __init__(self) -> None:
        self.insns: list[tuple[int, int]] = []

    def on_insn(self, emu, address, size):
        self.insns.append((address, size))


def test_insncount_and_trace_decode_thumb_blocks_as_thumb(tmp_path):
    guest = mixed_guest(tmp_path)
    emu = Emulator(guest)
    reference = emu.add_plugin(Reference())
    count = emu.add_plugin("insncount")
    out = tmp_path / "trace.txt"
    emu.add_plugin("trace", out=str(out))
    assert emu.run(capture_output=True).exit_code == 0
    assert len(reference.insns) == 3 + 3 * (3 + 4) + 3  # the Thumb function (4 insns) runs 3 times
    assert count.total == len(reference.insns)
    lines = out.read_text().splitlines()
    assert [int(line.split()[0], 16) for line in lines] == [address for address, _ in reference.insns]
    thumb = [line.split(None, 1)[1] for line in lines if int(line.split()[0], 16) >= BASE + 0x1100]
    assert thumb[:4] == ["movs r0, #1", "adds r0, #2", "lsls r0, r0, #1", "bx lr"]


def test_hotblocks_and_disassemble_in_a_block_hook_use_each_blocks_mode(tmp_path, capfd):
    class Sizes(Plugin):
        def __init__(self) -> None:
            self.decoded: dict[int, list[int]] = {}

        def on_block(self, emu, address, size):
            self.decoded[address] = [insn.size for insn in emu.disassemble(address, size)]

    emu = Emulator(mixed_guest(tmp_path))
    sizes = emu.add_plugin(Sizes())
    emu.add_plugin("hotblocks", top=10)
    emu.run(capture_output=True)
    assert sizes.decoded[BASE + 0x1100] == [2, 2, 2, 2]
    assert {size for address, decoded in sizes.decoded.items() if address < BASE + 0x1100 for size in decoded} == {4}
    report = capfd.readouterr().err
    assert f"{BASE + 0x1100:#x}  executions=3  insns=4  bytes=8" in report
    assert "lsls r0, r0, #1" in report


@pytest.mark.parametrize("options", [{}, {"insns": True}, {"regs": True, "insns": True}],
                         ids=["blocks", "insns", "live"])
def test_recordings_keep_each_blocks_instruction_set(tmp_path, options):
    guest = mixed_guest(tmp_path)
    reference = Emulator(guest)
    expected = reference.add_plugin(Reference())
    reference.run(capture_output=True)
    path = str(tmp_path / "mixed.db")
    emu = Emulator(guest)
    emu.add_plugin(make_recorder(path, RecordOptions(status=False, **options)))
    emu.run(capture_output=True)
    with open_trace(path) as trace:
        assert int(trace.meta["instructions"]) == len(expected.insns)
        modes = dict(trace.con.execute("SELECT pc, mode FROM code").fetchall())
        assert modes[BASE + 0x1100] == "thumb"
        assert {mode for pc, mode in modes.items() if pc < BASE + 0x1100} == {"arm"}
        if options.get("insns"):
            assert trace.con.execute("SELECT pc, size FROM insns ORDER BY seq").fetchall() == expected.insns
    shown = subprocess.run([sys.executable, "-P", "-m", "bdemu", "show", path], capture_output=True, text=True,
                           env={**os.environ, "COLUMNS": "200"})
    assert "movs r0, #1" in shown.stdout, shown.stdout + shown.stderr
