"""The lab's NAT scenario: hosts behind routers of their own reach out but cannot be reached.

What #15's connection ladder has to get through, checked here at the socket level: a public host
accepts from everyone; a NATed host is reachable from nobody, under its router's address or under
the private one it would advertise; the restricted host gets out only to TCP port 443 of the
public host. Delay and rate still apply through the router. About 20 s with the lab up.
"""

from __future__ import annotations

import subprocess

import pytest
from wanlab_fixture import wanlab_fixture

from scripts.wanlab import Lab, nat, scenario, selfcheck

lab = wanlab_fixture("nat")

_LISTEN = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16); print("ready", flush=True)
while True:
    s.accept()[0].close()
"""
_DIAL = """
import socket, sys
s = socket.socket(); s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("connected")
except OSError as e:
    print(type(e).__name__)
"""


# ---- pure logic: runs everywhere --------------------------------------------------------------


def test_nat_scenario_parses() -> None:
    sc = scenario.load("nat")
    by_name = {h.name: h for h in sc.hosts}
    assert not by_name["pub"].nat and by_name["nat1"].nat and by_name["nat2"].nat
    assert by_name["fw"].nat and by_name["fw"].egress_only == ("pub", 443)
    assert sc.rtt_ms(0, 1) == 50 and sc.effective_rate_bps(1, 0) == 10**9


def test_egress_only_must_name_a_public_host_and_port() -> None:
    for bad in ("pub", "pub:0", "nowhere:443", "nat1:443", "fw:443"):
        hosts = [{"name": "pub"}, {"name": "nat1", "nat": True}, {"name": "fw", "egress_only": bad}]
        with pytest.raises(scenario.ScenarioError, match="egress_only"):
            scenario.parse({"hosts": hosts})


def test_router_forwards_only_what_the_scenario_lets_out() -> None:
    sc = scenario.load("nat")
    open_rules = nat.router_rules(sc, sc.host("nat1"))
    assert "-A POSTROUTING -o eth0 -j MASQUERADE" in open_rules
    assert ":FORWARD DROP" in open_rules and ":INPUT DROP" in open_rules
    assert f"-A FORWARD -i {nat.INSIDE_IFACE} -o eth0 -j ACCEPT" in open_rules
    narrow = nat.router_rules(sc, sc.host("fw"))
    assert f"-p tcp -d {sc.host('pub').ip} --dport 443 -j ACCEPT" in narrow
    assert f"-o eth0 -j ACCEPT" not in narrow


# ---- the running lab ---------------------------------------------------------------------------


def _dial(lab: Lab, src: str, address: str, port: int, timeout: float = 1.5) -> str:
    p = lab.python(src, _DIAL, address, str(port), str(timeout), stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=timeout + 20)
    return out.strip()


def _listening(lab: Lab, host: str, port: int) -> subprocess.Popen[str]:
    server = lab.python(host, _LISTEN, str(port), stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return server


def test_who_can_reach_whom(lab: Lab) -> None:
    servers = [_listening(lab, h, port) for h in ("pub", "nat1", "nat2") for port in (443, 29500)]
    try:
        for src in ("nat1", "nat2", "fw"):
            assert _dial(lab, src, lab.ip("pub"), 443) == "connected", src
        for src in ("nat1", "nat2"):
            assert _dial(lab, src, lab.ip("pub"), 29500) == "connected", src
        # The restricted host gets out to nothing but TCP 443 of the public host.
        assert _dial(lab, "fw", lab.ip("pub"), 29500) == "TimeoutError"
        assert _dial(lab, "fw", lab.ip("nat1"), 443) == "TimeoutError"
        # Nobody reaches a NATed host: its router drops what the inside did not start ...
        for src, dst in (("pub", "nat1"), ("nat1", "nat2"), ("nat2", "nat1")):
            assert _dial(lab, src, lab.ip(dst), 29500) == "TimeoutError", (src, dst)
        # ... and the private address it would advertise is nobody else's way to it: from the
        # public host there is no route, from another NATed host it is that host's own address.
        assert lab.local_ip("nat1") == lab.local_ip("nat2") != lab.ip("nat1")
        assert _dial(lab, "pub", lab.local_ip("nat1"), 29500) in ("OSError", "TimeoutError")
        assert _dial(lab, "fw", lab.local_ip("nat1"), 29500) == "ConnectionRefusedError"
    finally:
        for server in servers:
            server.kill()
            server.wait()


def test_delay_and_rate_apply_through_the_router(lab: Lab) -> None:
    rtt = selfcheck.tcp_rtt(lab, "nat1", "pub")
    assert 45 <= rtt <= 60, f"TCP connect nat1 -> pub took {rtt:.1f} ms; the scenario says 50 ms"
    rate = selfcheck.iperf3(lab, "nat1", "pub", seconds=3)["bps"]
    if rate < 0.8e9:  # a shared 2-core box can starve one run; a real fault fails twice
        rate = selfcheck.iperf3(lab, "nat1", "pub", seconds=3)["bps"]
    assert 0.8e9 <= rate <= 1.05e9, f"nat1 -> pub carried {rate / 1e6:.0f} Mbit/s of 1000"
