"""A small GDB remote-protocol client for the tests: written from the protocol description, not
from bdemu's stub, so the two check each other. Starts `bdemu run --gdb 127.0.0.1:0 ...`."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

from conftest import ROOT


class Session:
    """One `bdemu run --gdb` process and a client connected to it."""

    def __init__(self, *args: str, acks: bool = True, stdin=subprocess.DEVNULL) -> None:
        environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        self.process = subprocess.Popen([sys.executable, "-P", "-m", "bdemu", "run", "--gdb", "127.0.0.1:0", *args],
                                        cwd=ROOT, env=environment, stdin=stdin,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.process.stderr.readline().decode()
        found = re.search(r"waiting for a connection on 127\.0\.0\.1:(\d+)", line)
        assert found, line
        self.sock = socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=60)
        self.acks = True  # until QStartNoAckMode
        self.pending = b""
        self.features = self.ask("qSupported:swbreak+;xmlRegisters=i386").decode()
        if not acks:
            assert self.ask("QStartNoAckMode") == b"OK"
            self.acks = False
        self.registers = self._layout()

    # -- packets -----------------------------------------------------------------------------------
    def send(self, payload: bytes | str) -> None:
        payload = payload.encode() if isinstance(payload, str) else payload
        self.sock.sendall(b"$%s#%02x" % (payload, sum(payload) & 0xFF))
        if self.acks:
            assert self._read(1) == b"+"

    def receive(self) -> bytes:
        while self._read(1) != b"$":
            pass
        payload = b""
        while (byte := self._read(1)) != b"#":
            payload += byte
        assert int(self._read(2), 16) == sum(payload) & 0xFF
        if self.acks:
            self.sock.sendall(b"+")
        return payload

    def ask(self, payload: bytes | str) -> bytes:
        self.send(payload)
        return self.receive()

    @staticmethod
    def unescape(data: bytes) -> bytes:
        """Binary reply data: 0x7d escapes the next byte (xor 0x20)."""
        out, index = bytearray(), 0
        while index < len(data):
            if data[index] == 0x7D:
                out.append(data[index + 1] ^ 0x20)
                index += 2
            else:
                out.append(data[index])
                index += 1
        return bytes(out)

    def _read(self, count: int) -> bytes:
        while len(self.pending) < count:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError("the stub closed the connection")
            self.pending += data
        data, self.pending = self.pending[:count], self.pending[count:]
        return data

    # -- registers and memory ----------------------------------------------------------------------
    def _layout(self) -> list[tuple[str, int, int]]:
        """(name, regnum, bits) of every register the target description lists, in `g` order."""
        document, offset = b"", 0
        while True:
            reply = self.ask(f"qXfer:features:read:target.xml:{offset:x},200")
            document += reply[1:]
            offset += len(reply) - 1
            if reply[:1] == b"l":
                break
        self.xml = ElementTree.fromstring(document)
        registers, number = [], 0
        for reg in self.xml.iter("reg"):
            number = int(reg.get("regnum", number))
            registers.append((reg.get("name"), number, int(reg.get("bitsize"))))
            number += 1
        return sorted(registers, key=lambda r: r[1])

    def read_registers(self, byteorder: str) -> dict[str, int]:
        data = bytes.fromhex(self.ask("g").decode())
        values, offset = {}, 0
        for name, _, bits in self.registers:
            values[name] = int.from_bytes(data[offset:offset + bits // 8], byteorder)
            offset += bits // 8
        assert offset == len(data)
        return values

    def regnum(self, name: str) -> int:
        return next(number for reg, number, _ in self.registers if reg == name)

    def read_memory(self, address: int, length: int) -> bytes:
        return bytes.fromhex(self.ask(f"m{address:x},{length:x}").decode())

    def close(self) -> tuple[int, bytes, bytes]:
        """Wait for bdemu to end: (exit status, stdout, stderr)."""
        self.sock.close()
        out, err = self.process.communicate(timeout=60)
        return self.process.returncode, out, err
