"""The plugin contract (SPEC sections 3-4, issue 5): built-ins, loading, fan-out, errors.

Instruction counts are checked against an independent per-instruction
Unicorn hook (`on_insn`), and the drcov file against a reader written here.
"""
from __future__ import annotations

import os
import re
import struct

import pytest

from conftest import ROOT, run_bdemu, sample

from bdemu import Emulator, Plugin

LINE = re.compile(r"^0x[0-9a-f]+  \S")
PLUGINS = ROOT / "samples" / "plugins"


class InsnCounter(Plugin):
    """The independent count: Unicorn's per-instruction hook."""

    def __init__(self):
        self.count = 0
        self.addresses = set()

    def on_insn(self, emu, address, size):
        self.count += 1


def traced_and_exact(isa: str, tmp_path, name: str = "hello") -> tuple[list[str], int]:
    """One run with `trace` (from the block stream) and an on_insn counter side by side."""
    path = str(ROOT / sample(isa, name))
    emu = Emulator(path, argv=[sample(isa, name)], env={})
    emu.add_plugin("trace", out=str(tmp_path / "trace.txt"))
    counter = emu.add_plugin(InsnCounter())
    assert emu.run(capture_output=True).exit_code == 0
    return (tmp_path / "trace.txt").read_text().splitlines(), counter.count


def executable_ranges(path) -> list[tuple[int, int]]:
    """PT_LOAD segments with PF_X, read straight from the ELF program headers (either class and
    byte order)."""
    data = (ROOT / path).read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] in (1, 2) and data[5] in (1, 2)
    end, wide = "<" if data[5] == 1 else ">", data[4] == 2
    phoff, = struct.unpack_from(end + ("Q" if wide else "I"), data, 0x20 if wide else 0x1C)
    phentsize, phnum = struct.unpack_from(end + "HH", data, 0x36 if wide else 0x2A)
    ranges = []
    for i in range(phnum):
        if wide:
            p_type, p_flags, _off, vaddr, _paddr, _filesz, memsz, _align = struct.unpack_from(
                end + "IIQQQQQQ", data, phoff + i * phentsize)
        else:
            p_type, _off, vaddr, _paddr, _filesz, memsz, p_flags, _align = struct.unpack_from(
                end + "IIIIIIII", data, phoff + i * phentsize)
        if p_type == 1 and p_flags & 1:
            ranges.append((vaddr, vaddr + memsz))
    return ranges


def read_drcov(path) -> tuple[list[tuple[int, int, str]], list[tuple[int, int, int]]]:
    """An independent drcov v2 reader: modules (base, end, path) and blocks (offset, size, module)."""
    data = open(path, "rb").read()
    lines, rest = [], data
    while True:
        line, rest = rest.split(b"\n", 1)
        lines.append(line.decode())
        if line.startswith(b"BB Table:"):
            break
    assert lines[0] == "DRCOV VERSION: 2"
    count = int(re.match(r"Module Table: version 2, count (\d+)", lines[2]).group(1))
    modules = []
    for text in lines[4:4 + count]:
        fields = [f.strip() for f in text.split(",", 6)]
        modules.append((int(fields[1], 16), int(fields[2], 16), fields[6]))
    blocks_count = int(re.match(r"BB Table: (\d+) bbs", lines[-1]).group(1))
    assert len(rest) == 8 * blocks_count
    return modules, [struct.unpack_from("<IHH", rest, 8 * i) for i in range(blocks_count)]


@pytest.mark.parametrize("isa", ["x86_64", "aarch64", "riscv64", "mips"])
def test_trace_counts_every_instruction_exactly(isa, tmp_path):
    lines, exact = traced_and_exact(isa, tmp_path)
    assert len(lines) == exact
    ranges = executable_ranges(sample(isa, "hello"))
    for line in lines:
        assert LINE.match(line), line
        address = int(line.split()[0], 16)
        assert any(low <= address < high for low, high in ranges), line
    done = run_bdemu("run", "-p", "trace", sample(isa, "hello"))
    assert done.returncode == 0 and done.stdout.startswith(b"Hello from bdemu!")
    assert all(LINE.match(line) for line in done.stderr.decode().splitlines())


def test_trace_options_bytes_limit_range_regs(tmp_path):
    out = tmp_path / "t.txt"
    done = run_bdemu("run", "-p", f"trace,bytes=on,limit=50,out={out}", sample("x86_64", "hello"))
    assert done.returncode == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 50
    assert re.match(r"^0x[0-9a-f]+  ([0-9a-f]{2} )+", lines[0])
    full = run_bdemu("run", "-p", "trace", sample("x86_64", "hello")).stderr.decode().splitlines()
    start = int(full[100].split()[0], 16)
    ranged = run_bdemu("run", "-p", f"trace,start={start:#x},stop={start + 16:#x}",
                       sample("x86_64", "hello")).stderr.decode().splitlines()
    assert ranged and all(start <= int(l.split()[0], 16) < start + 16 for l in ranged)
    assert len(ranged) == sum(start <= int(l.split()[0], 16) < start + 16 for l in full)
    regs = run_bdemu("run", "-p", "trace,regs=on,limit=20", sample("x86_64", "hello")).stderr.decode()
    assert len(regs.splitlines()) == 20 and "rdi=0x" in regs  # `mov rdi, rsp` is the second insn


@pytest.mark.parametrize("isa", ["x86_64", "aarch64", "riscv64", "mips"])
def test_insncount_agrees_with_trace(isa, tmp_path):
    done = run_bdemu("run", "-p", "insncount", "-p", "trace", sample(isa, "hello"))
    text = done.stderr.decode().splitlines()
    total = int(re.search(r"^insns: (\d+)$", "\n".join(text), re.M).group(1))
    assert total == sum(1 for line in text if LINE.match(line))
    path = str(ROOT / sample(isa, "compute"))
    emu = Emulator(path, argv=[path, "20000"], env={})
    counted, counter = emu.add_plugin("insncount"), emu.add_plugin(InsnCounter())
    assert emu.run(capture_output=True).exit_code == 0
    assert counted.total == counter.count


def test_coverage_drcov_lists_every_traced_block(tmp_path):
    drcov = tmp_path / "cov.drcov"
    guest = sample("x86_64", "hello")
    done = run_bdemu("run", "-p", f"coverage,out={drcov}", guest)
    assert done.returncode == 0 and "coverage:" in done.stderr.decode()
    modules, blocks = read_drcov(drcov)
    assert [os.path.basename(m[2]) for m in modules] == ["hello"]
    covered = set()
    for offset, size, module in blocks:
        base = modules[module][0]
        covered.update(range(base + offset, base + offset + size))
    traced = run_bdemu("run", "-p", "trace", guest).stderr.decode().splitlines()
    addresses = {int(line.split()[0], 16) for line in traced}
    assert addresses <= covered
    starts = {modules[m][0] + o for o, _, m in blocks}
    assert starts <= addresses


def test_strace_shows_decoded_write():
    done = run_bdemu("run", "-p", "strace", sample("x86_64", "hello"))
    text = done.stderr.decode()
    assert re.search(r'^writev?\(1, .*"Hello from bdemu!.*\) = \d+$', text, re.M), text
    assert "exit_group(0) = ?" in text
    done = run_bdemu("run", "-p", "strace", sample("x86_64", "fileio"), "/nonexistent-dir")
    assert re.search(r"= -1 ENOENT \(No such file or directory\)$", done.stderr.decode(), re.M)


def test_hotblocks_and_memtrace():
    done = run_bdemu("run", "-p", "hotblocks,top=3", "-p", "memtrace,limit=10", sample("x86_64", "hello"))
    text = done.stderr.decode()
    assert re.search(r"^hotblocks: \d+ distinct blocks", text, re.M)
    assert len(re.findall(r"^0x[0-9a-f]+  executions=\d+", text, re.M)) == 3
    accesses = re.findall(r"^0x[0-9a-f]+ [rw] 0x[0-9a-f]+ [1248] 0x[0-9a-f]+$", text, re.M)
    assert len(accesses) == 10


def test_memtrace_matches_python_memory_hooks():
    class Mem(Plugin):
        def __init__(self):
            self.python, self.batched = [], []

        def on_mem_write(self, emu, address, size, value):
            self.python.append((address, size, value))

        def on_mem_batch(self, emu, accesses):
            for record in accesses[accesses["write"] == 1].tolist():
                self.batched.append((record[1], record[3], record[2]))

    path = str(ROOT / sample("x86_64", "hello"))
    emu = Emulator(path, env={})
    plugin = emu.add_plugin(Mem())
    emu.run(capture_output=True)
    mask = lambda records: [(a, s, v & ((1 << 8 * s) - 1)) for a, s, v in records]  # noqa: E731
    assert plugin.python and mask(plugin.python) == mask(plugin.batched)


def test_memory_batches_a_plugin_keeps_stay_as_delivered():
    """Batches are views of the C buffer (no copy): ones a plugin keeps must not change afterwards."""
    class Keep(Plugin):
        def __init__(self):
            self.python, self.kept = [], []

        def on_mem_write(self, emu, address, size, value):
            self.python.append((address, size))

        def on_mem_batch(self, emu, accesses):
            self.kept.append(accesses)

    path = str(ROOT / sample("x86_64", "compute"))
    emu = Emulator(path, argv=[path, "10"], env={})
    plugin = emu.add_plugin(Keep())
    emu.run(capture_output=True)
    assert len(plugin.kept) > 4  # several buffers' worth
    writes = [batch[batch["write"] == 1] for batch in plugin.kept]
    assert [(int(r["address"]), int(r["size"])) for batch in writes for r in batch] == plugin.python


def test_two_plugins_each_receive_every_event():
    class Both(Plugin):
        def __init__(self):
            self.insns = self.blocks = self.syscalls = self.returns = 0
            self.counted = 0

        def on_insn(self, emu, address, size):
            self.insns += 1

        def on_block_batch(self, emu, pcs, sizes):
            self.blocks += len(pcs)

        def on_block_counts(self, emu, pcs, sizes, counts):
            self.counted = int(counts.sum())

        def on_syscall(self, emu, number, args):
            self.syscalls += 1

        def on_syscall_return(self, emu, number, result):
            self.returns += 1

    path = str(ROOT / sample("x86_64", "compute"))
    emu = Emulator(path, argv=[path, "30000"], env={})
    first, second = emu.add_plugin(Both()), emu.add_plugin(Both())
    assert emu.run(capture_output=True).exit_code == 0
    assert vars(first) == vars(second)
    assert first.blocks > 1 << 17  # several native batches were drained mid-run
    assert first.blocks == first.counted and first.insns > first.blocks and first.syscalls > 0


def test_a_plugin_raising_in_a_batch_stops_with_125():
    class Boom(Plugin):
        def on_block_batch(self, emu, pcs, sizes):
            raise ValueError("boom")

    path = str(ROOT / sample("x86_64", "compute"))
    emu = Emulator(path, argv=[path, "30000"], env={})
    emu.add_plugin(Boom())
    result = emu.run(capture_output=True)
    assert result.exit_code == 125 and "boom" in result.message and "on_block_batch" in result.message
    assert result.stdout == b""  # stopped at the first full batch, long before the guest's write


def test_user_plugins_by_path_and_module(tmp_path):
    done = run_bdemu("run", "-p", f"{PLUGINS / 'syscount.py'},top=1", "-p", str(PLUGINS / "pagemap.py"),
                     sample("x86_64", "hello"))
    assert done.returncode == 0
    text = done.stderr.decode()
    assert re.search(r"^syscount: \w+ \d+$", text, re.M) and re.search(r"^pagemap: 0x[0-9a-f]+000 \d+$", text, re.M)
    (tmp_path / "myplugins.py").write_text(
        "from bdemu import Plugin\n"
        "class Hello(Plugin):\n"
        "    def on_exit(self, emu, result):\n"
        "        print('hello plugin saw exit', result.exit_code, file=emu.output)\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}
    done = subprocess_bdemu(["run", "-p", "myplugins:Hello", sample("x86_64", "hello")], env)
    assert done.returncode == 0 and "hello plugin saw exit 0" in done.stderr.decode()
    done = subprocess_bdemu(["run", "-p", f"{tmp_path / 'myplugins.py'}:Hello", sample("x86_64", "hello")], env)
    assert "hello plugin saw exit 0" in done.stderr.decode()


def test_options_reach_a_plain_constructor_as_keyword_arguments(tmp_path):
    """SPEC 3: `-p file.py,key=value` passes key=value to the plugin's own __init__, even
    without an `options` declaration (converted by the parameter's default, else a string)."""
    plugin = tmp_path / "greet.py"
    plugin.write_text(
        "from bdemu import Plugin\n"
        "class Greet(Plugin):\n"
        "    def __init__(self, word, times=1, loud=False):\n"
        "        self.word, self.times, self.loud = word, times, loud\n"
        "    def on_exit(self, emu, result):\n"
        "        print('greet:', repr(self.word), repr(self.times), repr(self.loud), file=emu.output)\n")
    done = run_bdemu("run", "-p", f"{plugin},word=hi,times=3,loud=on", sample("x86_64", "hello"))
    assert done.returncode == 0, done.stderr
    assert "greet: 'hi' 3 True" in done.stderr.decode()
    emu = Emulator(str(ROOT / sample("x86_64", "hello")), env={})
    added = emu.add_plugin(str(plugin), word="api", times=2)
    assert (added.word, added.times) == ("api", 2)
    for spec, needle in ((str(plugin), "missing option 'word'"),
                         (f"{plugin},word=x,colour=red", "unknown option 'colour'"),
                         (f"{plugin},word=x,times=many", "is not a valid int")):
        done = run_bdemu("run", "-p", spec, sample("x86_64", "hello"))
        lines = done.stderr.decode().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and needle in lines[0], done.stderr


def test_the_first_plugin_error_is_the_one_reported():
    """A plugin failing in on_start (e.g. `trace,out=` an unwritable path) is the error named,
    not a later failure of on_exit that follows from it."""
    class Fragile(Plugin):
        def on_start(self, emu):
            raise OSError("first failure")

        def on_exit(self, emu, result):
            raise ValueError("follow-on failure")

    emu = Emulator(str(ROOT / sample("x86_64", "hello")), env={})
    emu.add_plugin(Fragile())
    result = emu.run(capture_output=True)
    assert result.exit_code == 125 and result.reason == "error"
    assert "in on_start" in result.message and "first failure" in result.message, result.message
    done = run_bdemu("run", "-p", "trace,out=/nonexistent-dir/trace.txt", sample("x86_64", "hello"))
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 125 and len(lines) == 1
    assert "on_start" in lines[0] and "/nonexistent-dir/trace.txt" in lines[0], lines


def subprocess_bdemu(args, env):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-P", "-m", "bdemu", *args], cwd=ROOT, env=env, capture_output=True,
                          timeout=120)


@pytest.mark.parametrize("spec, needle", [
    ("trace,colour=on", "unknown option 'colour'"),
    ("insncount,blocks=maybe", "is not a valid bool"),
    ("nosuchplugin", "unknown plugin"),
])
def test_bad_plugin_specs_exit_2(spec, needle):
    done = run_bdemu("run", "-p", spec, sample("x86_64", "hello"))
    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bdemu: ") and needle in lines[0]
    assert done.stdout == b""


def test_unknown_hook_name_exits_2(tmp_path):
    plugin = tmp_path / "typo.py"
    plugin.write_text("from bdemu import Plugin\nclass Typo(Plugin):\n"
                      "    def on_blok(self, emu, address, size):\n        pass\n")
    done = run_bdemu("run", "-p", str(plugin), sample("x86_64", "hello"))
    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bdemu: ") and "unknown hook 'on_blok'" in lines[0]
    plugin.write_text("from bdemu import Plugin\nclass Typo(Plugin):\n    def on_insn(self, emu):\n        pass\n")
    done = run_bdemu("run", "-p", str(plugin), sample("x86_64", "hello"))
    assert done.returncode == 2 and "wrong signature" in done.stderr.decode()


def test_plugins_command_lists_builtins_with_options():
    done = run_bdemu("plugins")
    text = done.stdout.decode()
    for name in ("trace", "coverage", "memtrace", "strace", "hotblocks", "insncount", "empty"):
        assert re.search(rf"^{name} +\S", text, re.M), name
    assert "limit=int" in text


def test_empty_plugin_installs_no_hook():
    path = str(ROOT / sample("x86_64", "hello"))
    emu = Emulator(path, env={})
    emu.add_plugin("empty")
    assert emu.run(capture_output=True).exit_code == 0
    assert emu._plugin_hooks == [] and emu._native_hooks == []


def test_entry_point_plugin_from_an_installed_package(tmp_path):
    """A third-party package registering `bdemu.plugins` entry point is found by name and listed."""
    import subprocess
    import sys
    package = tmp_path / "pkg"
    (package / "greeter_plugin").mkdir(parents=True)
    (package / "greeter_plugin" / "__init__.py").write_text(
        "from bdemu import Plugin\n"
        "class Greeter(Plugin):\n"
        "    '''Greets at exit (an entry-point plugin).'''\n"
        "    options = {'word': (str, 'hi', 'what to say')}\n"
        "    def on_exit(self, emu, result):\n"
        "        print('greeter:', self.word, file=emu.output)\n")
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "bdemu-greeter"\nversion = "1.0"\n'
        '[project.entry-points."bdemu.plugins"]\ngreeter = "greeter_plugin:Greeter"\n'
        '[tool.setuptools]\npackages = ["greeter_plugin"]\n')
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                                str(package)], capture_output=True, timeout=300)
    if installed.returncode != 0:  # no build backend reachable: lay out what pip would have installed
        import shutil
        shutil.copytree(package / "greeter_plugin", site / "greeter_plugin")
        info = site / "bdemu_greeter-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bdemu-greeter\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text("[bdemu.plugins]\ngreeter = greeter_plugin:Greeter\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site)}
    done = subprocess_bdemu(["run", "-p", "greeter,word=hello", sample("x86_64", "hello")], env)
    assert done.returncode == 0, done.stderr
    assert "greeter: hello" in done.stderr.decode()
    listed = subprocess_bdemu(["plugins"], env).stdout.decode()
    assert re.search(r"^greeter +Greets at exit", listed, re.M)
