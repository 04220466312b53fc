"""`bdemu export`: a trace in the formats other tools read.

- drcov (version 2, hex module bases: Lighthouse rejects version 3): every
  distinct block, as module-relative offsets.
- tenet: one line per instruction, `reg=0x..,...,rip=0x..,mr=ADDR:HEX,mw=ADDR:HEX`
  (needs a recording made with `--regs`; `--mem` adds the memory accesses).
- parquet: one file per table in a directory.
- chrome: a Chrome/Perfetto trace-event JSON of syscalls and backdoor calls on a
  timeline whose clock is the instruction count (1 us = 1 instruction).
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..errors import UsageError

#: Registers Tenet has no name for (bdemu records them; the export leaves them out).
TENET_SKIP = frozenset({"fs_base", "gs_base"})


def _arch(trace):
    from ..cpu import by_name
    try:
        return by_name(trace.arch)
    except KeyError:
        raise UsageError(f"{trace.path}: unknown architecture {trace.arch!r}") from None


def export_drcov(trace, out: str) -> None:
    modules = trace.con.execute('SELECT id, base, "end", entry, path FROM modules ORDER BY id').fetchall()
    blocks = trace.con.execute(f"SELECT pc, size FROM ({trace.block_counts_query()}) ORDER BY pc, size").fetchnumpy()
    pcs, sizes = blocks["pc"].astype(np.uint64), blocks["size"].astype(np.uint64)
    if not len(pcs) and trace.count("insns"):
        raise UsageError(f"{trace.path}: recorded with --no-blocks; drcov needs the blocks table")
    entries = np.zeros(len(pcs), dtype=[("start", "<u4"), ("size", "<u2"), ("mod", "<u2")])
    keep = np.zeros(len(pcs), dtype=bool)
    for ident, base, end, _entry, _path in modules:
        inside = (pcs >= base) & (pcs < end) & ~keep
        entries["start"][inside] = (pcs[inside] - np.uint64(base)).astype(np.uint32)
        entries["size"][inside] = np.minimum(sizes[inside], 0xFFFF).astype(np.uint16)
        entries["mod"][inside] = ident
        keep |= inside
    entries = entries[keep]
    lines = ["DRCOV VERSION: 2", "DRCOV FLAVOR: drcov",
             f"Module Table: version 2, count {len(modules)}",
             "Columns: id, base, end, entry, checksum, timestamp, path"]
    for ident, base, end, entry, path in modules:
        lines.append(f"{ident:2d}, {base:#018x}, {end:#018x}, {entry:#018x}, 0x00000000, 0x00000000, {path}")
    lines.append(f"BB Table: {len(entries)} bbs")
    with open(out, "wb") as handle:
        handle.write(("\n".join(lines) + "\n").encode())
        handle.write(entries.tobytes())


def export_tenet(trace, out: str) -> None:
    if not trace.count("regs") or not trace.count("insns"):
        raise UsageError(f"{trace.path}: a Tenet trace needs a recording made with --regs "
                         "(bdemu record --insns --mem --regs ...)")
    arch = _arch(trace)
    pc_name = arch.pc
    insns = trace.con.execute("SELECT seq, pc FROM insns ORDER BY seq").fetchnumpy()
    regs = trace.con.execute("SELECT seq, name, value FROM regs ORDER BY seq").fetchall()
    mem = trace.con.execute("SELECT seq, access, address, size, value FROM mem ORDER BY seq").fetchall()
    iseq = insns["seq"].astype(np.uint64)
    reg_at: dict[int, list] = {}
    for seq, name, value in regs:
        if name not in TENET_SKIP and name != pc_name:
            reg_at.setdefault(seq, []).append(f"{name}={value:#x}")
    mem_at: dict[int, list] = {}
    owners = np.searchsorted(iseq, np.array([row[0] for row in mem], dtype=np.uint64), side="right") - 1
    for owner, (_seq, access, address, size, value) in zip(owners.tolist(), mem):
        data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, arch.byteorder).hex() if size <= 8 else ""
        mem_at.setdefault(owner, []).append(f"m{access}={address:#x}:{data}")
    with open(out, "w") as handle:
        for index, (seq, pc) in enumerate(zip(iseq.tolist(), insns["pc"].tolist())):
            parts = reg_at.get(seq, [])
            parts.append(f"{pc_name}={pc:#x}")
            parts.extend(mem_at.get(index, ()))
            handle.write(",".join(parts) + "\n")


def export_parquet(trace, out: str) -> None:
    import pyarrow.parquet as pq
    os.makedirs(out, exist_ok=True)
    for name in trace.tables:
        pq.write_table(trace.table(name), os.path.join(out, f"{name}.parquet"))


def _instruction_clock(trace):
    """-> f(seqs): instructions executed before each event seq."""
    if trace.count("insns"):
        seqs = trace.con.execute("SELECT seq FROM insns ORDER BY seq").fetchnumpy()["seq"].astype(np.uint64)
        return lambda events: np.searchsorted(seqs, events)
    from ..decode import count_instructions
    from .show import code_rows, disassembler
    disassemblers: dict = {}
    counts = {}
    for pc, size, code, mode in trace.con.execute(code_rows(trace)).fetchall():
        cs = disassemblers.get(mode) or disassemblers.setdefault(mode, disassembler(trace.arch, mode))
        counts[(pc, size)] = max(1, count_instructions(cs, code, pc)) if cs and code else 1
    import pyarrow as pa
    table = pa.table({"pc": pa.array([k[0] for k in counts], pa.uint64()),
                      "size": pa.array([k[1] for k in counts], pa.uint32()),
                      "n": pa.array(list(counts.values()), pa.int64())})
    trace.con.register("_bdemu_counts", table)
    try:
        rows = trace.con.execute("SELECT b.seq, coalesce(c.n, 1) AS n FROM blocks b LEFT JOIN _bdemu_counts c "
                                 "USING (pc, size) ORDER BY b.seq").fetchnumpy()
    finally:
        trace.con.unregister("_bdemu_counts")
    seqs = rows["seq"].astype(np.uint64)
    before = np.concatenate([[0], np.cumsum(rows["n"].astype(np.int64))])
    return lambda events: before[np.searchsorted(seqs, events)]


def export_chrome(trace, out: str) -> None:
    syscalls = trace.con.execute("SELECT seq, pc, nr, name, args, ret FROM syscalls ORDER BY seq").fetchall()
    doors = trace.con.execute("SELECT seq, pc, kind, cmd, i8, v32, octet_length(data) "
                              "FROM backdoor ORDER BY seq").fetchall()
    clock = _instruction_clock(trace)
    ts_sys = clock(np.array([r[0] for r in syscalls], dtype=np.uint64)).tolist()
    ts_door = clock(np.array([r[0] for r in doors], dtype=np.uint64)).tolist()
    guest = os.path.basename(trace.meta.get("guest", "guest"))
    events = [{"ph": "M", "name": "process_name", "pid": 1, "tid": 1, "args": {"name": f"{guest} (1 us = 1 insn)"}},
              {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "syscalls"}},
              {"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "backdoor"}}]
    for ts, (seq, pc, nr, name, args, ret) in zip(ts_sys, syscalls):
        events.append({"name": name, "cat": "syscall", "ph": "X", "ts": int(ts), "dur": 1, "pid": 1, "tid": 1,
                       "args": {"seq": seq, "pc": hex(pc), "nr": nr, "args": [hex(a) for a in args or []],
                                "ret": ret}})
    for ts, (seq, pc, kind, cmd, i8, v32, length) in zip(ts_door, doors):
        label = f"{kind} cmd={cmd:#x}" if kind == "mmio" else f"{kind} i8={i8}" + (f" v32={v32:#x}" if v32 is not None else "")
        events.append({"name": label, "cat": "backdoor", "ph": "X", "ts": int(ts), "dur": 1, "pid": 1, "tid": 2,
                       "args": {"seq": seq, "pc": hex(pc), "kind": kind, "cmd": cmd, "i8": i8, "v32": v32,
                                "data_bytes": length}})
    end = int(trace.meta.get("instructions") or 0)
    document = {"traceEvents": events, "displayTimeUnit": "ns",
                "otherData": {"clock": "instructions", "guest": trace.meta.get("guest"),
                              "reason": trace.meta.get("reason"), "exit_code": trace.meta.get("exit_code"),
                              "instructions": end}}
    with open(out, "w") as handle:
        json.dump(document, handle)


EXPORTERS = {"drcov": export_drcov, "tenet": export_tenet, "parquet": export_parquet, "chrome": export_chrome}
