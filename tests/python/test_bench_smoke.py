"""The collectives benchmark's CI run: a short pass over the WAN lab's smoke scenario (2 hosts,
20 ms, 200 Mbit/s) that checks every collective's result against Gloo before timing it, and
reports each beside Gloo and against the emulated link."""

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
    rows = json.loads((tmp_path / "collectives_smoke-smoke.json").read_text())
    assert (tmp_path / "collectives_smoke-smoke.md").exists()
    seen = {(r["collective"], r["bytes"], r["backend"]) for r in rows}
    sizes = {r["bytes"] for r in rows}
    assert len(sizes) == 2
    assert seen == {(c, s, b) for c in COLLECTIVES for s in sizes for b in ("wan", "gloo")}
    for row in rows:
        assert row["checked"], row
        assert row["seconds"] > 0, row
        # On the emulated link every figure is also set against what the link allows.
        assert 0 < row["fraction_of_link"] < 1.6, row
    for row in (r for r in rows if r["backend"] == "wan"):
        assert row["speedup_vs_gloo"] > 0, row
