"""Soak, CI-sized (bench/soak/soak.py; the long version is documented there): 4 elastic members
run random collectives of random sizes and dtypes, each result checked exactly, while one member
is SIGKILLed and replaced and one is SIGSTOPped past the heartbeat timeout and resumed. Every
member must end at the same step with every step checked and applied exactly once, the members
that lived through the run must not grow in RSS or open file descriptors, and nothing may hang
(every wait has a deadline)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import TRANSPORTS

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.soak.soak import MIB, SoakConfig, run_soak  # noqa: E402
from bench.soak.soak_worker import DTYPES, KINDS  # noqa: E402

# Two faults (one of each kind, in seeded order) in a 30 s window after warm-up.
CONFIG = dict(duration_s=30.0, max_faults=2, fault_gap_s=(2.0, 6.0), warmup_steps=40)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_soak_random_collectives_under_faults(transport: str, tmp_path: Path) -> None:
    config = SoakConfig(transport=transport, seed=TRANSPORTS.index(transport) + 11, **CONFIG)
    summary = run_soak(config, tmp_path / "logs")
    assert summary["violations"] == [], summary["violations"]

    faults = summary["faults"]
    assert sorted(f["kind"] for f in faults) == ["kill", "stop"], faults
    # A frozen member is removed by the heartbeat timeout (plus scheduling slack), not later.
    stop = next(f for f in faults if f["kind"] == "stop")
    assert stop["removed_s"] < config.heartbeat_timeout_ms / 1000 + 3.0, stop
    # Each fault took the job through two epochs (without the member, then whole again), and
    # the members in the failed collectives recovered in process.
    assert summary["final_epoch"] >= 1 + 2 * len(faults), summary["final_epoch"]
    assert summary["recoveries"] >= len(faults), summary["recoveries"]

    # Every member alive at the end (founders, the resumed one, the replacement) finished the
    # same number of steps, having checked each step itself or taken it over from a member that
    # had; together they ran every kind of collective in every dtype.
    steps = summary["steps"]
    assert steps > config.warmup_steps + 20, steps
    done = summary["done"]
    assert len(done) == config.members, summary["exit_codes"]
    assert all(e["step"] == steps and e["exactly_once"] for e in done.values()), done
    replacement = next(f["replacement"] for f in faults if f["kind"] == "kill")
    assert 0 < done[replacement]["checked"] < steps, done[replacement]
    assert set(summary["checked_per_kind"]) == set(KINDS), summary["checked_per_kind"]
    assert set(summary["checked_per_dtype"]) == set(DTYPES), summary["checked_per_dtype"]

    # Flat memory and descriptors on the members that lived through both faults.
    whole = summary["whole_run_members"]
    assert len(whole) == config.members - 1, whole
    for name in whole:
        grown = summary["growth"][name]
        assert grown["last_step"] >= steps - config.sample_every, grown
        assert grown["rss_growth"] < 64 * MIB, grown
        assert grown["fd_growth"] <= 16, grown
