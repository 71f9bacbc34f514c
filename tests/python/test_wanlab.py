"""The WAN lab delivers what its scenario promises, partitions cut and heal, teardown is clean.

Needs root and the lab's tools; skips with the reason otherwise. About 30 s in all.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from wanlab_fixture import skip_reason, wanlab_fixture

from scripts.wanlab import Lab, scenario, selfcheck, shaping, state

smoke = wanlab_fixture("smoke", need_iperf3=True)


# ---- pure logic: runs everywhere --------------------------------------------------------------


def test_bundled_scenarios_resolve() -> None:
    wan_a, lossy, regions = (scenario.load(n) for n in ("wan-a", "wan-lossy", "regions"))
    assert len(wan_a.hosts) == 4 and wan_a.rtt_ms(0, 3) == 50
    assert wan_a.effective_rate_bps(0, 1) == 10**9
    assert lossy.rtt_ms(1, 2) == 100 and lossy.path(1, 2).loss_pct == 0.1
    eu1, eu2, us1 = (regions.host(n).index for n in ("eu1", "eu2", "us1"))
    assert regions.rtt_ms(eu1, eu2) == 1 and regions.rtt_ms(eu1, us1) == 80
    assert regions.effective_rate_bps(eu1, eu2) == 10**9
    assert regions.effective_rate_bps(eu1, us1) == 250 * 10**6


def test_regions_plan_has_per_pair_classes_and_queues() -> None:
    sc = scenario.load("regions")
    plan = shaping.plan(sc, 0)
    assert [q.delay_ms for q in plan.queues] == [(1 - 0.35) / 2, (80 - 0.35) / 2]
    filters = [c for c in plan.tc if c[0] == "filter"]
    assert {c[c.index("dst") + 1] for c in filters} == {"10.78.0.3/32", "10.78.0.4/32"}
    assert "--queue-num 1" in plan.iptables_restore


def test_bad_scenarios_are_rejected() -> None:
    with pytest.raises(scenario.ScenarioError):
        scenario.parse({"hosts": 2, "defaults": {"rate": "fast"}})
    with pytest.raises(scenario.ScenarioError):
        scenario.parse({"hosts": 2, "links": [{"a": "h1", "b": "nowhere", "rtt_ms": 5}]})


# ---- the running lab ---------------------------------------------------------------------------


def test_smoke_delivers_rtt_and_rate(smoke: Lab) -> None:
    report = selfcheck.run(smoke, rtt_tolerance=0.10, rate_tolerance=0.15, seconds=3)
    if not report.ok:  # a shared 2-core box can starve one run; a real fault fails twice
        report = selfcheck.run(smoke, rtt_tolerance=0.10, rate_tolerance=0.15, seconds=3)
    assert report.ok, report.table() + "\n" + json.dumps(smoke.delayer_stats(), indent=1)


_ECHO_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1)
c, _ = s.accept()
while data := c.recv(64):
    c.sendall(data)
"""
_PING_PONG_CLIENT = """
import json, os, socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
done, end = [], time.monotonic() + float(os.environ["DURATION_S"])
while time.monotonic() < end:
    c.sendall(b"x" * 8)
    got = 0
    while got < 8:
        got += len(c.recv(8 - got))
    done.append(time.monotonic())
print(json.dumps(done))
"""


def test_partition_stalls_then_recovers(smoke: Lab) -> None:
    port = 5401
    server = smoke.python(1, _ECHO_SERVER, str(port))
    try:
        selfcheck.wait_listening(server.pid, port)
        client = smoke.python(0, _PING_PONG_CLIENT, smoke.ip(1), str(port),
                              env={"DURATION_S": "6"}, stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        cut = time.monotonic()
        smoke.partition(0, 1, True)
        assert smoke.partitioned(0, 1) and smoke.partitioned(1, 0)
        probe = smoke.exec(0, ["ping", "-U", "-c", "1", "-W", "1", smoke.ip(1)], check=False)
        assert probe.returncode != 0, "ping crossed a partition"
        time.sleep(0.5)
        smoke.partition(0, 1, False)
        healed = time.monotonic()
        assert not smoke.partitioned(0, 1)
        out, _ = client.communicate(timeout=30)
        assert client.returncode == 0
    finally:
        server.kill()
        server.wait()
    done = json.loads(out)
    before = [t for t in done if t < cut]
    during = [t for t in done if cut + 0.05 < t < healed]  # one in-flight reply may land
    after = [t for t in done if t > healed]
    assert len(before) > 10, "the connection never got going"
    assert not during, f"{len(during)} round trips completed through the partition"
    assert after, "the connection did not recover after the partition was lifted"
    # TCP retransmits with exponential backoff (RTO >= 200 ms), so recovery takes a while.
    assert after[0] - healed < 3.5, f"recovery took {after[0] - healed:.1f} s"
    assert len(after) > 10


def test_teardown_is_idempotent_and_reaps_crashed_labs() -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab.up("smoke")
    prefix = lab.prefix
    assert len(state.lab_namespaces(prefix)) == 3
    delayer_pids = [pid for pid, _ in lab.delayers().values()]
    assert delayer_pids
    # Pretend the owner crashed: a dead pid in the state file makes the lab stale.
    dead = subprocess.Popen(["true"])
    dead.wait()
    data = state.read(prefix)
    assert data is not None
    data["owner_pid"] = dead.pid
    state.write(prefix, data)
    assert prefix in state.reap_stale()
    assert not state.lab_namespaces(prefix) and state.read(prefix) is None
    assert state.teardown(prefix) == []  # a second teardown finds nothing and does not fail
    assert not [pid for pid in delayer_pids if os.path.exists(f"/proc/{pid}")]
