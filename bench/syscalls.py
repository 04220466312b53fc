"""Syscall throughput: a guest making 1,000,000 getpid calls under bdemu, against bare Unicorn.

    python bench/syscalls.py [--calls N] [--isa x86_64]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _bare import bare_unicorn_seconds, bdemu_seconds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--isa", default="x86_64")
    options = parser.parse_args()
    guest = str(ROOT / "samples" / "bin" / options.isa / "getpid_loop")
    argv = [guest, str(options.calls)]
    ours = bdemu_seconds(guest, argv)
    bare = bare_unicorn_seconds(guest, argv)
    print(f"getpid x {options.calls} ({options.isa}): bdemu {ours:.2f} s = "
          f"{options.calls / ours:,.0f} syscalls/s (target >= 250,000/s); "
          f"bare Unicorn with a minimal Python handler {bare:.2f} s = {options.calls / bare:,.0f}/s; "
          f"ratio {ours / bare:.2f}x")


if __name__ == "__main__":
    main()
