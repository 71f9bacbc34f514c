"""The NCCL host tier (local_backend "nccl", and "auto" for CUDA tensors): which tier each
allreduce takes, how a host's ranks decide together whether they can form an NCCL group, and, on a
machine with GPUs, the results of the tier against Gloo. Hosts are faked with TORCHWAN_HOST_ID: 4
ranks as 2 hosts x 2. The GPU tests skip where CUDA is missing; the NCCL group itself needs a GPU
for each rank of a host (NCCL refuses two ranks of one communicator on one device), so the test
that runs it needs at least 2 GPUs; scripts/gpu_check.sh runs them on a GPU machine."""

from __future__ import annotations

import datetime
import os
import threading

import pytest
import torch
import torch.distributed as dist

from multiprocess import run_ranks
from torchwan import _nccl_tier

MIB = 1 << 20
# Large enough for the host tier (kStripedAllreduceMinBytes), as float32.
LARGE = 2 * MIB + 3


def two_hosts_of_two(rank: int) -> None:
    os.environ["TORCHWAN_HOST_ID"] = f"host-{rank // 2}"


def _wan_backend():
    return dist.group.WORLD._get_backend(torch.device("cpu"))


def tiers_chosen(rank: int, world_size: int) -> dict:
    backend = _wan_backend()
    return {
        "cuda_float_sum": backend.local_tier_for("cuda", torch.float32, LARGE),
        "cuda_bf16_avg": backend.local_tier_for("cuda", torch.bfloat16, LARGE,
                                                dist.ReduceOp.AVG),
        "cuda_int64_max": backend.local_tier_for("cuda", torch.int64, LARGE, dist.ReduceOp.MAX),
        "cuda_int64_band": backend.local_tier_for("cuda", torch.int64, LARGE,
                                                  dist.ReduceOp.BAND),
        "cuda_int16_sum": backend.local_tier_for("cuda", torch.int16, 2 * LARGE),
        "cuda_small": backend.local_tier_for("cuda", torch.float32, 1000),
        "cpu_float_sum": backend.local_tier_for("cpu", torch.float32, LARGE),
        "state": backend.local_tier,
    }


LARGE_CALLS = ["cuda_float_sum", "cuda_bf16_avg", "cuda_int64_max"]


@pytest.mark.parametrize("local_backend", ["auto", "nccl", "gloo", "none"])
def test_each_allreduce_takes_the_tier_its_device_dtype_op_and_setting_allow(
        local_backend: str) -> None:
    results = run_ranks(tiers_chosen, 4, before_init=two_hosts_of_two,
                        env={"TORCHWAN_LOCAL_BACKEND": local_backend})
    for rank, tiers in enumerate(results):
        assert tiers == results[0], f"rank {rank} chose differently: {tiers} vs {results[0]}"
    tiers = results[0]
    assert tiers["state"] == "not created", "asking which tier a call takes creates nothing"
    if local_backend == "none":
        # Every rank a host of its own: no host tier for anything.
        assert {name for name, tier in tiers.items() if tier != "none"} == {"state"}, tiers
        return
    expected_large = "nccl" if local_backend in ("auto", "nccl") else "host memory"
    for name in LARGE_CALLS:
        assert tiers[name] == expected_large, (name, tiers)
    # NCCL has no bitwise reductions and no int16: those stay in host memory, as CPU tensors do.
    assert tiers["cuda_int64_band"] == "host memory", tiers
    assert tiers["cuda_int16_sum"] == "host memory", tiers
    assert tiers["cpu_float_sum"] == "host memory", tiers
    assert tiers["cuda_small"] == "none", "below the host tier's threshold"


def compressed_tiers(rank: int, world_size: int) -> dict:
    backend = _wan_backend()
    return {
        "float": backend.local_tier_for("cuda", torch.float32, LARGE),
        "int64": backend.local_tier_for("cuda", torch.int64, LARGE),
    }


def test_a_compressed_allreduce_keeps_the_host_memory_tier_and_integers_still_take_nccl() -> None:
    results = run_ranks(compressed_tiers, 4, before_init=two_hosts_of_two,
                        env={"TORCHWAN_LOCAL_BACKEND": "nccl", "TORCHWAN_COMPRESSION": "int8"})
    for tiers in results:
        assert tiers == {"float": "host memory", "int64": "nccl"}, tiers


def a_bad_device_name(rank: int, world_size: int) -> str:
    try:
        _wan_backend().local_tier_for("tpu", torch.float32, LARGE)
    except ValueError as error:
        return str(error)
    return "accepted"


def test_a_device_other_than_cpu_or_cuda_is_refused_by_name() -> None:
    for message in run_ranks(a_bad_device_name, 2):
        assert "device must be 'cpu' or 'cuda', got 'tpu'" in message, message


def test_a_host_whose_ranks_all_have_nccl_and_gpus_of_their_own_forms_a_group() -> None:
    assert _nccl_tier.decline_reason(0, [(True, "GPU-a"), (True, "GPU-b")]) is None


def test_a_rank_without_nccl_declines_the_tier_for_its_whole_host_naming_it() -> None:
    reason = _nccl_tier.decline_reason(3, [(True, "GPU-a"), (False, "GPU-b"), (True, "GPU-c")])
    assert reason is not None
    assert "local rank(s) [1] of host 3 has no NCCL" in reason, reason


def test_two_ranks_on_one_gpu_decline_the_tier_naming_both_and_the_gpu() -> None:
    reason = _nccl_tier.decline_reason(1, [(True, "GPU-a"), (True, "GPU-b"), (True, "GPU-a")])
    assert reason is not None
    assert "local ranks 0 and 2 of host 1 use the same GPU (GPU-a)" in reason, reason


def test_the_host_ranks_see_each_others_facts_in_local_rank_order_through_the_store() -> None:
    store = dist.HashStore()
    local_size = 3
    seen: dict[int, list] = {}

    def rank_thread(local: int) -> None:
        mine = (local != 1, f"GPU-{local} with spaces")
        seen[local] = _nccl_tier.exchange_facts(store, 5, local, local_size, mine)

    threads = [threading.Thread(target=rank_thread, args=(local,)) for local in range(local_size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    expected = [(True, "GPU-0 with spaces"), (False, "GPU-1 with spaces"),
                (True, "GPU-2 with spaces")]
    assert seen == {local: expected for local in range(local_size)}


def test_an_unusable_host_fails_a_required_tier_with_a_value_error_saying_what_to_do(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The factory as the native backend calls it, with this rank's facts given (no GPU here).
    monkeypatch.setattr(_nccl_tier, "_this_rank_facts", lambda device_index: (True, "GPU-same"))
    store = dist.HashStore()
    dist.PrefixStore("torchwan/nccl_tier/host0/facts", store).set("1", "1 GPU-same")
    make = _nccl_tier.factory(store, datetime.timedelta(seconds=30), "g")
    with pytest.raises(ValueError, match=r"group 'g': local_backend 'nccl'.*same GPU.*"
                                         r"use local_backend 'auto' or 'gloo'"):
        make(0, 0, 2, 0, True)
    # "auto" falls back to host memory instead.
    assert make(0, 0, 2, 0, False) is None


# On GPUs: rank r uses GPU (r % 2), so each host's two ranks have a GPU each.

needs_two_gpus = pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2,
    reason="the NCCL host tier needs a GPU for each rank of a host: at least 2 GPUs")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def nccl_tier_against_gloo(rank: int, world_size: int, gpus: int) -> dict:
    import torchwan

    device = torch.device("cuda", rank % gpus)
    torch.cuda.set_device(device)
    gloo = dist.new_group(backend="gloo")
    failures = []
    cases = [
        ("float_sum_even", 4 * MIB, torch.float32, dist.ReduceOp.SUM),
        ("float_sum_uneven", 4 * MIB + 3, torch.float32, dist.ReduceOp.SUM),
        ("bf16_sum", 2 * MIB + 1, torch.bfloat16, dist.ReduceOp.SUM),
        ("int64_max", MIB + 5, torch.int64, dist.ReduceOp.MAX),
        ("int32_min", MIB + 7, torch.int32, dist.ReduceOp.MIN),
        ("float_avg", 2 * MIB, torch.float32, dist.ReduceOp.AVG),
    ]
    pcie_before = torchwan.stats()["pcie_bytes"]
    for name, numel, dtype, op in cases:
        generator = torch.Generator().manual_seed(100 * rank + numel)
        # Small integers: every summation order gives the same exact result.
        source = torch.randint(-8, 8, (numel,), generator=generator).to(dtype)
        reference = source.clone()
        dist.all_reduce(reference, op=op if op != dist.ReduceOp.AVG else dist.ReduceOp.SUM,
                        group=gloo)
        if op == dist.ReduceOp.AVG:
            reference /= world_size
        on_gpu = source.to(device)
        dist.all_reduce(on_gpu, op=op)
        if not torch.equal(on_gpu.cpu(), reference):
            failures.append(name)
    # A non-contiguous tensor, with the caller's stream busy first (an ordering bug shows).
    matrix = torch.randint(-8, 8, (1024, 1030), generator=torch.Generator().manual_seed(rank))
    reference = matrix.float().t().contiguous()
    dist.all_reduce(reference, group=gloo)
    on_gpu = matrix.float().to(device).t()
    torch.cuda._sleep(50_000_000)
    dist.all_reduce(on_gpu)
    if not torch.equal(on_gpu.cpu(), reference):
        failures.append("non_contiguous_after_slow_producer")
    moved = sum(numel * dtype.itemsize for _, numel, dtype, _ in cases) + matrix.numel() * 4
    return {"failures": failures, "tier": _wan_backend().local_tier,
            "pcie_bytes": torchwan.stats()["pcie_bytes"] - pcie_before, "bytes": moved}


@needs_two_gpus
@pytest.mark.parametrize("local_backend", ["nccl", "auto"])
def test_the_nccl_tier_equals_gloo_and_moves_only_each_ranks_shard_over_pcie(
        local_backend: str) -> None:
    results = run_ranks(nccl_tier_against_gloo, 4, 2, before_init=two_hosts_of_two,
                        env={"TORCHWAN_LOCAL_BACKEND": local_backend})
    for rank, result in enumerate(results):
        assert result["failures"] == [], (rank, result["failures"])
        assert result["tier"] == "nccl", (rank, result["tier"])
        # Staged through host memory, every call would move its tensor over PCIe both ways (2x the
        # bytes); the NCCL tier moves only this rank's half (one of 2 local ranks) both ways.
        assert 0 < result["pcie_bytes"] <= result["bytes"] * 1.01 + 4096, (rank, result)


def one_gpu_for_the_whole_host(rank: int, world_size: int) -> dict:
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    tensor = torch.full((LARGE,), float(rank + 1), device=device)
    try:
        dist.all_reduce(tensor)
    except ValueError as error:
        return {"error": str(error)}
    return {"equal": bool((tensor == 10.0).all()), "tier": _wan_backend().local_tier}


@needs_gpu
def test_auto_keeps_host_memory_when_a_hosts_ranks_share_a_gpu() -> None:
    results = run_ranks(one_gpu_for_the_whole_host, 4, before_init=two_hosts_of_two,
                        env={"TORCHWAN_LOCAL_BACKEND": "auto"})
    for rank, result in enumerate(results):
        assert result == {"equal": True, "tier": "host memory"}, (rank, result)


@needs_gpu
def test_nccl_fails_clearly_when_a_hosts_ranks_share_a_gpu() -> None:
    results = run_ranks(one_gpu_for_the_whole_host, 4, before_init=two_hosts_of_two,
                        env={"TORCHWAN_LOCAL_BACKEND": "nccl"})
    for rank, result in enumerate(results):
        assert "use the same GPU" in result.get("error", ""), (rank, result)
