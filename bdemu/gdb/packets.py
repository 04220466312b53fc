"""The GDB remote serial protocol's framing: `$payload#checksum` packets over one socket.

Only what a stub needs: reading a client's packets (acknowledged until the
client turns acks off with QStartNoAckMode), sending replies, and noticing the
lone 0x03 byte a client sends to interrupt a running target. Payloads are
bytes: binary packets (`X`) carry raw data, escaped with 0x7d.
"""
from __future__ import annotations

import socket
import threading

from ..errors import UsageError

INTERRUPT = b"\x03"
#: Seconds between two checks for a stop while waiting for the client.
TICK = 0.2
_ESCAPED = frozenset(b"#$}*")


class Disconnected(Exception):
    """The client closed the connection."""


def checksum(payload: bytes) -> bytes:
    return b"%02x" % (sum(payload) & 0xFF)


def escape(data: bytes) -> bytes:
    """Binary data for a reply (`qXfer`): `#$}*` become `}` and the byte xor 0x20."""
    out = bytearray()
    for byte in data:
        if byte in _ESCAPED:
            out += bytes((0x7D, byte ^ 0x20))
        else:
            out.append(byte)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    out, escaped = bytearray(), False
    for byte in data:
        if escaped:
            out.append(byte ^ 0x20)
            escaped = False
        elif byte == 0x7D:
            escaped = True
        else:
            out.append(byte)
    return bytes(out)


class Connection:
    """One client. `lock` is held by whoever reads the socket: the server while the target is
    stopped, the interrupt watcher while it runs."""

    def __init__(self, sock: socket.socket, check=lambda: None) -> None:
        """`check()` runs every TICK seconds while waiting for the client and may raise (a stop)."""
        self.sock = sock
        self.check = check
        self.acks = True
        self.lock = threading.Lock()
        self._buffer = b""

    def _byte(self) -> int:
        if not self._buffer:
            self.sock.settimeout(TICK)
            while True:
                try:
                    data = self.sock.recv(65536)
                    break
                except (TimeoutError, socket.timeout):
                    self.check()
            self.sock.settimeout(None)
            if not data:
                raise Disconnected()
            self._buffer = data
        byte, self._buffer = self._buffer[0], self._buffer[1:]
        return byte

    def receive(self) -> bytes:
        """The next packet's payload, or INTERRUPT. Stray acks and noise between packets are skipped."""
        with self.lock:
            while True:
                byte = self._byte()
                if byte == 0x03:
                    return INTERRUPT
                if byte != 0x24:  # '$'
                    continue
                payload = bytearray()
                while (byte := self._byte()) != 0x23:  # '#'
                    payload.append(byte)
                sent = bytes((self._byte(), self._byte()))
                if not self.acks:
                    return bytes(payload)
                if sent.lower() == checksum(payload):
                    self.sock.sendall(b"+")
                    return bytes(payload)
                self.sock.sendall(b"-")  # the client sends it again

    def send(self, payload: bytes | str) -> None:
        if isinstance(payload, str):
            payload = payload.encode()
        packet = b"$" + payload + b"#" + checksum(payload)
        while True:
            self.sock.sendall(packet)
            if not self.acks:
                return
            with self.lock:
                while True:
                    reply = self._byte()
                    if reply == 0x2B:  # '+'
                        return
                    if reply == 0x2D:  # '-': send it again
                        break
                    if reply == 0x03:  # an interrupt while we reported a stop: we are stopped anyway
                        continue

    def take_interrupt(self) -> bool:
        """While the target runs and the socket is readable: consume a 0x03 if that is what came.
        Anything else stays buffered for `receive` (a client sends nothing else then)."""
        with self.lock:
            if not self._buffer:
                try:
                    data = self.sock.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    return False
                if not data:
                    raise Disconnected()
                self._buffer = data
            if self._buffer[:1] == INTERRUPT:
                self._buffer = self._buffer[1:]
                return True
            return False


def parse_address(text: str) -> tuple[str, int]:
    """`[HOST:]PORT` -> (host, port); the host defaults to 127.0.0.1 (the stub trusts its client)."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise UsageError(f"--gdb {text!r}: expected [HOST:]PORT with a port from 0 to 65535")
    return host or "127.0.0.1", number
