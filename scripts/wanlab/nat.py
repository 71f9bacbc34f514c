"""The NAT router in front of a host whose scenario says `nat` (pure functions, no side effects).

Such a host is two namespaces: its router "<prefix>-<name>-gw" holds the public address on the
lab's bridge and everything the scenario shapes (rate, delay, loss, partitions: shaping.py applies
there exactly as on a public host, to forwarded packets), and the host itself "<prefix>-<name>"
sits behind it on a private network. The router masquerades what goes out and forwards nothing
inward that the inside did not start, as a home router or a cloud NAT gateway without port
forwarding does; unsolicited packets to it are dropped, not refused, so a peer dialling it waits
rather than learning at once. Every NATed host gets the same private address, as two home networks
would: a peer that dials a private address it was told about reaches its own network, not the
host that advertised it.
"""

from __future__ import annotations

from .scenario import Host, Scenario

INSIDE_IFACE = "lan0"  # the router's side of the private network
PRIVATE_PREFIX = "192.168.1"
ROUTER_PRIVATE_IP = f"{PRIVATE_PREFIX}.1"
HOST_PRIVATE_IP = f"{PRIVATE_PREFIX}.2"


def router_rules(sc: Scenario, host: Host) -> str:
    """filter and nat tables of host's router, for iptables-restore (the raw table is shaping's)."""
    out = "-A FORWARD -i {inside} -o eth0{match} -j ACCEPT"
    match = ""
    if host.egress_only is not None:
        target, port = host.egress_only
        match = f" -p tcp -d {sc.host(target).ip} --dport {port}"
    lines = [
        "*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        "-A POSTROUTING -o eth0 -j MASQUERADE",
        "COMMIT",
        "*filter", ":INPUT DROP [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]",
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        f"-A INPUT -i {INSIDE_IFACE} -j ACCEPT",
        # Answers pings from outside, as most routers do: the lab's reachability check uses it.
        "-A INPUT -i eth0 -p icmp --icmp-type echo-request -j ACCEPT",
        "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        out.format(inside=INSIDE_IFACE, match=match),
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"
