"""The recorder: a plugin on the hook bus that turns the run into a DuckDB trace.

Blocks (and, for `--mem` alone, memory accesses) come from the native trace
stream (`_NativeStream`): C hooks number every event with the one `seq`
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

import json
import os
import sys
import time
from array import array
from dataclasses import dataclass, field

import numpy as np

from ..hooks import Plugin
from .schema import FORMAT_VERSION

FLUSH_ROWS = 1 << 20
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
        self._syscalls: dict[str, list] = {k: [] for k in ("seq", "pc", "nr", "name", "args", "ret")}
        self._backdoor: dict[str, list] = {k: [] for k in ("seq", "pc", "kind", "cmd", "i8", "v32", "data")}
        self._drain = None
        self._distinct = None
        self._status = None
        self._closed = False
        self._started = 0.0

    # -- lifecycle --------------------------------------------------------------------------------
    def on_start(self, emu) -> None:
        from .status import StatusLine
        from .writer import TraceWriter
        self.writer = TraceWriter(self.path, threaded=self.opts.threaded, native=self.native,
                                  blocks=self.opts.blocks)
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
        self._write_modules(emu)
        show = sys.stderr.isatty() if self.opts.status is None else self.opts.status
        self._status = StatusLine(self) if show else None

    def on_exit(self, emu, result) -> None:
        if self._closed or self.writer is None:
            return
        self._closed = True
        self.writer.hold()
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

    def on_syscall_return(self, emu, number, result) -> None:
        rows = self._syscalls
        if rows["ret"]:
            rows["ret"][-1] = _signed(result)
        if len(rows["seq"]) >= FLUSH_EVENTS:
            self._flush_rows("syscalls", rows)

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
        self._backdoor_row(emu, "i8", i8=i8)
        return None

    def on_backdoor_i8_v32(self, emu, i8, v32):
        self._backdoor_row(emu, "i8_v32", i8=i8, v32=v32)
        return None

    # -- tables written once ----------------------------------------------------------------------
    def _write_modules(self, emu) -> None:
        images = list(emu.modules)
        self.writer.append("modules", {
            "id": list(range(len(images))), "path": [os.path.abspath(m.image.path) for m in images],
            "base": [m.start for m in images], "end": [m.end for m in images],
            "entry": [m.entry for m in images], "bias": [m.base for m in images]})

    def _write_code(self, emu) -> None:
        """Bytes of every distinct executed block, and the total instruction count."""
        if self.decode is not None:
            code = self.decode.code
        else:
            distinct = self._distinct
            if distinct is None:  # live mode: blocks are in the database
                self.writer.sync()
                distinct = self.writer.con.execute(
                    "SELECT pc, size, count(*) FROM blocks GROUP BY pc, size").fetchall()
            import capstone
            cs = capstone.Cs(emu.arch.cs_arch, emu.arch.cs_mode)
            code, total = [], 0
            for pc, size, times in distinct:
                try:
                    data = emu.read_memory(pc, size)
                except Exception:
                    data = b""
                code.append((pc, size, data))
                total += times * sum(1 for _ in cs.disasm_lite(data, pc))
            if not self.instructions:
                self.instructions = total
        if code:
            pcs, sizes, data = zip(*code)
            self.writer.append("code", {"pc": list(pcs), "size": list(sizes), "bytes": list(data)})


def _spread(seq, copies, copy_step, reps, span, block) -> dict[str, np.ndarray]:
    """`block_runs` rows: each entry becomes `copies` rows, `copy_step` apart, of `reps` x `span`."""
    first = np.cumsum(copies) - copies
    index = np.arange(int(copies.sum())) - np.repeat(first, copies)
    return {"seq": np.repeat(seq, copies) + index.astype(np.uint64) * np.repeat(copy_step, copies),
            "reps": np.repeat(reps, copies), "span": np.repeat(span, copies), "id": np.repeat(block, copies)}


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


class _NativeStream:
    """Blocks (and, for `--mem` alone, memory accesses) from the native trace stream.

    The C hooks number every block and access as it happens and store a block
    as a uint32 id; no Python runs per event. Each full buffer is handed, as
    it is, to the writer thread (the stream writes on into a spare one), where
    `RunEncoder` (C) cuts it into loop runs that become `block_runs` rows.
    What needs the guest stays here: new block ids give `block_info` and
    `code` rows (and, with `--insns`, `insn_info` rows: a block is decoded
    once, when it first runs, so its stride of seq numbers is known before
    it is counted). Rows about blocks are stored before runs that use them.
    """

    native = True

    def on_start(self, emu) -> None:
        super().on_start(emu)
        from unicorn import UC_HOOK_BLOCK, UC_HOOK_MEM_READ_AFTER, UC_HOOK_MEM_WRITE

        from .. import _native
        self._emu = emu
        self._known = 0
        self._new_insns: dict[str, list] = {"block": [], "idx": [], "pc": [], "size": []}
        self._mem_chunks: list[dict[str, np.ndarray]] = []
        counter = None if self.decode is not None else (emu.arch.cs_arch, emu.arch.cs_mode)
        self._runs = _RunStore(self.writer, _native.RunEncoder(), counter)
        arch, uc = emu.arch, emu.uc
        self.stream = _native.TraceStream(uc, self._take, self._decode_new if self.decode is not None else None,
                                          pc_reg=arch.registers[arch.pc])
        hooks = [(_native.add_hook(uc, UC_HOOK_BLOCK, _native.TRACE_BLOCK, self.stream.state), self.stream)]
        if self.opts.mem:
            kinds = UC_HOOK_MEM_READ_AFTER | UC_HOOK_MEM_WRITE
            hooks.append((_native.add_hook(uc, kinds, _native.TRACE_MEM, self.stream.state), None))
        emu.__dict__.setdefault("_native_hooks", []).extend(hooks)
        emu.__dict__.setdefault("_native_drains", []).append(self.stream.drain)
        self._drain = None  # C numbers blocks as they run: a live event just takes the next seq

    def next_seq(self) -> int:
        self.events += 1
        return self.stream.take_seq()

    def _decode_new(self, ident: int) -> None:
        """First run of block `ident` (--insns): its instructions, and its stride of 1 + their count."""
        pcs, sizes = self.stream.blocks
        pc = int(pcs[ident])
        self.decode.block_id(pc, int(sizes[ident]))
        offsets, lengths = self.decode.layout(ident)
        self.stream.strides[ident] = 1 + len(offsets)
        rows = self._new_insns
        rows["block"].extend([ident] * len(offsets))
        rows["idx"].extend(range(len(offsets)))
        rows["pc"].extend(pc + offset for offset in offsets)
        rows["size"].extend(lengths)

    def _take(self, ids: np.ndarray, seqs: np.ndarray, repeats: np.ndarray, end: int,
              accesses: dict[str, np.ndarray], release) -> None:
        """One drained batch: new block ids, then the block stream (to the writer thread), then the accesses."""
        known, total = self._known, self.stream.state.nids
        blocks = self._new_blocks(known, total) if total > known else None
        # Strides of ids below `total` never change (and a grown table is a new array), so the
        # writer thread may read this one later.
        strides = self.stream.strides[:total] if self.decode is not None else None
        if len(ids) or blocks:
            self.writer.call(self._runs.add, ids, seqs, repeats, end, release, blocks, total, strides)
        else:
            release()
        ran = int(repeats.sum(dtype=np.int64))
        if self.opts.blocks:
            self.events += ran
        if strides is not None and len(ids):
            done = int((strides[ids].astype(np.int64) * repeats).sum()) - ran
            self.instructions += done
            self.events += done
        count = len(accesses["seq"])
        if count:
            self._mem_chunks.append(accesses)
            self._pending += count
            self.events += count
        if self._pending >= FLUSH_ROWS:
            self._flush()
        if self._status is not None:
            self._status.tick()

    def _new_blocks(self, known: int, total: int) -> dict[str, dict[str, list]]:
        """`block_info`, `code` (and `insn_info`) rows of block ids known..total-1, read from the guest now."""
        pcs, sizes = (a[known:total].tolist() for a in self.stream.blocks)
        self._known = total
        code = []
        for ident, pc, size in zip(range(known, total), pcs, sizes):
            if self.decode is not None:
                code.append(self.decode.code[ident][2])
            else:
                try:
                    code.append(bytes(self._emu.read_memory(pc, size)))
                except Exception:
                    code.append(b"")
        rows = {"block_info": {"id": list(range(known, total)), "pc": pcs, "size": sizes},
                "code": {"pc": pcs, "size": sizes, "bytes": code}}
        if self._new_insns["block"]:
            rows["insn_info"], self._new_insns = self._new_insns, {k: [] for k in self._new_insns}
        return rows

    def _flush_live(self, everything: bool) -> None:
        from .writer import Labels
        writer = self.writer
        if everything:
            writer.call(self._runs.write)
        if self._mem_chunks:
            chunks, self._mem_chunks = self._mem_chunks, []
            mem = {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}
            writer.append("mem", {"seq": mem["seq"], "pc": mem["pc"], "access": Labels(mem["write"], ("r", "w")),
                                  "address": mem["address"], "size": mem["size"], "value": mem["value"]})

    def _write_code(self, emu) -> None:
        """`code` rows went out with each new block; here the instruction total from executions per block."""
        self.writer.sync()
        executions = self._runs.executions(self._known)
        if self.decode is not None:
            per_block = self.stream.strides[:self._known].astype(np.int64) - 1
        else:
            per_block = np.array(self._runs.insn_counts[:self._known], np.int64)
        self.instructions = int((executions * per_block).sum())


class _RunStore:
    """The writer thread's side of the block stream: runs from buffers, rows to DuckDB in big inserts."""

    ROWS = 1 << 20  # rows per insert: big inserts bypass the WAL (more than a DuckDB row group)

    def __init__(self, writer, encoder, counter: tuple[int, int] | None = None) -> None:
        """`counter`: (Capstone arch, mode) to count the instructions of each new block's code."""
        self.writer, self.encoder = writer, encoder
        self._counter = counter
        self._cs = None
        self.insn_counts: list[int] = []
        self.blocks: dict[str, dict[str, list]] = {}
        self.chunks: dict[str, list[dict[str, np.ndarray]]] = {"block_steps": [], "block_runs": []}
        self.pending = {table: 0 for table in self.chunks}
        self._executions = np.zeros(0, np.float64)

    def add(self, ids: np.ndarray, seqs: np.ndarray, repeats: np.ndarray, end: int, release, blocks,
            known: int, strides: np.ndarray | None) -> None:
        for table, rows in (blocks or {}).items():
            mine = self.blocks.setdefault(table, {k: [] for k in rows})
            for column, values in rows.items():
                mine[column].extend(values)
        if blocks and self._counter is not None:
            self._count_insns(blocks["code"])
        try:
            if len(ids):
                self._encode(ids, seqs, repeats, end, known, strides)
        finally:
            release()
        for table, count in self.pending.items():
            if count >= self.ROWS:
                self.write(table)

    def _encode(self, ids: np.ndarray, seqs: np.ndarray, repeats: np.ndarray, end: int, known: int,
                strides: np.ndarray | None) -> None:
        """Runs of entries -> rows. An entry is one block run back to back `count` times, `step` apart."""
        runs = self.encoder.encode(ids, seqs, repeats, end, known)
        lengths = runs.lengths.astype(np.int64)
        bounds = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=bounds[1:])
        flat = np.repeat(runs.starts.astype(np.int64) - bounds[:-1], lengths) + np.arange(bounds[-1])
        block = ids[flat]
        count = repeats[flat].astype(np.int64)
        reps = np.repeat(runs.reps.astype(np.int64), lengths)
        span = np.repeat(runs.span, lengths)
        seq = np.repeat(runs.first, lengths) + (seqs[flat] - np.repeat(seqs[runs.starts], lengths))
        step = strides[block].astype(np.uint64) if strides is not None else np.ones(len(block), np.uint64)
        if len(self._executions) < known:
            self._executions = np.concatenate([self._executions, np.zeros(known - len(self._executions))])
        self._executions[:known] += np.bincount(block, weights=reps * count, minlength=known)
        alone = (reps == 1) & (count == 1)
        self._keep("block_steps", {"seq": seq[alone], "id": block[alone]})
        # An entry repeated both ways (count in a row, reps with its pattern) needs one row per
        # repetition of the smaller kind: per back-to-back execution, or per pattern repetition.
        inner = ~alone & (count <= reps) & (reps > 1)
        outer = ~alone & ~inner
        rows = [_spread(seq[inner], count[inner], step[inner], reps[inner], span[inner], block[inner]),
                _spread(seq[outer], reps[outer], span[outer], count[outer], step[outer], block[outer])]
        self._keep("block_runs", {name: np.concatenate([r[name] for r in rows]) for name in rows[0]})

    def _count_insns(self, code: dict[str, list]) -> None:
        """Instructions per new block, for the run's total (decoded here, off the guest's thread)."""
        if self._cs is None:
            import capstone
            self._cs = capstone.Cs(*self._counter)
        for pc, data in zip(code["pc"], code["bytes"]):
            self.insn_counts.append(sum(1 for _ in self._cs.disasm_lite(data, pc)))

    def _keep(self, table: str, columns: dict[str, np.ndarray]) -> None:
        if len(columns["seq"]):
            self.chunks[table].append(columns)
            self.pending[table] += len(columns["seq"])

    def write(self, only: str | None = None) -> None:
        """Insert what was gathered (for table `only`, or all): rows about blocks first, then the runs."""
        for table, rows in self.blocks.items():
            self.writer.insert(table, rows)
        self.blocks = {}
        for table, chunks in self.chunks.items():
            if chunks and only in (None, table):
                self.writer.insert(table, {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]})
                self.chunks[table], self.pending[table] = [], 0

    def executions(self, known: int) -> np.ndarray:
        """How often each block id ran (after `writer.sync()`)."""
        counts = np.zeros(known, np.int64)
        counts[:min(known, len(self._executions))] = self._executions[:known].round().astype(np.int64)
        return counts


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
        if self.opts.regs:
            names = tuple(dict.fromkeys((*emu.arch.general_registers, emu.arch.sp)))
            self._reg_names = names
            self._read_regs = emu.regs.batch_reader(names)
            self._last_regs = None

    def on_block(self, emu, address, size) -> None:
        live = self._live
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
        cls = type("NativeRecorder", (_NativeStream, Recorder), {})
    else:
        cls = Recorder
    return cls(path, options)
