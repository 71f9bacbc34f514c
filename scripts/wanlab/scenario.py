"""Scenario files: which hosts exist and what the network between each pair looks like.

A scenario is TOML (or JSON with the same keys):

    name = "regions"
    [defaults]            # every pair unless something more specific says otherwise
    rtt_ms = 1            # round-trip time
    rate = "1gbit"        # each host's uplink (egress) rate; "0"/"none" = unshaped
    loss_pct = 0          # random loss per direction, applied at the receiver
    queue_ms = 50         # bottleneck buffer, in time at the shaped rate
    mtu = 9000
    congestion = "cubic"  # per-host net.ipv4.tcp_congestion_control (empty: leave as is)
    tcp_buf_max = 0       # per-host tcp_[rw]mem max in bytes (0: distribution default)
    rtt_compensation_ms = 0.35  # fixed cost of the emulated path itself, taken off each RTT
    [[hosts]]
    name = "eu1"
    region = "eu"         # optional; links may name regions
    nat = true            # optional: behind a NAT router of its own (MASQUERADE, nothing
                          # forwarded inward); its address inside is private (see lab.py)
    egress_only = "pub:443"  # optional, implies nat: the router lets out only TCP to that
                          # host and port (a network whose only way out is one port)
    rtt_ms = 30           # optional per-host: RTT(i, j) = (rtt_i + rtt_j) / 2
    rate = "500mbit"      # optional per-host uplink
    [[links]]             # optional per-pair overrides; a/b are host or region names
    a = "eu"
    b = "us"
    rtt_ms = 80
    rate = "250mbit"      # cap for traffic between them, inside each host's uplink
    loss_pct = 0.1

Resolution (most specific wins): a link naming both hosts, then a link naming regions, then the
per-host values, then the defaults. RTT is split evenly into two one-way delays.

rtt_compensation_ms: even with no delay configured, a packet held by the user-space delayer pays
two wake-ups (on arrival and at release), and the measuring program one more; on this project's
2-vCPU VMs that adds 0.35-0.5 ms to every RTT (docs/wan-lab.md). The lab holds packets that much
less, so a 1 ms scenario measures ~1.05 ms instead of ~1.4 ms. Set 0 to hold exactly rtt/2.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

_RATE_UNITS = {"": 1, "bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9}


class ScenarioError(ValueError):
    """The scenario file is malformed or names something that does not exist."""


def parse_rate(text: str | int | float) -> int:
    """'1gbit' -> 1_000_000_000 bit/s; 0, '0' or 'none' -> 0 (unshaped)."""
    if isinstance(text, (int, float)):
        return int(text)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-z]*)\s*", text.lower())
    if text.strip().lower() == "none":
        return 0
    if not m or m.group(2) not in _RATE_UNITS:
        raise ScenarioError(f"bad rate {text!r}: use e.g. 200mbit, 1gbit, 0 for unshaped")
    return int(float(m.group(1)) * _RATE_UNITS[m.group(2)])


def format_rate(bps: float) -> str:
    if bps >= 1e9:
        return f"{bps / 1e9:.3g} Gbit/s"
    return f"{bps / 1e6:.4g} Mbit/s"


@dataclass(frozen=True)
class Host:
    index: int
    name: str
    region: str
    ip: str
    rtt_ms: float
    rate_bps: int
    loss_pct: float
    nat: bool = False
    # (host name, TCP port): the only destination the NAT router lets out; None: any.
    egress_only: tuple[str, int] | None = None


@dataclass(frozen=True)
class PathSpec:
    """One direction src -> dst."""

    src: int
    dst: int
    delay_ms: float  # one-way hold on dst's ingress: (rtt - rtt_compensation_ms) / 2
    rate_bps: int  # cap on src's egress towards dst (0: only the host uplink applies)
    loss_pct: float  # applied on dst's ingress


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    rtt_ms: float | None
    rate_bps: int | None
    loss_pct: float | None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    hosts: tuple[Host, ...]
    links: tuple[Link, ...]
    queue_ms: float
    mtu: int
    congestion: str
    tcp_buf_max: int
    rtt_compensation_ms: float
    subnet: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def host(self, key: int | str) -> Host:
        """Looks a host up by index (0-based), by name, or by a digit string."""
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            i = int(key)
            if not 0 <= i < len(self.hosts):
                raise ScenarioError(f"host index {i} out of range 0..{len(self.hosts) - 1}")
            return self.hosts[i]
        for h in self.hosts:
            if h.name == key:
                return h
        raise ScenarioError(f"no host {key!r}; hosts are {[h.name for h in self.hosts]}")

    def _link(self, a: Host, b: Host) -> Link | None:
        by_host = [lk for lk in self.links if {lk.a, lk.b} == {a.name, b.name}]
        if by_host:
            return by_host[-1]
        by_region = [lk for lk in self.links if {lk.a, lk.b} == {a.region, b.region} and a.region]
        return by_region[-1] if by_region else None

    def rtt_ms(self, a: int, b: int) -> float:
        ha, hb = self.hosts[a], self.hosts[b]
        lk = self._link(ha, hb)
        if lk is not None and lk.rtt_ms is not None:
            return lk.rtt_ms
        return (ha.rtt_ms + hb.rtt_ms) / 2

    def path(self, src: int, dst: int) -> PathSpec:
        hs, hd = self.hosts[src], self.hosts[dst]
        lk = self._link(hs, hd)
        rate = lk.rate_bps if lk is not None and lk.rate_bps is not None else 0
        loss = lk.loss_pct if lk is not None and lk.loss_pct is not None else hd.loss_pct
        rtt = self.rtt_ms(src, dst)
        delay = max(0.0, rtt - self.rtt_compensation_ms) / 2 if rtt > 0 else 0.0
        return PathSpec(src, dst, delay, rate, loss)

    def effective_rate_bps(self, src: int, dst: int) -> int:
        """What one src -> dst flow can get: the tighter of the uplink and the pair cap."""
        up, cap = self.hosts[src].rate_bps, self.path(src, dst).rate_bps
        caps = [r for r in (up, cap) if r > 0]
        return min(caps) if caps else 0


def _num(d: dict[str, Any], key: str, default: float | None) -> float | None:
    v = d.get(key, default)
    if v is None:
        return None
    if not isinstance(v, (int, float)) or v < 0:
        raise ScenarioError(f"{key} must be a non-negative number, got {v!r}")
    return float(v)


def _egress_only(host: str, value: Any) -> tuple[str, int] | None:
    """'pub:443' -> ('pub', 443)."""
    if value is None:
        return None
    m = re.fullmatch(r"([a-z][a-z0-9]{0,7}):([0-9]{1,5})", str(value))
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ScenarioError(f"host {host}: egress_only must be 'host:port', got {value!r}")
    return m.group(1), int(m.group(2))


def parse(data: dict[str, Any], subnet: str = "10.78.0") -> Scenario:
    defaults = data.get("defaults", {})
    hosts_in = data.get("hosts")
    if isinstance(hosts_in, int):  # shorthand: hosts = 4 -> h1..h4
        hosts_in = [{"name": f"h{i + 1}"} for i in range(hosts_in)]
    if not hosts_in or len(hosts_in) > 200:
        raise ScenarioError("scenario needs 1..200 hosts")
    d_rtt = _num(defaults, "rtt_ms", 0.0) or 0.0
    d_rate = parse_rate(defaults.get("rate", 0))
    d_loss = _num(defaults, "loss_pct", 0.0) or 0.0
    hosts: list[Host] = []
    for i, h in enumerate(hosts_in):
        name = str(h.get("name", f"h{i + 1}"))
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", name):
            raise ScenarioError(f"host name {name!r}: 1-8 lowercase letters/digits, letter first")
        hosts.append(
            Host(
                index=i,
                name=name,
                region=str(h.get("region", "")),
                ip=f"{subnet}.{i + 1}",
                rtt_ms=_num(h, "rtt_ms", d_rtt) or 0.0,
                rate_bps=parse_rate(h.get("rate", d_rate)),
                loss_pct=_num(h, "loss_pct", d_loss) or 0.0,
                nat=bool(h.get("nat", False)) or "egress_only" in h,
                egress_only=_egress_only(name, h.get("egress_only")),
            )
        )
    if len({h.name for h in hosts}) != len(hosts):
        raise ScenarioError("host names must be unique")
    for h in hosts:
        if h.egress_only is not None:
            target = next((t for t in hosts if t.name == h.egress_only[0]), None)
            if target is None or target is h or target.nat:
                raise ScenarioError(f"host {h.name}: egress_only must name another host that is "
                                    f"not behind a NAT, got {h.egress_only[0]!r}")
    known = {h.name for h in hosts} | {h.region for h in hosts if h.region}
    links: list[Link] = []
    for lk in data.get("links", []):
        a, b = str(lk.get("a", "")), str(lk.get("b", ""))
        if a not in known or b not in known:
            raise ScenarioError(f"link {a!r}-{b!r} names an unknown host or region")
        rate = lk.get("rate")
        links.append(
            Link(a, b, _num(lk, "rtt_ms", None), None if rate is None else parse_rate(rate),
                 _num(lk, "loss_pct", None))
        )
    return Scenario(
        name=str(data.get("name", "unnamed")),
        description=str(data.get("description", "")),
        hosts=tuple(hosts),
        links=tuple(links),
        queue_ms=_num(defaults, "queue_ms", 50.0) or 50.0,
        mtu=int(defaults.get("mtu", 1500)),
        congestion=str(defaults.get("congestion", "")),
        tcp_buf_max=int(defaults.get("tcp_buf_max", 0)),
        rtt_compensation_ms=_num(defaults, "rtt_compensation_ms", 0.35) or 0.0,
        subnet=subnet,
        raw=data,
    )


def find(name_or_path: str) -> Path:
    """A path to a file, or the name of a bundled scenario ('smoke', 'wan-a', ...)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for ext in (".toml", ".json"):
        q = SCENARIO_DIR / f"{name_or_path}{ext}"
        if q.is_file():
            return q
    names = sorted(f.stem for f in SCENARIO_DIR.glob("*.*"))
    raise ScenarioError(f"no scenario {name_or_path!r}: not a file, and bundled ones are {names}")


def load(name_or_path: str) -> Scenario:
    path = find(name_or_path)
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    data.setdefault("name", path.stem)
    return parse(data)
