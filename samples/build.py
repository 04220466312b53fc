#!/usr/bin/env python3
"""Build the bdemu sample guests for every ISA with zig cc (musl, static).

    python samples/build.py [--isa NAME ...] [--sample NAME ...] [-j N]

Each samples/src/<name>.c becomes samples/bin/<isa>/<name> (stripped, static,
-O2).  A failing ISA or sample is reported and the build goes on; the exit
status is 1 if anything failed.
"""
import argparse
import concurrent.futures
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
INCLUDE = HERE / "include"
BIN = HERE / "bin"

# ISA name -> zig target triple (and extra flags).
ISAS = {
    "x86_64": ("x86_64-linux-musl", []),
    "aarch64": ("aarch64-linux-musl", []),
    "i386": ("x86-linux-musl", []),
    "arm": ("arm-linux-musleabihf", []),
    "riscv64": ("riscv64-linux-musl", []),
    # zig provides musl for MIPS32 as musleabi (soft-float, MIPS32r2), as firmware usually is.
    # -fPIC: musl's assembly entry points (sigsetjmp) derive $gp from $t9, which only PIC
    # callers set.
    "mipsel": ("mipsel-linux-musleabi", ["-fPIC"]),
    "mips": ("mips-linux-musleabi", ["-fPIC"]),
}

CFLAGS = [
    "-static", "-O2", "-s",
    "-std=gnu11", "-Wall", "-Wno-unused-result",
    "-fno-ident",
    "-Wl,--build-id=none",
]


def build_one(isa, src):
    triple, extra = ISAS[isa]
    out = BIN / isa / src.stem
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "ziglang", "cc", "-target", triple,
           *CFLAGS, *extra, f"-I{INCLUDE}", str(src), "-o", str(out)]
    env = dict(os.environ, SOURCE_DATE_EPOCH="0")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                       cwd=HERE)
    return isa, src.stem, p.returncode, (p.stdout + p.stderr).strip(), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", nargs="+", choices=sorted(ISAS),
                    default=list(ISAS), help="ISAs to build (default: all)")
    ap.add_argument("--sample", nargs="+", help="samples to build (default: all)")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    srcs = sorted(SRC.glob("*.c"))
    if args.sample:
        srcs = [s for s in srcs if s.stem in args.sample]
    jobs = [(isa, s) for isa in args.isa for s in srcs]
    failed = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
        for isa, name, rc, log, out in ex.map(lambda j: build_one(*j), jobs):
            if rc == 0:
                print(f"ok      {isa:8} {name:12} {out.stat().st_size:7d} bytes")
                if log:
                    print("        " + log.replace("\n", "\n        "))
            else:
                failed.append((isa, name))
                print(f"FAILED  {isa:8} {name}\n        "
                      + log.replace("\n", "\n        "))
    if failed:
        print(f"{len(failed)} build(s) failed: "
              + ", ".join(f"{i}/{n}" for i, n in failed))
        return 1
    print(f"built {len(jobs)} binaries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
