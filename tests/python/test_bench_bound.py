"""The collectives benchmark's lower bound (bench/collectives/bound.py) on the lab's own scenario
files: figures worked out by hand from the scenario, and the bound stays below times the lab has
really delivered."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.collectives.bound import lower_bound_seconds  # noqa: E402
from bench.common.lab import describe_link  # noqa: E402
from scripts.wanlab import Lab, scenario  # noqa: E402

MIB = 1 << 20


def link(name: str, world: int | None = None) -> dict:
    # A Lab object only names things until up() builds it: nothing is created here.
    lab = Lab(scenario.load(name), "twlbound")
    return describe_link(lab, world or len(lab.hosts))


def test_large_allreduce_is_the_bytes_through_every_uplink_plus_one_delay() -> None:
    # wan-a: 4 hosts at 1 Gbit/s, each may send a 500 000-byte bucket at line rate; 50 ms RTT
    # less the lab's 0.35 ms compensation, halved.
    moved = 2 * 3 * 256 * MIB - 4 * 500_000
    expected = moved * 8 / 4e9 + (50 - 0.35) / 2 / 1e3
    assert lower_bound_seconds("allreduce", 256 * MIB, link("wan-a")) == pytest.approx(expected)


def test_small_messages_pay_one_one_way_delay_not_log2_world() -> None:
    wan8 = link("wan-8")
    one_way = (50 - 0.35) / 2 / 1e3
    for collective in ("allreduce", "broadcast", "allgather", "reduce_scatter"):
        assert lower_bound_seconds(collective, 4096, wan8) == pytest.approx(one_way)
    # Broadcasts the lab delivered on wan-8 (29.1 ms for 4 KiB, 31.6 ms for 64 KiB) are slower
    # than the bound, as every real time must be.
    assert lower_bound_seconds("broadcast", 4096, wan8) < 0.0291
    assert lower_bound_seconds("broadcast", 64 << 10, wan8) < 0.0316


def test_broadcast_is_bound_by_the_roots_uplink() -> None:
    wan8 = link("wan-8")
    size = 64 * MIB
    root_alone = (size - 500_000) * 8 / 1e9
    assert lower_bound_seconds("broadcast", size, wan8) == pytest.approx(
        root_alone + (50 - 0.35) / 2 / 1e3)


def test_regions_every_output_waits_for_the_far_region() -> None:
    regions = link("regions")
    far = (80 - 0.35) / 2 / 1e3
    assert lower_bound_seconds("allreduce", 4096, regions) == pytest.approx(far)
    assert lower_bound_seconds("broadcast", 4096, regions) == pytest.approx(far)


def test_only_the_hosts_in_use_count() -> None:
    two_of_wan8 = link("wan-8", world=2)
    assert two_of_wan8["hosts"] == 2
    expected = (2 * 1 * 256 * MIB - 2 * 500_000) * 8 / 2e9 + (50 - 0.35) / 2 / 1e3
    assert lower_bound_seconds("allreduce", 256 * MIB, two_of_wan8) == pytest.approx(expected)


def test_back_to_back_calls_share_the_bucket_and_broadcasts_their_delay() -> None:
    smoke = link("smoke")  # 2 hosts, 200 Mbit/s (bucket 131 072 bytes), 20 ms
    one_way = (20 - 0.35) / 2 / 1e3
    # Broadcasts of 1 MiB: the root waits for nobody, so 4 calls cost the bytes and one delay.
    four = (4 * MIB - 131_072) * 8 / 200e6 + one_way
    assert lower_bound_seconds("broadcast", MIB, smoke, calls=4) == pytest.approx(four / 4)
    # The run this bound replaced the old one for: 4 such broadcasts took 43.4 ms each, more than
    # this bound but less than the old per-call "bound" of the bytes plus a delay (46.5 ms).
    assert lower_bound_seconds("broadcast", MIB, smoke, calls=4) < 0.0434
    # An allreduce waits for every rank's input: one delay per call, however many calls.
    assert lower_bound_seconds("allreduce", 4096, smoke, calls=25) == pytest.approx(one_way)


def test_unshaped_uplinks_give_no_bound() -> None:
    sc = scenario.parse({"name": "open", "hosts": 2, "defaults": {"rtt_ms": 10, "rate": "0"}})
    assert lower_bound_seconds("allreduce", MIB, describe_link(Lab(sc, "twlbound"), 2)) is None


def test_a_barrier_moves_no_bytes_and_pays_one_delay_per_call() -> None:
    wan8 = link("wan-8")
    one_way = (50 - 0.35) / 2 / 1e3
    assert lower_bound_seconds("barrier", 0, wan8) == pytest.approx(one_way)
    # Each call waits for every rank's entry into it: one delay per call, however many calls.
    assert lower_bound_seconds("barrier", 0, wan8, calls=10) == pytest.approx(one_way)
