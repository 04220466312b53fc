"""Cost of `bdemu record` against bare Unicorn on the compute sample (~101 M instructions), same process.

Each mode records into a fresh DuckDB file with the Python API (what `bdemu
record` runs), including the final flush and checkpoint; the ratio is its wall
time over bare Unicorn executing the same loaded image. As the guest is loaded
before either clock starts, so is the trace file created (`Recorder.open()`,
which `bdemu record` runs while the guest loads): starting DuckDB costs ~20 ms
of CPU whatever the guest does. `+open` is the ratio with that creation
counted too. `cpu` is the run's ratio in CPU time of the whole process (every
thread), which a loaded machine disturbs less. Also reports events per second
and bytes on disk per million recorded blocks.

    python bench/record.py [--repeat 5] [--long N] [--modes defaults,insns,mem]

Every mode runs at two sizes of the same sample: compute's default (4.9 M
iterations, ~101 M instructions, which bare Unicorn finishes in only
0.04-0.07 s here) and `--long` iterations (default 49 M, ~1 G instructions,
0.2-0.4 s bare: the regime DESIGN.md's 210-MIPS figures describe). At the
default size a recording's fixed costs weigh most: after the guest ends,
storing its last rows and the last commit and checkpoint take ~25 ms whatever
the guest did (bdemu/trace/writer.py says how they were made small), about
half of the bare run; the long run shows the per-event cost.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _bare import bare_unicorn_seconds  # noqa: E402

from bdemu import Emulator, open_trace  # noqa: E402
from bdemu.trace.recorder import RecordOptions, make_recorder  # noqa: E402

MODES = {"defaults": {}, "insns": {"insns": True}, "mem": {"mem": True}}


def record_once(guest: str, argv: list[str], options: dict, directory: str) -> dict:
    path = os.path.join(directory, "bench.db")
    emu = Emulator(guest, argv=argv, env={})
    opening = time.perf_counter()
    recorder = make_recorder(path, RecordOptions(status=False, **options))
    recorder.open()
    recorder.writer.sync()  # the file exists, with its schema
    opened = time.perf_counter() - opening
    emu.add_plugin(recorder)
    start, cpu = time.perf_counter(), time.process_time()
    result = emu.run(capture_output=True)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if result.exit_code != 0:
        raise RuntimeError(f"guest failed: {result}")
    with open_trace(path) as trace:
        rows = {name: trace.count(name) for name in ("blocks", "insns", "mem", "syscalls")}
    size = os.path.getsize(path)
    os.remove(path)
    return {"seconds": elapsed, "opened": opened, "cpu": cpu, "rows": rows, "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--long", default="49000000", help="iterations of the long run (0: skip it)")
    parser.add_argument("--modes", default="defaults,insns,mem")
    options = parser.parse_args()
    guest = str(ROOT / "samples" / "bin" / "x86_64" / "compute")
    print(f"{'size':8} {'mode':10} {'seconds':>8} {'bare':>7} {'ratio':>7} {'+open':>7} {'cpu':>7} {'events/s':>12} "
          f"{'rows':>12} "
          f"{'B/Mblock':>10}")
    sizes = [("default", None)] + ([("long", options.long)] if options.long != "0" else [])
    for (size, iters), mode in ((size, mode) for size in sizes for mode in options.modes.split(",")):
        argv = [guest] + ([iters] if iters else [])
        bares, bare_cpus, runs = [], [], []
        with tempfile.TemporaryDirectory() as directory:
            for _ in range(options.repeat):  # interleaved: a burst of load hits both sides of the ratio
                bares.append(bare_unicorn_seconds(guest, argv))
                bare_cpus.append(bare_unicorn_seconds(guest, argv, time.process_time))
                runs.append(record_once(guest, argv, MODES[mode], directory))
        bare, bare_cpu = min(bares), min(bare_cpus)
        best = min(runs, key=lambda r: r["seconds"])
        events = sum(best["rows"].values())
        blocks = best["rows"]["blocks"]
        per_million = best["bytes"] / blocks * 1e6 if blocks else 0
        cpu_ratio = min(r["cpu"] for r in runs) / bare_cpu
        with_open = min(r["seconds"] + r["opened"] for r in runs) / bare
        print(f"{size:8} {mode:10} {best['seconds']:8.3f} {bare:7.3f} {best['seconds'] / bare:6.2f}x {with_open:6.2f}x "
              f"{cpu_ratio:6.2f}x "
              f"{events / best['seconds']:12,.0f} {events:12,} {per_million:10,.0f}"
              f"   ({best['bytes'] / max(blocks, 1):.2f} bytes/block on disk, all tables)")


if __name__ == "__main__":
    main()
