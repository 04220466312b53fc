"""One line per executed instruction: address, bytes (optional), disassembly."""
from __future__ import annotations

from bdemu import Plugin


class _Lines(dict):
    """Block key -> that block's trace lines as bytes; each block is formatted once."""

    def __init__(self, emu, start: int, stop: int, show_bytes: bool) -> None:
        super().__init__()
        self.emu, self.start, self.stop, self.show_bytes = emu, start, stop, show_bytes

    def __missing__(self, key) -> bytes:
        pc, size = key if isinstance(key, tuple) else (key & 0xFFFF_FFFF_FFFF, key >> 48)
        lines = [line(insn, self.show_bytes) for insn in self.emu.disassemble(pc, size)
                 if self.start <= insn.address < self.stop]
        text = self[key] = "".join(f"{text}\n" for text in lines).encode()
        return text


def line(insn, show_bytes: bool) -> str:
    text = f"{insn.address:#x}  "
    if show_bytes:
        text += f"{insn.bytes.hex(' '):24} "
    return text + f"{insn.mnemonic} {insn.op_str}".rstrip()


class Trace(Plugin):
    """One line per executed instruction: address, bytes (optional), disassembly."""

    name = "trace"
    options = {
        "bytes": (bool, False, "show the instruction bytes"),
        "regs": (bool, False, "show the registers each instruction changed (exact per-instruction mode, slow)"),
        "start": (int, 0, "trace only instructions at addresses >= start"),
        "stop": (int, 0, "trace only instructions at addresses < stop (0: no bound)"),
        "limit": (int, 0, "stop tracing after this many lines (0: no limit)"),
        "out": (str, "", "write to this file instead of the plugin output"),
    }

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.stop = self.stop or 1 << 64
        self.lines = 0
        self._stream = None
        if self.regs:
            self.on_block_batch = None
            self._previous = None
        else:
            self.on_insn = None

    def on_start(self, emu) -> None:
        self._stream = self.open_output(emu, self.out, binary=True)
        self._cache = _Lines(emu, self.start, self.stop, self.bytes)
        self._names = emu.arch.general_registers

    def on_block_batch(self, emu, pcs, sizes) -> None:
        if self.limit and self.lines >= self.limit:
            return
        keys = (pcs | (sizes.astype(pcs.dtype) << 48)).tolist()
        if pcs.max(initial=0) >> 48:
            keys = [(p, s) if p >> 48 else p | (s << 48) for p, s in zip(pcs.tolist(), sizes.tolist())]
        chunk = b"".join(map(self._cache.__getitem__, keys))
        if self.limit:
            count = chunk.count(b"\n")
            if self.lines + count > self.limit:
                keep = self.limit - self.lines
                chunk = b"".join(chunk.splitlines(keepends=True)[:keep])
                count = keep
            self.lines += count
        self._stream.write(chunk)

    def on_insn(self, emu, address, size) -> None:
        values = tuple(emu.reg(name) for name in self._names)
        self._emit(values)
        if self.start <= address < self.stop and not (self.limit and self.lines >= self.limit):
            self._previous = (line(emu.disassemble(address, size)[0], self.bytes), values)
            self.lines += 1

    def _emit(self, values) -> None:
        if self._previous is None:
            return
        text, before = self._previous
        changed = [f"{name}={value:#x}" for name, old, value in zip(self._names, before, values) if old != value]
        if changed:
            text = f"{text:60} ; {' '.join(changed)}"
        self._stream.write(f"{text}\n".encode())
        self._previous = None

    def on_exit(self, emu, result) -> None:
        if self.regs:
            self._emit(tuple(emu.reg(name) for name in self._names))
        if self.out:
            self._stream.close()
        else:
            self._stream.flush()
