"""Collectives benchmark: allreduce, allgather, reduce-scatter and broadcast from 4 KiB to 256 MiB,
"wan" and Gloo side by side in the same processes, on loopback or in a WAN-lab scenario.
Reports time, algbw and busbw (nccl-tests formulas), the ratio to Gloo and, on an emulated link,
the ratio to Gloo on hosts tuned like wan's sockets ("gloo-bbr") and the share of the least time
the link allows. In the lab every wan result is first compared with Gloo's (--no-check skips it).
Writes bench/results/collectives_<name>.{json,md,png}.

    python3 -m bench.collectives.run [--world-size 4] [--scenario wan-a] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
from typing import Any

from bench.collectives import report
from bench.common.launch import Loopback, Placement, run_world

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKER = ROOT / "bench" / "collectives" / "worker.py"
FULL_SIZES = [4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20, 256 << 20]
SMOKE_SIZES = [4 << 10, 1 << 20]


def run_scenario(args: argparse.Namespace, placement: Placement, link: dict[str, Any] | None,
                 env: dict[str, str]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Returns the derived rows, per wan group the regions it ran on, and what the lab hosts'
    TCP sysctls held while gloo-bbr was created and timed."""
    sizes = SMOKE_SIZES if args.smoke else [int(s) for s in args.sizes.split(",")]
    # In the lab Gloo also runs with the TCP tuning wan gives its own sockets, so a ratio to Gloo
    # is not a ratio to the hosts' sysctls.
    backends = args.backends or (("wan-hier,wan-flat" if args.compare_topology else "wan")
                                 + (",gloo" if link is None else ",gloo,gloo-bbr"))
    result = run_world(
        str(WORKER),
        ["--collectives", args.collectives, "--sizes", ",".join(map(str, sizes)),
         "--budget", str(args.budget), "--backends", backends]
        + (["--check"] if args.check else []),
        args.world_size,
        placement,
        env=env,
    )
    records = [json.loads(line) for line in result.rank0_stdout.splitlines() if line.startswith("{")]
    topologies = [r for r in records if "topology" in r]
    host_tcp = [r["host_tcp"] for r in records if "host_tcp" in r]
    return report.derive([r for r in records if "backend" in r], link), topologies, host_tcp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-size", type=int, default=4)
    parser.add_argument("--scenario", default="loopback",
                        help="'loopback' or a WAN-lab scenario name (scripts/wanlab/scenarios)")
    parser.add_argument("--collectives", default="allreduce,allgather,reduce_scatter,broadcast")
    parser.add_argument("--sizes", default=",".join(map(str, FULL_SIZES)))
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--smoke", action="store_true",
                        help="two small sizes, each result checked against Gloo's, for CI")
    parser.add_argument("--check", action=argparse.BooleanOptionalAction, default=None,
                        help="compare every result with Gloo's before timing it (default: on in "
                             "the WAN lab and with --smoke, off on loopback)")
    parser.add_argument("--out-dir", type=pathlib.Path, default=report.RESULTS,
                        help="where the results go (default bench/results)")
    parser.add_argument("--transport", default=None, help="TORCHWAN_TRANSPORT for the wan side")
    parser.add_argument("--backends", default=None,
                        help="comma-separated subset to run (default: wan,gloo, and gloo-bbr in "
                             "the lab); leaving Gloo out gives no ratio to it")
    parser.add_argument("--name", default=None, help="results file suffix (default: scenario)")
    parser.add_argument("--compare-topology", action="store_true",
                        help="run wan twice, hierarchical (the lab's regions) and flat, beside "
                             "Gloo; needs a scenario with regions")
    args = parser.parse_args()
    if args.check is None:
        args.check = args.smoke or args.scenario != "loopback"

    env = {"TORCHWAN_TRANSPORT": args.transport} if args.transport else {}
    if args.scenario == "loopback":
        if args.compare_topology:
            parser.error("--compare-topology needs a WAN-lab scenario with regions")
        rows, topologies, host_tcp = run_scenario(args, Loopback(), None, env)
    else:
        from bench.common.lab import running_lab

        with running_lab(args.scenario, args.world_size) as (placement, link, lab_env):
            rows, topologies, host_tcp = run_scenario(args, placement, link, {**lab_env, **env})

    name = args.name or args.scenario + ("-smoke" if args.smoke else "")
    # Library settings from the environment change the results: the report names them.
    settings = {k: v for k, v in sorted({**os.environ, **env}.items()) if k.startswith("TORCHWAN_")}
    report.write(rows, name, args.world_size, args.scenario, topologies, args.out_dir, settings,
                 host_tcp)


if __name__ == "__main__":
    main()
