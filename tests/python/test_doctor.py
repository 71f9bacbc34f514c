"""torchwan doctor: a real 3-rank self-test on loopback (`--local 3 --json`) must give consistent
matrices, the JSON and the heat map; the recommendations are checked on constructed measurements
whose right answer is known (buffers below the BDP, two RTT clusters, loss, a slow link)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from torchwan.doctor import advice, probe

MiB = 1 << 20
TOPICS = {"socket_buffers", "lanes", "congestion", "regions", "compression"}


def test_local_self_test_writes_consistent_matrices(tmp_path) -> None:
    out = tmp_path / "doctor.json"
    result = subprocess.run(
        [sys.executable, "-m", "torchwan.doctor", "--local", "3", "--json", str(out),
         "--max-mib", "16", "--timeout", "60"],
        capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "recommendations" in result.stdout and "RTT (ms)" in result.stdout
    m = json.loads(out.read_text())
    n = m["world_size"]
    assert n == 3 and len(m["hosts"]) == 3 and m["lanes"] >= 1
    for name in ("rtt_ms", "bandwidth_gbps", "link", "retransmits", "segments"):
        assert len(m[name]) == n and all(len(row) == n for row in m[name]), name
    for i in range(n):
        assert m["rtt_ms"][i][i] == 0 and m["bandwidth_gbps"][i][i] == 0
        assert m["link"][i][i] == "self"
        for j in range(n):
            if i == j:
                continue
            assert 0 < m["rtt_ms"][i][j] < 100, (i, j, m["rtt_ms"])
            assert m["rtt_ms"][i][j] == m["rtt_ms"][j][i]  # one ping-pong per pair
            assert m["bandwidth_gbps"][i][j] > 0.05, (i, j, m["bandwidth_gbps"])
            assert m["link"][i][j] == "direct"
            assert probe.FIRST_ROUND_BYTES <= m["probe_bytes"][i][j] <= 16 * MiB
            assert m["segments"][i][j] > 0 and m["retransmits"][i][j] >= 0
    for host in m["hosts"]:
        assert host["rmem_max"] > 0 and host["tcp_rmem_max"] > 0
        assert host["congestion_control"] in host["available_congestion_control"]
        assert host["int8_codec_gbps"] > 0
    assert {item["topic"] for item in m["recommendations"]} == TOPICS
    assert "RetransSegs" in m["retransmits_note"]
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def host(**overrides) -> dict:
    """A host with a distribution's defaults: cubic, 4 MiB net.core caps, 6 MiB autotuning."""
    return {"hostname": "h", "netns": 1, "address": "", "congestion_control": "cubic",
            "available_congestion_control": ["reno", "cubic", "bbr"], "rmem_max": 4 * MiB,
            "wmem_max": 4 * MiB, "tcp_rmem_max": 6 * MiB, "tcp_wmem_max": 4 * MiB,
            "torchwan_congestion": "bbr", "socket_buffer_bytes": 64 * MiB,
            "int8_codec_gbps": 5.0, **overrides}


def measurements(rtt_ms, gbps, hosts=None, lanes=4, loss=0.0) -> dict:
    """Measurements of len(rtt_ms) ranks, one host each (unless `hosts` says otherwise)."""
    n = len(rtt_ms)
    hosts = hosts or [host(netns=i) for i in range(n)]
    rate = gbps if isinstance(gbps, list) else [[0.0 if i == j else gbps for j in range(n)]
                                                 for i in range(n)]
    return {"world_size": n, "lanes": lanes, "hosts": hosts, "rtt_ms": rtt_ms,
            "bandwidth_gbps": rate,
            "segments": [[0 if i == j else 100000 for j in range(n)] for i in range(n)],
            "retransmits": [[0 if i == j else 100000 * loss for j in range(n)] for i in range(n)],
            "backend_topology": {"regions": [0] * n, "source": "rtt"}}


def uniform(n: int, ms: float) -> list[list[float]]:
    return [[0.0 if i == j else ms for j in range(n)] for i in range(n)]


def by_topic(m: dict, topic: str) -> list[dict]:
    return [item for item in advice.recommend(m) if item["topic"] == topic]


def test_bdp_above_the_buffer_limits_asks_for_the_sysctls() -> None:
    # 10 Gbit/s at 100 ms: 125 MB in flight, 62.5 MB per lane of window, 125 MB of buffer.
    m = measurements(uniform(4, 100.0), 10.0)
    items = by_topic(m, "socket_buffers")
    assert len(items) == 4 and all(item["change"] for item in items)
    commands = " ".join(items[0]["commands"])
    size = int(commands.split("net.core.rmem_max=")[1].split()[0])
    assert size >= 2 * 125e6 / 4 and "net.ipv4.tcp_wmem" in commands
    assert "TORCHWAN_SOCKET_BUFFER_BYTES" in commands  # above torchwan's own 64 MiB request


def test_buffers_that_cover_the_bdp_change_nothing() -> None:
    big = host(rmem_max=128 * MiB, wmem_max=128 * MiB, tcp_rmem_max=128 * MiB,
               tcp_wmem_max=128 * MiB)
    m = measurements(uniform(4, 50.0), 1.0, hosts=[{**big, "netns": i} for i in range(4)])
    assert not any(item["change"] for item in by_topic(m, "socket_buffers"))
    assert not by_topic(m, "lanes")[0]["change"]


def test_effective_buffer_follows_the_transport() -> None:
    # socket_buffer_bytes applies only when net.core's cap admits it; else autotuning's maximum.
    assert advice.effective_buffer(host(), "receive") == 6 * MiB
    assert advice.effective_buffer(host(rmem_max=64 * MiB), "receive") == 64 * MiB
    assert advice.effective_buffer(host(socket_buffer_bytes=0, rmem_max=64 * MiB),
                                   "receive") == 6 * MiB


def test_lanes_follow_the_bdp_under_small_buffers() -> None:
    # 1 Gbit/s at 100 ms = 12.5 MB in flight; 4 MiB send buffers carry 1.6 MiB of window each.
    items = by_topic(measurements(uniform(4, 100.0), 1.0), "lanes")
    assert items[0]["change"] and items[0]["commands"] == ["export TORCHWAN_LANES=8"]


def test_two_rtt_clusters_give_regions() -> None:
    rtt = [[0, 1, 80, 82], [1, 0, 81, 80], [80, 81, 0, 2], [82, 80, 2, 0]]
    items = by_topic(measurements(rtt, 1.0), "regions")
    assert items[0]["change"] and items[0]["regions"] == [[0, 1], [2, 3]]
    assert items[0]["commands"][2].startswith("TORCHWAN_REGION=r1")


@pytest.mark.parametrize("rtt", [uniform(4, 50.0), [[0, 0.2, 0.5], [0.2, 0, 0.3], [0.5, 0.3, 0]],
                                 [[0, 40], [40, 0]]])
def test_no_regions_without_separated_clusters(rtt) -> None:
    assert not by_topic(measurements(rtt, 1.0), "regions")[0]["change"]


def test_three_regions_of_different_sizes() -> None:
    far = {(0, 1): 1, (2, 3): 1, (3, 4): 1, (2, 4): 2}
    n = 6
    rtt = [[0.0 if i == j else far.get((min(i, j), max(i, j)), 60.0) for j in range(n)]
           for i in range(n)]
    items = by_topic(measurements(rtt, 1.0), "regions")
    assert items[0]["regions"] == [[0, 1], [2, 3, 4], [5]]


def test_loss_recommends_bbr() -> None:
    lossy = measurements(uniform(4, 100.0), 1.0, loss=0.001)
    items = by_topic(lossy, "congestion")
    assert all(item["change"] for item in items)
    assert "tcp_congestion_control=bbr" in items[0]["commands"][0]
    # torchwan told to use cubic: set it back to BBR.
    cubic = measurements(uniform(2, 100.0), 1.0, loss=0.001,
                         hosts=[host(netns=i, torchwan_congestion="cubic") for i in range(2)])
    assert by_topic(cubic, "congestion")[0]["commands"] == ["export TORCHWAN_CONGESTION=bbr"]
    # A clean link changes nothing.
    assert not any(i["change"] for i in by_topic(measurements(uniform(2, 50.0), 1.0),
                                                  "congestion"))


def test_bbr_missing_from_the_kernel_asks_to_load_it() -> None:
    hosts = [host(netns=i, available_congestion_control=["reno", "cubic"]) for i in range(2)]
    items = by_topic(measurements(uniform(2, 50.0), 1.0, hosts=hosts), "congestion")
    assert items[0]["change"] and items[0]["commands"] == ["modprobe tcp_bbr"]


def test_ranks_sharing_a_host_get_one_recommendation() -> None:
    m = measurements(uniform(4, 100.0), 10.0, hosts=[host(netns=7)] * 4)
    items = by_topic(m, "socket_buffers")
    assert len(items) == 1 and items[0]["ranks"] == [0, 1, 2, 3]


def test_compression_pays_on_slow_links_only() -> None:
    slow = by_topic(measurements(uniform(3, 50.0), 1.0), "compression")[0]
    assert slow["change"] and slow["gain"] > 3
    fast = by_topic(measurements(uniform(3, 0.1), 100.0), "compression")[0]
    assert not fast["change"] and fast["gain"] < 1


@pytest.mark.parametrize("n", range(2, 10))
def test_schedule_meets_every_pair_once_and_each_rank_once_per_round(n: int) -> None:
    rounds = probe.schedule(n)
    pairs = [pair for round_ in rounds for pair in round_]
    assert sorted(pairs) == [(i, j) for i in range(n) for j in range(i + 1, n)]
    for round_ in rounds:
        ranks = [r for pair in round_ for r in pair]
        assert len(ranks) == len(set(ranks))
    assert len(rounds) == n - 1 + n % 2


@pytest.mark.parametrize("gbps,rtt", [(0.01, 0.05), (1.0, 0.05), (1.0, 0.1), (10.0, 0.0002),
                                      (100.0, 0.0002)])
def test_probe_rounds_stay_within_bytes_and_time(gbps: float, rtt: float) -> None:
    """Rounds on an ideal link of `gbps` with `rtt` (each round: its bytes plus a round trip)."""
    limits = probe.ProbeLimits(max_bytes=64 * MiB, max_seconds=1.0)
    budget = probe.budget_seconds(rtt, limits)
    size, total, elapsed, sizes = probe.FIRST_ROUND_BYTES, 0, 0.0, []
    while size:
        sizes.append(size)
        total += size
        elapsed += size * 8 / (gbps * 1e9) + rtt
        size = probe.next_round(size, total, gbps * 1e9, elapsed, rtt, limits)
    assert total <= limits.max_bytes and sizes == sorted(sizes)
    assert elapsed <= budget or len(sizes) == 1
    assert budget == max(1.0, probe.RTT_BUDGET * rtt)
    if gbps >= 1.0:  # fast links: the whole byte budget, most of it in the last round
        assert total == limits.max_bytes and sizes[-1] >= total / 2


def test_host_descriptions_from_peers_are_checked() -> None:
    good = json.dumps(host()).encode()
    assert probe.parse_host(good)["rmem_max"] == 4 * MiB
    with pytest.raises(ValueError):
        probe.parse_host(json.dumps({**host(), "rmem_max": "4194304"}).encode())
    with pytest.raises(ValueError):
        probe.parse_host(b"[1, 2]")
    with pytest.raises(ValueError):
        probe.parse_host(json.dumps({**host(), "netns": True}).encode())
