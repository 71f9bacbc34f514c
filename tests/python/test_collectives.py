"""Every collective of the first backend surface, checked element-wise against Gloo run on the
same inputs in the same processes, on 2 and 4 real processes and on both transports."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torch.distributed as dist

from conftest import TRANSPORTS
from multiprocess import run_ranks

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.int64]
OPS = {
    "SUM": dist.ReduceOp.SUM,
    "AVG": dist.ReduceOp.AVG,
    "MIN": dist.ReduceOp.MIN,
    "MAX": dist.ReduceOp.MAX,
    "PRODUCT": dist.ReduceOp.PRODUCT,
}
SIZES = [0, 1, 7, 1000, 65537]
LARGE_SIZE = (1 << 20) + 3  # float32 only: pipelined, striped path
TOLERANCE = {
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.float64: dict(rtol=1e-12, atol=1e-12),
    torch.float16: dict(rtol=1e-2, atol=1e-2),
    torch.bfloat16: dict(rtol=2e-2, atol=2e-2),
}


def make_input(rank: int, dtype: torch.dtype, numel: int, op_name: str, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1000 + rank)
    if dtype.is_floating_point:
        if op_name == "PRODUCT":  # stay near 1 so products neither overflow nor vanish
            values = 1.0 + 0.1 * torch.rand(numel, generator=generator, dtype=torch.float64)
        else:
            values = torch.randn(numel, generator=generator, dtype=torch.float64)
        return values.to(dtype)
    low, high = (-3, 4) if op_name == "PRODUCT" else (-1000, 1000)
    return torch.randint(low, high, (numel,), generator=generator, dtype=dtype)


def reference_allreduce(tensor: torch.Tensor, op_name: str, gloo) -> torch.Tensor:
    """Gloo's answer; AVG (which Gloo lacks) is Gloo's SUM divided by the world size."""
    expected = tensor.clone()
    if op_name == "AVG":
        dist.all_reduce(expected, op=dist.ReduceOp.SUM, group=gloo)
        return expected / dist.get_world_size()
    dist.all_reduce(expected, op=OPS[op_name], group=gloo)
    return expected


def digest(tensor: torch.Tensor) -> str:
    # hashlib, not hash(): str/bytes hashing is salted differently in every process.
    return hashlib.sha256(tensor.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def check_allreduce(rank: int, world_size: int) -> list[str]:
    gloo = dist.new_group(backend="gloo")
    failures = []
    seed = 0
    for dtype in DTYPES:
        for op_name in OPS:
            if op_name == "AVG" and not dtype.is_floating_point:
                continue
            sizes = SIZES + ([LARGE_SIZE] if dtype == torch.float32 else [])
            for numel in sizes:
                seed += 1
                original = make_input(rank, dtype, numel, op_name, seed)
                result = original.clone()
                dist.all_reduce(result, op=OPS[op_name])
                expected = reference_allreduce(original, op_name, gloo)
                case = f"allreduce {op_name} {dtype} n={numel}"
                if dtype.is_floating_point:
                    if not torch.allclose(result, expected, **TOLERANCE[dtype]):
                        worst = (result.double() - expected.double()).abs().max().item()
                        failures.append(f"{case}: max abs diff {worst}")
                elif not torch.equal(result, expected):
                    failures.append(f"{case}: differs from gloo")
                # Replicas must stay bit-identical: compare digests across ranks.
                digests = [None] * world_size
                dist.all_gather_object(digests, digest(result), group=gloo)
                if len(set(digests)) != 1:
                    failures.append(f"{case}: ranks disagree bitwise")
    return failures


def check_broadcast_barrier_p2p(rank: int, world_size: int) -> list[str]:
    gloo = dist.new_group(backend="gloo")
    failures = []
    for dtype in DTYPES:
        for root in range(world_size):
            for numel in (0, 5, 300_001):
                data = make_input(rank, dtype, numel, "SUM", root + numel)
                ours, theirs = data.clone(), data.clone()
                dist.broadcast(ours, src=root)
                dist.broadcast(theirs, src=root, group=gloo)
                if not torch.equal(ours, theirs):
                    failures.append(f"broadcast {dtype} n={numel} root={root} differs from gloo")
    dist.barrier()
    # Ring exchange: every rank sends to the next and receives from the previous.
    for numel in (0, 3, 1 << 20):
        payload = torch.arange(numel, dtype=torch.float32) + rank
        incoming = torch.empty(numel, dtype=torch.float32)
        send = dist.isend(payload, dst=(rank + 1) % world_size, tag=7)
        recv = dist.irecv(incoming, src=(rank - 1) % world_size, tag=7)
        send.wait()
        recv.wait()
        expected = torch.arange(numel, dtype=torch.float32) + (rank - 1) % world_size
        if not torch.equal(incoming, expected):
            failures.append(f"send/recv n={numel} from {(rank - 1) % world_size} wrong")
    return failures


def check_async_work_and_future(rank: int, world_size: int) -> list[str]:
    failures = []
    tensors = [torch.full((1000,), float(rank + i)) for i in range(16)]
    works = [dist.all_reduce(t, async_op=True) for t in tensors]
    futures = [w.get_future() for w in works]
    for i, (work, future) in enumerate(zip(works, futures)):
        work.wait()
        value = future.wait()
        expected = sum(r + i for r in range(world_size))
        if not (isinstance(value, list) and torch.equal(value[0], torch.full((1000,), float(expected)))):
            failures.append(f"async allreduce {i}: future value wrong")
    return failures


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("world_size", [2, 4])
def test_allreduce_matches_gloo(transport: str, world_size: int) -> None:
    results = run_ranks(check_allreduce, world_size, env={"TORCHWAN_TRANSPORT": transport})
    assert results == [[]] * world_size, results


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("world_size", [2, 4])
def test_broadcast_barrier_send_recv_match_gloo(transport: str, world_size: int) -> None:
    results = run_ranks(
        check_broadcast_barrier_p2p, world_size, env={"TORCHWAN_TRANSPORT": transport}
    )
    assert results == [[]] * world_size, results


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_async_ops_complete_futures_with_tensor_lists(transport: str) -> None:
    results = run_ranks(check_async_work_and_future, 2, env={"TORCHWAN_TRANSPORT": transport})
    assert results == [[]] * 2, results
