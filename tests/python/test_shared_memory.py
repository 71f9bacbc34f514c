"""Ranks that all run on one host allreduce large tensors through shared memory: results equal
Gloo's in the same processes, the data stays off the sockets (torchwan.stats()), a rank that cannot
share memory (its own /dev/shm, as in a separate container) sends every rank back to the sockets
with the same results, and a rank killed in the middle fails the others instead of hanging them.
Hosts of several ranks (TORCHWAN_HOST_ID) run the host tier: exact against Gloo, the optimum of
bytes between hosts, and more without it (local_backend "none"); with "nccl", CPU tensors keep the
tier in host memory and no NCCL group is made; ranks that disagree on the setting are refused
clearly."""

from __future__ import annotations

import ctypes
import os
import re
import time

import pytest
import torch
import torch.distributed as dist

from multiprocess import RankFailed, run_ranks

WORLD = 3
MIB = 1 << 20


def _bytes_sent(group=None) -> int:
    import torchwan

    return sum(peer["bytes_sent"] for peer in torchwan.stats(group)["peers"].values())


def allreduce_against_gloo(rank: int, world_size: int) -> dict:
    gloo = dist.new_group(backend="gloo")
    results = {}
    # Below the shared-memory threshold, one chunk and a bit, several chunks; three dtypes.
    for name, numel, dtype, op in [
        ("small", 1000, torch.float32, dist.ReduceOp.SUM),
        ("one_chunk_and_a_bit", MIB + 5, torch.float32, dist.ReduceOp.SUM),
        ("bf16_several_chunks", 5 * MIB + 3, torch.bfloat16, dist.ReduceOp.SUM),
        ("int64_max", 3 * MIB, torch.int64, dist.ReduceOp.MAX),
    ]:
        generator = torch.Generator().manual_seed(1000 * rank + numel)
        if dtype == torch.int64:
            source = torch.randint(-(1 << 40), 1 << 40, (numel,), generator=generator)
        else:
            # Small integers: every summation order gives the same exact result, so Gloo's ring
            # order and the shared-memory order must agree to the bit.
            source = torch.randint(-8, 8, (numel,), generator=generator).to(dtype)
        wan, reference = source.clone(), source.clone()
        sent_before = _bytes_sent()
        dist.all_reduce(wan, op=op)
        sent = _bytes_sent() - sent_before
        dist.all_reduce(reference, op=op, group=gloo)
        results[name] = {"sent": sent, "equal": torch.equal(wan, reference),
                         "bytes": wan.numel() * wan.element_size()}
    return results


def test_one_host_allreduce_equals_gloo_and_stays_off_the_sockets() -> None:
    for rank, result in enumerate(run_ranks(allreduce_against_gloo, WORLD, one_host=True)):
        for name, row in result.items():
            assert row["equal"], f"rank {rank} {name}: differs from Gloo"
        # The large calls move megabytes through memory; only barriers cross the sockets.
        for name in ("one_chunk_and_a_bit", "bf16_several_chunks", "int64_max"):
            assert result[name]["sent"] < 64 * 1024, (rank, name, result[name])


def test_ranks_of_separate_hosts_keep_using_the_network() -> None:
    for rank, result in enumerate(run_ranks(allreduce_against_gloo, WORLD)):
        for name, row in result.items():
            assert row["equal"], f"rank {rank} {name}: differs from Gloo"
        row = result["one_chunk_and_a_bit"]
        assert row["sent"] >= 2 * (WORLD - 1) / WORLD * row["bytes"], (rank, row)


CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 0x40000


def private_dev_shm(rank: int) -> None:
    """Gives rank 1 a /dev/shm of its own, as a container has: it cannot open its peers'
    segments, nor they its."""
    if rank != 1:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for call in (lambda: libc.unshare(CLONE_NEWNS),
                 lambda: libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None),
                 lambda: libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", 0, None)):
        if call() != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def two_large_allreduces(rank: int, world_size: int) -> dict:
    outcome = {}
    for call in range(2):
        tensor = torch.full((2 * MIB,), float(rank + 1))
        sent_before = _bytes_sent()
        dist.all_reduce(tensor)
        outcome[call] = {
            "correct": bool((tensor == sum(range(1, world_size + 1))).all()),
            "sent": _bytes_sent() - sent_before,
        }
    return outcome


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private mount namespace")
def test_a_rank_that_cannot_share_memory_sends_everyone_back_to_the_sockets() -> None:
    results = run_ranks(two_large_allreduces, WORLD, one_host=True, before_init=private_dev_shm,
                        capture_stderr=True)
    for rank, (outcome, stderr) in enumerate(results):
        for call in (0, 1):
            assert outcome[call]["correct"], (rank, call)
            # The ring's share: 2(P-1)/P of 8 MiB per rank, on every rank and in both calls.
            assert outcome[call]["sent"] >= 2 * (WORLD - 1) / WORLD * 8 * MIB, (rank, outcome)
    assert "cannot share memory" in results[1][1]


def killed_in_the_middle(rank: int, world_size: int) -> None:
    tensor = torch.ones(64 * MIB // 4)
    dist.all_reduce(tensor)  # sets the segments up
    if rank == 2:
        os.kill(os.getpid(), 9)
    started = time.monotonic()
    try:
        for _ in range(20):
            dist.all_reduce(tensor)
    except Exception as error:  # noqa: BLE001  reported with the time it took
        raise RuntimeError(f"failed after {time.monotonic() - started:.1f} s: {error}") from None


def test_a_rank_killed_during_a_shared_memory_allreduce_fails_the_others() -> None:
    # The survivors wait (30 s at most) for the dead rank at the end; the run then times out
    # waiting for its report and lists the survivors' errors.
    with pytest.raises(RankFailed) as failure:
        run_ranks(killed_in_the_middle, WORLD, one_host=True, timeout=50,
                  env={"TORCHWAN_PEER_TIMEOUT_MS": "3000"})
    report = str(failure.value)
    assert "only ranks [0, 1] of 3 reported" in report, report
    delays = [float(seconds) for seconds in re.findall(r"failed after ([0-9.]+) s:", report)]
    assert len(delays) == 2 and max(delays) < 20, report
    assert re.search(r"(rank|peer) 2\b", report), report


def two_hosts_of_two(rank: int) -> None:
    os.environ["TORCHWAN_HOST_ID"] = f"host-{rank // 2}"


def host_tier_against_gloo(rank: int, world_size: int) -> dict:
    import torchwan

    gloo = dist.new_group(backend="gloo")
    numel = 3 * MIB + 7
    generator = torch.Generator().manual_seed(rank)
    source = torch.randint(-8, 8, (numel,), generator=generator).to(torch.float32)
    wan, reference = source.clone(), source.clone()
    before = torchwan.stats()["peers"]
    dist.all_reduce(wan)
    after = torchwan.stats()["peers"]
    dist.all_reduce(reference, group=gloo)
    sent = {peer: after[peer]["bytes_sent"] - before[peer]["bytes_sent"] for peer in after}
    local_tier = dist.group.WORLD._get_backend(torch.device("cpu")).local_tier
    return {"equal": torch.equal(wan, reference), "sent": sent, "bytes": numel * 4,
            "pcie_bytes": torchwan.stats()["pcie_bytes"], "local_tier": local_tier}


@pytest.mark.parametrize("local_backend", ["auto", "gloo", "none", "nccl"])
def test_two_hosts_of_two_ranks_cross_between_hosts_no_more_than_the_optimum(
        local_backend: str) -> None:
    results = run_ranks(host_tier_against_gloo, 4, before_init=two_hosts_of_two,
                        env={"TORCHWAN_LOCAL_BACKEND": local_backend})
    size = results[0]["bytes"]
    across = 0
    for rank, result in enumerate(results):
        assert result["equal"], f"rank {rank} differs from Gloo"
        assert result["pcie_bytes"] == 0, "CPU tensors crossed no PCIe bus"
        assert result["local_tier"] == "not created", "CPU tensors need no NCCL group"
        for peer, sent in result["sent"].items():
            if int(peer) // 2 != rank // 2:
                across += sent
            elif local_backend != "none":
                # The host's other rank: only barriers and signatures, the data is in memory.
                assert sent < 64 * 1024, (rank, peer, sent)
    # An allreduce between H = 2 hosts must move 2(H-1)S bytes between them at the least; the host
    # tier reaches that. Without it, the flat algorithm over 4 ranks sends more across.
    if local_backend == "none":
        assert across > 2 * size * 1.01 + 64 * 1024, (across, size)
    else:
        assert 2 * size <= across <= 2 * size * 1.01 + 64 * 1024, (across, size)


def local_backend_by_rank(rank: int) -> None:
    os.environ["TORCHWAN_LOCAL_BACKEND"] = "gloo" if rank == 0 else "none"


def nothing(rank: int, world_size: int) -> None:
    return None


def test_ranks_that_disagree_on_the_local_backend_fail_naming_it() -> None:
    with pytest.raises(RankFailed, match="rank 0 set local_backend 'gloo' but rank 1 set 'none'"):
        run_ranks(nothing, 2, before_init=local_backend_by_rank, timeout=60)
