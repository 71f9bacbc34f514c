"""One rank of the host-tier benchmark, started by bench/host_tier/__main__.py with the usual
torch.distributed environment. Times float32 allreduces on each group in turn and rank 0 prints
one JSON line per (group, size).

Groups, all over the same 8 processes:
- `wan`: the default group, `local_backend=auto`: ranks that share a host reduce through shared
  memory and only the step between hosts uses the network (`allreduce:hosts`).
- `wan-none`: `local_backend=none`: every rank counts as a host of its own (what
  TORCHWAN_LOCAL_BACKEND=none gives); the group still picks its algorithm from its topology.
- `wan-flat`: `local_backend=none` and `topology=flat`: no hierarchy of any kind.
- `gloo`: Gloo's allreduce.

Timing: every rank starts each call at one agreed instant of CLOCK_MONOTONIC (all ranks run on
one kernel, so they share that clock), and the call's time is the last rank's end minus that
instant; no barrier skew enters it. The median over the timed calls is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.host_tier.reference import expected_allreduce, rank_input  # noqa: E402

TIMEOUT = timedelta(minutes=10)
# Time between the agreement on a start instant and the instant itself: long enough for the
# agreement (one small Gloo allreduce over 50 ms links) to reach every rank first.
START_MARGIN_S = 0.5


def make_groups(names: list[str]) -> dict:
    import torchwan

    options = {
        "wan-none": torchwan.Options(local_backend="none"),
        "wan-flat": torchwan.Options(local_backend="none", topology="flat"),
    }
    groups = {}
    for name in names:
        if name == "wan":
            groups[name] = dist.group.WORLD
        elif name == "gloo":
            groups[name] = dist.new_group(backend="gloo", timeout=TIMEOUT)
        else:
            groups[name] = dist.new_group(backend="wan", timeout=TIMEOUT,
                                          pg_options=options[name])
    return groups


def wan_backend(group):
    backend = group._get_backend(torch.device("cpu"))
    return backend if hasattr(backend, "predict") else None


def host_of_this_rank() -> int:
    """The network namespace this process runs in: one per emulated lab host."""
    return os.stat("/proc/self/ns/net").st_ino


def check(group, numel: int, rank: int, world: int) -> None:
    """One allreduce of rank-dependent input against the sum computed locally."""
    data = rank_input(numel, rank)
    dist.all_reduce(data, group=group)
    if not torch.equal(data, expected_allreduce(numel, world)):
        raise AssertionError(f"rank {rank}: allreduce of {numel} floats differs from the reference")


def sent_bytes(group, same_host: set[int]) -> dict[str, int]:
    """Bytes this rank has sent so far on `group`, to peers on other hosts and on its own."""
    import torchwan

    totals = {"other_hosts": 0, "same_host": 0}
    for peer, counters in torchwan.stats(group)["peers"].items():
        totals["same_host" if peer in same_host else "other_hosts"] += counters["bytes_sent"]
    return totals


def timed_calls(call, iterations: int, sync) -> tuple[list[float], float]:
    """Seconds of each call (agreed start to last rank's end) and this rank's worst lateness
    at an agreed start (0 when the margin sufficed)."""
    seconds, late = [], 0.0
    now = torch.tensor([time.monotonic()], dtype=torch.float64)
    dist.all_reduce(now, op=dist.ReduceOp.MAX, group=sync)
    start_at = float(now.item()) + START_MARGIN_S
    for _ in range(iterations):
        delay = start_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        late = max(late, -delay)
        call()
        end = time.monotonic()
        # One agreement per call: the last rank's end, and the next start instant (the latest
        # proposal, far enough ahead for this agreement to reach every rank first).
        agreed = torch.tensor([end, end + START_MARGIN_S], dtype=torch.float64)
        dist.all_reduce(agreed, op=dist.ReduceOp.MAX, group=sync)
        seconds.append(float(agreed[0]) - start_at)
        start_at = float(agreed[1])
    return seconds, late


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", required=True, help="comma-separated byte counts")
    parser.add_argument("--groups", default="wan,wan-none,wan-flat,gloo")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()

    import torchwan  # noqa: F401  registers "wan"

    dist.init_process_group("wan", timeout=TIMEOUT)
    rank, world = dist.get_rank(), dist.get_world_size()
    names = args.groups.split(",")
    groups = make_groups(names)
    sync = groups["gloo"] if "gloo" in groups else dist.new_group(backend="gloo", timeout=TIMEOUT)
    hosts = [None] * world
    dist.all_gather_object(hosts, host_of_this_rank(), group=sync)
    same_host = {r for r in range(world) if hosts[r] == hosts[rank] and r != rank}
    host_index = {h: i for i, h in enumerate(dict.fromkeys(hosts))}
    if rank == 0:
        layout = {"hosts_of_ranks": [host_index[h] for h in hosts]}
        for name in names:
            backend = wan_backend(groups[name])
            if backend is not None:
                layout[name] = {"regions": backend.regions, "source": backend.topology_source}
        print(json.dumps({"layout": layout}), flush=True)

    for size in [int(s) for s in args.sizes.split(",")]:
        numel = size // 4
        for name in names:
            group = groups[name]
            if args.check:
                check(group, numel, rank, world)
            buffer = torch.ones(numel)
            dist.all_reduce(buffer, group=group)  # warm-up: first touch, connections, caches
            backend = wan_backend(group)
            before = sent_bytes(group, same_host) if backend else None
            cpu_before = time.process_time()
            seconds, late = timed_calls(lambda: dist.all_reduce(buffer, group=group),
                                        args.iterations, sync)
            cpu = (time.process_time() - cpu_before) / args.iterations
            per_rank = {"rank": rank, "host": host_index[hosts[rank]], "cpu_s_per_call": cpu,
                        "late_s": late}
            if backend:
                after = sent_bytes(group, same_host)
                per_rank.update({f"sent_{k}_per_call": (after[k] - before[k]) / args.iterations
                                 for k in after})
            ranks = [None] * world
            dist.all_gather_object(ranks, per_rank, group=sync)
            if rank == 0:
                record = {"backend": name, "bytes": numel * 4, "world_size": world,
                          "seconds": statistics.median(seconds), "times_s": seconds,
                          "checked": args.check, "ranks": ranks}
                if backend:
                    algorithm, predicted = backend.predict("allreduce", numel * 4)
                    record.update({"algorithm": algorithm, "predicted_s": predicted})
                print(json.dumps(record), flush=True)
    dist.barrier(group=sync)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
