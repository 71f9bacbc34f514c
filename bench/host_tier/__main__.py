"""Host-tier benchmark on the WAN lab: H hosts x L ranks (L processes per network namespace),
float32 allreduce of each size on the `wan` default group (host tier: shared memory inside a
host, the network only between hosts), on `wan` with the host tier off (`local_backend=none`,
as TORCHWAN_LOCAL_BACKEND=none; and additionally `topology=flat`, no hierarchy at all) and on
Gloo, all in the same processes, one after another.

Reports per group: the algorithm the wan group chose, the median time of a few calls after a
warm-up, busbw, the ratios between the groups, the bytes each host sent to the other hosts per
call (from torchwan.stats(), peers on other hosts vs on the same host) against the optimum
2(H-1)/H x size, and the CPU seconds the ranks spent per call, which shows whether 2 shared
cores rather than the emulated links set the pace. With --check (the default) every group's
result is first compared with the sum computed locally, without communication.
Writes bench/results/host_tier_<name>.{json,md}. The TCPStore runs on host 0.

    flock /tmp/torchwan-lab.lock python3 -m bench.host_tier --scenario wan-a
    flock /tmp/torchwan-lab.lock python3 -m bench.host_tier --scenario wan-a --ranks-per-host 1
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys

from bench.common.lab import running_lab
from bench.common.launch import run_world
from bench.host_tier import report

WORKER = pathlib.Path(__file__).resolve().parent / "worker.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="wan-a", help="a WAN-lab scenario")
    parser.add_argument("--ranks-per-host", type=int, default=2)
    parser.add_argument("--sizes", default=f"{4 << 20},{64 << 20}", help="bytes, comma-separated")
    parser.add_argument("--groups", default="wan,wan-none,wan-flat,gloo")
    parser.add_argument("--iterations", type=int, default=3, help="timed calls after a warm-up")
    parser.add_argument("--check", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--name", default=None,
                        help="results file suffix (default: scenario, and -<L>x for L != 2)")
    args = parser.parse_args()

    with running_lab(args.scenario) as (placement, link, lab_env):
        hosts = len(placement.namespaces)
        world = hosts * args.ranks_per_host
        # run_world puts rank r on host r mod H: ranks r and r+H share a namespace.
        result = run_world(
            str(WORKER),
            ["--sizes", args.sizes, "--groups", args.groups,
             "--iterations", str(args.iterations)] + (["--check"] if args.check else []),
            world, placement, env=lab_env)
    records = [json.loads(line) for line in result.rank0_stdout.splitlines()
               if line.startswith("{")]
    name = args.name or args.scenario + ("" if args.ranks_per_host == 2
                                         else f"-{args.ranks_per_host}x")
    command = "python3 -m bench.host_tier " + shlex.join(sys.argv[1:])
    report.write(records, link, name, command, args.ranks_per_host)


if __name__ == "__main__":
    main()
