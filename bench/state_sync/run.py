"""State-sync benchmark: a state of many tensors (mixed dtypes) from one member to another that
fell behind, with torchwan's pickle-free state transfer over "wan" and, side by side in the same
processes, tensor-by-tensor Gloo broadcasts. Reports time, throughput, the fraction of the link
rate (on a WAN-lab scenario) and each side's peak RSS growth. Writes
bench/results/state_sync_<name>.{json,md}.

    python3 -m bench.state_sync.run [--scenario wan-a] [--bytes 1073741824]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import time

from bench.common.launch import Loopback, run_world

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKER = ROOT / "bench" / "state_sync" / "worker.py"
RESULTS = ROOT / "bench" / "results"


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.0f} MiB"


def derive(rows: list[dict], link: dict | None) -> list[dict]:
    for row in rows:
        row["throughput_bps"] = row["bytes"] * 8 / row["seconds"]
        if link:
            row["link_rate_bps"] = link["rate_bps"]
            # One one-way delay is the least any transfer waits, whatever its speed.
            floor = row["bytes"] * 8 / link["rate_bps"] + link["one_way_min_s"]
            row["lower_bound_s"] = floor
            row["fraction_of_link"] = row["throughput_bps"] / link["rate_bps"]
            row["fraction_of_lower_bound"] = floor / row["seconds"]
    return rows


def write_report(name: str, rows: list[dict], link: dict | None, out_dir: pathlib.Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.node(), "cpus": os.cpu_count(), "load": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "link": link}
    (out_dir / f"state_sync_{name}.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                                indent=1) + "\n")
    lines = [f"# State sync: {name}", "",
             f"Written by `python3 -m bench.state_sync.run`; {meta['date']}, {meta['cpus']} CPUs, "
             f"load {meta['load'][0]:.1f}." + (f" Link: {link['rate_bps'] / 1e9:g} Gbit/s, one-way "
                                               f"{link['one_way_min_s'] * 1e3:.0f} ms." if link else ""),
             "", "| backend | state | tensors | time | throughput | of link | RSS growth sender / receiver | exact |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        fraction = f"{row['fraction_of_link']:.0%}" if "fraction_of_link" in row else "-"
        growth = " / ".join(_mib(g) for g in row["rss_growth_bytes"])
        lines.append(f"| {row['backend']} | {_mib(row['bytes'])} | {row['tensors']} | "
                     f"{row['seconds']:.2f} s | {row['throughput_bps'] / 1e9:.2f} Gbit/s | "
                     f"{fraction} | {growth} | {row['exact']} |")
    lines += ["", "`wan`: torchwan.elastic.state_transfer (schema + chunks with CRC-32 checksums, written "
              "in place on the receiver). `gloo`: one `dist.broadcast` per tensor over Gloo. "
              "RSS growth: each rank's peak resident memory during the transfer less its "
              "resident memory before it."]
    (out_dir / f"state_sync_{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="loopback")
    parser.add_argument("--bytes", type=int, default=1 << 30)
    parser.add_argument("--chunk-bytes", type=int, default=None)
    parser.add_argument("--backends", default="wan,gloo")
    parser.add_argument("--name", default=None)
    parser.add_argument("--out-dir", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args()
    worker_args = ["--bytes", str(args.bytes), "--backends", args.backends]
    if args.chunk_bytes:
        worker_args += ["--chunk-bytes", str(args.chunk_bytes)]
    if args.scenario == "loopback":
        link, result = None, run_world(str(WORKER), worker_args, 2, Loopback())
    else:
        from bench.common.lab import running_lab

        with running_lab(args.scenario, world=2) as (placement, link, env):
            result = run_world(str(WORKER), worker_args, 2, placement, env=env)
    rows = [json.loads(line) for line in result.rank0_stdout.splitlines() if line.startswith("{")]
    write_report(args.name or args.scenario, derive(rows, link), link, args.out_dir)


if __name__ == "__main__":
    main()
