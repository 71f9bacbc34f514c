"""Data-plane authentication through the backend, on real processes: a group whose ranks hold the
same job secret works; one rank with another secret, without a secret, or of another job makes
every rank fail at group creation with an error naming that rank (never the secret itself), and
the ranks' other groups stay usable afterwards. Port scans, garbage bytes and oversized length
fields sent to every data port leave the group working. With TORCHWAN_ENCRYPTION=on, collectives
give Gloo's results, and a rank asking for another setting is named on every rank."""

from __future__ import annotations

import os
import random
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import torchwan
from conftest import TRANSPORTS
from multiprocess import run_ranks

WORLD = 3


def try_group(rank: int, options: torchwan.Options) -> tuple[str, list[float]]:
    """("ok", allreduce result) or ("error", message) for a new group built with `options`."""
    try:
        group = dist.new_group(backend="wan", pg_options=options, timeout=timedelta(seconds=30))
        t = torch.full((1 << 16,), float(rank + 1))
        dist.all_reduce(t, group=group)
        return "ok", t.unique().tolist()
    except Exception as error:  # noqa: BLE001  (the message is what the test checks)
        return "error", [f"{type(error).__name__}: {error}"]


def scenarios(rank: int, world: int, secret: str, other_secret: str) -> dict:
    out = {}
    out["same secret"] = try_group(rank, torchwan.Options(secret_file=secret, job_id="job-a"))
    out["rank 2 other secret"] = try_group(
        rank, torchwan.Options(secret_file=other_secret if rank == 2 else secret, job_id="job-a")
    )
    out["rank 1 no secret"] = try_group(
        rank, torchwan.Options(secret_file=None if rank == 1 else secret, job_id="job-a")
    )
    out["rank 0 other job"] = try_group(
        rank, torchwan.Options(secret_file=secret, job_id="job-b" if rank == 0 else "job-a")
    )
    # The default group (no secret) is untouched by the failed ones.
    t = torch.ones(8)
    dist.all_reduce(t)
    out["default group after"] = ("ok", t.unique().tolist())
    return out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_secret_job_and_their_failures(transport: str, tmp_path: Path) -> None:
    secret, other = str(tmp_path / "job.secret"), str(tmp_path / "other.secret")
    torchwan.create_secret(secret)
    torchwan.create_secret(other)
    secret_bytes = [Path(secret).read_text().strip(), Path(other).read_text().strip()]
    results = run_ranks(
        scenarios, WORLD, secret, other, env={"TORCHWAN_TRANSPORT": transport}, timeout=180
    )
    total = float(sum(range(1, WORLD + 1)))
    expected_errors = {
        "rank 2 other secret": ("[2]", "wrong job secret"),
        "rank 1 no secret": ("[1]", "no job secret"),
        "rank 0 other job": ("[0]", "job"),
    }
    for rank, result in enumerate(results):
        assert result["same secret"] == ("ok", [total]), (rank, result["same secret"])
        assert result["default group after"] == ("ok", [float(WORLD)]), rank
        for case, fragments in expected_errors.items():
            status, detail = result[case]
            assert status == "error", (rank, case, detail)
            message = detail[0]
            assert "DistBackendError" in message, (rank, case, message)
            for fragment in fragments:
                assert fragment in message, (rank, case, message)
            for text in secret_bytes:
                assert text not in message, (rank, case, "secret leaked")


def listening_ports() -> list[int]:
    """TCP ports this process listens on (its transport's data ports), from /proc."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    # IPv6 sockets here are dual-stack on 127.0.0.1 (::ffff:127.0.0.1), reachable over IPv4.
    for path in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(path) as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].split(":")[1], 16))
    return sorted(ports)


# A ZMTP 3 greeting (signature, version 3.0, NULL mechanism, as-server 0, filler), then a frame
# header announcing a payload of 2^62 bytes: what a hostile peer would send to make a receiver
# allocate without bound.
OVERSIZED = (
    b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL" + b"\x00" * 16 + b"\x00" + b"\x00" * 31
    + b"\x02" + (1 << 62).to_bytes(8, "big") + b"x" * 64
)


def attack_own_ports(rank: int, world: int) -> dict:
    """Scans, garbage and an oversized length on every data port of this rank, with the group's
    collectives checked before, between and after."""
    ports = listening_ports()
    rng = random.Random(1234 + rank)
    checks = []

    def allreduce_ok() -> bool:
        t = torch.arange(1 << 14, dtype=torch.float64) * (rank + 1)
        dist.all_reduce(t)
        expected = torch.arange(1 << 14, dtype=torch.float64) * (world * (world + 1) // 2)
        return bool(torch.equal(t, expected))

    checks.append(allreduce_ok())
    held = []
    for port in ports:
        for _ in range(10):  # a port scanner: connect, disconnect
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
        garbage = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            garbage.sendall(bytes(rng.getrandbits(8) for _ in range(4096)))
        except OSError:
            pass  # the receiver may already have dropped it
        held.append(garbage)
        oversized = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            oversized.sendall(OVERSIZED)
        except OSError:
            pass
        held.append(oversized)
    checks.append(allreduce_ok())  # hostile connections still open
    for connection in held:
        connection.close()
    checks.append(allreduce_ok())
    return {"ports": ports, "checks": checks}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_scans_garbage_and_oversized_lengths_leave_the_group_working(transport: str) -> None:
    results = run_ranks(attack_own_ports, WORLD, env={"TORCHWAN_TRANSPORT": transport}, timeout=180)
    for rank, result in enumerate(results):
        assert result["ports"], f"rank {rank} found no data port to attack"
        assert result["checks"] == [True, True, True], (rank, result)


ENCRYPTED_WORLD = 4


def encrypted_collectives(rank: int, world: int) -> dict:
    """The default group runs encrypted (TORCHWAN_ENCRYPTION=on); each collective's result must
    equal Gloo's on the same inputs. Then a group where one rank asks for no encryption fails on
    every rank, naming it, through torchwan.Options(encryption=...)."""
    gloo = dist.new_group(backend="gloo")
    out = {}
    # Integer-valued data: sums are exact whatever order each backend adds in.
    for name, numel, dtype in [("small", 1000, torch.float32), ("chunked", 3 << 20, torch.float64)]:
        base = (torch.arange(numel, dtype=torch.int64) % 1009 + rank * 7).to(dtype)
        wan_sum, gloo_sum = base.clone(), base.clone()
        dist.all_reduce(wan_sum)
        dist.all_reduce(gloo_sum, group=gloo)
        out[f"allreduce {name}"] = bool(torch.equal(wan_sum, gloo_sum))
        wan_parts = [torch.empty_like(base) for _ in range(world)]
        gloo_parts = [torch.empty_like(base) for _ in range(world)]
        dist.all_gather(wan_parts, base)
        dist.all_gather(gloo_parts, base, group=gloo)
        out[f"allgather {name}"] = all(torch.equal(a, b) for a, b in zip(wan_parts, gloo_parts))
        wan_cast, gloo_cast = base.clone(), base.clone()
        dist.broadcast(wan_cast, src=world - 1)
        dist.broadcast(gloo_cast, src=world - 1, group=gloo)
        out[f"broadcast {name}"] = bool(torch.equal(wan_cast, gloo_cast))
        # And against an independent reference, so that a fault shared by both would show.
        expected = sum(
            (torch.arange(numel, dtype=torch.int64) % 1009 + r * 7) for r in range(world)
        ).to(dtype)
        out[f"reference {name}"] = bool(torch.equal(wan_sum, expected))
    out["mismatch"] = try_group(
        rank, torchwan.Options(encryption="none" if rank == 1 else "on", job_id="enc")
    )
    out["unknown cipher"] = try_group(rank, torchwan.Options(encryption="rot13"))
    return out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_encrypted_group_matches_gloo(transport: str, tmp_path: Path) -> None:
    secret = str(tmp_path / "job.secret")
    torchwan.create_secret(secret)
    env = {
        "TORCHWAN_TRANSPORT": transport,
        "TORCHWAN_SECRET_FILE": secret,
        "TORCHWAN_ENCRYPTION": "on",
    }
    results = run_ranks(encrypted_collectives, ENCRYPTED_WORLD, env=env, timeout=240)
    for rank, result in enumerate(results):
        mismatch = result.pop("mismatch")
        unknown = result.pop("unknown cipher")
        assert unknown[0] == "error" and "ValueError" in unknown[1][0], (rank, unknown)
        assert "rot13" in unknown[1][0], (rank, unknown)
        assert all(result.values()), (rank, result)
        status, detail = mismatch
        assert status == "error", (rank, mismatch)
        assert "rank(s) [1]" in detail[0] and "encryption none" in detail[0], (rank, detail)
