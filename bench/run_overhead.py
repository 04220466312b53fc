"""Overhead of `bdemu run` (no plugins) against bare Unicorn on the same loaded image, same process.

The bare run starts from the image and stack bdemu loaded, with a minimal
inline handler for the guest's few syscalls, so both runs execute the same
instructions. Also times `bdemu run` of the hello sample as a user sees it.

    python bench/run_overhead.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _bare import bare_unicorn_seconds, bdemu_seconds  # noqa: E402


def hello_wall_times(repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bdemu", "run", "samples/bin/x86_64/hello"], cwd=ROOT,
                       check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--isa", default="x86_64")
    options = parser.parse_args()
    guest = str(ROOT / "samples" / "bin" / options.isa / "compute")
    bare = min(bare_unicorn_seconds(guest) for _ in range(options.repeat))
    ours = min(bdemu_seconds(guest) for _ in range(options.repeat))
    print(f"compute ({options.isa}): bare Unicorn {bare:.3f} s, bdemu run {ours:.3f} s, "
          f"ratio {ours / bare:.3f}x (target <= 1.15x)")
    hello = hello_wall_times(options.repeat)
    print(f"bdemu run hello: median wall time {statistics.median(hello):.3f} s over {options.repeat} "
          f"runs (target <= 0.5 s)")


if __name__ == "__main__":
    main()
