"""Guest sockets: AF_UNIX always, AF_INET/AF_INET6 only with --net (docs/security.md).

The sockets sample's full run (with --net) is compared with native/qemu-user runs
in test_samples.py; here: the same sample offline, Debian's busybox `nc` against
a Python server, i386's socketcall, --read-only, and blocking calls that a
--timeout must still end.
"""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from conftest import EXPECTED, run_bdemu, sample
from elfgen import write_elf
from guestasm import BUFFER, BufferAt, Result, parse_output, write_program
from test_busybox import _busybox

from bdemu import Emulator

NETWORK_STEPS = ("tcp:", "udp:", "tcp6:")


def test_without_net_only_the_network_steps_fail(isa, tmp_path):
    """Offline, AF_UNIX works as with --net and every AF_INET/AF_INET6 socket() gets EACCES."""
    expected = json.loads((EXPECTED / isa / "sockets.json").read_text())["stdout"].splitlines(keepends=True)
    local = [line for line in expected if not line.startswith(NETWORK_STEPS)]
    done = run_bdemu("run", sample(isa, "sockets"), str(tmp_path), env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == "".join(local) + "".join(
        f"{step} socket: Permission denied\n" for step in NETWORK_STEPS)


def test_python_api_net_flag(tmp_path):
    result = Emulator(sample("x86_64", "sockets"), argv=["sockets", str(tmp_path)], net=True).run(capture_output=True)
    expected = json.loads((EXPECTED / "x86_64" / "sockets.json").read_text())["stdout"]
    assert result.exit_code == 0 and result.stdout.decode() == expected


class UpperServer:
    """A one-connection TCP server on 127.0.0.1: reads a line, answers it in capitals."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(60)
        self.port = self.listener.getsockname()[1]
        self.received = b""
        self.connected = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return
        self.connected = True
        with connection:
            while not self.received.endswith(b"\n"):
                chunk = connection.recv(4096)
                if not chunk:
                    break
                self.received += chunk
            connection.sendall(self.received.upper())

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.mark.parametrize("isa_name", ["x86_64", "aarch64", "i386", "arm", "mipsel"])
def test_busybox_nc_talks_to_a_host_server(isa_name):
    """glibc's busybox (i386: through socketcall) connects, sends its stdin and prints the answer."""
    server = UpperServer()
    try:
        done = run_bdemu("run", "--net", "--timeout", "60", _busybox(isa_name), "nc", "127.0.0.1", str(server.port),
                         input=b"hello from busybox\n")
    finally:
        server.close()
    assert server.received == b"hello from busybox\n", done.stderr
    assert done.stdout == b"HELLO FROM BUSYBOX\n"
    assert done.returncode == 0, done.stderr


def test_busybox_nc_without_net_reaches_nothing():
    server = UpperServer()
    try:
        done = run_bdemu("run", _busybox("x86_64"), "nc", "127.0.0.1", str(server.port), input=b"secret\n")
    finally:
        server.close()
    assert done.returncode == 1
    assert b"Permission denied" in done.stderr
    assert not server.connected and server.received == b""


def test_blocking_accept_ends_on_timeout():
    """`nc -l` blocks in accept; --timeout still ends the run (exit 124) within a slice or two."""
    start = time.monotonic()
    done = run_bdemu("run", "--net", "--timeout", "1", _busybox("x86_64"), "nc", "-l", "-p", "0", timeout=30)
    assert done.returncode == 124, done.stderr
    assert time.monotonic() - start < 15


def test_i386_socketcall(tmp_path):
    """socketcall(SYS_SOCKETPAIR), then SYS_SEND and SYS_RECV over the pair (i386's multiplexer)."""
    call = "mov eax, 102\n lea ecx, [ebp + 16]\n int 0x80\n add esi, eax\n"
    program = write_elf(tmp_path, "i386", f"""
        sub esp, 64
        mov ebp, esp
        xor esi, esi
        mov dword ptr [ebp + 8], 0x636261
        mov dword ptr [ebp + 16], 1
        mov dword ptr [ebp + 20], 1
        mov dword ptr [ebp + 24], 0
        mov dword ptr [ebp + 28], ebp
        mov ebx, 8
        {call}
        mov eax, dword ptr [ebp]
        mov dword ptr [ebp + 16], eax
        lea eax, [ebp + 8]
        mov dword ptr [ebp + 20], eax
        mov dword ptr [ebp + 24], 3
        mov dword ptr [ebp + 28], 0
        mov ebx, 9
        {call}
        mov eax, dword ptr [ebp + 4]
        mov dword ptr [ebp + 16], eax
        lea eax, [ebp + 12]
        mov dword ptr [ebp + 20], eax
        mov ebx, 10
        {call}
        mov eax, 4
        mov ebx, 1
        lea ecx, [ebp + 12]
        mov edx, 3
        int 0x80
        mov ebx, esi
        mov eax, 1
        int 0x80
    """)
    result = Emulator(program).run(capture_output=True)
    assert result.stdout == b"abc"
    assert result.exit_code == 6  # 0 (socketpair) + 3 (sent) + 3 (received)


def test_read_only_refuses_socket_files_but_not_abstract_names(tmp_path):
    """Binding a pathname creates a file: EROFS under --read-only; an abstract name creates none."""
    path = tmp_path / "s.sock"
    steps = [("socket", 1, 1, 0), ("bind", Result(0), b"\x01\x00" + str(path).encode()[:100], 2 + 101),
             ("socket", 1, 1, 0), ("bind", Result(2), b"\x01\x00\x00bdemu-ro-test", 2 + 15),
             ("store", BufferAt(512), 64), ("getsockname", Result(2), BUFFER, BufferAt(512))]
    program = write_program(tmp_path / "guest", steps)
    result = Emulator(program, read_only=True).run(capture_output=True)
    results, buffer = parse_output(result.stdout, len(steps))
    assert results[0] >= 0 and results[1] == -30 and results[3] == 0 and results[5] == 0
    assert buffer.startswith(b"\x01\x00\x00bdemu-ro-test")
    assert not path.exists()


def test_other_families_stay_refused_with_net(tmp_path):
    """--net opens AF_INET and AF_INET6 only: netlink (16) and packet (17) sockets still get EACCES."""
    steps = [("socket", 16, 3, 0), ("socket", 17, 3, 0), ("socket", 2, 2, 0), ("socket", 10, 1, 0)]
    program = write_program(tmp_path / "guest", steps)
    result = Emulator(program, net=True).run(capture_output=True)
    results, _ = parse_output(result.stdout, len(steps))
    assert results[:2] == [-13, -13] and results[2] >= 0 and results[3] >= 0


def test_help_names_the_net_flag():
    done = run_bdemu("run", "--help")
    assert b"--net" in done.stdout



def test_receive_timeout_option_gives_eagain(tmp_path):
    """SO_RCVTIMEO (x86-64: SOL_SOCKET 1, option 20, a struct timeval) bounds a blocking recvfrom."""
    steps = [("socketpair", 1, 2, 0, BufferAt(256)), ("store", BufferAt(0), 0), ("store", BufferAt(8), 200_000),
             (54, 3, 1, 20, BUFFER, 16),  # setsockopt(fd 3, SOL_SOCKET, SO_RCVTIMEO, {0, 200000})
             (45, 3, BufferAt(512), 64, 0, 0, 0)]  # recvfrom(fd 3, ...) with nothing sent
    program = write_program(tmp_path / "guest", steps)
    start = time.monotonic()
    result = Emulator(program).run(capture_output=True, timeout=30)
    elapsed = time.monotonic() - start
    results, _ = parse_output(result.stdout, len(steps))
    assert results == [0, 0, 0, 0, -11]  # EAGAIN
    assert 0.15 < elapsed < 10
