"""The UCX transport's connection ladder in the lab's NAT scenario (docs/reachability.md).

A public host and a NATed one: the public rank cannot dial the NATed one, so the NATed rank dials
back (the reverse rung) and the group works, exact, with `torchwan.stats()` saying how each peer
was reached. Two NATed hosts cannot reach each other at all over UCX: group creation fails within
its timeout, naming both ranks and the addresses tried, instead of hanging.
"""

from __future__ import annotations

import json
import subprocess
import time

from wanlab_fixture import wanlab_fixture

from scripts.wanlab import Lab

lab = wanlab_fixture("nat")

_RANK = """
import datetime, json, os, sys
import torch, torch.distributed as dist
import torchwan
rank, world, store = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def main():
    dist.init_process_group("wan", init_method=f"tcp://{store}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    n = 100_003  # odd, so no striping or chunking rounds it
    summed = torch.arange(n, dtype=torch.float64) * (rank + 1)
    dist.all_reduce(summed)
    root = torch.full((n,), float(rank), dtype=torch.float64)
    dist.broadcast(root, src=world - 1)
    out = [torch.empty(7, dtype=torch.float64) for _ in range(world)]
    dist.all_to_all(out, [torch.full((7,), 100.0 * rank + peer, dtype=torch.float64)
                          for peer in range(world)])
    ok = (torch.equal(summed, torch.arange(n, dtype=torch.float64) * sum(range(1, world + 1)))
          and torch.equal(root, torch.full((n,), float(world - 1), dtype=torch.float64))
          and all(torch.equal(out[p], torch.full((7,), 100.0 * p + rank, dtype=torch.float64))
                  for p in range(world)))
    links = {str(peer): entry["link"] for peer, entry in torchwan.stats()["peers"].items()}
    print(json.dumps({"ok": ok, "links": links}), flush=True)
    dist.destroy_process_group()
try:
    main()
except Exception as error:
    print(json.dumps({"error": str(error)}), flush=True)
    sys.exit(3)
"""


def _run(lab: Lab, hosts: list[str], port: int, timeout_s: float = 90) -> list[dict]:
    store = f"{lab.ip(hosts[0])}:{port}"
    env = {"TORCHWAN_TRANSPORT": "ucx", "TORCHWAN_CONNECT_TIMEOUT_MS": "20000",
           "TORCHWAN_LANES": "2"}
    ranks = [
        lab.python(host, _RANK, str(rank), str(len(hosts)), store, env=env,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank, host in enumerate(hosts)
    ]
    results = []
    for rank, process in enumerate(ranks):
        try:
            out, err = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for p in ranks:
                p.kill()
            raise AssertionError(f"rank {rank} on {hosts[rank]} hung") from None
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert lines, f"rank {rank} on {hosts[rank]} printed no result:\n{err[-3000:]}"
        results.append(json.loads(lines[-1]))
    return results


def test_a_public_and_a_natted_host_connect_by_reverse_and_compute_exactly(lab: Lab) -> None:
    # Rank 0 (public) is the lower rank: it dials first, finds no route to the NATed address,
    # and asks rank 1 to dial back.
    results = _run(lab, ["pub", "nat1"], 29_611)
    assert all("error" not in r for r in results), results
    assert [r["ok"] for r in results] == [True, True]
    assert results[0]["links"] == {"1": "reverse"} and results[1]["links"] == {"0": "reverse"}


def test_a_natted_lower_rank_dials_the_public_host_directly(lab: Lab) -> None:
    results = _run(lab, ["pub", "nat1", "pub"], 29_612)
    assert all("error" not in r for r in results), results
    assert [r["ok"] for r in results] == [True, True, True]
    # nat1 (rank 1) dials rank 2 on the public host itself: direct; rank 0 needs the reverse.
    assert results[1]["links"] == {"0": "reverse", "2": "direct"}
    assert results[2]["links"] == {"0": "direct", "1": "direct"}


def test_two_natted_hosts_fail_within_the_timeout_naming_both_ranks(lab: Lab) -> None:
    started = time.monotonic()
    results = _run(lab, ["pub", "nat1", "nat2"], 29_613)
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"took {elapsed:.0f} s with a 20 s connect timeout"
    errors = {rank: r.get("error", "") for rank, r in enumerate(results)}
    for rank, other in ((1, 2), (2, 1)):
        assert f"no connection between rank {rank}" in errors[rank], errors
        assert f"and rank {other} ({lab.local_ip('nat1')}" in errors[rank], errors
        assert "TORCHWAN_RELAY" in errors[rank], errors
