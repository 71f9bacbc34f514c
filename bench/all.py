"""Reruns the benchmarks, one after another, each by the same command its results page names.

    python3 -m bench.all --quick      # a few minutes: loopback, the lab's smoke scenario and
                                      # self-check; results under bench/results/quick/
    python3 -m bench.all              # everything: the WAN-lab headline runs, elastic recovery,
                                      # transports, codecs, convergence, soak (hours, as root)
    python3 -m bench.all --only wan-a,wan-lossy       # some steps; --list names them

The machine is shared and small, so steps never run at once. A failed step does not stop the
rest; the exit status says whether any failed, and which.
"""

from __future__ import annotations

import argparse
import pathlib
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parents[1]
PY = sys.executable
COLLECTIVES = [PY, "-m", "bench.collectives.run"]
QUICK_OUT = "bench/results/quick"


@dataclass(frozen=True)
class Step:
    name: str
    command: list[str]
    what: str


QUICK = [
    Step("loopback", [*COLLECTIVES, "--sizes", "4096,1048576,16777216", "--budget", "0.5",
                      "--check", "--out-dir", QUICK_OUT, "--name", "loopback"],
         "collectives on loopback, checked, wan beside Gloo"),
    Step("smoke", [*COLLECTIVES, "--scenario", "smoke", "--world-size", "2",
                   "--sizes", "4096,1048576", "--budget", "0.5", "--out-dir", QUICK_OUT,
                   "--name", "smoke"],
         "collectives on the lab's smoke scenario: checked, beside Gloo and Gloo+BBR"),
    Step("wanlab-check", [PY, "-m", "scripts.wanlab.bench", "--parts", "check", "--seconds", "3",
                          "--out", QUICK_OUT],
         "the lab's self-check of every bundled scenario"),
]

ALL_SIZE = str(256 << 20)
FULL = [
    Step("wanlab", [PY, "-m", "scripts.wanlab.bench"],
         "lab self-check, iperf3 matrix and faithful-rate sweep"),
    Step("wan-a", [*COLLECTIVES, "--scenario", "wan-a", "--collectives", "allreduce",
                   "--sizes", ALL_SIZE, "--backends", "wan,wan-int8,gloo,gloo-bbr",
                   "--name", "wan-a-allreduce-256m"],
         "256 MiB allreduce on wan-a, uncompressed and int8"),
    Step("wan-lossy", [*COLLECTIVES, "--scenario", "wan-lossy", "--collectives", "allreduce",
                       "--sizes", ALL_SIZE, "--name", "wan-lossy-allreduce-256m"],
         "256 MiB allreduce on wan-lossy"),
    Step("regions", [*COLLECTIVES, "--scenario", "regions", "--collectives", "allreduce",
                     "--sizes", ALL_SIZE, "--compare-topology", "--name",
                     "regions-allreduce-256m"],
         "256 MiB allreduce on regions, hierarchical and flat"),
    Step("wan-8", [*COLLECTIVES, "--scenario", "wan-8", "--world-size", "8",
                   "--collectives", "allreduce,broadcast,allgather,reduce_scatter,barrier",
                   "--sizes", "4096,65536,1048576",
                   "--name", "wan-8-small"],
         "small allreduce, broadcast, allgather, reduce-scatter and barrier on 8 hosts"),
    Step("ddp", [PY, "-m", "bench.ddp.run", "--scenario", "wan-a"], "DDP training on wan-a"),
    Step("diloco", [PY, "-m", "bench.diloco.run", "--scenario", "wan-a"],
         "DiLoCo and Streaming DiLoCo against DDP at an equal token budget on wan-a"),
    Step("state-sync", [PY, "-m", "bench.state_sync.run", "--scenario", "wan-a"],
         "1 GiB of state to a member behind, on wan-a"),
    Step("state-sync-loopback", [PY, "-m", "bench.state_sync.run"],
         "1 GiB of state to a member behind, on loopback"),
    Step("elastic", [PY, "bench/elastic/bench_elastic.py", "--repeat", "5"],
         "elastic recovery, 5 runs of each way"),
    Step("transport", [PY, "bench/transport.py"], "transport point-to-point on loopback"),
    Step("import-time", [PY, "-m", "bench.import_time.run"], "what autoloading costs import torch"),
    Step("encryption", [PY, "-m", "bench.encryption.run"], "cost of data-plane encryption"),
    Step("compression", ["build/tests/bench/compression_bench"], "codec throughput on one core"),
    Step("convergence", [PY, "-m", "bench.convergence.run"], "convergence with compression"),
    Step("soak", [PY, "bench/soak/soak.py"], "random collectives under random faults"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"the short set, into {QUICK_OUT}")
    parser.add_argument("--only", default="", help="comma-separated step names")
    parser.add_argument("--list", action="store_true", help="name the steps and stop")
    args = parser.parse_args()

    steps = QUICK if args.quick else FULL
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - {s.name for s in steps})
        if unknown:
            parser.error(f"unknown step(s) {unknown}; this set has {[s.name for s in steps]}")
        steps = [s for s in steps if s.name in wanted]
    if args.list:
        for step in steps:
            print(f"{step.name:<14}{step.what}\n{'':<14}{shlex.join(step.command)}")
        return 0

    failed = []
    for step in steps:
        print(f"== {step.name}: {step.what}\n   {shlex.join(step.command)}", flush=True)
        started = time.monotonic()
        code = subprocess.run(step.command, cwd=ROOT).returncode
        print(f"== {step.name}: {'ok' if code == 0 else f'FAILED ({code})'} after "
              f"{time.monotonic() - started:.0f} s", flush=True)
        if code:
            failed.append(step.name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
