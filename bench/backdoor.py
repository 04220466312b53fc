#!/usr/bin/env python3
"""Backdoor round-trip speed: MMIO calls and instruction-interface calls per second.

    python bench/backdoor.py [--isa x86_64] [--calls 200000]

Runs samples/bin/<isa>/backdoor_bench three times in this process: the guest
loop without a call (`loop`), with an MMIO call per iteration (`mmio`: store
to the data window, 8-byte command store, load of the answer) and with an
instruction-interface call (`insn`: CPUID on x86, `udf #0xbd01` on
ARM, `syscall 0xbd01` on MIPS). A plugin answers every call through the data window or the return
value. Start-up is measured with 0 iterations and taken off; the `loop` run
is the baseline the call loops are compared against (no hook is installed
outside the device windows, so it runs at bare-Unicorn speed).
Targets: MMIO >= 250,000 calls/s, CPUID >= 150,000 calls/s.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from bdemu import Emulator, Plugin
from bdemu.cpu import NAMES, by_name

ROOT = Path(__file__).resolve().parent.parent


class Answer(Plugin):
    """Answers each call the way a real host side would: read the window, write a reply."""

    def on_backdoor(self, emu, cmd, data):
        data[8:16] = data[0:8]

    def on_backdoor_i8_v32(self, emu, i8, v32):
        return v32 + 1


def timed(guest: str, mode: str, count: int) -> float:
    emu = Emulator(guest, argv=[guest, mode, str(count)])
    emu.add_plugin(Answer())
    start = time.perf_counter()
    result = emu.run(capture_output=True)
    elapsed = time.perf_counter() - start
    if result.reason != "exit":
        raise SystemExit(f"{mode}: run ended with {result.reason}: {result.message}")
    return elapsed


def best(guest: str, mode: str, count: int, repeat: int) -> float:
    return min(timed(guest, mode, count) for _ in range(repeat))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isa", default="x86_64", choices=NAMES)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    guest = str(ROOT / "samples" / "bin" / args.isa / "backdoor_bench")
    n = args.calls
    startup = best(guest, "loop", 0, args.repeat)
    loop = best(guest, "loop", n, args.repeat) - startup
    print(f"{args.isa}: {n} iterations each, start-up {startup * 1e3:.1f} ms taken off")
    print(f"  loop without call   {loop * 1e3:8.1f} ms  {n / loop:12,.0f} iterations/s")
    insn_name = by_name(args.isa).backdoor_insn.name
    for mode, label, target in (("mmio", "MMIO call", 250_000), ("insn", f"{insn_name} call", 150_000)):
        elapsed = best(guest, mode, n, args.repeat) - startup
        rate = n / elapsed
        per_call = (elapsed - loop) / n * 1e6
        verdict = "ok" if rate >= target else f"below target {target:,}"
        print(f"  {label:<19} {elapsed * 1e3:8.1f} ms  {rate:12,.0f} calls/s  "
              f"({per_call:.2f} us/call over the loop; {elapsed / loop:.0f}x the loop)  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
