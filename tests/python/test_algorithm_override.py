"""Options(algorithm=...) / TORCHWAN_ALGORITHM force a collective's algorithm: every forced
algorithm gives Gloo's result on real processes, on sizes where it would not be chosen by itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from multiprocess import run_ranks

WORLD = 3
FORCED = [
    "allreduce:ring",
    "allreduce:recursive_doubling",
    "allreduce:direct",
    "allreduce:two_step",
    "broadcast:direct",
    "broadcast:binomial_tree",
    "broadcast:chain",
    "reduce:binomial_tree",
    "reduce:chain",
    "allgather:direct",
    "allgather:ring",
    "reduce_scatter:direct",
    "reduce_scatter:ring",
    "barrier:direct",
    "barrier:dissemination",
]


def forced_algorithms(rank: int, world_size: int) -> dict:
    import torchwan

    gloo = dist.new_group(backend="gloo")
    mismatches = []
    for forced in FORCED:
        group = dist.new_group(
            backend="wan", pg_options=torchwan.Options(algorithm=forced),
            timeout=timedelta(seconds=60),
        )
        for count in (5, 70_000, (1 << 20) + 3):  # below and above every threshold
            generator = torch.Generator().manual_seed(rank * 1000 + count)
            data = torch.randn(count, generator=generator, dtype=torch.float64)
            ours, theirs = data.clone(), data.clone()
            if forced.startswith("allreduce"):
                dist.all_reduce(ours, group=group)
                dist.all_reduce(theirs, group=gloo)
            elif forced.startswith("broadcast"):
                dist.broadcast(ours, src=1, group=group)
                dist.broadcast(theirs, src=1, group=gloo)
            elif forced.startswith("reduce:"):
                dist.reduce(ours, dst=2, group=group)
                dist.reduce(theirs, dst=2, group=gloo)
            elif forced.startswith("allgather"):
                ours, theirs = torch.empty(count * world_size, dtype=data.dtype), torch.empty(
                    count * world_size, dtype=data.dtype)
                dist.all_gather_into_tensor(ours, data, group=group)
                dist.all_gather_into_tensor(theirs, data, group=gloo)
            elif forced.startswith("reduce_scatter"):
                whole = torch.randn(count * world_size, generator=generator, dtype=torch.float64)
                ours, theirs = torch.empty(count, dtype=data.dtype), torch.empty(count, dtype=data.dtype)
                dist.reduce_scatter_tensor(ours, whole, group=group)
                dist.reduce_scatter_tensor(theirs, whole, group=gloo)
            else:
                dist.barrier(group=group)
            if forced.startswith("reduce:") and rank != 2:
                continue  # only the root's buffer is defined after a reduce
            # Summation order differs between algorithms: compare to a tolerance, not bits.
            if not torch.allclose(ours, theirs, rtol=1e-12, atol=1e-12):
                mismatches.append((forced, count))
        dist.destroy_process_group(group)
    return {"mismatches": mismatches}


def test_every_forced_algorithm_matches_gloo() -> None:
    for rank, result in enumerate(run_ranks(forced_algorithms, WORLD, timeout=300)):
        assert result["mismatches"] == [], f"rank {rank}: {result['mismatches']}"


def env_forced(rank: int, world_size: int) -> str:
    backend = dist.group.WORLD._get_backend(torch.device("cpu"))
    data = torch.ones(10)
    dist.all_reduce(data)
    assert data.tolist() == [float(world_size)] * 10
    return type(backend).__name__


def test_environment_variable_is_read_and_checked() -> None:
    run_ranks(env_forced, 2, env={"TORCHWAN_ALGORITHM": "allreduce:ring"})
    with pytest.raises(Exception, match="TORCHWAN_ALGORITHM"):
        run_ranks(env_forced, 2, env={"TORCHWAN_ALGORITHM": "allreduce:fastest"}, timeout=60)
