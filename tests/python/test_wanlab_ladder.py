"""The connection ladder on the ZeroMQ link in the lab's NAT scenario (docs/reachability.md).

Ranks run inside the lab's hosts with no TORCHWAN_HOST, so each offers every address of its own
interfaces: the public host's is reachable, a NATed host's private one is nobody's way to it. The
store is on the public host (rank 0). A pair with one NATed side must come up on the reverse rung
and compute exactly; two NATed hosts have no rung without a relay and must fail group creation
within connect_timeout, naming both ranks and the addresses tried; with a relay on the public
host they talk through it. About 45 s with the lab up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from torchwan._local_ranks import free_port
from wanlab_fixture import wanlab_fixture

from scripts.wanlab import Lab

lab = wanlab_fixture("nat")

_REPO = Path(__file__).resolve().parents[2]

# Each rank checks the collectives against a reference it computes itself from the inputs'
# formula (integers, so every sum is exact), and rank 0 prints one JSON line.
_RANK = textwrap.dedent(
    """
    import json, os, sys, time
    from datetime import timedelta
    import torch, torch.distributed as dist
    import torchwan
    start = time.monotonic()
    dist.init_process_group("wan", timeout=timedelta(seconds=60))
    formed = time.monotonic() - start
    rank, world = dist.get_rank(), dist.get_world_size()
    n = 3 * 1024 * 1024 + 7  # 24 MiB of int64: several chunks on every lane
    base = torch.arange(n, dtype=torch.int64)

    x = base * (rank + 1) + rank
    dist.all_reduce(x)
    ok = {"all_reduce": bool(torch.equal(x, base * sum(r + 1 for r in range(world))
                                         + sum(range(world))))}

    y = base * 7 + 3 if rank == world - 1 else torch.zeros(n, dtype=torch.int64)
    dist.broadcast(y, src=world - 1)
    ok["broadcast"] = bool(torch.equal(y, base * 7 + 3))

    per = 100_003
    out = torch.cat([torch.arange(per, dtype=torch.int64) + 1_000_000 * rank + 1000 * dst
                     for dst in range(world)])
    got = torch.empty_like(out)
    dist.all_to_all_single(got, out)
    expected = torch.cat([torch.arange(per, dtype=torch.int64) + 1_000_000 * src + 1000 * rank
                          for src in range(world)])
    ok["all_to_all"] = bool(torch.equal(got, expected))

    links = {str(peer): entry["link"] for peer, entry in torchwan.stats()["peers"].items()}
    everyone = [None] * world
    dist.all_gather_object(everyone, {"ok": ok, "links": links, "formed_s": formed})
    if rank == 0:
        print(json.dumps(everyone), flush=True)
    dist.destroy_process_group()
    """
)

_FORM_ONLY = textwrap.dedent(
    """
    import os, sys, time
    from datetime import timedelta
    import torch.distributed as dist
    import torchwan
    start = time.monotonic()
    try:
        dist.init_process_group("wan", timeout=timedelta(seconds=60))
    except Exception as error:
        print(f"FAILED after {time.monotonic() - start:.1f} s: {error}", flush=True)
        # Rank 0 holds the store: it stays a moment, so that the others read every record and
        # fail for the same reason rather than because the store went away.
        time.sleep(3 if os.environ["RANK"] == "0" else 0)
        sys.exit(3)
    print("FORMED", flush=True)
    """
)


def _launch(lab: Lab, hosts: list[str], code: str, extra_env: dict[str, str] | None = None,
            timeout: float = 90) -> list[tuple[int, str, str]]:
    """Runs code as ranks 0.. on hosts (rank 0 on hosts[0], holding the store); returns per rank
    (exit code, stdout, stderr)."""
    port = str(free_port())
    python_path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), str(_REPO)) if p)
    processes = []
    for rank, host in enumerate(hosts):
        env = {
            "RANK": str(rank), "LOCAL_RANK": "0", "WORLD_SIZE": str(len(hosts)),
            "MASTER_ADDR": lab.ip(hosts[0]), "MASTER_PORT": port,
            "TORCHWAN_TRANSPORT": "zmq", "TORCHWAN_HOST": "", "TORCHWAN_LOG_LEVEL": "info",
            "PYTHONPATH": python_path, **(extra_env or {}),
        }
        processes.append(lab.python(host, code, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True))
    results = []
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        results.append((process.returncode, out, err))
    return results


def _world(results: list[tuple[int, str, str]]) -> list[dict]:
    for rank, (code, _, err) in enumerate(results):
        assert code == 0, f"rank {rank} exited {code}:\n{err[-3000:]}"
    return json.loads(results[0][1].strip().splitlines()[-1])


def test_public_and_natted_rank_talk_over_the_reverse_rung(lab: Lab) -> None:
    results = _launch(lab, ["pub", "nat1"], _RANK)
    world = _world(results)
    for rank, record in enumerate(world):
        assert all(record["ok"].values()), (rank, record)
        assert record["links"] == {str(1 - rank): "reverse"}, (rank, record)
        assert record["formed_s"] < 15, (rank, record)
    # The rung is logged once, at info level, on both sides.
    assert results[0][2].count("rank 1: reverse link") == 1, results[0][2][-2000:]
    assert results[1][2].count("rank 0: reverse link") == 1, results[1][2][-2000:]


def test_three_ranks_mix_direct_and_reverse_rungs(lab: Lab) -> None:
    # Two ranks on the public host reach each other directly; the NATed one reaches both.
    world = _world(_launch(lab, ["pub", "pub", "nat1"], _RANK))
    assert world[0]["links"] == {"1": "direct", "2": "reverse"}, world[0]
    assert world[1]["links"] == {"0": "direct", "2": "reverse"}, world[1]
    assert world[2]["links"] == {"0": "reverse", "1": "reverse"}, world[2]
    for rank, record in enumerate(world):
        assert all(record["ok"].values()), (rank, record)


def test_two_natted_ranks_without_a_relay_fail_naming_both_and_the_addresses(lab: Lab) -> None:
    # Rank 0 (the store) on the public host reaches both; ranks 1 and 2 reach nobody but it.
    timeout_ms = 8000
    start = time.monotonic()
    results = _launch(lab, ["pub", "nat1", "nat2"], _FORM_ONLY,
                      {"TORCHWAN_CONNECT_TIMEOUT_MS": str(timeout_ms)}, timeout=60)
    elapsed = time.monotonic() - start
    for rank, (code, out, err) in enumerate(results):
        assert code == 3, (rank, code, out, err[-2000:])
        text = out
        assert "no rung of the connection ladder connects 1 pair(s)" in text, (rank, text)
        assert "rank 1 could not connect to rank 2 at [tcp://" in text, (rank, text)
        assert "rank 2 could not connect to rank 1 at [tcp://" in text, (rank, text)
        assert "no relay" in text, (rank, text)
    # Python start-up and torch import take a few seconds of their own in every rank.
    assert elapsed < timeout_ms / 1000 + 20, elapsed


@pytest.mark.parametrize("relay_server", ["torchwan-relay", "coordinator --relay-port"])
def test_two_natted_ranks_talk_through_a_relay_on_the_public_host(lab: Lab, tmp_path: Path,
                                                                 relay_server: str) -> None:
    # The relay listens on the public host's port 443 and admits the holders of the job secret,
    # as its own executable or inside a coordinator; ranks 1 and 2 can reach nothing but the
    # public host, so their pair is relayed, encrypted end to end (encryption "auto" with a relay
    # given), while each keeps its reverse rung to rank 0.
    secret = tmp_path / "job.key"
    subprocess.run([sys.executable, "-m", "torchwan.secret", str(secret)], check=True)
    if relay_server == "torchwan-relay":
        argv = ["-m", "torchwan._relay_cli", "--port", "443"]
    else:
        argv = ["-m", "torchwan.elastic._coordinator_cli", "--port", "29399",
                "--relay-port", "443"]
    relay = lab.popen("pub", [sys.executable, *argv, "--secret-file", str(secret)],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert relay.poll() is None, relay.communicate()
        results = _launch(lab, ["pub", "nat1", "nat2"], _RANK,
                          {"TORCHWAN_RELAY": f"{lab.ip('pub')}:443",
                           "TORCHWAN_SECRET_FILE": str(secret)})
    finally:
        relay.terminate()
        relay.communicate(timeout=10)
    world = _world(results)
    assert world[0]["links"] == {"1": "reverse", "2": "reverse"}, world[0]
    assert world[1]["links"] == {"0": "reverse", "2": "relay"}, world[1]
    assert world[2]["links"] == {"0": "reverse", "1": "relay"}, world[2]
    for rank, record in enumerate(world):
        assert all(record["ok"].values()), (rank, record)
        assert record["formed_s"] < 10, (rank, record)
    # The rung is logged once, naming the relay, on both sides of the relayed pair.
    assert results[1][2].count("rank 2: relay link") == 1, results[1][2][-2000:]
    assert results[2][2].count("rank 1: relay link") == 1, results[2][2][-2000:]
