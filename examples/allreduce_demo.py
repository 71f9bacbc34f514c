"""The main job: 4 processes on loopback all-reduce a buffer on the "wan" backend and on Gloo,
check the result, and print the bandwidth of each side by side.

    python examples/allreduce_demo.py [--world-size 4] [--megabytes 64] [--iterations 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from datetime import timedelta

import torch
import torch.distributed as dist


def timed_allreduce(tensor: torch.Tensor, group, iterations: int) -> float:
    dist.all_reduce(tensor, group=group)  # warm-up: connections, first-touch of buffers
    dist.barrier(group=group)
    start = time.perf_counter()
    for _ in range(iterations):
        dist.all_reduce(tensor, group=group)
    return (time.perf_counter() - start) / iterations


def rank_main(rank: int, world_size: int, init_file: str, numel: int, iterations: int, out) -> None:
    os.environ.setdefault("TORCHWAN_HOST", "127.0.0.1")
    import torchwan  # noqa: F401  registers the "wan" backend

    store = dist.FileStore(init_file, world_size)
    dist.init_process_group(
        "wan", store=store, rank=rank, world_size=world_size, timeout=timedelta(seconds=120)
    )
    gloo = dist.new_group(backend="gloo")

    # Result check: every rank contributes rank+1 at each element; the sum is known exactly.
    check = torch.full((numel,), float(rank + 1))
    dist.all_reduce(check)
    correct = bool(torch.all(check == world_size * (world_size + 1) / 2))

    buffer = torch.ones(numel)
    wan_seconds = timed_allreduce(buffer, None, iterations)
    gloo_seconds = timed_allreduce(buffer, gloo, iterations)
    all_correct = torch.tensor([int(correct)])
    dist.all_reduce(all_correct, op=dist.ReduceOp.MIN)
    if rank == 0:
        out.put((bool(all_correct.item()), wan_seconds, gloo_seconds))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-size", type=int, default=4)
    parser.add_argument("--megabytes", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()

    numel = args.megabytes * (1 << 20) // 4
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    with tempfile.TemporaryDirectory() as directory:
        init_file = os.path.join(directory, "store")
        processes = [
            context.Process(
                target=rank_main,
                args=(rank, args.world_size, init_file, numel, args.iterations, out),
            )
            for rank in range(args.world_size)
        ]
        for process in processes:
            process.start()
        correct, wan_seconds, gloo_seconds = out.get(timeout=600)
        for process in processes:
            process.join()

    nbytes = numel * 4
    factor = 2 * (args.world_size - 1) / args.world_size  # nccl-tests busbw for allreduce
    print(f"all-reduce of {args.megabytes} MiB float32 on {args.world_size} processes (loopback)")
    print(f"result check: {'PASSED' if correct else 'FAILED'}")
    print(f"{'backend':8} {'time/op (ms)':>13} {'algbw (GB/s)':>13} {'busbw (GB/s)':>13}")
    for name, seconds in (("wan", wan_seconds), ("gloo", gloo_seconds)):
        algbw = nbytes / seconds / 1e9
        print(f"{name:8} {seconds * 1e3:13.1f} {algbw:13.2f} {algbw * factor:13.2f}")
    print(f"wan / gloo bandwidth ratio: {gloo_seconds / wan_seconds:.2f}")
    if not correct:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
