"""Turns a scenario into per-host tc and iptables configuration (pure functions, no side effects).

Where each effect is applied, and why:
  - rate: on the sender's egress (its uplink), tbf when one rate covers every destination, else an
    htb tree with one capped class per destination whose pair rate is below the uplink;
  - delay: on the receiver's ingress (raw PREROUTING -> NFQUEUE -> nfq_delay), one queue per
    distinct delay value, so per-source delays need no extra processes. Holding packets on the
    sender's egress would count against TCP Small Queues and throttle the sender;
  - loss: on the receiver's ingress, iptables statistic match, per source;
  - partitions: a DROP rule per peer in the PARTITION_CHAIN, evaluated before everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from .scenario import Scenario

IFACE = "eth0"
PARTITION_CHAIN = "TWL_PARTITION"
UNSHAPED_PARENT_BPS = 40 * 10**9  # htb root when the uplink itself is unshaped
MIN_BURST_BYTES = 128 * 1024  # must exceed one GSO super-packet (64 KiB) or tbf splits it
MIN_LIMIT_BYTES = 256 * 1024


@dataclass(frozen=True)
class DelayQueue:
    num: int
    delay_ms: float
    sources: tuple[str, ...]  # source IPs held by this queue


@dataclass(frozen=True)
class HostPlan:
    tc: list[list[str]]  # tc argument lists (without "tc -n NS")
    iptables_restore: str  # raw-table ruleset for iptables-restore
    queues: list[DelayQueue]


def burst_bytes(bps: int) -> int:
    """What a shaped sender may send at line rate after an idle moment: 4 ms of traffic at the
    shaped rate, at least MIN_BURST_BYTES."""
    return max(MIN_BURST_BYTES, bps // 8 // 250)


def _limit(bps: int, queue_ms: float) -> int:
    return max(MIN_LIMIT_BYTES, int(bps / 8 * queue_ms / 1000))


def egress_tc(sc: Scenario, src: int) -> list[list[str]]:
    host = sc.hosts[src]
    caps = {}
    for dst in range(len(sc.hosts)):
        if dst == src:
            continue
        cap = sc.path(src, dst).rate_bps
        if cap > 0 and (host.rate_bps == 0 or cap < host.rate_bps):
            caps[sc.hosts[dst].ip] = cap
    dev = ["dev", IFACE]
    if not caps:
        if host.rate_bps == 0:
            return []
        r = host.rate_bps
        return [["qdisc", "replace", *dev, "root", "tbf", "rate", f"{r}bit",
                 "burst", str(burst_bytes(r)), "limit", str(_limit(r, sc.queue_ms))]]
    up = host.rate_bps or UNSHAPED_PARENT_BPS
    cmds = [["qdisc", "replace", *dev, "root", "handle", "1:", "htb", "default", "2"],
            ["class", "add", *dev, "parent", "1:", "classid", "1:1", "htb",
             "rate", f"{up}bit", "ceil", f"{up}bit", "burst", str(burst_bytes(up)),
             "cburst", str(burst_bytes(up))]]

    def leaf(minor: int, bps: int) -> list[list[str]]:
        return [["class", "add", *dev, "parent", "1:1", "classid", f"1:{minor:x}", "htb",
                 "rate", f"{bps}bit", "ceil", f"{bps}bit", "burst", str(burst_bytes(bps)),
                 "cburst", str(burst_bytes(bps))],
                ["qdisc", "add", *dev, "parent", f"1:{minor:x}", "bfifo",
                 "limit", str(_limit(bps, sc.queue_ms))]]

    cmds += leaf(2, up)  # everything without a pair cap (and ARP)
    for k, (ip, bps) in enumerate(sorted(caps.items()), start=16):
        cmds += leaf(k, bps)
        cmds.append(["filter", "add", *dev, "parent", "1:", "protocol", "ip", "prio", "1",
                     "u32", "match", "ip", "dst", f"{ip}/32", "flowid", f"1:{k:x}"])
    return cmds


def ingress_queues(sc: Scenario, dst: int) -> list[DelayQueue]:
    by_delay: dict[float, list[str]] = {}
    for src in range(len(sc.hosts)):
        if src == dst:
            continue
        d = sc.path(src, dst).delay_ms
        if d > 0:
            by_delay.setdefault(d, []).append(sc.hosts[src].ip)
    return [DelayQueue(num, d, tuple(ips)) for num, (d, ips) in enumerate(sorted(by_delay.items()))]


def ingress_rules(sc: Scenario, dst: int, queues: list[DelayQueue]) -> str:
    lines = ["*raw", ":PREROUTING ACCEPT [0:0]", f":{PARTITION_CHAIN} - [0:0]",
             f"-A PREROUTING -i {IFACE} -j {PARTITION_CHAIN}"]
    for src in range(len(sc.hosts)):
        loss = sc.path(src, dst).loss_pct if src != dst else 0
        if loss > 0:
            lines.append(f"-A PREROUTING -i {IFACE} -s {sc.hosts[src].ip} -m statistic "
                         f"--mode random --probability {loss / 100:.6f} -j DROP")
    for q in queues:
        for ip in q.sources:
            # --queue-bypass: if the delayer is gone, packets pass undelayed (fail-open).
            lines.append(f"-A PREROUTING -i {IFACE} -s {ip} -j NFQUEUE "
                         f"--queue-num {q.num} --queue-bypass")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def plan(sc: Scenario, host: int) -> HostPlan:
    queues = ingress_queues(sc, host)
    return HostPlan(egress_tc(sc, host), ingress_rules(sc, host, queues), queues)


def partition_rule(action: str, peer_ip: str) -> list[str]:
    """iptables arguments to add (-A), delete (-D) or test (-C) the drop rule for peer_ip."""
    return ["-t", "raw", action, PARTITION_CHAIN, "-s", peer_ip, "-j", "DROP"]
