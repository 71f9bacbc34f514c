"""`torchwan doctor` in a WAN-lab scenario: one rank per host, the doctor's own output, and its
measured RTT and bandwidth per pair against what the scenario emulates. Writes
bench/results/doctor_<scenario>.{json,md,png}.

    python3 -m bench.doctor.run [--scenario wan-a]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import time
from typing import Any

from bench.common.launch import run_world

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKER = ROOT / "bench" / "doctor" / "worker.py"
RESULTS = ROOT / "bench" / "results"
#: Measured within these ratios of the scenario's RTT and rate counts as agreeing with it. The
#: rate is allowed further below than above: it is timed over a whole probe round, ramp included,
#: and TCP's and torchwan's headers travel inside the shaped rate.
RTT_RANGE = (0.9, 1.1)
RATE_RANGE = (0.85, 1.05)


def expected(scenario: str, world: int) -> dict[str, Any]:
    """The scenario's RTT and per-flow rate for every pair of the first `world` hosts."""
    from scripts.wanlab import scenario as scenarios

    sc = scenarios.load(scenario)
    pairs = range(world)
    return {"rtt_ms": [[0.0 if a == b else sc.rtt_ms(a, b) for b in pairs] for a in pairs],
            "bandwidth_gbps": [[0.0 if a == b else sc.effective_rate_bps(a, b) / 1e9
                                for b in pairs] for a in pairs],
            "description": sc.description, "congestion": sc.congestion}


def compare(measured: dict[str, Any], lab: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per ordered pair: measured against emulated RTT and rate."""
    n = measured["world_size"]
    rows = []
    for a in range(n):
        for b in range(n):
            if a == b:
                continue
            rtt, want_rtt = measured["rtt_ms"][a][b], lab["rtt_ms"][a][b]
            rate, want_rate = measured["bandwidth_gbps"][a][b], lab["bandwidth_gbps"][a][b]
            rows.append({"pair": f"{a}->{b}", "rtt_ms": rtt, "scenario_rtt_ms": want_rtt,
                         "rtt_ratio": rtt / want_rtt, "gbps": rate, "scenario_gbps": want_rate,
                         "rate_ratio": rate / want_rate})
    return rows


def verdict(rows: list[dict[str, Any]]) -> str:
    rtt = [row["rtt_ratio"] for row in rows]
    rate = [row["rate_ratio"] for row in rows]
    close = (all(RTT_RANGE[0] <= r <= RTT_RANGE[1] for r in rtt)
             and all(RATE_RANGE[0] <= r <= RATE_RANGE[1] for r in rate))
    ranges = (f"RTT within {RTT_RANGE[0]}-{RTT_RANGE[1]}x and bandwidth within "
              f"{RATE_RANGE[0]}-{RATE_RANGE[1]}x of the emulated link")
    return (f"Measured RTT is {min(rtt):.3f}-{max(rtt):.3f}x the scenario's (median "
            f"{statistics.median(rtt):.3f}x) and bandwidth {min(rate):.3f}-{max(rate):.3f}x its "
            f"rate (median {statistics.median(rate):.3f}x): "
            + (f"every pair has {ranges}." if close else f"NOT every pair has {ranges}."))


def write_markdown(name: str, measured: dict[str, Any], lab: dict[str, Any],
                   rows: list[dict[str, Any]], printed: str, path: pathlib.Path) -> None:
    meta = lab["meta"]
    lines = [f"# torchwan doctor on `{name}`", "",
             f"Written by `python3 -m bench.doctor.run --scenario {name}`; {meta['date']}, "
             f"{meta['cpus']} CPUs, load {meta['load'][0]:.1f}. Scenario: {lab['description']} "
             f"(hosts' congestion control {lab['congestion']}). One rank per host, "
             f"`python -m torchwan.doctor --json ...` as torchrun would start it; the probe took "
             f"{measured['probe_seconds']:.1f} s.", "",
             "## Against the scenario", "", verdict(rows), "",
             "| pair | RTT | scenario | ratio | bandwidth | scenario | ratio |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['pair']} | {row['rtt_ms']:.2f} ms | {row['scenario_rtt_ms']:g} ms "
                     f"| {row['rtt_ratio']:.3f} | {row['gbps']:.3f} Gbit/s | "
                     f"{row['scenario_gbps']:g} Gbit/s | {row['rate_ratio']:.3f} |")
    lines += ["", "The scenario's rate is the shaped rate of IP packets; TCP's and torchwan's "
              "headers take part of it, and the doctor times each probe round as a whole, "
              "including the connection's ramp to full speed inside it, so a full link reads "
              "a few percent below 1.", "",
              "## What the doctor printed", "", "```", printed.rstrip(), "```", "",
              f"![heat map](doctor_{name}.png)"]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="wan-a")
    parser.add_argument("--out-dir", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args()
    from bench.common.lab import running_lab

    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out / f"doctor_{args.scenario}.json", out / f"doctor_{args.scenario}.png"
    with running_lab(args.scenario) as (placement, link, env):
        world = link["hosts"]
        result = run_world(str(WORKER), ["--json", str(json_path), "--png", str(png_path)],
                           world, placement, env=env, timeout=600)
    measured = json.loads(json_path.read_text())
    lab = {**expected(args.scenario, world),
           "meta": {"cpus": os.cpu_count(), "load": os.getloadavg(),
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}}
    rows = compare(measured, lab)
    json_path.write_text(json.dumps({**measured, "lab": {**lab, "pairs": rows}}, indent=1) + "\n")
    write_markdown(args.scenario, measured, lab, rows, result.rank0_stdout,
                   out / f"doctor_{args.scenario}.md")
    print(result.rank0_stdout)
    print(verdict(rows))


if __name__ == "__main__":
    main()
