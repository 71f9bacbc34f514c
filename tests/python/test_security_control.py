"""Control-plane authentication end to end: the real torchwan-coordinator with --secret-file, and
members from Python with the right, a wrong, or no secret. Neither the coordinator's output nor any
error may contain the secret itself."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

import torchwan
from torchwan import _elastic
from torchwan.secret import resolve_secret_file

from test_elastic_support import COORDINATOR, free_port

CONNECT_TIMEOUT = timedelta(seconds=1)
WAIT = timedelta(seconds=10)


def secret_hex(path: Path) -> str:
    return path.read_text().strip()


def start_coordinator(port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(COORDINATOR), "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 10
    while b"listening on" not in log.read_bytes():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "coordinator did not start"
        time.sleep(0.02)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)


def member(port: int, name: str, secret: Path | None) -> _elastic.Member:
    return _elastic.Member(
        f"tcp://127.0.0.1:{port}",
        "job",
        name,
        f"{name}:7000",
        heartbeat_interval=timedelta(milliseconds=100),
        coordinator_timeout=CONNECT_TIMEOUT,
        secret_file=str(secret) if secret else "",
    )


def test_created_secret_is_private(tmp_path: Path) -> None:
    path = tmp_path / "job.secret"
    fingerprint = torchwan.create_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret_hex(path)) == 64 and fingerprint not in secret_hex(path)
    with pytest.raises(RuntimeError):  # never overwritten
        torchwan.create_secret(path)

    made = tmp_path / "made.secret"
    result = subprocess.run(
        [str(COORDINATOR), "--make-secret", str(made)], capture_output=True, check=True
    )
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert secret_hex(made).encode() not in result.stdout + result.stderr

    module = tmp_path / "module.secret"
    result = subprocess.run(
        [sys.executable, "-m", "torchwan.secret", str(module)], capture_output=True, check=True
    )
    assert secret_hex(module).encode() not in result.stdout + result.stderr


def test_secret_file_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHWAN_SECRET_FILE", raising=False)
    assert resolve_secret_file() is None
    monkeypatch.setenv("TORCHWAN_SECRET_FILE", "/env/secret")
    assert resolve_secret_file() == "/env/secret"
    assert resolve_secret_file(options=torchwan.Options(secret_file="/opt")) == "/opt"
    assert resolve_secret_file("/explicit", torchwan.Options(secret_file="/opt")) == "/explicit"


def test_group_readable_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "job.secret"
    torchwan.create_secret(path)
    os.chmod(path, 0o640)
    log = tmp_path / "coordinator.log"
    with open(log, "wb") as out:
        code = subprocess.run(
            [str(COORDINATOR), "--port", "0", "--secret-file", str(path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=10,
        ).returncode
    assert code != 0
    assert "chmod 600" in log.read_text()
    assert secret_hex(path) not in log.read_text()


def test_secured_coordinator_admits_only_the_secret(tmp_path: Path) -> None:
    right = tmp_path / "right.secret"
    wrong = tmp_path / "wrong.secret"
    torchwan.create_secret(right)
    torchwan.create_secret(wrong)
    port = free_port()
    log = tmp_path / "coordinator.log"
    coordinator = start_coordinator(port, log, "--secret-file", str(right))
    try:
        good = member(port, "good", right)
        assert good.wait_for_epoch(0, WAIT) is not None

        for name, secret, expected in (
            ("intruder", wrong, "authentication failed or wrong secret"),
            ("anonymous", None, "requires the job secret"),
        ):
            other = member(port, name, secret)
            started = time.monotonic()
            with pytest.raises(_elastic.AuthenticationError) as refused:
                other.wait_for_epoch(0, WAIT)
            assert time.monotonic() - started < CONNECT_TIMEOUT.total_seconds() + 2
            message = str(refused.value)
            assert expected in message
            assert f"tcp://127.0.0.1:{port}" in message
            assert secret_hex(right) not in message and secret_hex(wrong) not in message
            other.close()

        # The coordinator is unaffected: the good member is still active, and another joins.
        late = member(port, "late", right)
        deadline = time.monotonic() + WAIT.total_seconds()
        while good.num_waiting() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        good.request_new_epoch()
        view = late.wait_for_epoch(0, WAIT)
        assert view is not None and view.world_size == 2
        good.leave()
        late.leave()
    finally:
        stop(coordinator)
    output = log.read_text()
    assert "failed its handshake" in output
    assert secret_hex(right) not in output and secret_hex(wrong) not in output
    assert _elastic.secret_fingerprint(str(right)) in output  # what logs may show instead


def test_open_coordinator_warns_and_refuses_a_member_with_secret(tmp_path: Path) -> None:
    secret = tmp_path / "job.secret"
    torchwan.create_secret(secret)
    port = free_port()
    log = tmp_path / "coordinator.log"
    coordinator = start_coordinator(port, log)
    try:
        careful = member(port, "careful", secret)
        with pytest.raises(_elastic.AuthenticationError) as refused:
            careful.wait_for_epoch(0, WAIT)
        assert "coordinator without --secret-file" in str(refused.value)
        careful.close()
        anyone = member(port, "anyone", None)
        assert anyone.wait_for_epoch(0, WAIT) is not None
        anyone.leave()
    finally:
        stop(coordinator)
    assert "open to anyone who reaches port" in log.read_text()
