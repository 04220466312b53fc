"""`bdemu record`'s native path: the C trace stream, loop runs, and their rows.

`NativeStream` is the recorder mixin for every mode but `--regs` and
`--mem --insns` (see recorder.py); `RunStore` is its writer-thread side,
turning buffers of block entries into `block_steps`/`block_runs` rows
(schema.py explains the layout and the views over it).
"""
from __future__ import annotations

import numpy as np

from ..decode import Disassemblers, count_instructions
from .recorder import FLUSH_ROWS


class NativeStream:
    """Blocks (and, for `--mem` alone, memory accesses) from the native trace stream.

    The C hooks number every block and access as it happens and store a block
    as a uint32 id; no Python runs per event. Each full buffer is handed, as
    it is, to the writer thread (the stream writes on into a spare one), where
    `RunEncoder` (C) cuts it into loop runs that become `block_runs` rows.
    What needs the guest stays here: new block ids give `code` rows (with
    their id; and, with `--insns`, `insn_info` rows: a block is decoded
    once, when it first runs, so its stride of seq numbers is known before
    it is counted). Rows about blocks are stored before runs that use them.
    """

    native = True
    #: Block entries per buffer. Smaller buffers reach the writer thread while the guest still runs,
    #: but measured on 2 shared cores fewer, bigger batches cost less (bench/record.py).
    ENTRIES = 1 << 18

    def on_start(self, emu) -> None:
        super().on_start(emu)
        from unicorn import UC_HOOK_BLOCK, UC_HOOK_MEM_READ_AFTER, UC_HOOK_MEM_WRITE

        from .. import _native
        from ..hookinstall import native_hook
        self._emu = emu
        self._known = 0
        self._streamed = 0  # events of the block stream counted so far (only for the live status line)
        self._new_insns: dict[str, list] = {"block": [], "idx": [], "pc": [], "size": []}
        self._mem_chunks: list[dict[str, np.ndarray]] = []
        arch, uc = emu.arch, emu.uc
        self._runs = RunStore(self.writer, _native.RunEncoder())
        #: Each distinct block's (pc, code, mode value), to count its instructions at the end.
        self._code: list[tuple[int, bytes, int | None]] = []
        self._modes = arch.code_modes
        mode_reg = arch.registers[arch.code_modes.register] if arch.code_modes is not None else None
        self.stream = _native.TraceStream(uc, self._take, self._decode_new if self.decode is not None else None,
                                          capacity=self.ENTRIES, pc_reg=arch.registers[arch.pc], mode_reg=mode_reg)
        hooks = [native_hook(uc, UC_HOOK_BLOCK, _native.TRACE_BLOCK, self.stream)]
        if self.opts.mem:
            kinds = UC_HOOK_MEM_READ_AFTER | UC_HOOK_MEM_WRITE
            hooks.append(native_hook(uc, kinds, _native.TRACE_MEM, self.stream))  # draining twice is a no-op
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
        modes = self.stream.modes
        self.decode.block_id(pc, int(sizes[ident]), None if modes is None else self._modes.cs_mode(int(modes[ident])))
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
        if self._status is not None:  # running totals for the live line (exact ones at the end)
            ran = int(repeats.sum(dtype=np.int64))
            counted = ran if self.opts.blocks else 0
            if strides is not None and len(ids):
                done = int((strides[ids].astype(np.int64) * repeats).sum()) - ran
                self.instructions += done
                counted += done
            self.events += counted
            self._streamed += counted
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
        """`code` (and `insn_info`) rows of block ids known..total-1, read from the guest now."""
        pcs, sizes = (a[known:total].tolist() for a in self.stream.blocks)
        self._known = total
        if self.decode is not None:
            code = [self.decode.code[ident][2] for ident in range(known, total)]
        else:
            code = read_blocks(self._emu.read_memory, pcs, sizes)
        modes = self.stream.modes
        values = [None] * (total - known) if modes is None else modes[known:total].tolist()
        names = [None if value is None else self._modes.name(value) for value in values]
        if self.decode is None:
            self._code.extend(zip(pcs, code, values))
        rows = {"code": {"pc": pcs, "size": sizes, "bytes": code, "mode": names, "id": list(range(known, total))}}
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
        """`code` rows went out with each new block; here the instruction total from executions per
        block (decoded while the writer thread stores the last rows)."""
        if self.decode is not None:
            per_block = self.stream.strides[:self._known].astype(np.int64) - 1
        else:
            arch = emu.arch
            disassemblers = Disassemblers(arch.cs_arch, arch.cs_mode)
            modes = self._modes
            per_block = np.array([count_instructions(disassemblers(None if mode is None else modes.cs_mode(mode)),
                                                     code, pc) for pc, code, mode in self._code], np.int64)
        self.writer.sync()
        executions = self._runs.executions(self._known)
        self.instructions = int((executions * per_block).sum())
        streamed = int(executions.sum()) if self.opts.blocks else 0
        streamed += self.instructions if self.decode is not None else 0
        self.events += streamed - self._streamed


def read_blocks(read, pcs: list[int], sizes: list[int], reach: int = 4096) -> list[bytes]:
    """The bytes of each block (b"" where unreadable), reading blocks less than `reach` bytes apart
    in one call: reading guest memory costs ~15 us a call, slicing almost nothing."""
    order = sorted(range(len(pcs)), key=pcs.__getitem__)
    code = [b""] * len(pcs)
    first = 0
    while first < len(order):
        start = pcs[order[first]]
        end, last = start + sizes[order[first]], first + 1
        while last < len(order) and pcs[order[last]] <= end + reach:
            end = max(end, pcs[order[last]] + sizes[order[last]])
            last += 1
        group = order[first:last]
        try:
            chunk = read(start, end - start)
        except Exception:  # a gap between mappings: each block on its own
            chunk = None
        for index in group:
            pc, size = pcs[index], sizes[index]
            if chunk is not None:
                code[index] = chunk[pc - start:pc - start + size]
            else:
                try:
                    code[index] = bytes(read(pc, size))
                except Exception:
                    pass
        first = last
    return code


class RunStore:
    """The writer thread's side of the block stream: runs from buffers, rows to DuckDB in big inserts."""

    ROWS = 1 << 20  # rows per insert at least: each statement costs ~1 ms, and its rows little

    def __init__(self, writer, encoder) -> None:
        self.writer, self.encoder = writer, encoder
        self.blocks: dict[str, dict[str, list]] = {}
        self.chunks: dict[str, list[dict[str, np.ndarray]]] = {"block_steps": [], "block_runs": []}
        self.pending = {table: 0 for table in self.chunks}
        self._executions = np.zeros(0, np.uint64)

    def add(self, ids: np.ndarray, seqs: np.ndarray, repeats: np.ndarray, end: int, release, blocks,
            known: int, strides: np.ndarray | None) -> None:
        for table, rows in (blocks or {}).items():
            mine = self.blocks.setdefault(table, {k: [] for k in rows})
            for column, values in rows.items():
                mine[column].extend(values)
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
        """Runs of entries -> rows, in C (`RunEncoder.rows`)."""
        if len(self._executions) < known:
            grown = np.zeros(max(known, 2 * len(self._executions)), np.uint64)
            grown[:len(self._executions)] = self._executions
            self._executions = grown
        steps, runs = self.encoder.rows(ids, seqs, repeats, end, known, strides, self._executions)
        self._keep("block_steps", steps)
        self._keep("block_runs", runs)

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
        counts[:min(known, len(self._executions))] = self._executions[:known]
        return counts

