"""The README's first run: a 4-rank allreduce of one realistic gradient on "wan", on "wan" with
int8 compression and on Gloo, side by side in the same processes, each result checked against
Gloo's. On an emulated WAN (the WAN lab's `wan-a`: 4 hosts, 50 ms RTT, 1 Gbit/s) when this machine
can run the lab, otherwise on loopback, saying why. Prints an nccl-tests-style table and writes
it, with a plot, to bench/results/demo_<where>.{md,json,png}.

The ranks are the collectives benchmark's (bench/collectives/worker.py), launched by
bench/common/launch.py inside the lab's hosts (bench/common/lab.py), so the demo measures exactly
what the benchmarks do.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from typing import Any

from bench.collectives import report
from bench.common.launch import Loopback, Placement, run_world

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKER = ROOT / "bench" / "collectives" / "worker.py"
RESULTS = ROOT / "bench" / "results"
SCENARIO = "wan-a"
BACKENDS = ("wan", "wan-int8", "gloo")


def lab_unavailable_reason() -> str | None:
    """Why the WAN lab cannot run here, or None when it can."""
    from scripts.wanlab import missing

    reasons = missing()
    return "; ".join(reasons) if reasons else None


def measure(megabytes: int, world: int, placement: Placement, env: dict[str, str],
            budget_s: float) -> list[dict[str, Any]]:
    result = run_world(
        str(WORKER),
        ["--collectives", "allreduce", "--sizes", str(megabytes << 20), "--budget",
         str(budget_s), "--backends", ",".join(BACKENDS), "--check"],
        world, placement, env=env, timeout=600)
    return [json.loads(line) for line in result.rank0_stdout.splitlines()
            if line.startswith("{") and '"backend"' in line]


def table(rows: list[dict[str, Any]]) -> list[str]:
    """nccl-tests' columns (size, time, algbw, busbw) plus the check and the ratios."""
    lines = [f"| {'size (B)':>11} | {'backend':8} | {'time (ms)':>9} | {'algbw (GB/s)':>12} | "
             f"{'busbw (GB/s)':>12} | {'vs Gloo':>7} | {'check':6} |",
             f"|{'-' * 12}:|{'-' * 10}|{'-' * 10}:|{'-' * 13}:|{'-' * 13}:|{'-' * 8}:|{'-' * 8}|"]
    for r in rows:
        checked = "ok" if r["checked"] else "ref"
        lines.append(f"| {r['bytes']:>11} | {r['backend']:8} | {r['seconds'] * 1e3:9.1f} | "
                     f"{r['algbw_gbps']:12.3f} | {r['busbw_gbps']:12.3f} | "
                     f"{r['speedup_vs_gloo']:6.2f}x | {checked:6} |")
    return lines


def summary(rows: list[dict[str, Any]]) -> str:
    by_backend = {r["backend"]: r for r in rows}
    gloo = by_backend["gloo"]["seconds"]
    return (f"Gloo's time / wan's: {gloo / by_backend['wan']['seconds']:.2f}x, "
            f"{gloo / by_backend['wan-int8']['seconds']:.2f}x with int8 compression")


def plot(rows: list[dict[str, Any]], title: str, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.2))
    names = [r["backend"] for r in rows]
    times = [r["seconds"] * 1e3 for r in rows]
    bars = axis.barh(names, times, color=["#1f77b4", "#2ca02c", "#7f7f7f"][:len(rows)])
    for bar, r in zip(bars, rows):
        axis.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                  f" {r['seconds'] * 1e3:.0f} ms ({r['speedup_vs_gloo']:.2f}x Gloo)",
                  va="center", fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("time per allreduce (ms, lower is better)")
    axis.set_xlim(0, max(times) * 1.45)
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write(rows: list[dict[str, Any]], where: str, describe: str, megabytes: int, world: int,
          seconds_total: float) -> pathlib.Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"demo_{where}"
    title = f"allreduce of {megabytes} MiB float32, {world} ranks, {describe}"
    lines = [f"# First run: {title}", "",
             "Written by `python3 examples/allreduce_demo.py`. Time per call: first rank's start "
             "to last rank's end of back-to-back calls, divided by the calls; busbw per "
             "nccl-tests (algbw x 2(n-1)/n); 'vs Gloo' = Gloo's time / this time, same processes, "
             "same run. check: ok = the result matched Gloo's (exactly for `wan`, within the "
             "codec's error for `wan-int8`) before timing; ref = the reference.", ""]
    load = os.getloadavg()
    lines += [f"Machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / "
              f"{load[2]:.1f} when the run ended; whole run {seconds_total:.0f} s.", ""]
    lines += table(rows) + ["", summary(rows) + "."]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(
        {"rows": rows, "where": describe, "load_average": load, "cpus": os.cpu_count(),
         "seconds_total": seconds_total}, indent=2) + "\n")
    plot(rows, title, RESULTS / f"{name}.png")
    return RESULTS / f"{name}.md"


def run(megabytes: int, world: int, loopback: bool, budget_s: float) -> None:
    """Runs the demo. A result that differs from Gloo's stops its rank, and run_world raises."""
    started = time.monotonic()
    reason = None if loopback else lab_unavailable_reason()
    if reason:
        print(f"WAN lab unavailable, running on loopback instead: {reason}", file=sys.stderr)
    if loopback or reason:
        where, describe = "loopback", "loopback (one machine)"
        records = measure(megabytes, world, Loopback(), {}, budget_s)
    else:
        from bench.common.lab import running_lab

        where = SCENARIO
        print(f"bringing up the WAN lab '{SCENARIO}' (network namespaces, shaped links)...",
              file=sys.stderr, flush=True)
        with running_lab(SCENARIO, world) as (placement, link, lab_env):
            describe = (f"WAN lab `{SCENARIO}` ({link['hosts']} hosts, "
                        f"{link['rtt_s'] * 1e3:.0f} ms RTT, {link['rate_bps'] / 1e9:g} Gbit/s)")
            records = measure(megabytes, world, placement, lab_env, budget_s)
        print("WAN lab torn down", file=sys.stderr)
    rows = report.derive(records, None)
    rows.sort(key=lambda r: BACKENDS.index(r["backend"]))
    seconds_total = time.monotonic() - started
    print(f"allreduce of {megabytes} MiB float32 on {world} ranks, {describe}")
    print("result check: PASSED (" + ", ".join(r["backend"] for r in rows if r["checked"])
          + " matched Gloo's result before timing)")
    print("\n".join(table(rows)))
    print(summary(rows))
    print(f"{seconds_total:.0f} s in all")
    path = write(rows, where, describe, megabytes, world, seconds_total)
    print(f"wrote {path} and {path.with_suffix('.png')}")
