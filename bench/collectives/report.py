"""Derived figures (nccl-tests conventions) and the JSON / Markdown / PNG outputs of the
collectives benchmark."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

from bench.collectives.bound import lower_bound_seconds

RESULTS = pathlib.Path(__file__).resolve().parents[2] / "bench" / "results"


def bus_factor(collective: str, world: int) -> float:
    """busbw = algbw * factor: what each link carries relative to the user's buffer."""
    if collective == "allreduce":
        return 2 * (world - 1) / world
    if collective in ("allgather", "reduce_scatter"):
        return (world - 1) / world
    return 1.0


def derive(records: list[dict[str, Any]], link: dict[str, Any] | None) -> list[dict[str, Any]]:
    def times(backend: str) -> dict[tuple[str, int], float]:
        return {(r["collective"], r["bytes"]): r["seconds"] for r in records
                if r["backend"] == backend}

    gloo, gloo_bbr, flat, plain = times("gloo"), times("gloo-bbr"), times("wan-flat"), times("wan")
    ring = times("wan-ring")
    rows = []
    for record in records:
        world, size, seconds = record["world_size"], record["bytes"], record["seconds"]
        row = dict(record)
        row["algbw_gbps"] = size / seconds / 1e9
        row["busbw_gbps"] = row["algbw_gbps"] * bus_factor(record["collective"], world)
        reference = gloo.get((record["collective"], size))
        row["speedup_vs_gloo"] = reference / seconds if reference else None
        # Gloo on hosts tuned as the wan backend tunes its own sockets (BBR, large buffers).
        tuned = gloo_bbr.get((record["collective"], size))
        row["speedup_vs_gloo_bbr"] = tuned / seconds if tuned else None
        if record["backend"] == "wan-hier" and (record["collective"], size) in flat:
            row["speedup_vs_flat"] = flat[(record["collective"], size)] / seconds
        # The default group (host tier where ranks share hosts) against the flat ring.
        if record["backend"] == "wan" and (record["collective"], size) in ring:
            row["speedup_vs_flat"] = ring[(record["collective"], size)] / seconds
        # A compressed variant of "wan" (worker.CODEC_BACKENDS) is also compared with plain "wan".
        if record.get("compression") and (record["collective"], size) in plain:
            row["speedup_vs_wan"] = plain[(record["collective"], size)] / seconds
        if link:
            bound = None if record.get("compression") else lower_bound_seconds(
                record["collective"], size, link, record.get("calls", 1))
            row["lower_bound_s"] = bound
            row["fraction_of_lower_bound"] = bound / seconds if bound else None
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
          results: pathlib.Path = RESULTS, settings: dict[str, str] | None = None,
          host_tcp: list[dict[str, Any]] | None = None) -> None:
    results.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    document = {"rows": rows, "load_average": load, "cpus": os.cpu_count(),
                "settings": settings or {}, "host_tcp": host_tcp or []}
    (results / f"collectives_{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    if topologies:
        (results / f"collectives_{name}_topology.json").write_text(
            json.dumps(topologies, indent=2) + "\n")
    has_link = any("busbw_fraction_of_rate" in r for r in rows)
    has_tuned = any(r.get("speedup_vs_gloo_bbr") for r in rows)
    has_flat = any("speedup_vs_flat" in r for r in rows)
    has_plain = any("speedup_vs_wan" in r for r in rows)
    has_prediction = any(r.get("algorithm") for r in rows)
    header = "| collective | size | backend | time (ms) | algbw (GB/s) | busbw (GB/s) | vs Gloo |"
    rule = "|---|---|---|---|---|---|---|"
    if has_tuned:
        header += " vs Gloo+BBR |"
        rule += "---|"
    if has_flat:
        header += " vs flat wan |"
        rule += "---|"
    if has_plain:
        header += " vs uncompressed wan |"
        rule += "---|"
    if has_link:
        header += " of the floor | busbw / link rate |"
        rule += "---|---|"
    if has_prediction:
        header += " algorithm | predicted (ms) | predicted / measured |"
        rule += "---|---|---|"
    lines = [f"# Collectives, {world} ranks, scenario `{scenario}`", "",
             "Time per call: first rank's start to last rank's end of back-to-back calls, divided "
             "by the calls (one machine, one clock); busbw per nccl-tests; 'vs Gloo' = Gloo time "
             "/ this time (same processes, same run).", ""]
    if has_tuned:
        lines += ["`gloo-bbr` is Gloo in the same processes while the lab hosts default to BBR "
                  "with 64 MiB TCP buffer maxima (what the wan backend asks for on its own "
                  "sockets); 'vs Gloo+BBR' = its time / this time.", ""]
    if has_link:
        lines += ["'of the floor' = the least time per call the emulated link allows any "
                  "algorithm (bench/collectives/bound.py: the bytes that must cross the shaped "
                  "uplinks plus one one-way delay, and one delay per call where each call waits "
                  "for every rank's input) / this time; it cannot exceed 100%. Compressed rows "
                  "move fewer bytes and have none.", ""]
    if has_prediction:
        lines += ["'algorithm' = what the wan group chose for the call; 'predicted' = the cost "
                  "model's time for it (csrc/cost_model.h: the group's slowest measured round "
                  "trip, an assumed 1 Gbit/s per uplink, 0.4 ms per message sent), the same "
                  "figure the group chose the algorithm by; 'predicted / measured' near 100% means "
                  "the model describes the run, below it the run is slower than modelled.", ""]
    checked = sorted({r["backend"] for r in rows if r.get("checked")})
    lines += [("Checked: every result of " + ", ".join(f"`{b}`" for b in checked)
               + " was compared with Gloo's before it was timed.") if checked
              else "Not checked against Gloo (run without --check).", ""]
    if load:
        lines += [f"Machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / "
                  f"{load[2]:.1f} (1 / 5 / 15 min) when the run ended.", ""]
    for record in host_tcp or []:
        for phase, values in record.items():
            listed = ", ".join(f"`{k}={v}`" for k, v in values.items())
            if phase.startswith("rank_0_connections_of_"):
                group = phase.removeprefix("rank_0_connections_of_").replace("_", "-")
                lines += [f"Rank 0's `{group}` connections by congestion control: {listed}", ""]
            else:
                when = phase.replace("_gloo_bbr", " gloo-bbr").replace("_", " ")
                lines += [f"First lab host's TCP sysctls {when}: {listed}", ""]
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
        tuned = f" {r['speedup_vs_gloo_bbr']:.2f}x |" if r.get("speedup_vs_gloo_bbr") else " |"
        line = (f"| {r['collective']} | {human_bytes(r['bytes'])} | {r['backend']} | "
                f"{r['seconds'] * 1e3:.2f} | {r['algbw_gbps']:.3f} | {r['busbw_gbps']:.3f} | "
                f"{speedup} |")
        if has_tuned:
            line += tuned
        if has_flat:
            line += f" {r['speedup_vs_flat']:.2f}x |" if "speedup_vs_flat" in r else " |"
        if has_plain:
            line += f" {r['speedup_vs_wan']:.2f}x |" if "speedup_vs_wan" in r else " |"
        if has_link:
            bound = r.get("fraction_of_lower_bound")
            line += f" {bound:.0%} |" if bound else " |"
            line += f" {r['busbw_fraction_of_rate']:.0%} |"
        if has_prediction:
            predicted = r.get("predicted_s")
            line += f" {r.get('algorithm') or ''} |"
            line += (f" {predicted * 1e3:.2f} | {predicted / r['seconds']:.0%} |" if predicted
                     else " | |")
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

    # A barrier moves no bytes: nothing to draw on a bytes axis.
    collectives = sorted({r["collective"] for r in rows if r["bytes"] > 0})
    if not collectives:
        return
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
