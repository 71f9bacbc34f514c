"""One rank of the state-sync benchmark (started by bench/state_sync/run.py): rank 0 holds a state
of many tensors of mixed dtypes and sends it to rank 1, first with torchwan's state transfer over
the wan backend, then tensor by tensor with Gloo broadcasts (what a hand-written resync does).
Rank 0 prints one JSON line per measurement."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

import torchwan  # noqa: F401  (registers "wan")
from torchwan.elastic import state_transfer

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float32, torch.int64]


def make_state(total_bytes: int, seed: int) -> dict:
    """A model-plus-optimizer-like state: a few large tensors, many small ones, mixed dtypes."""
    generator = torch.Generator().manual_seed(seed)
    state: dict = {"model": {}, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}}
    remaining, index = total_bytes, 0
    while remaining > 0:
        dtype = DTYPES[index % len(DTYPES)]
        size = (16 << 20) if index % 8 == 0 else (2 << 20) if index % 3 else (4 << 10)
        size = min(size, remaining)
        numel = max(1, size // torch.empty((), dtype=dtype).element_size())
        if dtype.is_floating_point:
            tensor = torch.randn(numel, generator=generator).to(dtype)
        else:
            tensor = torch.randint(0, 1 << 40, (numel,), generator=generator, dtype=dtype)
        target = state["model"] if index % 2 == 0 else state["optimizer"]["state"]
        target[f"t{index}"] = tensor
        remaining -= tensor.numel() * tensor.element_size()
        index += 1
    return state


def _status_bytes(field: str) -> int:
    """A size from /proc/self/status (VmHWM: peak resident, VmRSS: resident now), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def rss_peak_bytes() -> int:
    return _status_bytes("VmHWM")


def rss_now_bytes() -> int:
    return _status_bytes("VmRSS")


def reset_peak() -> None:
    """Restarts VmHWM at the current RSS (Linux: write 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def gather_peaks(growth: int, gloo) -> list[int]:
    values = torch.tensor([growth], dtype=torch.int64)
    out = [torch.zeros(1, dtype=torch.int64) for _ in range(dist.get_world_size())]
    dist.all_gather(out, values, group=gloo)
    return [int(v.item()) for v in out]


def measure_wan(state: dict, chunk_bytes: int, total_bytes: int, gloo) -> dict:
    received: list = []
    reset_peak()
    before = rss_now_bytes()
    dist.barrier(group=gloo)
    stats = state_transfer.Stats()
    start = time.perf_counter()
    state_transfer.send_or_receive(
        dist.group.WORLD, 0, lambda: state, received.append, chunk_bytes=chunk_bytes, stats=stats
    )
    seconds = time.perf_counter() - start
    growth = gather_peaks(rss_peak_bytes() - before, gloo)
    exact = True
    if dist.get_rank() == 1:
        reference = make_state(total_bytes, seed=0)
        exact = all(
            torch.equal(a.view(torch.uint8), b.view(torch.uint8))
            for a, b in zip(_tensors(reference), _tensors(received[0]))
        )
    flags = torch.tensor([int(exact)])
    dist.all_reduce(flags, op=dist.ReduceOp.MIN, group=gloo)
    return {"seconds": seconds, "rss_growth_bytes": growth, "exact": bool(flags.item()),
            "in_place_tensors": stats.in_place, "tensors": stats.tensors}


def measure_gloo(state: dict, gloo) -> dict:
    reset_peak()
    before = rss_now_bytes()
    dist.barrier(group=gloo)
    start = time.perf_counter()
    for tensor in _tensors(state):
        dist.broadcast(tensor, src=0, group=gloo)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_growth_bytes": gather_peaks(rss_peak_bytes() - before, gloo),
            "exact": True, "tensors": len(_tensors(state))}


def _tensors(state: dict) -> list[torch.Tensor]:
    return list(state["model"].values()) + list(state["optimizer"]["state"].values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bytes", type=int, required=True)
    parser.add_argument("--chunk-bytes", type=int, default=state_transfer.DEFAULT_CHUNK_BYTES)
    parser.add_argument("--backends", default="wan,gloo")
    args = parser.parse_args()
    dist.init_process_group("wan", timeout=timedelta(minutes=10))
    gloo = dist.new_group(backend="gloo", timeout=timedelta(minutes=10))
    rank = dist.get_rank()
    # The sender holds the real state; the receiver an equal-shaped one with other values (a
    # member that fell behind), so the transfer writes into its tensors in place.
    state = make_state(args.bytes, seed=0 if rank == 0 else 1)
    for backend in args.backends.split(","):
        if backend == "wan":
            row = measure_wan(state, args.chunk_bytes, args.bytes, gloo)
        else:
            state = make_state(args.bytes, seed=0 if rank == 0 else 1)
            row = measure_gloo(state, gloo)
        if rank == 0:
            row.update(backend=backend, bytes=args.bytes, chunk_bytes=args.chunk_bytes)
            print(json.dumps(row), flush=True)
    dist.barrier(group=gloo)
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    main()
