"""The installed ``torchwan-relay``: the console script starts the binary shipped in the wheel,
which listens, survives garbage on its port with bounded memory, refuses bad options with a clear
message, and stops cleanly on SIGTERM. Forwarding itself is tested in tests/cpp/relay_*_test.cc."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from torchwan._native_cli import native_path

from test_elastic_support import free_port

# Where the wheel installed the torchwan-relay executable.
RELAY = native_path("torchwan-relay")


def start_relay(port: int, *args: str) -> subprocess.Popen[str]:
    command = shutil.which("torchwan-relay") or str(RELAY)
    process = subprocess.Popen(
        [command, "--bind", "127.0.0.1", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert f"listening on 127.0.0.1:{port}" in line, line
    return process


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_binary_is_shipped_in_the_package() -> None:
    assert RELAY.is_file(), RELAY


def test_garbage_on_the_port_leaves_the_relay_serving_with_bounded_memory() -> None:
    port = free_port()
    process = start_relay(port, "--window-bytes", "1048576", "--max-memory-mb", "64")
    try:
        before = rss_kib(process.pid)
        garbage = bytes(range(256)) * 4096  # 1 MiB that is no ZMTP greeting
        for _ in range(16):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                try:
                    connection.sendall(garbage)
                except OSError:
                    pass  # the relay closed the connection: what it should do
        time.sleep(0.5)
        assert process.poll() is None, "the relay exited after garbage"
        assert rss_kib(process.pid) - before < 32 * 1024
        # Still accepting connections.
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_bad_options_are_refused_with_the_reason() -> None:
    command = shutil.which("torchwan-relay") or str(RELAY)
    result = subprocess.run(
        [command, "--port", "0", "--window-bytes", "0"], capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 2
    assert "--window-bytes must be > 0" in result.stderr
