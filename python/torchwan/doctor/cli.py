"""Command line of the doctor: one rank of a torchrun-started job, or --local N ranks here."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from torchwan._local_ranks import free_port, rank_environment, stop_all

DONE_KEY = "torchwan-doctor-done"
LEFT_KEY = "torchwan-doctor-left"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="torchwan-doctor",
        description="Measures every pair of ranks of a prospective 'wan' job (RTT, bandwidth, "
                    "retransmits, link) and each host's TCP settings, and recommends settings. "
                    "Run it on every host with torchrun (env:// rendezvous), or with --local N.")
    parser.add_argument("--local", type=int, metavar="N",
                        help="start N ranks on this machine (loopback) instead of being one rank")
    parser.add_argument("--json", type=Path, help="write the measurements and recommendations here")
    parser.add_argument("--png", type=Path,
                        help="write the heat map here (default: the --json path with .png)")
    parser.add_argument("--pings", type=int, default=9, help="round trips per pair (default 9)")
    parser.add_argument("--max-mib", type=int, default=64,
                        help="largest bandwidth probe per pair and direction, MiB (default 64)")
    parser.add_argument("--max-seconds", type=float, default=1.0,
                        help="time the probe is sized to take per pair and direction (default 1)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds before giving up on the group (default 300)")
    args = parser.parse_args(argv)
    if args.png is None and args.json is not None:
        args.png = args.json.with_suffix(".png")
    if args.local is not None and args.local < 2:
        parser.error("--local needs at least 2 ranks")
    return args


def _forwarded(args: argparse.Namespace) -> list[str]:
    """The options a --local launcher passes on to its ranks."""
    forwarded = ["--pings", str(args.pings), "--max-mib", str(args.max_mib),
                 "--max-seconds", str(args.max_seconds), "--timeout", str(args.timeout)]
    if args.json:
        forwarded += ["--json", str(args.json.resolve())]
    if args.png:
        forwarded += ["--png", str(args.png.resolve())]
    return forwarded


def run_local(args: argparse.Namespace) -> int:
    """Starts args.local ranks on loopback as torchrun would; rank 0 prints and writes files."""
    port = free_port()
    # Files, not pipes: a rank must never block on a full pipe nobody reads.
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(args.local)]
    processes = []
    for rank in range(args.local):
        env = {**os.environ, **rank_environment(rank, args.local, "127.0.0.1", port, "127.0.0.1")}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "torchwan.doctor", *_forwarded(args)], env=env,
            stdout=None if rank == 0 else subprocess.DEVNULL, stderr=logs[rank]))
    deadline = time.monotonic() + args.timeout + 60
    try:
        for process in processes:
            process.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        print(f"torchwan-doctor: ranks did not finish within {args.timeout + 60:.0f} s",
              file=sys.stderr)
    finally:
        codes = stop_all(processes)
    if any(codes):
        for rank, log in enumerate(logs):
            log.seek(0)
            tail = "\n".join(log.read().splitlines()[-20:])
            print(f"--- rank {rank} exited with {codes[rank]}:\n{tail}", file=sys.stderr)
    return max(abs(code) for code in codes)


def _wait_until(store, key: str, count: int, timeout: float = 30.0) -> None:
    """Waits until `count` ranks have counted themselves in at `key`; bounded, because a rank
    that failed must not hang the others."""
    deadline = time.monotonic() + timeout
    while store.add(key, 0) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def run_rank(args: argparse.Namespace) -> int:
    """One rank of the doctor's job (env:// rendezvous); rank 0 reports."""
    import torch.distributed as dist

    import torchwan  # noqa: F401  registers "wan"

    from . import advice, probe, report

    dist.init_process_group("wan", timeout=timedelta(seconds=args.timeout))
    rank, world_size = dist.get_rank(), dist.get_world_size()
    # Held past destroy_process_group: rank 0's process serves the store to the others.
    store = dist.distributed_c10d._get_default_store()
    try:
        limits = probe.ProbeLimits(pings=args.pings, max_bytes=args.max_mib << 20,
                                   max_seconds=args.max_seconds)
        measurements = probe.measure(limits)
        # No rank closes its connections while a peer still waits for the last message of the
        # last collective.
        store.add(DONE_KEY, 1)
        _wait_until(store, DONE_KEY, world_size)
    finally:
        dist.destroy_process_group()
    # Rank 0 leaves last: its process serves the store the others count themselves out in.
    store.add(LEFT_KEY, 1)
    if rank == 0:
        _wait_until(store, LEFT_KEY, world_size)
    if rank == 0:
        measurements["recommendations"] = advice.recommend(measurements)
        print(report.text(measurements), flush=True)
        if args.json:
            report.write_json(measurements, args.json)
        if args.png:
            report.write_png(measurements, args.png)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_local(args) if args.local else run_rank(args)
