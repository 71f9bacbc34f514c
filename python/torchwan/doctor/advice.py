"""Recommendations computed from the doctor's measurements. Pure functions of the measurement
dict (the JSON the doctor writes), so they can be checked on constructed measurements.

Each recommendation is a dict: ``topic`` (socket_buffers, lanes, congestion, regions,
compression), ``change`` (False when the current setting is already right), ``ranks`` it concerns,
``text`` and, where something should be run or set, ``commands``.
"""

from __future__ import annotations

import math
from typing import Any

MiB = 1 << 20
#: Share of a TCP socket buffer that carries data in flight: the kernel keeps the rest for its own
#: per-packet bookkeeping (tcp_adv_win_scale), so a window of W bytes needs a buffer of about 2 W.
WINDOW_SHARE = 0.5
#: A buffer filled to this fraction by the measured rate is taken as the limit of that rate.
BUFFER_BOUND = 0.8
#: Retransmitted segments per segment sent above which paths count as lossy. Queue overflows on
#: a clean shaped link stay below it (up to 0.04 % seen in the lab, 0.1 % loss gives 0.1 %).
LOSSY = 5e-4
#: Regions: the shortest RTT between two clusters must be this many times the longest inside one,
#: and longer by at least MIN_GAP_MS (loopback RTTs differ by ratios but not by milliseconds).
REGION_RATIO = 3.0
MIN_GAP_MS = 2.0
#: int8 block quantisation's size ratio against float32 (docs/compression.md).
INT8_RATIO = 3.94
#: A compressed allreduce encodes and decodes each element twice (reduce-scatter, then allgather).
CODEC_PASSES = 2
#: Compression is recommended when it would cut the time per byte by at least this factor.
COMPRESSION_PAYS = 1.25


def _pairs(m: dict[str, Any]) -> list[tuple[int, int]]:
    n = m["world_size"]
    return [(i, j) for i in range(n) for j in range(n) if i != j]


def bdp_bytes(m: dict[str, Any], src: int, dst: int) -> float:
    """Bandwidth-delay product of the path src -> dst as measured (bytes in flight at full rate)."""
    return m["bandwidth_gbps"][src][dst] * 1e9 / 8 * m["rtt_ms"][src][dst] / 1e3


def effective_buffer(settings: dict[str, Any], side: str) -> int:
    """The largest buffer a torchwan data socket gets on this host for `side` ("send" or
    "receive"), as transport/socket_tuning.cc decides it: socket_buffer_bytes when net.core's cap
    admits it and it exceeds autotuning's maximum, else autotuning up to tcp_[rw]mem's maximum."""
    cap = settings["wmem_max" if side == "send" else "rmem_max"]
    autotune = settings["tcp_wmem_max" if side == "send" else "tcp_rmem_max"]
    wanted = settings["socket_buffer_bytes"]
    if 0 < wanted <= cap and wanted > autotune:
        return wanted
    return autotune


def host_groups(m: dict[str, Any]) -> list[list[int]]:
    """Ranks grouped by host (hostname and network namespace), in rank order."""
    groups: dict[tuple[str, int], list[int]] = {}
    for rank, h in enumerate(m["hosts"]):
        groups.setdefault((h["hostname"], h["netns"]), []).append(rank)
    return list(groups.values())


def _ranks_text(ranks: list[int]) -> str:
    return ("rank " if len(ranks) == 1 else "ranks ") + ",".join(map(str, ranks))


def _buffer_need(m: dict[str, Any], ranks: list[int]) -> tuple[float, int]:
    """The buffer one lane of these ranks' host needs for its longest measured BDP, as a share
    of what it has (1 = exactly full), and that need in bytes."""
    lanes = max(m["lanes"], 1)
    settings = m["hosts"][ranks[0]]
    worst, need = 0.0, 0
    for src, dst in _pairs(m):
        for side, mine in (("send", src), ("receive", dst)):
            if mine not in ranks:
                continue
            wanted = bdp_bytes(m, src, dst) / lanes / WINDOW_SHARE
            share = wanted / max(effective_buffer(settings, side), 1)
            if share > worst:
                worst, need = share, int(wanted)
    return worst, need


def _sysctl_commands(size: int) -> list[str]:
    return [f"sysctl -w net.core.rmem_max={size} net.core.wmem_max={size}",
            f"sysctl -w net.ipv4.tcp_rmem='4096 131072 {size}' "
            f"net.ipv4.tcp_wmem='4096 16384 {size}'"]


def socket_buffers(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Per host: do the kernel's buffer limits cover each lane's share of the longest BDP?"""
    advice = []
    for ranks in host_groups(m):
        settings = m["hosts"][ranks[0]]
        share, need = _buffer_need(m, ranks)
        have = min(effective_buffer(settings, "send"), effective_buffer(settings, "receive"))
        if share < BUFFER_BOUND:
            advice.append({"topic": "socket_buffers", "change": False, "ranks": ranks,
                           "text": f"{_ranks_text(ranks)}: socket buffers of up to "
                                   f"{have / MiB:.1f} MiB cover each lane's "
                                   f"{need / MiB:.2f} MiB (2 x BDP / lanes)"})
            continue
        # Twice the need, so a faster link or a longer queue does not hit the limit again;
        # never below torchwan's default request, so its explicit buffers apply.
        size = max(64 * MiB, 1 << math.ceil(math.log2(2 * max(need, 1))))
        commands = _sysctl_commands(size)
        if size > settings["socket_buffer_bytes"]:
            commands.append(f"export TORCHWAN_SOCKET_BUFFER_BYTES={size}")
        advice.append({"topic": "socket_buffers", "change": True, "ranks": ranks,
                       "commands": commands,
                       "text": f"{_ranks_text(ranks)}: each lane needs {need / MiB:.1f} MiB of "
                               f"socket buffer (2 x BDP / {m['lanes']} lanes) but the kernel "
                               f"allows {have / MiB:.1f} MiB (send: wmem_max "
                               f"{settings['wmem_max']}, tcp_wmem max {settings['tcp_wmem_max']}; "
                               f"receive: rmem_max {settings['rmem_max']}, tcp_rmem max "
                               f"{settings['tcp_rmem_max']}): raise the limits to "
                               f"{size / MiB:.0f} MiB"})
    return advice


def lanes(m: dict[str, Any]) -> list[dict[str, Any]]:
    """How many parallel connections the longest-BDP path needs under the current buffers."""
    needed, worst_pair = 1, None
    for src, dst in _pairs(m):
        window = WINDOW_SHARE * BUFFER_BOUND * min(
            effective_buffer(m["hosts"][src], "send"), effective_buffer(m["hosts"][dst], "receive"))
        count = math.ceil(bdp_bytes(m, src, dst) / max(window, 1))
        if count > needed:
            needed, worst_pair = count, (src, dst)
    ranks = list(range(m["world_size"]))
    if needed <= m["lanes"]:
        return [{"topic": "lanes", "change": False, "ranks": ranks,
                 "text": f"lanes={m['lanes']} suffice: the longest measured BDP needs {needed} "
                         f"under the current socket buffers"}]
    src, dst = worst_pair
    return [{"topic": "lanes", "change": True, "ranks": ranks,
             "commands": [f"export TORCHWAN_LANES={needed}"],
             "text": f"path {src}->{dst} ({bdp_bytes(m, src, dst) / MiB:.1f} MiB in flight) "
                     f"needs {needed} lanes under the current socket buffers, not "
                     f"{m['lanes']}: set lanes={needed}, or raise the buffers (socket_buffers)"}]


def loss_rate(m: dict[str, Any], ranks: list[int]) -> float:
    """Retransmitted segments per segment sent by these ranks' host during its probes."""
    retransmits = sum(m["retransmits"][i][j] for i, j in _pairs(m) if i in ranks)
    segments = sum(m["segments"][i][j] for i, j in _pairs(m) if i in ranks)
    return retransmits / segments if segments else 0.0


def congestion(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Per host: is BBR (which keeps a lossy long link full where cubic collapses) in use where
    the paths lose packets, and available where torchwan asks for it?"""
    advice = []
    # A one-second probe sees a few dozen retransmits per host at most: too few to tell one
    # host's rate from noise, so a host also counts as lossy when the job as a whole is.
    job_loss = loss_rate(m, list(range(m["world_size"])))
    for ranks in host_groups(m):
        s = m["hosts"][ranks[0]]
        own = loss_rate(m, ranks)
        loss = max(own, job_loss)
        offered = s["available_congestion_control"]
        wanted = s["torchwan_congestion"]
        who = _ranks_text(ranks)
        seen = f"{own:.3%} of this host's segments and {job_loss:.3%} of the job's retransmitted"
        entry = {"topic": "congestion", "ranks": ranks, "change": True, "loss_rate": own}
        if wanted and wanted not in offered:
            entry["commands"] = [f"modprobe tcp_{wanted}"]
            entry["text"] = (f"{who}: torchwan asks for {wanted} but this kernel offers only "
                             f"{' '.join(offered)}, so its sockets run {s['congestion_control']}; "
                             f"load tcp_{wanted}")
        elif loss >= LOSSY and wanted != "bbr" and "bbr" in offered:
            entry["commands"] = ["export TORCHWAN_CONGESTION=bbr"]
            entry["text"] = (f"{who}: {seen}, and torchwan's sockets run "
                             f"{wanted or s['congestion_control']}: use BBR")
        elif loss >= LOSSY and s["congestion_control"] != "bbr" and "bbr" in offered:
            entry["commands"] = ["sysctl -w net.ipv4.tcp_congestion_control=bbr"]
            entry["text"] = (f"{who}: {seen}; torchwan's sockets use BBR already, but the "
                             f"system default {s['congestion_control']} runs every other "
                             f"connection (Gloo, the store): make BBR the default")
        else:
            entry["change"] = False
            entry["text"] = (f"{who}: torchwan's sockets run {wanted or s['congestion_control']}; "
                             f"{seen}")
        advice.append(entry)
    return advice


def _components(rtt: list[list[float]], threshold: float) -> list[list[int]]:
    """Connected components of the graph whose edges are the pairs within `threshold` ms."""
    n, seen, parts = len(rtt), set(), []
    for start in range(n):
        if start in seen:
            continue
        part, frontier = [], [start]
        seen.add(start)
        while frontier:
            i = frontier.pop()
            part.append(i)
            for j in range(n):
                if j not in seen and max(rtt[i][j], rtt[j][i]) <= threshold:
                    seen.add(j)
                    frontier.append(j)
        parts.append(sorted(part))
    return sorted(parts)


def _separation(rtt: list[list[float]], parts: list[list[int]]) -> tuple[float, float]:
    """(longest RTT inside a cluster, shortest RTT between clusters)."""
    region = {i: k for k, part in enumerate(parts) for i in part}
    inside = [rtt[i][j] for i in region for j in region if i < j and region[i] == region[j]]
    between = [rtt[i][j] for i in region for j in region if i < j and region[i] != region[j]]
    return max(inside, default=0.0), min(between, default=0.0)


def rtt_clusters(rtt: list[list[float]]) -> list[list[int]] | None:
    """Ranks split into regions when the RTTs fall into clearly separated clusters, else None:
    single-linkage clustering at every measured RTT as a threshold, keeping the split whose
    clusters are farthest apart relative to their own spread."""
    n = len(rtt)
    if n < 3:
        return None
    best, best_ratio = None, REGION_RATIO
    for threshold in sorted({rtt[i][j] for i in range(n) for j in range(n) if i != j}):
        parts = _components(rtt, threshold)
        if not 1 < len(parts) < n:
            continue
        inside, between = _separation(rtt, parts)
        ratio = between / max(inside, 1e-9)
        if ratio >= best_ratio and between - inside >= MIN_GAP_MS:
            best, best_ratio = parts, ratio
    return best


def regions(m: dict[str, Any]) -> list[dict[str, Any]]:
    parts = rtt_clusters(m["rtt_ms"])
    ranks = list(range(m["world_size"]))
    off_diagonal = [m["rtt_ms"][i][j] for i, j in _pairs(m)] or [0.0]
    if parts is None:
        return [{"topic": "regions", "change": False, "ranks": ranks,
                 "text": f"one region: RTTs from {min(off_diagonal):.1f} to "
                         f"{max(off_diagonal):.1f} ms form no separate clusters"}]
    inside, between = _separation(m["rtt_ms"], parts)
    label = {i: f"r{k}" for k, part in enumerate(parts) for i in part}
    found = m.get("backend_topology", {})
    same = found.get("source") == "rtt" and _same_partition(found.get("regions", []), parts)
    return [{"topic": "regions", "change": True, "ranks": ranks, "regions": parts,
             "commands": [f"TORCHWAN_REGION={label[r]}  # rank {r}" for r in ranks],
             "text": f"{len(parts)} regions {parts}: at most {inside:.1f} ms inside, at least "
                     f"{between:.1f} ms between; label them (TORCHWAN_REGION) so allreduce "
                     f"reduces inside each region first"
                     + ("; topology=auto found the same split at group creation, labels make it "
                        "independent of that measurement" if same else "")}]


def _same_partition(region_of: list[int], parts: list[list[int]]) -> bool:
    grouped: dict[int, list[int]] = {}
    for rank, region in enumerate(region_of):
        grouped.setdefault(region, []).append(rank)
    return sorted(grouped.values()) == sorted(parts)


def compression(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Does int8 compression save more transfer time on the slowest link than the CPU spends on
    the codec? Per float32 byte: 1/B uncompressed against 1/(3.94 B) + 2/C compressed, with B the
    slowest measured link and C the slowest host's int8 encode+decode rate."""
    ranks = list(range(m["world_size"]))
    rates = [m["bandwidth_gbps"][i][j] for i, j in _pairs(m) if m["bandwidth_gbps"][i][j] > 0]
    codec = min(h["int8_codec_gbps"] for h in m["hosts"])
    if not rates or codec <= 0:
        return [{"topic": "compression", "change": False, "ranks": ranks,
                 "text": "no bandwidth or codec rate measured"}]
    link = min(rates) * 1e9 / 8
    plain = 1 / link
    compressed = 1 / (INT8_RATIO * link) + CODEC_PASSES / (codec * 1e9)
    gain = plain / compressed
    facts = (f"slowest link {min(rates):.2f} Gbit/s, int8 codec {codec:.2f} GB/s: "
             f"int8 would move a byte in {1 / gain:.2f}x the time")
    if gain < COMPRESSION_PAYS:
        return [{"topic": "compression", "change": False, "ranks": ranks, "gain": gain,
                 "text": f"compression does not pay ({facts})"}]
    return [{"topic": "compression", "change": True, "ranks": ranks, "gain": gain,
             "commands": ["export TORCHWAN_COMPRESSION=int8"],
             "text": f"compression pays ({facts}): set compression=int8 on every rank (lossy, "
                     f"docs/compression.md), or use torchwan.hooks.int8 / DiLoCo"}]


def recommend(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Every recommendation, topic by topic."""
    return [*socket_buffers(m), *lanes(m), *congestion(m), *regions(m), *compression(m)]
