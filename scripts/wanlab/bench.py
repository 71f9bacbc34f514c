"""Measures how faithfully this machine emulates a WAN; writes bench/results/wanlab_selfcheck.*
(JSON and the Markdown page, both from this run; a run of only some parts writes
wanlab_selfcheck_<parts>.*)

    python3 -m scripts.wanlab.bench [--quick] [--out bench/results]

Parts: the self-check of every bundled scenario; iperf3 at 50 ms RTT / 1 Gbit/s with 1 and 4
streams, BBR and cubic, default and 64 MiB socket buffers; the same over 0.1 % loss at 100 ms;
and a rate sweep (2 hosts, 50 ms, MTU 9000 and 1500) that finds the highest rate the lab still
delivers within 5 %, with the delayers' CPU use and lateness. Other users' jobs on the machine
perturb the numbers, so each rate point is measured more than once and the load is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from . import bench_report, scenario, selfcheck
from .lab import Lab

BIG_BUF = 64 * 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _set_buffers(lab: Lab, size: int | None) -> None:
    for h in lab.hosts:
        kv = (["net.ipv4.tcp_rmem=4096 131072 33554432", "net.ipv4.tcp_wmem=4096 16384 4194304"]
              if size is None else [f"net.ipv4.tcp_rmem=4096 131072 {size}",
                                    f"net.ipv4.tcp_wmem=4096 16384 {size}"])
        lab.exec(h.index, ["sysctl", "-qw", *kv])


def measure(lab: Lab, src: int, dst: int, streams: int, cc: str, seconds: float) -> dict[str, Any]:
    pids = [pid for pid, alive in lab.delayers().values() if alive]
    cpu0, t0 = sum(_cpu_seconds(p) for p in pids), time.monotonic()
    r = selfcheck.iperf3(lab, src, dst, seconds=seconds, streams=streams, congestion=cc)
    cpu = (sum(_cpu_seconds(p) for p in pids) - cpu0) / (time.monotonic() - t0)
    return {"streams": streams, "cc": cc, "mbps": r["bps"] / 1e6,
            "retransmits": r["retransmits"], "mean_rtt_ms": r["mean_rtt_ms"],
            "delayer_cpu_pct": 100 * cpu, "load1": os.getloadavg()[0]}


def tcp_matrix(name: str, seconds: float) -> list[dict[str, Any]]:
    rows = []
    with Lab.up(name) as lab:
        for buf in (None, BIG_BUF):
            _set_buffers(lab, buf)
            for cc in ("bbr", "cubic"):
                for p in (1, 4):
                    m = measure(lab, 0, 1, p, cc, seconds)
                    m["buffers"] = "default 4M/32M" if buf is None else "64M/64M"
                    rows.append(m)
                    print(f"  {name} {m['buffers']:<14} {cc:<6} P={p}: {m['mbps']:.0f} Mbit/s "
                          f"(retr {m['retransmits']}, load {m['load1']:.1f})", flush=True)
    return rows


def rate_sweep(rates_gbit: list[float], mtus: list[int], seconds: float,
               repeats: int) -> list[dict[str, Any]]:
    rows = []
    for mtu in mtus:
        for g in rates_gbit:
            sc = scenario.parse({"name": f"sweep-{g:g}g-mtu{mtu}", "hosts": 2,
                                 "defaults": {"rtt_ms": 50, "rate": f"{g}gbit", "mtu": mtu,
                                              "tcp_buf_max": BIG_BUF}})
            with Lab.up(sc) as lab:
                rtts = selfcheck.ping_rtt(lab, 0, 1, count=10)
                for _ in range(repeats):
                    m = measure(lab, 0, 1, 4, "bbr", seconds)
                    expected = g * 1e3 * selfcheck.payload_share(mtu)
                    m.update(rate_gbit=g, mtu=mtu, expected_mbps=expected,
                             ratio=m["mbps"] / expected,
                             idle_rtt_ms=sorted(rtts)[len(rtts) // 2] if rtts else None)
                    rows.append(m)
                    print(f"  sweep mtu {mtu} {g:g} Gbit/s: {m['mbps']:.0f} of {expected:.0f} "
                          f"({m['ratio']:.1%}), delayer cpu {m['delayer_cpu_pct']:.0f} %, "
                          f"load {m['load1']:.1f}", flush=True)
                stats = lab.delayer_stats()
                rows[-1]["delayer_stats"] = stats
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer sweep points")
    ap.add_argument("--parts", default="check,tcp,sweep")
    ap.add_argument("--rates", default="", help="sweep rates in Gbit/s, comma separated")
    ap.add_argument("--mtus", default="9000,1500")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    parts = a.parts.split(",")
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
                              "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "load_start": os.getloadavg(), "seconds": a.seconds}
    if "check" in parts:
        result["checks"] = {}
        for name in ("smoke", "wan-a", "wan-lossy", "regions"):
            with Lab.up(name) as lab:
                rep = selfcheck.run(lab, seconds=a.seconds)
                print(rep.table(), flush=True)
                result["checks"][name] = json.loads(rep.to_json())
                result["checks"][name]["delayer_stats"] = lab.delayer_stats()
    if "tcp" in parts:
        result["tcp_wan_a"] = tcp_matrix("wan-a", a.seconds)
        result["tcp_wan_lossy"] = tcp_matrix("wan-lossy", a.seconds)
    if "sweep" in parts:
        rates = ([float(r) for r in a.rates.split(",")] if a.rates
                 else [1, 2, 4] if a.quick else [1, 2, 4, 6, 8])
        mtus = [int(m) for m in a.mtus.split(",")]
        result["sweep"] = rate_sweep(rates, mtus, a.seconds, 1 if a.quick else a.repeats)
    result["load_end"] = os.getloadavg()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    every_part = parts == ["check", "tcp", "sweep"]
    path = out / ("wanlab_selfcheck" if every_part else f"wanlab_selfcheck_{'_'.join(parts)}")
    path.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    command = shlex.join(["python3", "-m", "scripts.wanlab.bench", *sys.argv[1:]])
    path.with_suffix(".md").write_text(bench_report.markdown(result, command) + "\n")
    print(f"wrote {path.with_suffix('.json')} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
