"""The recorder: a plugin on the hook bus that turns the run into a DuckDB trace.

Blocks (and, for `--mem` alone, memory accesses) come from the native trace
stream (`NativeStream`, native.py): C hooks number every event with the one `seq`
counter as it happens, so a live event (a syscall, a backdoor call) just
takes the next number, and no Python runs per block. With `--insns` each
block takes 1 + (its instruction count) numbers: the block's, then one per
instruction; the instructions themselves are never stored, the `insns`
view derives them from each distinct block's decoded list.

`--regs`, and `--mem` with `--insns`, need the exact interleaving of
accesses and register states with instructions, so they use the live
per-block and per-instruction Python hooks instead (`_LiveEvents`: slower;
every event is numbered as it arrives, and stored as plain rows).

The class a recording uses is composed from mixins (`make_recorder`), so only
the hooks it needs are overridden and installed in Unicorn.
"""
from __future__ import annotations

import bisect
import json
import os
import sys
import time
from array import array
from dataclasses import dataclass, field

import numpy as np

from ..hooks import Plugin
from .schema import FORMAT_VERSION

FLUSH_ROWS = 1 << 20  # buffered rows per insert (a statement costs ~1 ms)
FLUSH_EVENTS = 1 << 12


@dataclass
class RecordOptions:
    blocks: bool = True
    insns: bool = False
    mem: bool = False
    regs: bool = False
    data_bytes: int = 4096
    status: bool | None = None  # None: when stderr is a terminal
    threaded: bool = True
    extra_meta: dict = field(default_factory=dict)

    @property
    def live(self) -> bool:
        """Per-event Python hooks: registers, or accesses interleaved with instructions."""
        return self.regs or (self.mem and self.insns)


class Recorder(Plugin):
    """Record the run into a DuckDB trace file (see docs/traces.md)."""

    name = "record"
    native = False  # True: blocks and instructions stored as runs, read through views (schema.py)

    def __init__(self, path: str, options: RecordOptions | None = None) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.opts = options or RecordOptions()
        self.seq = 0
        self.writer = None
        self.decode = None
        self.instructions = 0
        self.events = 0
        self._pending = 0
        self._syscalls: dict[str, list] = {k: [] for k in ("seq", "pc", "nr", "name", "args", "ret", "tid")}
        #: Each thread's syscall not returned yet: tid -> its seq (a waiting one returns later).
        self._calls: dict[int, int] = {}
        self._backdoor: dict[str, list] = {k: [] for k in ("seq", "pc", "kind", "cmd", "i8", "v32", "data")}
        self._drain = None
        self._status = None
        self._closed = False
        self._started = 0.0
        self._emu = None
        self._modules_written = 0

    # -- lifecycle --------------------------------------------------------------------------------
    def open(self) -> None:
        """Create the trace file now (`on_start` does it otherwise). Starting DuckDB takes ~20 ms of
        CPU whatever the guest does; `bdemu record` calls this before loading the guest, so the
        writer thread starts DuckDB while the guest loads."""
        if self.writer is None:
            from .writer import TraceWriter
            self.writer = TraceWriter(self.path, threaded=self.opts.threaded, native=self.native,
                                      blocks=self.opts.blocks, bulk=self.opts.mem or self.opts.live)

    def discard(self) -> None:
        """The run will not happen (the guest failed to load): close and remove the trace file."""
        if self.writer is not None and not self._closed:
            self._closed = True
            self.writer.discard()

    def on_start(self, emu) -> None:
        from .status import StatusLine
        self.open()
        self._started = time.time()
        self._drain = _find_drain(emu)
        arch = emu.arch
        self._name_of = getattr(emu, "syscall_name", emu.kernel.name_of)
        self._word_mask = arch.word_mask
        if self.opts.insns and not self.opts.live:
            from .decode import DecodeCache
            self.decode = DecodeCache(arch.cs_arch, arch.cs_mode, emu.read_memory)
        self.writer.set_meta({
            "format_version": FORMAT_VERSION, "arch": arch.name, "guest": emu.path,
            "argv": json.dumps([os.fsdecode(a) for a in emu.argv]),
            "bdemu_version": _version(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "options": json.dumps({"blocks": self.opts.blocks, "insns": self.opts.insns, "mem": self.opts.mem,
                                   "regs": self.opts.regs, "data_bytes": self.opts.data_bytes}),
            "exit_code": "", "reason": "running", **self.opts.extra_meta})
        self._emu = emu
        self._write_modules(emu)
        show = sys.stderr.isatty() if self.opts.status is None else self.opts.status
        self._status = StatusLine(self) if show else None

    def on_exit(self, emu, result) -> None:
        if self._closed or self.writer is None:
            return
        self._closed = True
        try:
            if self._drain is not None:
                self._drain()
        except Exception:
            pass
        self._flush(everything=True)
        self._write_code(emu)
        if self._status is not None:
            self._status.finish()
        self.writer.set_meta({
            "exit_code": str(result.exit_code), "reason": result.reason,
            "signal": "" if result.signal is None else str(result.signal),
            "message": result.message or "", "end_pc": hex(result.pc or 0),
            "instructions": str(self.instructions), "events": str(self.events),
            "seconds": f"{time.time() - self._started:.3f}"})
        self.writer.close()

    # -- buffered events ---------------------------------------------------------------------------
    def _flush(self, everything: bool = False) -> None:
        self._pending = 0
        if self._emu is not None:
            self._write_modules(self._emu)
        self._flush_live(everything)
        if everything:
            self._flush_rows("syscalls", self._syscalls)
            self._flush_rows("backdoor", self._backdoor)

    def _flush_live(self, everything: bool) -> None:
        """Hook for the mixins' own buffers."""

    def _flush_rows(self, table: str, rows: dict[str, list]) -> None:
        if rows["seq"]:
            self.writer.append(table, {k: list(v) for k, v in rows.items()})
            for column in rows.values():
                column.clear()

    # -- live events ------------------------------------------------------------------------------
    def next_seq(self) -> int:
        """The seq of a live event: blocks still buffered natively ran before it, so drain them first."""
        if self._drain is not None:
            self._drain()
        seq = self.seq
        self.seq = seq + 1
        self.events += 1
        return seq

    def on_syscall(self, emu, number, args) -> None:
        rows = self._syscalls
        rows["seq"].append(self.next_seq())
        rows["pc"].append(emu.pc)
        rows["nr"].append(number)
        rows["name"].append(self._name_of(number))
        rows["args"].append([a & 0xFFFFFFFFFFFFFFFF for a in args])
        rows["ret"].append(None)
        tid = emu.tid
        rows["tid"].append(tid)
        self._calls[tid] = rows["seq"][-1]

    def on_syscall_return(self, emu, number, result) -> None:
        rows = self._syscalls
        seq = self._calls.pop(emu.tid, None)
        if seq is None:
            return
        seqs = rows["seq"]
        if seqs and seqs[-1] == seq:
            rows["ret"][-1] = _signed(result)
        else:  # its thread waited while other threads made syscalls
            self._late_return(seq, _signed(result))
        if len(seqs) >= FLUSH_EVENTS:
            self._flush_rows("syscalls", rows)

    def _late_return(self, seq: int, ret: int) -> None:
        """The result of a syscall that returned after others: in its buffered row, or stored."""
        rows = self._syscalls
        index = bisect.bisect_left(rows["seq"], seq)
        if index < len(rows["seq"]) and rows["seq"][index] == seq:
            rows["ret"][index] = ret
        else:
            self.writer.execute("UPDATE syscalls SET ret = ? WHERE seq = ?", [ret, seq])

    def _backdoor_row(self, emu, kind, cmd=None, i8=None, v32=None, data=None) -> None:
        rows = self._backdoor
        rows["seq"].append(self.next_seq())
        rows["pc"].append(emu.pc)
        rows["kind"].append(kind)
        rows["cmd"].append(cmd)
        rows["i8"].append(i8)
        rows["v32"].append(v32)
        rows["data"].append(data)
        if len(rows["seq"]) >= FLUSH_EVENTS:
            self._flush_rows("backdoor", rows)

    def on_backdoor(self, emu, cmd, data) -> None:
        self._backdoor_row(emu, "mmio", cmd=cmd & 0xFFFFFFFFFFFFFFFF, data=bytes(data[:self.opts.data_bytes]))

    def on_backdoor_i8(self, emu, i8):
        self._backdoor_row(emu, "i8", i8=i8, data=self._window(emu))
        return None

    def on_backdoor_i8_v32(self, emu, i8, v32):
        self._backdoor_row(emu, "i8_v32", i8=i8, v32=v32, data=self._window(emu))
        return None

    def _window(self, emu) -> bytes:
        """The data window's bytes at an instruction-interface call (SPEC 5: every backdoor row)."""
        return bytes(emu.device.data.view[:self.opts.data_bytes])

    # -- tables written once ----------------------------------------------------------------------
    def _write_modules(self, emu) -> None:
        """Modules not written yet: the guest and its interpreter at start, libraries as ld.so maps them."""
        first = self._modules_written
        images = list(emu.modules)[first:]
        if not images:
            return
        self._modules_written += len(images)
        self.writer.append("modules", {
            "id": list(range(first, first + len(images))),
            "path": [os.path.abspath(m.image.path) for m in images],
            "base": [m.start for m in images], "end": [m.end for m in images],
            "entry": [m.entry for m in images], "bias": [m.base for m in images]})

    def _write_code(self, emu) -> None:
        """Bytes (and instruction set) of every distinct executed block, and the total instruction count."""
        from ..decode import Disassemblers, count_instructions
        distinct = self.writer.query("SELECT pc, size, count(*) FROM blocks GROUP BY pc, size")  # stored already
        arch, seen = emu.arch, getattr(self, "_block_modes", None) or {}
        disassemblers = Disassemblers(arch.cs_arch, arch.cs_mode)
        code, total = [], 0
        for pc, size, times in distinct:
            try:
                data = emu.read_memory(pc, size)
            except Exception:
                data = b""
            value = seen.get((pc, size))
            name = None if value is None else arch.code_modes.name(value)
            mode = None if value is None else arch.code_modes.cs_mode(value)
            code.append((pc, size, data, name))
            total += times * count_instructions(disassemblers(mode), data, pc)
        if not self.instructions:
            self.instructions = total
        if code:
            pcs, sizes, data, names = zip(*code)
            self.writer.append("code", {"pc": list(pcs), "size": list(sizes), "bytes": list(data),
                                        "mode": list(names)})


def _signed(value: int) -> int:
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >> 63 else value


def _version() -> str:
    from .. import __version__
    return __version__


def _find_drain(emu):
    """'Deliver the buffered blocks now', for numbering a live event after them."""
    from ..hookinstall import drain_streams
    return lambda: drain_streams(emu)


class _LiveEvents:
    """Per-event hooks for --mem/--regs: every event is numbered as it arrives."""

    def on_start(self, emu) -> None:
        super().on_start(emu)
        self._live = {"bpc": array("Q"), "bsize": array("I"), "bseq": array("Q"),
                      "iseq": array("Q"), "ipc": array("Q"), "isize": array("B"),
                      "mseq": array("Q"), "mpc": array("Q"), "macc": [], "maddr": array("Q"),
                      "msize": array("B"), "mval": array("Q"),
                      "rseq": array("Q"), "rname": [], "rval": array("Q")}
        self._pc = 0
        self._count = 0
        modes = emu.arch.code_modes
        #: (pc, size) -> mode register value when the block first ran (ARM/Thumb), for `code`.
        self._block_modes = {} if modes is not None else None
        self._mode_register = modes.register if modes is not None else None
        if self.opts.regs:
            names = tuple(dict.fromkeys((*emu.arch.general_registers, emu.arch.sp)))
            self._reg_names = names
            self._read_regs = emu.regs.batch_reader(names)
            self._last_regs = None

    def on_block(self, emu, address, size) -> None:
        live = self._live
        if self._block_modes is not None and (address, size) not in self._block_modes:
            self._block_modes[(address, size)] = emu.reg(self._mode_register)
        if self.opts.blocks:
            live["bseq"].append(self.seq)
            live["bpc"].append(address)
            live["bsize"].append(size)
            self.seq += 1
            self.events += 1
        self._count += 1
        if self._count >= 1 << 16:
            self._count = 0
            self._flush()
            if self._status is not None:
                self._status.tick()

    def on_insn(self, emu, address, size) -> None:
        live = self._live
        seq = self.seq
        self.seq = seq + 1
        self.instructions += 1
        self._pc = address
        if self.opts.insns:
            live["iseq"].append(seq)
            live["ipc"].append(address)
            live["isize"].append(size)
            self.events += 1
        if self.opts.regs:
            values = self._read_regs()
            last = self._last_regs
            for index, value in enumerate(values):
                if last is None or last[index] != value:
                    live["rseq"].append(seq)
                    live["rname"].append(self._reg_names[index])
                    live["rval"].append(value)
            self._last_regs = values

    def _mem(self, emu, access, address, size, value) -> None:
        live = self._live
        live["mseq"].append(self.seq)
        self.seq += 1
        self.events += 1
        live["mpc"].append(self._pc if self.opts.insns or self.opts.regs else emu.pc)
        live["macc"].append(access)
        live["maddr"].append(address)
        live["msize"].append(size)
        live["mval"].append(value & 0xFFFFFFFFFFFFFFFF)

    def on_mem_read(self, emu, address, size) -> None:
        try:
            value = int.from_bytes(emu.uc.mem_read(address, size), emu.arch.byteorder)
        except Exception:
            value = 0
        self._mem(emu, "r", address, size, value)

    def on_mem_write(self, emu, address, size, value) -> None:
        self._mem(emu, "w", address, size, value)

    def next_seq(self) -> int:
        seq = self.seq
        self.seq = seq + 1
        self.events += 1
        return seq

    def _flush_live(self, everything: bool) -> None:
        live, writer = self._live, self.writer
        take = _take
        if live["bseq"]:
            writer.append("blocks", {"seq": take(live, "bseq", np.uint64), "pc": take(live, "bpc", np.uint64),
                                     "size": take(live, "bsize", np.uint32)})
        if live["iseq"]:
            writer.append("insns", {"seq": take(live, "iseq", np.uint64), "pc": take(live, "ipc", np.uint64),
                                    "size": take(live, "isize", np.uint8)})
        if live["mseq"]:
            access, live["macc"] = live["macc"], []
            writer.append("mem", {"seq": take(live, "mseq", np.uint64), "pc": take(live, "mpc", np.uint64),
                                  "access": access, "address": take(live, "maddr", np.uint64),
                                  "size": take(live, "msize", np.uint8), "value": take(live, "mval", np.uint64)})
        if live["rseq"]:
            names, live["rname"] = live["rname"], []
            writer.append("regs", {"seq": take(live, "rseq", np.uint64), "name": names,
                                   "value": take(live, "rval", np.uint64)})


def _take(live: dict, key: str, dtype) -> np.ndarray:
    values = np.frombuffer(live[key], dtype=live[key].typecode).astype(dtype)
    live[key] = array(live[key].typecode)
    return values


def make_recorder(path: str, options: RecordOptions | None = None) -> Recorder:
    """A recorder whose class overrides exactly the hooks these options need."""
    options = options or RecordOptions()
    if options.live:
        bases: list[type] = [_LiveEvents]
        methods: dict = {}
        if not (options.insns or options.regs):
            methods["on_insn"] = Plugin.on_insn
        if not options.mem:
            methods["on_mem_read"] = Plugin.on_mem_read
            methods["on_mem_write"] = Plugin.on_mem_write
        cls = type("LiveRecorder", (*bases, Recorder), methods)
    elif options.blocks or options.insns or options.mem:
        from .native import NativeStream
        cls = type("NativeRecorder", (NativeStream, Recorder), {})
    else:
        cls = Recorder
    return cls(path, options)
