"""Derived figures (nccl-tests conventions) and the JSON / Markdown / PNG outputs of the
collectives benchmark."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

RESULTS = pathlib.Path(__file__).resolve().parents[2] / "bench" / "results"


def bus_factor(collective: str, world: int) -> float:
    """busbw = algbw * factor: what each link carries relative to the user's buffer."""
    if collective == "allreduce":
        return 2 * (world - 1) / world
    if collective in ("allgather", "reduce_scatter"):
        return (world - 1) / world
    return 1.0


def link_bound_seconds(collective: str, size: int, world: int, link: dict[str, Any]) -> float:
    """A lower bound on the time on a link of `rate_bps` and `rtt_s`: every byte of the bus volume
    crosses the bottleneck once (the ring bound), plus one one-way delay for the last byte; small
    messages are charged the ceil(log2 world) one-way delays a latency-optimal algorithm needs."""
    transfer = bus_factor(collective, world) * size * 8 / link["rate_bps"]
    hops = math.ceil(math.log2(world)) if size <= (64 << 10) else 1
    return transfer + hops * link["rtt_s"] / 2


def derive(records: list[dict[str, Any]], link: dict[str, Any] | None) -> list[dict[str, Any]]:
    gloo = {(r["collective"], r["bytes"]): r["seconds"] for r in records if r["backend"] == "gloo"}
    flat = {(r["collective"], r["bytes"]): r["seconds"] for r in records
            if r["backend"] == "wan-flat"}
    plain = {(r["collective"], r["bytes"]): r["seconds"] for r in records if r["backend"] == "wan"}
    rows = []
    for record in records:
        world, size, seconds = record["world_size"], record["bytes"], record["seconds"]
        row = dict(record)
        row["algbw_gbps"] = size / seconds / 1e9
        row["busbw_gbps"] = row["algbw_gbps"] * bus_factor(record["collective"], world)
        reference = gloo.get((record["collective"], size))
        row["speedup_vs_gloo"] = reference / seconds if reference else None
        if record["backend"] == "wan-hier" and (record["collective"], size) in flat:
            row["speedup_vs_flat"] = flat[(record["collective"], size)] / seconds
        # A compressed variant of "wan" (worker.CODEC_BACKENDS) is also compared with plain "wan".
        if record.get("compression") and (record["collective"], size) in plain:
            row["speedup_vs_wan"] = plain[(record["collective"], size)] / seconds
        if link:
            row["link_bound_s"] = link_bound_seconds(record["collective"], size, world, link)
            row["fraction_of_link"] = row["link_bound_s"] / seconds
            row["busbw_fraction_of_rate"] = row["busbw_gbps"] * 8e9 / link["rate_bps"]
        rows.append(row)
    return rows


def human_bytes(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):g} {unit}"
    return f"{size} B"


def write(rows: list[dict[str, Any]], name: str, world: int, scenario: str,
          topologies: list[dict[str, Any]] | None = None,
          results: pathlib.Path = RESULTS, settings: dict[str, str] | None = None) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / f"collectives_{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    if topologies:
        (results / f"collectives_{name}_topology.json").write_text(
            json.dumps(topologies, indent=2) + "\n")
    has_link = any("fraction_of_link" in r for r in rows)
    has_flat = any("speedup_vs_flat" in r for r in rows)
    has_plain = any("speedup_vs_wan" in r for r in rows)
    header = "| collective | size | backend | time (ms) | algbw (GB/s) | busbw (GB/s) | vs Gloo |"
    rule = "|---|---|---|---|---|---|---|"
    if has_flat:
        header += " vs flat wan |"
        rule += "---|"
    if has_plain:
        header += " vs uncompressed wan |"
        rule += "---|"
    if has_link:
        header += " of link bound | busbw / link rate |"
        rule += "---|---|"
    lines = [f"# Collectives, {world} ranks, scenario `{scenario}`", "",
             "Slowest rank's mean time per call; busbw per nccl-tests; 'vs Gloo' = Gloo time / "
             "this time (same processes, same run).", ""]
    if settings:
        lines += ["Settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items()), ""]
    for topology in topologies or []:
        lines.append(f"- `{topology['topology']}` ran on regions {topology['regions']} "
                     f"(from {topology['source']})")
    if topologies:
        lines.append("")
    lines += [header, rule]
    for r in rows:
        speedup = f"{r['speedup_vs_gloo']:.2f}x" if r["speedup_vs_gloo"] else ""
        line = (f"| {r['collective']} | {human_bytes(r['bytes'])} | {r['backend']} | "
                f"{r['seconds'] * 1e3:.2f} | {r['algbw_gbps']:.3f} | {r['busbw_gbps']:.3f} | "
                f"{speedup} |")
        if has_flat:
            line += f" {r['speedup_vs_flat']:.2f}x |" if "speedup_vs_flat" in r else " |"
        if has_plain:
            line += f" {r['speedup_vs_wan']:.2f}x |" if "speedup_vs_wan" in r else " |"
        if has_link:
            line += f" {r['fraction_of_link']:.0%} | {r['busbw_fraction_of_rate']:.0%} |"
        lines.append(line)
    (results / f"collectives_{name}.md").write_text("\n".join(lines) + "\n")
    plot(rows, name, scenario, results)
    print("\n".join(lines))
    print(f"wrote {results / f'collectives_{name}.md'}")


def plot(rows: list[dict[str, Any]], name: str, scenario: str,
         results: pathlib.Path = RESULTS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    collectives = sorted({r["collective"] for r in rows})
    figure, axes = plt.subplots(1, len(collectives), figsize=(4.5 * len(collectives), 3.8),
                                squeeze=False)
    for axis, collective in zip(axes[0], collectives):
        for backend in sorted({r["backend"] for r in rows}):
            points = sorted((r["bytes"], r["busbw_gbps"]) for r in rows
                            if r["collective"] == collective and r["backend"] == backend)
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=backend)
        axis.set_xscale("log", base=2)
        axis.set_title(collective)
        axis.set_xlabel("bytes")
        axis.set_ylabel("busbw (GB/s)")
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.suptitle(f"scenario {scenario}")
    figure.tight_layout()
    figure.savefig(results / f"collectives_{name}.png", dpi=90)
    plt.close(figure)
