"""One rank of the collectives benchmark. Started by bench/collectives/run.py with the usual
torch.distributed environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); times every
(collective, size) on "wan" and on Gloo in the same process, alternating, and rank 0 prints one
JSON line per measurement. In the WAN lab, "gloo-bbr" is a second Gloo group whose connections
were made while the hosts defaulted to BBR and which is timed while the hosts allow 64 MiB TCP
buffers (bench/common/host_tcp.py), restored right after.

Each measurement is the time from the first rank's start to the last rank's end of a run of
back-to-back calls sized to a time budget, divided by the calls, so a rank that finishes early
or starts late cannot flatter the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.common import host_tcp  # noqa: E402

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
    if collective == "barrier":
        return lambda: dist.barrier(group=group)
    raise ValueError(f"unknown collective {collective}")


def engine_bytes(collective: str, total_bytes: int, world: int) -> int:
    """`total_bytes` (nccl-tests' convention, as make_call reads it) in the engine's convention,
    which the cost model takes: the buffer, one rank's block for allgather and reduce-scatter,
    nothing for a barrier."""
    if collective == "barrier":
        return 0
    numel = max(total_bytes // ELEMENT_BYTES, world)
    numel -= numel % world
    if collective in ("allgather", "reduce_scatter"):
        return numel // world * ELEMENT_BYTES
    return numel * ELEMENT_BYTES


def prediction(collective: str, total_bytes: int, world: int, group) -> dict:
    """The algorithm a wan group runs this call with and the cost model's predicted seconds for
    it (csrc/cost_model.h; None where the model has no formula)."""
    backend = (group or dist.group.WORLD)._get_backend(torch.device("cpu"))
    algorithm, seconds = backend.predict(collective, engine_bytes(collective, total_bytes, world))
    return {"algorithm": algorithm, "predicted_s": seconds}


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


def count(connections: dict[tuple[str, str], str],
          earlier: dict[tuple[str, str], str]) -> dict[str, int]:
    """How many connections absent from `earlier` run each congestion control."""
    totals: dict[str, int] = {}
    for key, algorithm in connections.items():
        if key not in earlier:
            totals[algorithm] = totals.get(algorithm, 0) + 1
    return totals


@contextmanager
def host_tcp_set_to(values: dict[str, str], sync_group) -> Iterator[dict[str, str]]:
    """Every lab host's TCP sysctls hold `values` inside the block, and what they held before
    after it; yields what this rank's host really holds (empty on ranks that do not own a host)."""
    owner = host_tcp.owns_host()
    before = host_tcp.read(list(values)) if owner else {}
    try:
        applied = host_tcp.apply(values) if owner else {}
        dist.barrier(group=sync_group)
        yield applied
        dist.barrier(group=sync_group)
    finally:
        if owner:
            host_tcp.apply(before)


def time_call(call: Callable[[], None], budget_s: float, sync_group) -> tuple[float, int]:
    """Returns (seconds per call, calls timed). Every rank runs on this one machine, so all read
    the same monotonic clock: the time is from the first rank's start to the last rank's end of
    the timed calls, which no rank's skew at the starting barrier can shorten."""
    call()  # warm-up: first-touch of buffers, connection set-up, algorithm caches
    dist.barrier(group=sync_group)
    start = time.perf_counter()
    call()
    # Every rank must run the same number of calls: size the run from the slowest rank's estimate.
    estimate = torch.tensor([time.perf_counter() - start], dtype=torch.float64)
    dist.all_reduce(estimate, op=dist.ReduceOp.MAX, group=sync_group)
    iterations = int(min(50, max(1, budget_s / max(float(estimate.item()), 1e-6))))
    dist.barrier(group=sync_group)
    start = time.clock_gettime(time.CLOCK_MONOTONIC)
    for _ in range(iterations):
        call()
    end = time.clock_gettime(time.CLOCK_MONOTONIC)
    first_start = torch.tensor([-start], dtype=torch.float64)
    last_end = torch.tensor([end], dtype=torch.float64)
    dist.all_reduce(first_start, op=dist.ReduceOp.MAX, group=sync_group)
    dist.all_reduce(last_end, op=dist.ReduceOp.MAX, group=sync_group)
    return (float(last_end.item()) + float(first_start.item())) / iterations, iterations


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--collectives", default="allreduce,allgather,reduce_scatter,broadcast")
    parser.add_argument("--sizes", required=True, help="comma-separated byte counts")
    parser.add_argument("--backends", default="wan,gloo",
                        help="wan (default group), wan-hier (regions from TORCHWAN_LAB_REGION), "
                             "wan-flat (topology=flat), wan-ring (allreduce forced to the "
                             "flat ring: no regions, no host tier), wan-fp16/-bf16/-int8/-fp8 (that "
                             "compression), gloo, gloo-bbr (Gloo with the lab hosts' TCP tuned "
                             "as wan tunes its sockets; WAN lab only)")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--check", action="store_true",
                        help="first compare each collective's result with Gloo's")
    args = parser.parse_args()

    import torchwan  # registers "wan"

    dist.init_process_group("wan", timeout=timedelta(minutes=10))
    rank, world = dist.get_rank(), dist.get_world_size()
    # In the lab rank 0 records which congestion control each Gloo group's connections run: the
    # connections that appear while the group is created.
    watch = rank == 0 and host_tcp.in_lab()
    before = host_tcp.connections_of(os.getpid()) if watch else {}
    gloo = dist.new_group(backend="gloo", timeout=timedelta(minutes=10))
    dist.barrier(group=gloo)
    if watch:
        gloo_connections = count(host_tcp.connections_of(os.getpid()), before)
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
    if "wan-ring" in backends:
        groups["wan-ring"] = dist.new_group(backend="wan", timeout=timedelta(minutes=10),
                                            pg_options=torchwan.Options(algorithm="allreduce:ring"))
    for name in backends:
        if name in CODEC_BACKENDS:
            groups[name] = dist.new_group(
                backend="wan", timeout=timedelta(minutes=10),
                pg_options=torchwan.Options(compression=CODEC_BACKENDS[name]))
    if "gloo-bbr" in backends:
        if not host_tcp.in_lab():
            raise SystemExit("gloo-bbr tunes the TCP of WAN-lab hosts; on loopback it would "
                             "change this machine's: run it with --scenario")
        # Created while BBR is the hosts' default, so every connection of the group keeps BBR.
        before = host_tcp.connections_of(os.getpid()) if watch else {}
        with host_tcp_set_to(host_tcp.congestion("bbr"), gloo) as applied:
            groups["gloo-bbr"] = dist.new_group(backend="gloo", timeout=timedelta(minutes=10))
            dist.barrier(group=groups["gloo-bbr"])
        if watch:
            print(json.dumps({"host_tcp": {
                "while_creating_gloo_bbr": applied,
                "rank_0_connections_of_gloo": gloo_connections,
                "rank_0_connections_of_gloo_bbr": count(host_tcp.connections_of(os.getpid()),
                                                        before)}}), flush=True)
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
    printed_tuning = False
    for collective in args.collectives.split(","):
        # A barrier moves no data: one row, whatever the sizes.
        sizes = [0] if collective == "barrier" else [int(s) for s in args.sizes.split(",")]
        for size in sizes:
            for backend in backends:
                # Gloo is the reference the others are checked against; a barrier has no
                # result to compare.
                checked = (args.check and not backend.startswith("gloo")
                           and collective != "barrier")
                if checked:
                    lossy = backend in CODEC_BACKENDS or os.environ.get(
                        "TORCHWAN_COMPRESSION", "none") not in ("", "none")
                    check_call(collective, size, world, groups[backend], gloo, lossy)
                call = make_call(collective, size, world, groups[backend])
                if backend == "gloo-bbr":
                    # Large buffers only while this group runs: autotuning would hand them to
                    # every other group's connections too.
                    tuning = {**host_tcp.congestion("bbr"), **host_tcp.big_buffers()}
                    with host_tcp_set_to(tuning, gloo) as applied:
                        seconds, calls = time_call(call, args.budget, gloo)
                    if rank == 0 and not printed_tuning:
                        print(json.dumps({"host_tcp": {"while_timing_gloo_bbr": applied}}),
                              flush=True)
                        printed_tuning = True
                else:
                    seconds, calls = time_call(call, args.budget, gloo)
                if rank == 0:
                    record = {"collective": collective, "bytes": size, "backend": backend,
                              "world_size": world, "seconds": seconds, "calls": calls,
                              "checked": checked,
                              "compression": CODEC_BACKENDS.get(backend)}
                    if not backend.startswith("gloo") and backend not in CODEC_BACKENDS:
                        record.update(prediction(collective, size, world, groups[backend]))
                    print(json.dumps(record), flush=True)
    dist.barrier(group=gloo)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
