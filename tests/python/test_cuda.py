"""CUDA tensors through the wan backend: staged through pinned host memory, ordered after the
caller's stream, results visible to the caller's stream after wait() / Future.wait(). Skipped
where there is no GPU (the ranks share GPU 0 when there is only one)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from conftest import TRANSPORTS
from multiprocess import run_ranks

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def check_cuda_collectives(rank: int, world: int) -> list[str]:
    failures = []
    device = torch.device("cuda", rank % torch.cuda.device_count())
    torch.cuda.set_device(device)
    gloo = dist.new_group(backend="gloo")
    side = torch.cuda.Stream()
    for dtype in (torch.float32, torch.bfloat16, torch.int64, torch.uint8):
        for numel in (0, 7, 1 << 20):
            with torch.cuda.stream(side):
                # Produced on the caller's (side) stream just before the call: the op must wait.
                t = torch.full((numel,), 1, dtype=dtype, device=device) * (rank + 1)
                work = dist.all_reduce(t, async_op=True)
                work.wait()
                t.mul_(2)  # ordered after the result on the caller's stream
            side.synchronize()
            expected = torch.full((numel,), 2 * sum(r + 1 for r in range(world)), dtype=dtype)
            if not torch.equal(t.cpu(), expected):
                failures.append(f"all_reduce cuda {dtype} n={numel}")
    # Future semantics: the value's tensors are ready on the stream that waits on the future.
    t = torch.arange(1000, device=device, dtype=torch.float32) + rank
    future = dist.all_reduce(t, async_op=True).get_future()
    value = future.wait()
    if not (value[0].is_cuda and torch.equal(value[0].cpu(), (torch.arange(1000.0) * world + sum(range(world))))):
        failures.append("future value on cuda")
    # Every other collective once, against Gloo on CPU copies.
    x = torch.randn(12, device=device) + rank
    out = torch.empty(12 * world, device=device)
    dist.all_gather_into_tensor(out, x)
    ref = torch.empty(12 * world)
    dist.all_gather_into_tensor(ref, x.cpu(), group=gloo)
    if not torch.equal(out.cpu(), ref):
        failures.append("all_gather_into_tensor cuda")
    rs = torch.empty(3, device=device)
    dist.reduce_scatter_tensor(rs, torch.arange(3.0 * world, device=device))
    if not torch.equal(rs.cpu(), (torch.arange(3.0 * world) * world)[rank * 3 : rank * 3 + 3]):
        failures.append("reduce_scatter_tensor cuda")
    b = torch.full((5,), float(rank), device=device)
    dist.broadcast(b, src=world - 1)
    if not torch.equal(b.cpu(), torch.full((5,), float(world - 1))):
        failures.append("broadcast cuda")
    # Point-to-point on device tensors.
    payload = torch.full((100,), float(rank), device=device)
    incoming = torch.empty(100, device=device)
    works = [
        dist.isend(payload, dst=(rank + 1) % world),
        dist.irecv(incoming, src=(rank - 1) % world),
    ]
    for w in works:
        w.wait()
    if not torch.equal(incoming.cpu(), torch.full((100,), float((rank - 1) % world))):
        failures.append("send/recv cuda")
    torch.cuda.synchronize()
    return failures


def test_backend_registered_for_cuda_when_built_with_it() -> None:
    import torchwan

    devices = dist.Backend.backend_capability.get("wan", [])
    assert "cpu" in devices
    assert ("cuda" in devices) == bool(torchwan._C.built_with_cuda)


@needs_gpu
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cuda_collectives_follow_stream_semantics(transport: str) -> None:
    results = run_ranks(check_cuda_collectives, 2, env={"TORCHWAN_TRANSPORT": transport})
    assert results == [[]] * 2, results
