"""Plugin overhead on the ~100M-instruction compute sample, each as a ratio to bare Unicorn.

Every configuration runs the same loaded image in this process; the bare
baseline (bench/_bare.py) is measured in the same run, in rounds interleaved
with the configurations. Ratios are given in wall time (what the targets
mean) and in CPU time of the whole process (less disturbed by other load). Targets (issue 5):
`empty` <= 1.05x; `coverage`, `insncount`, `hotblocks` and a user-style
`on_block_batch` plugin <= 1.5x; `trace` and `memtrace` (to /dev/null) at
most half the time of a do-nothing per-instruction Python hook.

    python bench/plugins.py [--repeat 3] [--isa x86_64] [--skip-insn]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _baseline import bare_unicorn_seconds, bdemu_seconds  # noqa: E402

from bdemu import Plugin  # noqa: E402


class BatchUser(Plugin):
    """What a user writes with on_block_batch: a per-page histogram, all in numpy."""

    def __init__(self):
        self.pages = np.zeros(1 << 16, np.int64)

    def on_block_batch(self, emu, pcs, sizes):
        self.pages += np.bincount(((pcs >> np.uint64(12)) & np.uint64(0xFFFF)).astype(np.intp), minlength=1 << 16)


class InsnNothing(Plugin):
    """A per-instruction Python hook that does nothing: the cost `trace` must beat."""

    def on_insn(self, emu, address, size):
        pass


CONFIGS = [
    ("no plugin", lambda: [], None),
    ("empty", lambda: ["empty"], 1.05),
    ("coverage", lambda: [("coverage", {"out": "/dev/null"})], 1.5),
    ("insncount", lambda: ["insncount"], 1.5),
    ("hotblocks", lambda: ["hotblocks"], 1.5),
    ("on_block_batch user plugin", lambda: [BatchUser()], 1.5),
    ("trace (to /dev/null)", lambda: [("trace", {"out": "/dev/null"})], "insn"),
    ("memtrace (to /dev/null)", lambda: [("memtrace", {"out": "/dev/null"})], "insn"),
    ("do-nothing on_insn", lambda: [InsnNothing()], None),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--isa", default="x86_64")
    parser.add_argument("--skip-insn", action="store_true", help="skip the slow per-instruction hook")
    options = parser.parse_args()
    guest = str(ROOT / "samples" / "bin" / options.isa / "compute")
    configs = [c for c in CONFIGS if not (c[0] == "do-nothing on_insn" and options.skip_insn)]
    # Rounds interleave the bare baseline with every configuration, so a burst of load on the
    # machine hits both sides of a ratio; each keeps its best round, in wall and in CPU time.
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for round_ in range(options.repeat):
        for label, plugins, _ in [("bare", None, None)] + configs:
            if label.startswith("do-nothing") and round_:
                continue
            for clock, best in ((time.perf_counter, wall), (time.process_time, cpu)):
                seconds = (bare_unicorn_seconds(guest, clock=clock) if plugins is None
                           else bdemu_seconds(guest, plugins=plugins(), clock=clock))
                best[label] = min(best.get(label, seconds), seconds)
    bare, bare_cpu = wall.pop("bare"), cpu.pop("bare")
    print(f"compute ({options.isa}): bare Unicorn {bare:.3f} s ({bare_cpu:.3f} s CPU)")
    insn = wall.get("do-nothing on_insn")
    for label, _, target in configs:
        seconds = wall[label]
        line = f"{label:28} {seconds:8.3f} s  {seconds / bare:7.2f}x bare  {cpu[label] / bare_cpu:7.2f}x in CPU time"
        if target == "insn" and insn:
            verdict = "ok" if seconds <= 0.5 * insn else "MISS"
            line += f"  {seconds / insn:.3f}x the on_insn hook (target <= 0.5x: {verdict})"
        elif isinstance(target, float):
            line += f"  (target <= {target}x: {'ok' if seconds / bare <= target else 'MISS'})"
        print(line, flush=True)

if __name__ == "__main__":
    main()
