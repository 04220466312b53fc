"""The live status line on stderr (only when stderr is a terminal): events, rate, file size."""
from __future__ import annotations

import sys
import time

INTERVAL = 0.5


class StatusLine:
    def __init__(self, recorder) -> None:
        self.recorder = recorder
        self.started = time.monotonic()
        self.next = self.started + INTERVAL
        self.shown = False

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self.next:
            self.next = now + INTERVAL
            self.show(now)

    def show(self, now: float) -> None:
        r = self.recorder
        elapsed = max(now - self.started, 1e-9)
        insns = f"{r.instructions:,} insns, " if r.instructions else ""
        size = r.writer.size() / (1 << 20) if r.writer is not None else 0.0
        sys.stderr.write(f"\r\x1b[2Krecord: {insns}{r.events:,} events, "
                         f"{r.events / elapsed / 1e6:.1f} M events/s, {size:.1f} MiB")
        sys.stderr.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.show(time.monotonic())
            sys.stderr.write("\n")
            sys.stderr.flush()
