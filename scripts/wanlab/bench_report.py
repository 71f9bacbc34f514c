"""The Markdown page of the lab's self-measurement (scripts/wanlab/bench.py), written from the
same result dictionary as its JSON so that every figure on the page is one the run measured."""

from __future__ import annotations

from typing import Any


def _range(values: list[float], digits: int = 2) -> str:
    low, high = min(values), max(values)
    return f"{low:.{digits}f}" if round(low, digits) == round(high, digits) else (
        f"{low:.{digits}f}–{high:.{digits}f}")


def _checks(checks: dict[str, Any]) -> list[str]:
    lines = ["## Self-check of the bundled scenarios", "",
             "RTT of every pair by ping -U (median of 10) and TCP connect (median of 9); rate of "
             "one flow per (rate, RTT) class by iperf3, BBR, 4 streams. 'ping max' is the worst "
             "single sample.", "",
             "| scenario | pairs | expected RTT (ms) | ping -U | ping max | TCP connect | result |",
             "|---|---|---|---|---|---|---|"]
    for name, report in checks.items():
        by_expected: dict[float, list[dict[str, Any]]] = {}
        for rtt in report["rtt"]:
            by_expected.setdefault(rtt["expected_ms"], []).append(rtt)
        for expected, rtts in sorted(by_expected.items()):
            lines.append(
                f"| {name} | {len(rtts)} | {expected:g} | {_range([r['ping_ms'] for r in rtts])} | "
                f"{max(r['ping_max_ms'] for r in rtts):.1f} | "
                f"{_range([r['tcp_ms'] for r in rtts])} | "
                f"{'PASS' if all(r['ok'] for r in rtts) else 'FAIL'} |")
    lines += ["", "| scenario | flow | expected goodput (Mbit/s) | iperf3 (Mbit/s) | retransmits | "
              "result |", "|---|---|---|---|---|---|"]
    for name, report in checks.items():
        for rate in report["rate"]:
            lines.append(f"| {name} | {rate['src']}>{rate['dst']} | "
                         f"{rate['expected_bps'] / 1e6:.1f} | {rate['measured_bps'] / 1e6:.1f} | "
                         f"{rate['retransmits']} | {'PASS' if rate['ok'] else 'FAIL'} |")
    lines += ["", "Delayer counters after each scenario (lateness of releases):", ""]
    for name, report in checks.items():
        for host, stats in report.get("delayer_stats", {}).items():
            for line in stats.splitlines():
                lines.append(f"- {name} {host}: `{line}`")
    return lines + [""]


def _tcp(title: str, rows: list[dict[str, Any]]) -> list[str]:
    columns = [(cc, p) for cc in ("bbr", "cubic") for p in (1, 4)]
    lines = [f"## iperf3 on `{title}` (h1 -> h2, Mbit/s)", "",
             "| buffers (tcp_rmem/wmem max) | " + " | ".join(f"{cc} P={p}" for cc, p in columns)
             + " | load |", "|---" * (len(columns) + 2) + "|"]
    for buffers in dict.fromkeys(r["buffers"] for r in rows):
        cells = {(r["cc"], r["streams"]): r for r in rows if r["buffers"] == buffers}
        values = [f"{cells[c]['mbps']:.0f}" if c in cells else "" for c in columns]
        load = max(r["load1"] for r in cells.values())
        lines.append(f"| {buffers} | " + " | ".join(values) + f" | {load:.1f} |")
    return lines + [""]


def _sweep(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## Highest faithful rate (2 hosts, 50 ms, 64 MiB TCP buffers, BBR, 4 streams)", "",
             "goodput / (rate x payload share); each run is one cell entry.", "",
             "| rate (Gbit/s) | MTU | goodput / expected | delayer CPU (% of one core) | load |",
             "|---|---|---|---|---|"]
    cells: dict[tuple[float, int], list[dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault((row["rate_gbit"], row["mtu"]), []).append(row)
    for (rate, mtu), runs in sorted(cells.items()):
        lines.append(f"| {rate:g} | {mtu} | " + ", ".join(f"{r['ratio']:.1%}" for r in runs)
                     + f" | {_range([r['delayer_cpu_pct'] for r in runs], 0)} | "
                     f"{_range([r['load1'] for r in runs], 1)} |")
    return lines + [""]


def markdown(result: dict[str, Any], command: str) -> str:
    machine = result["machine"]
    lines = ["# WAN lab self-check and faithful-rate measurements", "",
             f"Written by `{command}` (raw data in the JSON beside this file), started "
             f"{result['started']}. Machine: {machine['cpus']} CPUs, kernel {machine['kernel']}; "
             f"load average {result['load_start'][0]:.1f} at the start, "
             f"{result['load_end'][0]:.1f} at the end. iperf3 runs are "
             f"{result['seconds']:g} s after 1 s omitted; expected goodput = shaped rate x "
             "(mtu - 52) / (mtu + 14).", ""]
    if "checks" in result:
        lines += _checks(result["checks"])
    if "tcp_wan_a" in result:
        lines += _tcp("wan-a", result["tcp_wan_a"])
    if "tcp_wan_lossy" in result:
        lines += _tcp("wan-lossy", result["tcp_wan_lossy"])
    if "sweep" in result:
        lines += _sweep(result["sweep"])
    return "\n".join(lines)
