"""CUDA paths beyond test_cuda.py: the remaining collectives and their coalesced forms on device
tensors, PREMUL_SUM with a factor on the GPU, non-contiguous device tensors, a slow producer
(the collective must wait for the caller's stream), an input freed right after an async call,
compression (Options(compression=...), also through the host tier) and the DDP hooks on CUDA
tensors, bit for bit against CPU tensors and with only payloads crossing PCIe
(torchwan.stats()["pcie_bytes"]). Values are computed in the test, or compared with the same call
on CPU tensors (whose path test_collectives.py checks against Gloo). The ranks share GPU 0 when there is one GPU, one GPU each when there are several.
Skipped where there is no GPU; scripts/gpu_check.sh runs them on a GPU machine."""

from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

import torchwan
from conftest import TRANSPORTS
from multiprocess import run_ranks

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def own_device(rank: int) -> torch.device:
    device = torch.device("cuda", rank % torch.cuda.device_count())
    torch.cuda.set_device(device)
    return device


def check_rooted_and_coalesced(rank: int, world: int) -> list[str]:
    failures = []
    device = own_device(rank)
    total = float(sum(range(1, world + 1)))

    sent = torch.arange(world * 4, dtype=torch.float32, device=device) + 100 * rank
    received = torch.empty_like(sent)
    dist.all_to_all_single(received, sent)
    expected = torch.cat([torch.arange(rank * 4, rank * 4 + 4, dtype=torch.float32) + 100 * src
                          for src in range(world)])
    if not torch.equal(received.cpu(), expected):
        failures.append("all_to_all_single")

    root = world - 1
    mine = torch.full((6,), float(rank + 1), device=device)
    gathered = [torch.empty(6, device=device) for _ in range(world)] if rank == root else None
    dist.gather(mine, gathered, dst=root)
    if rank == root and not all(torch.equal(g.cpu(), torch.full((6,), float(r + 1)))
                                for r, g in enumerate(gathered)):
        failures.append("gather")
    chunks = [torch.full((3,), float(10 + r), device=device) for r in range(world)]
    piece = torch.empty(3, device=device)
    dist.scatter(piece, chunks if rank == root else None, src=root)
    if not torch.equal(piece.cpu(), torch.full((3,), float(10 + rank))):
        failures.append("scatter")
    reduced = torch.full((5,), float(rank + 1), device=device)
    dist.reduce(reduced, dst=root, op=dist.ReduceOp.MAX)
    if rank == root and not torch.equal(reduced.cpu(), torch.full((5,), float(world))):
        failures.append("reduce MAX")

    backend = dist.group.WORLD._get_backend(device)
    tensors = [torch.full((n,), float(rank + 1), device=device) for n in (3, 0, 5)]
    options = dist.AllreduceCoalescedOptions()
    options.reduceOp = dist.ReduceOp.SUM
    backend.allreduce_coalesced(tensors, options).wait()
    if not all(torch.equal(t.cpu(), torch.full((t.numel(),), total)) for t in tensors):
        failures.append("allreduce_coalesced")
    sizes = (2, 4)
    inputs = [torch.arange(float(n * world), device=device) + rank for n in sizes]
    outputs = [torch.empty(n, device=device) for n in sizes]
    rs_options = dist.ReduceScatterOptions()
    rs_options.reduceOp = dist.ReduceOp.SUM
    backend.reduce_scatter_tensor_coalesced(outputs, [t.clone() for t in inputs], rs_options).wait()
    for n, output in zip(sizes, outputs):
        full = torch.arange(float(n * world)) * world + sum(range(world))
        if not torch.equal(output.cpu(), full[rank * n:(rank + 1) * n]):
            failures.append(f"reduce_scatter_tensor_coalesced n={n}")
    gathered_all = [torch.empty(n * world, device=device) for n in sizes]
    backend.allgather_into_tensor_coalesced(
        gathered_all, [torch.full((n,), float(rank), device=device) for n in sizes]).wait()
    for n, output in zip(sizes, gathered_all):
        if not torch.equal(output.cpu(), torch.arange(world, dtype=torch.float32).repeat_interleave(n)):
            failures.append(f"allgather_into_tensor_coalesced n={n}")

    # PREMUL_SUM whose factor is itself a tensor on the GPU.
    factor = torch.tensor(0.5, dtype=torch.float64, device=device)
    scaled = torch.full((8,), float(rank + 1), device=device)
    dist.all_reduce(scaled, op=dist._make_nccl_premul_sum(factor))
    if not torch.equal(scaled.cpu(), torch.full((8,), 0.5 * total)):
        failures.append(f"PREMUL_SUM with a CUDA factor: {scaled.cpu().tolist()}")
    torch.cuda.synchronize()
    return failures


def check_ordering_and_lifetime(rank: int, world: int) -> list[str]:
    failures = []
    device = own_device(rank)
    total = float(sum(range(1, world + 1)))

    # Non-contiguous device tensors behave as the same view of a CPU tensor does: the same values,
    # or the same error.
    def transposed_allreduce(where: torch.device):
        base = (torch.arange(24.0).reshape(4, 6) + rank).to(where)
        view = base.t()
        try:
            dist.all_reduce(view)
        except Exception as error:  # noqa: BLE001 - the error's type is what is compared
            return type(error).__name__
        return view.cpu()

    on_cpu, on_gpu = transposed_allreduce(torch.device("cpu")), transposed_allreduce(device)
    if type(on_cpu) is not type(on_gpu) or (isinstance(on_cpu, torch.Tensor)
                                            and not torch.equal(on_cpu, on_gpu)):
        failures.append(f"non-contiguous: cpu gave {on_cpu!r}, cuda gave {on_gpu!r}")

    # A slow producer: the input is written by a kernel queued behind a long sleep on the
    # caller's stream; a collective that does not wait for that stream reads zeros.
    produced = torch.zeros(1 << 20, device=device)
    torch.cuda._sleep(100_000_000)  # on the order of 50-100 ms of GPU time
    produced.fill_(rank + 1)
    dist.all_reduce(produced, async_op=True).wait()
    if not torch.equal(produced.cpu(), torch.full((1 << 20,), total)):
        failures.append("slow producer: the allreduce did not wait for the caller's stream")

    # The input freed right after an async call: the backend holds on to it, and the caching
    # allocator handing its memory to the next tensor must not change what is sent.
    numel = 1 << 20
    x = torch.full((numel,), float(rank + 1), device=device)
    gathered = torch.empty(numel * world, device=device)
    work = dist.all_gather_into_tensor(gathered, x, async_op=True)
    del x
    overwrite = torch.full((numel,), -1.0, device=device)
    work.wait()
    expected = torch.arange(1, world + 1, dtype=torch.float32).repeat_interleave(numel)
    if not torch.equal(gathered.cpu(), expected):
        failures.append("input freed after an async call: wrong bytes sent")
    del overwrite
    torch.cuda.synchronize()
    return failures


def check_compression_on_device(rank: int, world: int, host_tier: bool = False) -> list[str]:
    """Options(compression="int8") on CUDA tensors: the same bits as on CPU tensors, and (where the
    codecs run on the GPU) only the payloads cross PCIe. The host tier sums in host memory, so
    there large tensors are staged whole."""
    failures = []
    device = own_device(rank)
    group = dist.new_group(backend="wan", pg_options=torchwan.Options(compression="int8"))
    on_device = torchwan._C.compression.device_codecs
    generator = torch.Generator().manual_seed(1000 + rank)
    cases = [(1 << 16, torch.float32, dist.ReduceOp.SUM), (1000, torch.float32, dist.ReduceOp.SUM),
             ((1 << 18) + 3, torch.float32, dist.ReduceOp.AVG),
             (3 << 16, torch.bfloat16, dist.ReduceOp.SUM), ((1 << 20) + 5, torch.float64,
                                                            dist.ReduceOp.SUM)]
    for numel, dtype, op in cases:
        data = torch.randn(numel, generator=generator).to(dtype)
        on_cpu, on_gpu = data.clone(), data.to(device)
        dist.all_reduce(on_cpu, op=op, group=group)
        torch.cuda.synchronize()
        before = torchwan.stats(group)["pcie_bytes"]
        dist.all_reduce(on_gpu, op=op, group=group)
        torch.cuda.synchronize()
        crossed = torchwan.stats(group)["pcie_bytes"] - before
        name = f"int8 allreduce n={numel} {dtype} {op}"
        if not on_gpu.is_cuda or not torch.equal(on_gpu.cpu(), on_cpu):
            failures.append(f"{name}: CUDA result differs from the CPU path")
        staged = 2 * numel * data.element_size()  # in and out, whole
        if numel * data.element_size() < 64 * 1024:
            if crossed != staged:
                failures.append(f"{name}: {crossed} bytes over PCIe, staging moves {staged}")
        elif on_device and not host_tier and not 0 < crossed < numel * 4 * 0.75:
            failures.append(f"{name}: {crossed} bytes over PCIe, not the compressed payloads")
    torch.cuda.synchronize()
    return failures


def check_hooks_on_device(rank: int, world: int) -> list[str]:
    """Every codec of the hooks' compressed allreduce, with error feedback and stochastic rounding
    where the codec has it, over three steps: CUDA buckets give the CPU's bits, and so do their
    residuals, which stay on the GPU."""
    failures = []
    device = own_device(rank)
    generator = torch.Generator().manual_seed(rank)
    numel = (1 << 17) + 77
    for codec in torchwan.compression.CODECS:
        on_cpu = torchwan.hooks.State(codec=codec, seed=11, stochastic_rounding=True)
        on_gpu = torchwan.hooks.State(codec=codec, seed=11, stochastic_rounding=True)
        for step in range(3):
            grad = torch.randn(numel, generator=generator)
            expected = torchwan.hooks.compressed_mean(on_cpu, codec, 0, grad.clone(), step)
            result = torchwan.hooks.compressed_mean(on_gpu, codec, 0, grad.to(device), step)
            if not result.is_cuda or not torch.equal(result.cpu(), expected):
                failures.append(f"{codec} step {step}: CUDA result differs from the CPU path")
        for table in ("residuals", "shard_residuals"):
            cpu_residual, gpu_residual = getattr(on_cpu, table)[0], getattr(on_gpu, table)[0]
            if torchwan._C.compression.device_codecs and not gpu_residual.is_cuda:
                failures.append(f"{codec}: {table} left the GPU")
            if not torch.equal(gpu_residual.cpu(), cpu_residual):
                failures.append(f"{codec}: {table} differ from the CPU path")
    torch.cuda.synchronize()
    return failures


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))


def train_with_hook(rank: int, world: int) -> dict:
    device = own_device(rank)
    model = make_model().to(device)
    reference = copy.deepcopy(model)
    ddp = DistributedDataParallel(model, device_ids=[device.index], bucket_cap_mb=0.01)
    ddp.register_comm_hook(torchwan.hooks.State(), torchwan.hooks.int8)
    plain = DistributedDataParallel(reference, device_ids=[device.index], bucket_cap_mb=0.01)
    generator = torch.Generator().manual_seed(rank)
    inputs = torch.randn(64, 32, generator=generator).to(device)
    targets = inputs.sum(dim=1, keepdim=True)
    losses = []
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01)
    for _ in range(5):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(ddp(inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # One step of each on the same weights: the compressed gradient is near the exact one.
    plain.module.load_state_dict(ddp.module.state_dict())
    for net in (ddp, plain):
        net.zero_grad()
        nn.functional.mse_loss(net(inputs), targets).backward()
    compressed = torch.cat([p.grad.flatten() for p in ddp.parameters()]).cpu()
    exact = torch.cat([p.grad.flatten() for p in plain.parameters()]).cpu()
    params = torch.cat([p.detach().flatten() for p in ddp.parameters()]).cpu()
    return {"losses": losses, "params": params,
            "relative_error": float((compressed - exact).norm() / exact.norm())}


@needs_gpu
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rooted_coalesced_and_premul_sum_on_cuda(transport: str) -> None:
    results = run_ranks(check_rooted_and_coalesced, 3, env={"TORCHWAN_TRANSPORT": transport})
    assert results == [[]] * 3, results


@needs_gpu
def test_stream_ordering_and_input_lifetime_on_cuda() -> None:
    results = run_ranks(check_ordering_and_lifetime, 2)
    assert results == [[]] * 2, results


@needs_gpu
def test_compression_option_on_cuda_matches_the_cpu_path() -> None:
    results = run_ranks(check_compression_on_device, 2)
    assert results == [[]] * 2, results


def two_hosts_of_two(rank: int) -> None:
    os.environ["TORCHWAN_HOST_ID"] = f"host-{rank // 2}"


@needs_gpu
def test_compression_option_on_cuda_through_the_host_tier_matches_the_cpu_path() -> None:
    # Two hosts of two ranks: the host tier sums through shared memory, on the host.
    results = run_ranks(check_compression_on_device, 4, True, before_init=two_hosts_of_two)
    assert results == [[]] * 4, results


@needs_gpu
def test_hooks_on_cuda_match_the_cpu_path_bit_for_bit() -> None:
    # Three ranks: the mean divides by 3, which is not exact in binary.
    results = run_ranks(check_hooks_on_device, 3)
    assert results == [[]] * 3, results


@needs_gpu
def test_int8_hook_trains_a_cuda_model() -> None:
    results = run_ranks(train_with_hook, 2)
    assert torch.equal(results[0]["params"], results[1]["params"]), "ranks disagree"
    for result in results:
        assert result["losses"][-1] < result["losses"][0], result["losses"]
        assert result["relative_error"] < 0.05, result["relative_error"]
