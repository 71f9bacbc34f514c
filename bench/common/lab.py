"""Runs a benchmark's ranks inside a WAN-lab scenario (scripts/wanlab): brings the lab up, places
rank r on host r mod N, and describes the emulated link for the lower-bound columns."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from bench.common.launch import Namespaces
from scripts.wanlab import Lab
from scripts.wanlab.shaping import burst_bytes


def describe_link(lab: Lab, world: int) -> dict[str, Any]:
    """What the lab guarantees no byte can beat, for the hosts a `world`-rank run occupies: each
    host's shaped uplink and the token bucket it may send at line rate, and the one-way delay the
    lab holds every packet for (the scenario's RTT less the compensation, halved)."""
    sc = lab.scenario
    hosts = lab.hosts[:min(world, len(lab.hosts))]
    pairs = [(a.index, b.index) for a in hosts for b in hosts if a != b]
    delays = {pair: sc.path(*pair).delay_ms / 1e3 for pair in pairs}
    from_root = [d for (src, _), d in delays.items() if src == hosts[0].index]
    rtts = [sc.rtt_ms(*pair) for pair in pairs]
    return {
        "scenario": sc.name,
        "hosts": len(hosts),
        "uplink_bps": [h.rate_bps for h in hosts],
        "burst_bytes": [burst_bytes(h.rate_bps) for h in hosts],
        "one_way_min_s": min(delays.values()),
        "one_way_max_s": max(delays.values()),
        "root_one_way_min_s": min(from_root),
        "root_one_way_max_s": max(from_root),
        # The slowest uplink and the longest RTT, for the busbw / link rate column.
        "rate_bps": min(h.rate_bps for h in hosts),
        "rtt_s": max(rtts) / 1e3,
    }


@contextmanager
def running_lab(scenario: str, world: int | None = None
                ) -> Iterator[tuple[Namespaces, dict[str, Any], dict[str, str]]]:
    """Yields (placement, link, env): `link` as describe_link says for `world` ranks (default:
    one per host); `env` points Gloo at the lab interface."""
    with Lab.up(scenario) as lab:
        hosts = lab.hosts
        placement = Namespaces(
            namespaces=[lab.ns(h.index) for h in hosts],
            addresses=[h.ip for h in hosts],
            regions=[h.region for h in hosts],
        )
        link = describe_link(lab, world or len(hosts))
        yield placement, link, {"GLOO_SOCKET_IFNAME": "eth0"}
