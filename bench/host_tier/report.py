"""Derived figures and the JSON / Markdown pages of the host-tier benchmark."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

RESULTS = pathlib.Path(__file__).resolve().parents[2] / "bench" / "results"
MIB = 1 << 20


def derive(rows: list[dict[str, Any]], hosts: int) -> list[dict[str, Any]]:
    median = {(r["backend"], r["bytes"]): r["seconds"] for r in rows}
    derived = []
    for row in rows:
        size, seconds, world = row["bytes"], row["seconds"], row["world_size"]
        out = dict(row)
        # nccl-tests' busbw, over all ranks.
        out["busbw_gbps"] = size / seconds / 1e9 * 2 * (world - 1) / world
        for reference in ("wan-none", "wan-flat", "gloo"):
            other = median.get((reference, size))
            out[f"vs_{reference}"] = other / seconds if other else None
        ranks = row["ranks"]
        out["cpu_cores_busy"] = sum(r["cpu_s_per_call"] for r in ranks) / seconds
        out["worst_late_start_s"] = max(r["late_s"] for r in ranks)
        if "sent_other_hosts_per_call" in ranks[0]:
            per_host = [0.0] * hosts
            for r in ranks:
                per_host[r["host"]] += r["sent_other_hosts_per_call"]
            out["between_hosts_per_host"] = per_host
            out["same_host_per_rank"] = [r["sent_same_host_per_call"] for r in ranks]
            # Each host must send at least its share of an allreduce between H sites.
            out["optimum_per_host"] = 2 * (hosts - 1) / hosts * size
            out["of_optimum"] = max(per_host) / out["optimum_per_host"]
        derived.append(out)
    return derived


def write(records: list[dict[str, Any]], link: dict[str, Any], name: str, command: str,
          ranks_per_host: int) -> None:
    layout = next((r["layout"] for r in records if "layout" in r), {})
    hosts = link["hosts"]
    rows = derive([r for r in records if "backend" in r], hosts)
    load = open("/proc/loadavg").read().split()[:3]
    world = rows[0]["world_size"] if rows else hosts * ranks_per_host
    document = {"command": command, "link": link, "layout": layout, "load_average": load,
                "cpus": os.cpu_count(), "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"host_tier_{name}.json").write_text(json.dumps(document, indent=2) + "\n")

    lines = [
        f"# Host tier: allreduce with {hosts} hosts x {ranks_per_host} ranks on `{link['scenario']}`",
        "",
        f"```\nflock /tmp/torchwan-lab.lock {command}\n```",
        "",
        f"Lab: `{link['scenario']}`, {hosts} hosts, RTT {link['rtt_s'] * 1e3:.0f} ms, uplink "
        f"{link['rate_bps'] / 1e9:g} Gbit/s per host; {world} ranks, rank r on host r mod "
        f"{hosts} ({ranks_per_host} processes per network namespace), TCPStore on host 0.",
        f"Machine: {os.cpu_count()} CPUs, load average {' / '.join(load)} (1 / 5 / 15 min) when "
        "the run ended.",
        "",
        "Groups (same processes, one after another): `wan` = the default group (host tier); "
        "`wan-none` = `local_backend=none` (TORCHWAN_LOCAL_BACKEND=none: every rank a host of its "
        "own); `wan-flat` = `local_backend=none, topology=flat` (no hierarchy at all); `gloo`.",
        "Time: median of the timed calls after a warm-up; each call starts on every rank at one "
        "agreed instant of the machine's monotonic clock and ends when the last rank returns. "
        f"busbw = size / time x 2({world}-1)/{world}. 'vs X' = X's time / this time.",
        "Between hosts: bytes each host's ranks sent to ranks on other hosts per call "
        "(`torchwan.stats()`, peer bytes, headers excluded), the busiest host; optimum = "
        "2(H-1)/H x size per host. Same host: bytes a rank sent to a rank on its own host over "
        "the network stack (the host tier's shared memory does not appear there).",
        "CPU: the ranks' CPU seconds per call (all threads) / the call's time: how many of the "
        f"machine's {os.cpu_count()} cores the ranks kept busy.",
        "",
    ]
    checked = sorted({r["backend"] for r in rows if r.get("checked")})
    lines += [("Checked: the result of every group (" + ", ".join(f"`{b}`" for b in checked)
               + ") equalled the sum computed locally, without communication, before it was "
               "timed.") if checked else "Not checked (run with --no-check).", ""]
    for group, info in layout.items():
        if group != "hosts_of_ranks":
            lines.append(f"- `{group}` regions {info['regions']} (from {info['source']})")
    if "hosts_of_ranks" in layout:
        lines.append(f"- host of each rank (network namespace): {layout['hosts_of_ranks']}")
    lines += ["", "| size | group | algorithm | median (ms) | calls (ms) | busbw (GB/s) | "
              "vs wan-none | vs wan-flat | vs Gloo | between hosts, MiB per host per call | "
              "of optimum | same host, MiB per rank | CPU cores busy |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def ratio(value):
        return f"{value:.2f}x" if value else ""

    for r in rows:
        calls = ", ".join(f"{t * 1e3:.0f}" for t in r["times_s"])
        between = same = share = ""
        if "between_hosts_per_host" in r:
            between = (f"{max(r['between_hosts_per_host']) / MIB:.1f} "
                       f"(optimum {r['optimum_per_host'] / MIB:.1f})")
            share = f"{r['of_optimum']:.0%}"
            same = f"{max(r['same_host_per_rank']) / MIB:.2f}"
        lines.append(
            f"| {r['bytes'] // MIB} MiB | {r['backend']} | {r.get('algorithm', '')} | "
            f"{r['seconds'] * 1e3:.1f} | {calls} | {r['busbw_gbps']:.3f} | "
            f"{ratio(r['vs_wan-none']) if r['backend'] != 'wan-none' else ''} | "
            f"{ratio(r['vs_wan-flat']) if r['backend'] != 'wan-flat' else ''} | "
            f"{ratio(r['vs_gloo']) if r['backend'] != 'gloo' else ''} | {between} | {share} | "
            f"{same} | {r['cpu_cores_busy']:.2f} |")
    (RESULTS / f"host_tier_{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {RESULTS / f'host_tier_{name}.md'}")
