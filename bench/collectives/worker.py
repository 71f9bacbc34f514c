"""One rank of the collectives benchmark. Started by bench/collectives/run.py with the usual
torch.distributed environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); times every
(collective, size) on "wan" and on Gloo in the same process, alternating, and rank 0 prints one
JSON line per measurement.

Each measurement is the slowest rank's mean time per call over a run sized to a time budget, so
a rank that finishes early cannot flatter the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import timedelta
from typing import Callable

import torch
import torch.distributed as dist

ELEMENT_BYTES = 4  # float32 throughout, as nccl-tests' default
# Backends that are "wan" with the backend's allreduce compression turned on, beside plain "wan"
# in the same run (the default group follows TORCHWAN_COMPRESSION, unset: uncompressed).
CODEC_BACKENDS = {"wan-fp16": "fp16", "wan-bf16": "bf16", "wan-int8": "int8", "wan-fp8": "fp8"}


def make_call(collective: str, total_bytes: int, world: int, group) -> Callable[[], None]:
    """Returns a closure running one `collective` of `total_bytes` (nccl-tests' size convention:
    the allreduce/broadcast buffer, the gathered output, the reduce-scatter input)."""
    numel = max(total_bytes // ELEMENT_BYTES, world)
    numel -= numel % world
    if collective == "allreduce":
        buffer = torch.ones(numel)
        return lambda: dist.all_reduce(buffer, group=group)
    if collective == "broadcast":
        buffer = torch.ones(numel)
        return lambda: dist.broadcast(buffer, src=0, group=group)
    if collective == "allgather":
        output = torch.empty(numel)
        shard = torch.ones(numel // world)
        return lambda: dist.all_gather_into_tensor(output, shard, group=group)
    if collective == "reduce_scatter":
        full = torch.ones(numel)
        shard = torch.empty(numel // world)
        return lambda: dist.reduce_scatter_tensor(shard, full, group=group)
    raise ValueError(f"unknown collective {collective}")


def check_call(collective: str, total_bytes: int, world: int, group, reference_group,
               lossy: bool) -> None:
    """Runs `collective` once on `group` and once on Gloo (`reference_group`) with the same
    rank-dependent input, and fails unless the outputs agree: exactly, or within the codec's
    error when the wan side compresses."""
    numel = max(total_bytes // ELEMENT_BYTES, world)
    numel -= numel % world
    rank = dist.get_rank()
    # Small integers: sums of them are exact in float32, whatever the order of reduction.
    data = (torch.arange(numel) % 97 + rank).float()
    outputs = []
    for g in (group, reference_group):
        if collective == "allreduce":
            out = data.clone()
            dist.all_reduce(out, group=g)
        elif collective == "broadcast":
            out = data.clone()
            dist.broadcast(out, src=0, group=g)
        elif collective == "allgather":
            out = torch.empty(numel)
            dist.all_gather_into_tensor(out, data[: numel // world].clone(), group=g)
        else:
            out = torch.empty(numel // world)
            dist.reduce_scatter_tensor(out, data.clone(), group=g)
        outputs.append(out)
    if lossy:
        ok = torch.allclose(outputs[0], outputs[1], rtol=0.02, atol=0.02 * world * 97)
    else:
        ok = torch.equal(outputs[0], outputs[1])
    if not ok:
        raise AssertionError(f"rank {rank}: {collective} of {total_bytes} bytes differs from Gloo")


def time_call(call: Callable[[], None], budget_s: float, sync_group) -> float:
    call()  # warm-up: first-touch of buffers, connection set-up, algorithm caches
    dist.barrier(group=sync_group)
    start = time.perf_counter()
    call()
    # Every rank must run the same number of calls: size the run from the slowest rank's estimate.
    estimate = torch.tensor([time.perf_counter() - start], dtype=torch.float64)
    dist.all_reduce(estimate, op=dist.ReduceOp.MAX, group=sync_group)
    iterations = int(min(50, max(1, budget_s / max(float(estimate.item()), 1e-6))))
    dist.barrier(group=sync_group)
    start = time.perf_counter()
    for _ in range(iterations):
        call()
    mean = (time.perf_counter() - start) / iterations
    slowest = torch.tensor([mean], dtype=torch.float64)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX, group=sync_group)
    return float(slowest.item())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--collectives", default="allreduce,allgather,reduce_scatter,broadcast")
    parser.add_argument("--sizes", required=True, help="comma-separated byte counts")
    parser.add_argument("--backends", default="wan,gloo",
                        help="wan (default group), wan-hier (regions from TORCHWAN_LAB_REGION), "
                             "wan-flat (topology=flat), wan-fp16/-bf16/-int8/-fp8 (that "
                             "compression), gloo")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--check", action="store_true",
                        help="first compare each collective's result with Gloo's")
    args = parser.parse_args()

    import torchwan  # registers "wan"

    dist.init_process_group("wan", timeout=timedelta(minutes=10))
    rank, world = dist.get_rank(), dist.get_world_size()
    gloo = dist.new_group(backend="gloo", timeout=timedelta(minutes=10))
    groups = {"wan": None, "gloo": gloo}
    backends = args.backends.split(",")
    if "wan-hier" in backends:
        # The lab's own region labels: what the hierarchy should find, stated rather than measured.
        groups["wan-hier"] = dist.new_group(
            backend="wan", timeout=timedelta(minutes=10),
            pg_options=torchwan.Options(region=os.environ["TORCHWAN_LAB_REGION"],
                                        topology="regions"))
    if "wan-flat" in backends:
        groups["wan-flat"] = dist.new_group(backend="wan", timeout=timedelta(minutes=10),
                                            pg_options=torchwan.Options(topology="flat"))
    for name in backends:
        if name in CODEC_BACKENDS:
            groups[name] = dist.new_group(
                backend="wan", timeout=timedelta(minutes=10),
                pg_options=torchwan.Options(compression=CODEC_BACKENDS[name]))
    if rank == 0:
        # What each wan group runs on; the default group's is what "auto" decided for this world.
        for name in ("wan", "wan-hier", "wan-flat"):
            if name not in groups:
                continue
            group = groups[name] or dist.group.WORLD
            backend = group._get_backend(torch.device("cpu"))
            record = {"topology": name, "regions": backend.regions,
                      "source": backend.topology_source, "rtt_ms": backend.rtt_ms}
            print(json.dumps(record), flush=True)
    for collective in args.collectives.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            for backend in backends:
                if args.check and backend != "gloo":
                    lossy = backend in CODEC_BACKENDS or os.environ.get(
                        "TORCHWAN_COMPRESSION", "none") not in ("", "none")
                    check_call(collective, size, world, groups[backend], gloo, lossy)
                call = make_call(collective, size, world, groups[backend])
                seconds = time_call(call, args.budget, gloo)
                if rank == 0:
                    record = {"collective": collective, "bytes": size, "backend": backend,
                              "world_size": world, "seconds": seconds,
                              "checked": args.check,
                              "compression": CODEC_BACKENDS.get(backend)}
                    print(json.dumps(record), flush=True)
    dist.barrier(group=gloo)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
