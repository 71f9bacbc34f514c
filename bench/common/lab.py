"""Runs a benchmark's ranks inside a WAN-lab scenario (scripts/wanlab): brings the lab up, places
rank r on host r mod N, and describes the emulated link for the "fraction of the link" columns."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from bench.common.launch import Namespaces
from scripts.wanlab import Lab


@contextmanager
def running_lab(scenario: str) -> Iterator[tuple[Namespaces, dict[str, Any], dict[str, str]]]:
    """Yields (placement, link, env). `link` is the slowest host uplink and the longest RTT, the
    bound a flat ring can reach; `env` points Gloo at the lab interface."""
    with Lab.up(scenario) as lab:
        hosts = lab.hosts
        placement = Namespaces(
            namespaces=[lab.ns(h.index) for h in hosts],
            addresses=[h.ip for h in hosts],
            regions=[h.region for h in hosts],
        )
        rtts = [lab.scenario.rtt_ms(a.index, b.index) for a in hosts for b in hosts if a != b]
        link = {"rate_bps": min(h.rate_bps for h in hosts), "rtt_s": max(rtts) / 1e3,
                "scenario": scenario}
        yield placement, link, {"GLOO_SOCKET_IFNAME": "eth0"}
