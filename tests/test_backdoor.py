"""The backdoor device, guest ABI version 1 (SPEC 2), exercised by the sample guests.

Each test names the ABI rule it protects. Samples: samples/src/backdoor_*.c, seed_backdoor.c.
"""
from __future__ import annotations

import re

import pytest

from bdemu import Emulator, Plugin
from bdemu.cpu import by_name
from bdemu.errors import UsageError

from conftest import ISAS, ROOT, run_bdemu, sample



class PingPong(Plugin):
    """The host side of backdoor_common.h's exchange; checks the guest's pattern itself."""

    def __init__(self) -> None:
        super().__init__()
        self.cmds: list[int] = []
        self.bad_patterns = 0
        self.init_size = None
        self.window_len = None

    def on_backdoor_init(self, emu, data_size):
        self.init_size = data_size

    def on_backdoor(self, emu, cmd, data):
        self.cmds.append(cmd)
        self.window_len = len(data)
        order = emu.arch.byteorder  # the guest reads its uint64_t answers in its own byte order
        if cmd == 0xD0E:
            data[1] = data[0] ^ data[len(data) - 1]
        elif cmd == 0xCAFE:
            data[8:16] = (int.from_bytes(data[0:8], order) + 1).to_bytes(8, order)
        elif cmd == 0xA11A5:
            data[2] = 0x42
        elif 1 <= cmd <= 100000:
            pattern = bytes(data[0:64])
            if pattern != bytes((cmd * 7 + i) & 0xFF for i in range(64)):
                self.bad_patterns += 1
            data[64:72] = ((cmd * 1000003 + sum(pattern)) & (2**64 - 1)).to_bytes(8, order)
            data[72:80] = (~cmd & (2**64 - 1)).to_bytes(8, order)

    def on_backdoor_i8(self, emu, i8):
        return i8 + 1

    def on_backdoor_i8_v32(self, emu, i8, v32):
        return i8 ^ v32


def run(isa: str, name: str, *args: str, plugin: Plugin | None = None, **options):
    guest = sample(isa, name)
    emu = Emulator(str(ROOT / guest), argv=[guest, *args], **options)
    plugin = plugin or PingPong()
    emu.add_plugin(plugin)
    return emu.run(capture_output=True), plugin


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name", ["backdoor_fixed", "backdoor_sysfs"])
def test_pingpong_1000_calls(isa, name):
    """cmd 1..1000 with a pattern in the data window; the host answers in the window (zero copy)."""
    result, plugin = run(isa, name, "1000")
    out = result.stdout.decode()
    assert result.exit_code == 0, (out, result.stderr)
    assert "pingpong: calls=1000 ok=1000 bad=0" in out
    pingpong = [c for c in plugin.cmds if 1 <= c <= 1000]
    assert pingpong == list(range(1, 1001))
    assert plugin.bad_patterns == 0
    assert plugin.init_size == 4096


@pytest.mark.parametrize("isa", ISAS)
def test_control_reads_fold_modulo_8(isa):
    """Reads of 1/2/4/8 bytes at offset o return DATA_SIZE's bytes from o % 8 on, wrapping, in the
    guest's byte order."""
    result, _ = run(isa, "backdoor_regs", backdoor_pages=3)
    out = result.stdout.decode()
    order = by_name(isa).byteorder
    size = (3 * 4096).to_bytes(8, order) * 2

    def value(offset, n):
        o = offset % 8
        return int.from_bytes(size[o:o + n], order)
    for o in range(8):
        expected = f"read o={o}: {value(o, 1):02x} {value(o, 2):04x} {value(o, 4):08x} {value(o, 8):016x}"
        assert expected in out, out
    assert f"read o=4080+3: {value(4083, 8):016x}" in out
    assert f"read o=4090: {value(4090, 4):08x}" in out


@pytest.mark.parametrize("isa", ISAS)
def test_command_writes_of_every_shape(isa):
    """8-byte, 2x4-byte, 8x1-byte and 4x2-byte command writes call once each, after the write that
    ends on an 8-byte boundary; so do writes at page offsets 0, 16 and 4088. CMD is its 8 bytes
    read in the guest's byte order (little endian: 0x3333333322222222 for the two halves)."""
    result, plugin = run(isa, "backdoor_regs")
    assert result.exit_code == 0
    order = by_name(isa).byteorder
    halves = b"".join((0x8880 + i).to_bytes(2, order) for i in range(4))
    stored = [bytes([0x11] * 8), bytes([0x22] * 4 + [0x33] * 4), bytes(range(0x40, 0x48)), bytes([0x55] * 8),
              bytes([0x66] * 8), bytes([0x77] * 8), halves, halves[:4] + bytes([0x99] * 4)]
    assert plugin.cmds == [int.from_bytes(cmd, order) for cmd in stored]


@pytest.mark.parametrize("isa", ISAS)
def test_user_mode_two_page_protocol(isa, tmp_path):
    """--backdoor-path BASE: page 0 offset 8 stages, page 1 offset 8 invokes: one call per pair."""
    base = str(tmp_path / "bd")
    result, plugin = run(isa, "backdoor_usermode", base, "50", backdoor_path=base)
    out = result.stdout.decode()
    assert result.exit_code == 0, out
    assert "data_size=4096" in out and "pingpong: calls=50 ok=50 bad=0" in out
    assert plugin.cmds == list(range(1, 51))


@pytest.mark.parametrize("isa", ISAS)
def test_sysfs_identity_and_aliased_mappings(isa):
    """sysfs: glob and readdir list the device, identity files read as SPEC 2 says, and two mmaps
    of resource0 (and of resource1) alias the one device."""
    result, plugin = run(isa, "backdoor_sysfs", "3")
    out = result.stdout.decode()
    assert result.exit_code == 0, out
    assert "glob: /sys/devices/pci0000:00/0000:00:04.0" in out
    assert "readdir: 0000:00:04.0" in out
    assert "vendor=0x1af4\n" in out and "device=0x1004\n" in out and "class=0x050000\n" in out
    assert "second_control_reads=4096" in out
    assert "alias data: 0x77" in out
    assert "host wrote through alias: 0x42" in out
    assert plugin.cmds[0] == 0xA11A5


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("pages", [1, 16, 65536])
def test_data_window_sizes(isa, pages):
    """--backdoor-pages N gives N * 4096 bytes; the guest's last byte is the host's last byte."""
    result, plugin = run(isa, "backdoor_fixed", "2", backdoor_pages=pages)
    out = result.stdout.decode()
    assert result.exit_code == 0, out
    assert f"data_size={pages * 4096}" in out
    assert "answer=0xff" in out  # host saw 0xa5 at data[0] and 0x5a at data[size - 1]
    assert plugin.window_len == pages * 4096 == plugin.init_size


@pytest.mark.parametrize("pages", ["0", "65537", "-1"])
def test_out_of_range_page_count_is_a_usage_error(pages):
    proc = run_bdemu("run", "--backdoor-pages", pages, sample("x86_64", "hello"))
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("bdemu: ") and "Traceback" not in proc.stderr.decode()
    with pytest.raises(UsageError):
        Emulator(str(ROOT / sample("x86_64", "hello")), backdoor_pages=int(pages))


class Raising(Plugin):
    def on_backdoor(self, emu, cmd, data):
        raise ValueError("boom")


@pytest.mark.parametrize("isa", ISAS)
def test_raising_plugin_ends_run_with_125(isa, tmp_path):
    """An exception in on_backdoor: exit 125, one line naming plugin, hook, cmd and pc."""
    plugin_file = tmp_path / "raising.py"
    plugin_file.write_text("from bdemu import Plugin\n\nclass Raising(Plugin):\n"
                           "    def on_backdoor(self, emu, cmd, data):\n        raise ValueError('boom')\n")
    proc = run_bdemu("run", "-p", str(plugin_file), sample(isa, "backdoor_fixed"))
    err = proc.stderr.decode()
    assert proc.returncode == 125, err
    lines = [line for line in err.splitlines() if line.startswith("bdemu: ")]
    assert len(lines) == 1 and "Traceback" not in err
    assert re.search(r"plugin raising raised in on_backdoor \(cmd 0xd0e\) at pc 0x[0-9a-f]+: ValueError: boom",
                     lines[0]), lines[0]


@pytest.mark.parametrize("isa", ISAS)
def test_instruction_interface_calls(isa):
    """type 0 -> on_backdoor_i8, type 1 -> on_backdoor_i8_v32; the return value comes back in EAX/x0."""
    result, _ = run(isa, "backdoor_insn", "calls")
    assert result.exit_code == 0
    assert "insn: calls=512 ok=512" in result.stdout.decode()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("kind", ["2", "15"])
def test_invalid_instruction_type_ends_run_with_125(isa, kind):
    """Types 2..15: one line naming the leaf and the pc, exit 125, never a traceback."""
    proc = run_bdemu("run", sample(isa, "backdoor_insn"), "invalid", kind)
    err = proc.stderr.decode()
    assert proc.returncode == 125, err
    assert "still running" not in proc.stdout.decode()
    leaf = 0x40001000 | int(kind) << 8 | 7
    assert re.fullmatch(rf"bdemu: invalid backdoor request: .*leaf {leaf:#x} \(type {kind}\) at pc 0x[0-9a-f]+\n",
                        err), err


@pytest.mark.parametrize("isa", ISAS)
def test_signature_leaf(isa):
    """Leaf 0x40000000: EAX = 0x40001000, "bdemu-bdoor1" in EBX, ECX, EDX."""
    result, _ = run(isa, "backdoor_insn", "sig")
    assert "sig: max=0x40001000 bdemu-bdoor1" in result.stdout.decode()


def test_cpuid_leaves_0_and_1_unchanged():
    """Every other CPUID leaf behaves as without bdemu: compare with bare Unicorn's CPUID."""
    from unicorn import UC_ARCH_X86, UC_MODE_64, Uc
    from unicorn.x86_const import UC_X86_REG_EAX, UC_X86_REG_EBX, UC_X86_REG_ECX, UC_X86_REG_EDX
    result, _ = run("x86_64", "backdoor_insn", "leaves")
    out = result.stdout.decode()
    for leaf in (0, 1):
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        uc.mem_map(0x1000, 0x1000)
        uc.mem_write(0x1000, b"\x0f\xa2")  # cpuid
        uc.reg_write(UC_X86_REG_EAX, leaf)
        uc.reg_write(UC_X86_REG_ECX, 0)
        uc.emu_start(0x1000, 0x1002)
        a, b, c, d = (uc.reg_read(r) for r in (UC_X86_REG_EAX, UC_X86_REG_EBX, UC_X86_REG_ECX, UC_X86_REG_EDX))
        if leaf == 1:
            b &= 0x00FFFFFF  # initial APIC id in EBX[31:24] is per CPU
            line = next(x for x in out.splitlines() if x.startswith("leaf 1:"))
            fields = [int(v, 16) for v in line.split(":")[1].split()]
            fields[1] &= 0x00FFFFFF
            assert fields == [a, b, c, d]
        else:
            assert f"leaf 0: {a:08x} {b:08x} {c:08x} {d:08x}" in out


@pytest.mark.parametrize("isa", ISAS)
def test_seed_guest_sysfs_discovery(isa):
    """A seed-era guest (qemu-backdoor.h, qemu_backdoor_init(NULL)) runs unchanged."""
    result, plugin = run(isa, "seed_backdoor")
    out = result.stdout.decode()
    assert result.exit_code == 0, (out, result.stderr)
    assert "size: 4096" in out and "reply: 0xbabf" in out and "i8: 4" in out
    assert plugin.cmds == [0xCAFE]


@pytest.mark.parametrize("isa", ISAS)
def test_seed_guest_user_mode_path(isa, tmp_path):
    """The same seed guest with a user-mode base path (bdemu --backdoor-path BASE)."""
    base = str(tmp_path / "backdoor")
    proc = run_bdemu("run", "-p", "backdoor", "--backdoor-path", base, sample(isa, "seed_backdoor"), base)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "sending cmd: 0xcafe data: 0xbabe" in out and "reply: 0x0" in out  # nobody answers
    data = (0xBABE).to_bytes(8, by_name(isa).byteorder).hex()  # the guest's uint64_t
    assert re.search(rf"backdoor: mmio cmd=0xcafe data={data}\S* pc=0x", err), err
    assert "backdoor: 2 calls (mmio=1 i8=1 i8_v32=0)" in err


def test_backdoor_plugin_logs_to_output_file(tmp_path):
    """The built-in `backdoor` plugin writes to --output, never to stdout."""
    log = tmp_path / "log.txt"
    proc = run_bdemu("run", "-p", "backdoor,bytes=4", "--output", str(log),
                     sample("x86_64", "backdoor_insn"), "calls")
    assert proc.returncode == 1  # the logger answers nothing (0), so the guest's checks fail
    text = log.read_text()
    assert "backdoor: init data_size=4096" in text
    assert re.search(r"backdoor: i8 i8=0x0 pc=0x[0-9a-f]+", text)
    assert re.search(r"backdoor: i8_v32 i8=0xff v32=0xdead4cb3 pc=0x", text)
    assert "backdoor: 512 calls (mmio=0 i8=256 i8_v32=256)" in text
    assert b"backdoor:" not in proc.stdout


@pytest.mark.parametrize("isa", ISAS)
def test_fixed_window_is_never_handed_out(isa):
    """mmap/brk never place anything over BDEMU_CONTROL_ADDR and the data window."""
    emu = Emulator(str(ROOT / sample(isa, "hello")), backdoor_pages=16)
    start = emu.arch.backdoor_control_addr
    end = start + 4096 + 16 * 4096
    assert not emu.memory.is_free(start, end)
    for size in (4096, 1 << 20, 1 << 30):
        address = emu.memory.find_free(size, hint=start)
        assert address + size <= start or address >= end


def test_no_isa_branches_outside_cpu():
    """ISA knowledge lives in bdemu/cpu/ (STYLE habit 1)."""
    offenders = []
    for path in (ROOT / "bdemu" / "devices").rglob("*.py"):
        if re.search(r"\barch(\.name)?\s*==", path.read_text()):
            offenders.append(str(path))
    assert offenders == []


def test_reserved_encoding_with_a_foreign_leaf_ends_run_with_125(tmp_path):
    """The reserved instruction with a value that is no backdoor leaf at all (a fuzzer found
    0x40000001): one line saying so, exit 125 (x86's CPUID instead answers such leaves natively)."""
    from elfgen import elf_with_code
    code = bytes.fromhex("200080d2" "0000a8f2") + (0x0000BD01).to_bytes(4, "little")  # x0 = 0x40000001; udf
    guest = tmp_path / "foreign_leaf"
    guest.write_bytes(elf_with_code("aarch64", code))
    guest.chmod(0o755)
    proc = run_bdemu("run", str(guest))
    err = proc.stderr.decode()
    assert proc.returncode == 125, err
    assert re.fullmatch(r"bdemu: invalid backdoor request: udf #0xbd01 leaf 0x40000001 "
                        r"\(not 0x40001000 \| type << 8 \| i8\) at pc 0x[0-9a-f]+\n", err), err


def test_sysfs_resources_report_their_window_sizes(tmp_path):
    """stat of resource0 gives the control page, of resource1 the data window (--backdoor-pages),
    both read-write for their owner, as a PCI BAR's sysfs files are."""
    import struct

    from bdemu import Emulator
    from guestasm import BufferAt, parse_output, write_program
    folder = "/sys/bus/pci/devices/0000:00:04.0"
    steps = [(262, -100, f"{folder}/resource0", BufferAt(0), 0), (262, -100, f"{folder}/resource1", BufferAt(256), 0)]
    result = Emulator(write_program(tmp_path / "guest", steps), backdoor_pages=16).run(capture_output=True)
    assert result.exit_code == 0, result
    results, buffer = parse_output(result.stdout, len(steps))
    assert results == [0, 0]
    for at, size in ((0, 4096), (256, 16 * 4096)):
        mode, = struct.unpack_from("<I", buffer, at + 24)
        assert struct.unpack_from("<q", buffer, at + 48)[0] == size and mode & 0o777 == 0o600
