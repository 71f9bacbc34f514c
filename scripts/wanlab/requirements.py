"""What the lab needs from this machine, checked up front so callers can skip with a clear reason.

Cheap checks (root, tools, compiler) come first; then one probe namespace tries the kernel
features for real: veth, tbf, htb, an iptables NFQUEUE rule, and binding a queue with the delayer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

from . import build
from .errors import LabUnavailable

TOOLS = {
    "ip": "iproute2",
    "tc": "iproute2",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "ping": "iputils-ping",
}

_probe_cache: list[str] | None = None


def _probe_kernel() -> list[str]:
    """Tries every kernel feature the lab uses inside a throwaway namespace."""
    ns = f"twlp{uuid.uuid4().hex[:6]}-probe"
    reasons: list[str] = []

    def ok(*argv: str) -> bool:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True).returncode == 0

    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        return ["cannot create network namespaces (needs CAP_SYS_ADMIN and CAP_NET_ADMIN)"]
    try:
        if not ok("ip", "link", "add", "t0", "type", "veth", "peer", "name", "t1"):
            return ["kernel lacks veth (CONFIG_VETH)"]
        if not ok("tc", "qdisc", "add", "dev", "t0", "root", "tbf", "rate", "1gbit",
                  "burst", "131072", "limit", "262144"):
            reasons.append("kernel lacks the tbf qdisc (CONFIG_NET_SCH_TBF)")
        if not ok("tc", "qdisc", "add", "dev", "t1", "root", "handle", "1:", "htb"):
            reasons.append("kernel lacks the htb qdisc (CONFIG_NET_SCH_HTB)")
        if not ok("iptables", "-t", "raw", "-A", "PREROUTING", "-j", "NFQUEUE",
                  "--queue-num", "0", "--queue-bypass"):
            reasons.append("iptables cannot add an NFQUEUE rule in the raw table "
                           "(needs iptables with the xt NFQUEUE target, CONFIG_NETFILTER_XT_TARGET_NFQUEUE)")
        if not ok("iptables", "-t", "raw", "-A", "PREROUTING", "-m", "statistic", "--mode",
                  "random", "--probability", "0.5", "-j", "DROP"):
            reasons.append("iptables lacks the statistic match (CONFIG_NETFILTER_XT_MATCH_STATISTIC)")
        delayer = build.ensure_delayer()
        p = subprocess.run(["ip", "netns", "exec", ns, str(delayer), "-p", "-q", "0:1"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            reasons.append("cannot bind an NFQUEUE queue (CONFIG_NETFILTER_NETLINK_QUEUE): "
                           + p.stderr.strip())
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return reasons


def missing(need_iperf3: bool = False) -> list[str]:
    """Every reason the lab cannot run here; empty when it can."""
    global _probe_cache
    reasons: list[str] = []
    if os.geteuid() != 0:
        reasons.append("must run as root (ip netns needs CAP_SYS_ADMIN and CAP_NET_ADMIN)")
    tools = dict(TOOLS, **({"iperf3": "iperf3"} if need_iperf3 else {}))
    for tool, pkg in tools.items():
        if shutil.which(tool) is None:
            reasons.append(f"{tool} not found (apt-get install {pkg})")
    reasons += build.build_reasons()
    if reasons:
        return reasons
    if _probe_cache is None:
        try:
            _probe_cache = _probe_kernel()
        except LabUnavailable as e:
            _probe_cache = [str(e)]
    return list(_probe_cache)


def require(need_iperf3: bool = False) -> None:
    reasons = missing(need_iperf3)
    if reasons:
        raise LabUnavailable("WAN lab cannot run here: " + "; ".join(reasons))
