"""The collectives benchmark's CI run: a short pass over the WAN lab's smoke scenario (2 hosts,
20 ms, 200 Mbit/s) that checks every collective's result against Gloo before timing it, and
reports each beside Gloo, beside Gloo on BBR-tuned hosts, and against the link's lower bound."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wanlab_fixture import skip_reason

ROOT = Path(__file__).resolve().parents[2]
COLLECTIVES = {"allreduce", "allgather", "reduce_scatter", "broadcast"}


def test_collectives_benchmark_smoke_run(tmp_path: Path) -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    run = subprocess.run(
        [sys.executable, "-m", "bench.collectives.run", "--scenario", "smoke", "--smoke",
         "--world-size", "2", "--budget", "0.2", "--out-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    document = json.loads((tmp_path / "collectives_smoke-smoke.json").read_text())
    rows = document["rows"]
    assert (tmp_path / "collectives_smoke-smoke.md").exists()
    seen = {(r["collective"], r["bytes"], r["backend"]) for r in rows}
    sizes = {r["bytes"] for r in rows}
    assert len(sizes) == 2
    backends = ("wan", "gloo", "gloo-bbr")
    assert seen == {(c, s, b) for c in COLLECTIVES for s in sizes for b in backends}
    for row in rows:
        assert row["checked"] == (row["backend"] == "wan"), row
        assert row["seconds"] > 0, row
        # A true lower bound: nothing measured on the emulated link may beat it.
        assert 0 < row["fraction_of_lower_bound"] <= 1.0, row
    for row in (r for r in rows if r["backend"] == "wan"):
        assert row["speedup_vs_gloo"] > 0 and row["speedup_vs_gloo_bbr"] > 0, row
    # The hosts really were tuned while gloo-bbr was created and timed.
    phases = {phase: values for record in document["host_tcp"] for phase, values in record.items()}
    assert phases["while_creating_gloo_bbr"]["net.ipv4.tcp_congestion_control"] == "bbr"
    timing = phases["while_timing_gloo_bbr"]
    assert timing["net.ipv4.tcp_congestion_control"] == "bbr", timing
    assert timing["net.ipv4.tcp_wmem"].split()[-1] == str(64 << 20), timing
    assert timing["net.ipv4.tcp_rmem"].split()[-1] == str(64 << 20), timing
    assert set(phases["rank_0_connections_of_gloo_bbr"]) == {"bbr"}, phases
