"""Process groups share one transport device per process: groups created after WORLD over the
same processes open no connection and start at most one thread each, compute correct results with
their own rank numbering, and close or fail without disturbing the others."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist

from multiprocess import run_ranks

WORLD = 4
EXTRA_GROUPS = 4


def threads_and_sockets() -> tuple[int, int]:
    threads = len(os.listdir("/proc/self/task"))
    sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # closed while listing
    return threads, sockets


def expected_sum(ranks: list[int]) -> torch.Tensor:
    # Each global rank r contributes arange(8) * (r + 1): a reference computed here, not by a
    # backend.
    return sum(torch.arange(8, dtype=torch.float32) * (r + 1) for r in ranks)


def many_groups(rank: int, world_size: int) -> dict:
    import torchwan

    world_input = torch.arange(8, dtype=torch.float32) * (rank + 1)
    tensor = world_input.clone()
    dist.all_reduce(tensor)  # WORLD's threads and connections are all up after this
    assert torch.equal(tensor, expected_sum(list(range(world_size))))
    before = threads_and_sockets()

    groups = [dist.new_group(list(range(world_size)), backend="wan") for _ in range(EXTRA_GROUPS)]
    for group in groups:
        tensor = world_input.clone()
        dist.all_reduce(tensor, group=group)
        assert torch.equal(tensor, expected_sum(list(range(world_size))))
    after = threads_and_sockets()
    shared = [dist.distributed_c10d._get_default_group()._get_backend(torch.device("cpu"))]
    shared += [group._get_backend(torch.device("cpu")) for group in groups]

    # A group over a subset, in another order: ranks [3, 1] and [2, 0] (new_group sorts ranks, so
    # the order comes from split-like numbering: group rank 0 is the lower global rank).
    pairs = [dist.new_group([1, 3], backend="wan"), dist.new_group([0, 2], backend="wan")]
    mine = pairs[0] if rank in (1, 3) else pairs[1]
    members = [1, 3] if rank in (1, 3) else [0, 2]
    tensor = world_input.clone()
    dist.all_reduce(tensor, group=mine)
    pair_ok = torch.equal(tensor, expected_sum(members))
    # Point-to-point inside the pair, by group rank.
    peer_in_group = 1 - dist.get_group_rank(mine, rank)
    out = torch.full((4,), float(rank))
    got = torch.empty(4)
    request = dist.isend(out, group_dst=peer_in_group, group=mine)
    dist.recv(got, group_src=peer_in_group, group=mine)
    request.wait()
    p2p_ok = torch.equal(got, torch.full((4,), float(members[peer_in_group])))

    # Closing one group leaves WORLD and the others working.
    dist.destroy_process_group(groups[0])
    tensor = world_input.clone()
    dist.all_reduce(tensor, group=groups[1])
    after_close_ok = torch.equal(tensor, expected_sum(list(range(world_size))))
    tensor = world_input.clone()
    dist.all_reduce(tensor)
    world_ok = torch.equal(tensor, expected_sum(list(range(world_size))))
    subgroup_stats = torchwan.stats(groups[1])
    world_stats = torchwan.stats()
    return {
        "before": before,
        "after": after,
        "shares": [backend.shares_device for backend in shared],
        "pair_ok": pair_ok,
        "p2p_ok": p2p_ok,
        "after_close_ok": after_close_ok,
        "world_ok": world_ok,
        "subgroup_calls": subgroup_stats["collectives"]["all_reduce"]["calls"],
        "subgroup_sent": sum(p["bytes_sent"] for p in subgroup_stats["peers"].values()),
        "process_sent": sum(p["bytes_sent"] for p in world_stats["peers"].values()),
    }


@pytest.mark.parametrize("transport", ["ucx", "zmq"])
def test_groups_share_the_process_transport(transport: str) -> None:
    results = run_ranks(many_groups, WORLD, env={"TORCHWAN_TRANSPORT": transport})
    for rank, result in enumerate(results):
        (threads_before, sockets_before) = result["before"]
        (threads_after, sockets_after) = result["after"]
        # Was +7 threads and +16 sockets per group: now at most one thread (the group's
        # collective thread) and no socket.
        assert sockets_after - sockets_before == 0, (rank, result)
        assert threads_after - threads_before <= EXTRA_GROUPS, (rank, result)
        assert result["shares"] == [False] + [True] * EXTRA_GROUPS
        assert result["pair_ok"] and result["p2p_ok"], (rank, result)
        assert result["after_close_ok"] and result["world_ok"], (rank, result)
        # A group counts its own messages; WORLD's counts are the process's, every group's.
        assert result["subgroup_calls"] == 2
        assert 0 < result["subgroup_sent"] < result["process_sent"], result


def different_transport_options(rank: int, world_size: int) -> dict:
    import torchwan

    # Other lanes: this group cannot ride WORLD's connections, so it connects its own.
    group = dist.new_group(backend="wan", pg_options=torchwan.Options(lanes=1))
    tensor = torch.ones(4) * (rank + 1)
    dist.all_reduce(tensor, group=group)
    backend = group._get_backend(torch.device("cpu"))
    return {"shares": backend.shares_device, "lanes": backend.lanes, "sum": tensor.tolist()}


def test_a_group_with_other_transport_options_connects_its_own() -> None:
    results = run_ranks(different_transport_options, 2, env={"TORCHWAN_LANES": "2"})
    for result in results:
        assert result == {"shares": False, "lanes": 1, "sum": [3.0] * 4}


def meshes_splits_and_local_groups(rank: int, world_size: int) -> dict:
    from torch.distributed.device_mesh import init_device_mesh

    def summed(group) -> tuple[float, bool]:
        tensor = torch.tensor([float(rank)])
        dist.all_reduce(tensor, group=group)
        return tensor.item(), group._get_backend(torch.device("cpu")).shares_device

    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
    result = {"dp": summed(mesh.get_group("dp")), "tp": summed(mesh.get_group("tp"))}
    result["split"] = summed(dist.split_group(split_ranks=[[0, 3], [1, 2]]))
    if rank in (1, 3):
        result["local"] = summed(dist.new_group([3, 1], use_local_synchronization=True))
    return result


def test_device_mesh_split_and_local_groups_share_the_device() -> None:
    results = run_ranks(meshes_splits_and_local_groups, WORLD)
    for rank, result in enumerate(results):
        # Mesh (2, 2): dp groups {0, 2}, {1, 3}; tp groups {0, 1}, {2, 3}.
        assert result["dp"] == (float(rank % 2 + rank % 2 + 2), True), result
        assert result["tp"] == (float(4 * (rank // 2) + 1), True), result
        assert result["split"] == (3.0, True), result
        if rank in (1, 3):
            assert result["local"] == (4.0, True), result
