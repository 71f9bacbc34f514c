"""torchwan.stats(): per-peer bytes and messages and per-collective calls, failures, bytes and
time, checked against what a real 3-rank group did (counts are exact; byte counts are at least the
payload the algorithm must move)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from multiprocess import run_ranks

WORLD = 3


def exercise(rank: int, world_size: int) -> dict:
    import torchwan

    before = torchwan.stats()
    tensor = torch.ones(1 << 18)  # 1 MiB of float32
    for _ in range(3):
        dist.all_reduce(tensor)
    dist.broadcast(tensor, src=0)
    group = dist.new_group(backend="wan")
    dist.all_reduce(torch.ones(16), group=group)
    gloo = dist.new_group(backend="gloo")
    try:
        torchwan.stats(gloo)
        wrong_backend = None
    except ValueError as error:
        wrong_backend = str(error)
    return {"before": before, "after": torchwan.stats(), "subgroup": torchwan.stats(group),
            "wrong_backend": wrong_backend}


@pytest.mark.parametrize("transport", ["ucx", "zmq"])
def test_stats_count_what_the_group_did(transport: str) -> None:
    results = run_ranks(exercise, WORLD, env={"TORCHWAN_TRANSPORT": transport})
    for rank, result in enumerate(results):
        after = result["after"]
        assert after["rank"] == rank and after["world_size"] == WORLD
        assert after["transport"] == transport
        assert sorted(after["peers"]) == [r for r in range(WORLD) if r != rank]
        allreduce = after["collectives"]["all_reduce"]
        assert allreduce["calls"] == 3 and allreduce["failures"] == 0
        assert allreduce["bytes"] == 3 * (1 << 20) and allreduce["seconds"] > 0
        assert after["collectives"]["broadcast"]["calls"] == 1
        # A ring allreduce sends 2(n-1)/n of the buffer per call; the broadcast adds more.
        sent = sum(peer["bytes_sent"] for peer in after["peers"].values())
        assert sent >= 3 * 2 * (WORLD - 1) / WORLD * (1 << 20)
        received = sum(peer["bytes_received"] for peer in after["peers"].values())
        assert received >= 3 * 2 * (WORLD - 1) / WORLD * (1 << 20)
        for peer in after["peers"].values():
            assert peer["link"] == "direct" and peer["lanes"] >= 1
            assert peer["messages_sent"] > 0 and peer["messages_received"] > 0
        # Counters only grow, and each group counts its own traffic.
        before_sent = sum(p["bytes_sent"] for p in result["before"]["peers"].values())
        assert before_sent < sent
        assert set(result["subgroup"]["collectives"]) == {"all_reduce"}
        assert result["subgroup"]["collectives"]["all_reduce"]["calls"] == 1
        assert "wan" in result["wrong_backend"]
    # What one rank sent to another, the other received.
    for a in range(WORLD):
        for b in range(WORLD):
            if a != b:
                assert results[a]["after"]["peers"][b]["bytes_sent"] == \
                    results[b]["after"]["peers"][a]["bytes_received"]
