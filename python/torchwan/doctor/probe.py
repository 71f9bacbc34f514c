"""The measurements the doctor takes over a "wan" process group, pair by pair.

Pairs are scheduled as a round-robin tournament (the circle method): in each round every rank is
in at most one pair, so no host's link carries two probes at once, and N ranks need N-1 rounds
(N even) instead of N(N-1)/2 sequential pairs. Within a pair the lower rank leads: a ping-pong for
the RTT, then a bandwidth probe in each direction.

Results travel as tensors (an all-reduce of the N x N matrices each rank filled in its part of,
an all-gather of each host's description as UTF-8 JSON): nothing a peer sends is unpickled.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from . import host

CHUNK_BYTES = 4 << 20  # the backend's default chunk_bytes: each chunk is one striped message
FIRST_ROUND_BYTES = 256 << 10  # a probe's first round: 2 ms at 1 Gbit/s, 0.2 s at 10 Mbit/s
GROWTH = 8  # largest ratio of one probe round to the one before
#: Round trips a probe may take when that is longer than max_seconds: slow start needs about
#: log2(BDP / initial window) of them before a connection runs at the link's rate (7 for
#: 1 Gbit/s at 100 ms), and the probe's rounds a few more.
RTT_BUDGET = 25
HOST_RECORD_BYTES = 8192
# 0 is what a rank left unwritten: the diagonal, or a peer missing from torchwan.stats().
LINK_CODES = {"direct": 1, "reverse": 2, "relay": 3}


@dataclass(frozen=True)
class ProbeLimits:
    pings: int = 9  # round trips per pair, the first of which is not counted (it warms the path)
    max_bytes: int = 64 << 20  # per pair and direction, every round together
    max_seconds: float = 1.0  # per pair and direction (or RTT_BUDGET round trips if longer)


def schedule(world_size: int) -> list[list[tuple[int, int]]]:
    """Rounds of disjoint (low, high) pairs covering every pair once (circle method; with an odd
    world a phantom rank sits out one real rank per round)."""
    n = world_size + world_size % 2
    ring = list(range(n))
    rounds = []
    for _ in range(n - 1):
        pairs = [(ring[i], ring[n - 1 - i]) for i in range(n // 2)]
        rounds.append(sorted((min(p), max(p)) for p in pairs if max(p) < world_size))
        ring = [ring[0], ring[-1], *ring[1:-1]]
    return rounds


def _ping_pong(peer: int, leads: bool, pings: int) -> float:
    """Median round-trip time in seconds, measured by the leader and sent to the follower, so
    both size their probes alike."""
    message = torch.zeros(1, dtype=torch.int64)
    samples = []
    for _ in range(pings):
        if leads:
            start = time.perf_counter()
            dist.send(message, peer)
            dist.recv(message, peer)
            samples.append(time.perf_counter() - start)
        else:
            dist.recv(message, peer)
            dist.send(message, peer)
    rtt = torch.tensor([statistics.median(samples[1:] or samples) if leads else 0.0],
                       dtype=torch.float64)
    if leads:
        dist.send(rtt, peer)
    else:
        dist.recv(rtt, peer)
    return float(rtt.item())


def budget_seconds(rtt: float, limits: ProbeLimits) -> float:
    """Time one direction's probe may take: max_seconds, or RTT_BUDGET round trips on a link so
    long that TCP could not open its window to the link's rate within max_seconds."""
    return max(limits.max_seconds, RTT_BUDGET * rtt)


def next_round(size: int, total: int, rate_bps: float, elapsed: float, rtt: float,
               limits: ProbeLimits) -> int:
    """Bytes of the next round of a bandwidth probe, 0 to stop. Rounds grow up to GROWTH-fold,
    so the connection leaves slow start on the small ones and the last, largest round measures
    the link. A round starts only when it fits in the bytes left and, at the last round's rate
    plus a round trip, in the time left, and is no smaller than the last one (it would add
    nothing)."""
    fits = rate_bps / 8 * (budget_seconds(rtt, limits) - elapsed - rtt)
    following = int(min(limits.max_bytes - total, GROWTH * size, fits))
    return following if following >= size else 0


def _send_probe(peer: int, rtt: float, limits: ProbeLimits) -> dict[str, float]:
    """Sender's side: rounds of growing size, each announced by its size and answered by the
    receiver's measured rate. Returns this host's TCP counters over the whole probe."""
    header = torch.zeros(1, dtype=torch.int64)
    report = torch.zeros(1, dtype=torch.float64)
    before = host.tcp_counters()
    start = time.perf_counter()
    size, total = min(FIRST_ROUND_BYTES, limits.max_bytes), 0
    while size:
        header[0] = size
        dist.send(header, peer)
        payload = torch.zeros(size, dtype=torch.uint8)
        for request in [dist.isend(chunk, peer) for chunk in payload.split(CHUNK_BYTES)]:
            request.wait()
        dist.recv(report, peer)
        total += size
        size = next_round(size, total, float(report.item()), time.perf_counter() - start, rtt,
                          limits)
    header[0] = 0
    dist.send(header, peer)
    after = host.tcp_counters()
    return {"retransmits": after["RetransSegs"] - before["RetransSegs"],
            "segments": after["OutSegs"] - before["OutSegs"]}


def _receive_probe(peer: int, limits: ProbeLimits) -> dict[str, float]:
    """Receiver's side: each round's rate, timed from the arrival of its size (the stream starts
    right behind it), so the one-way delay is not counted. Returns the last, largest round's
    rate and the bytes of every round."""
    header = torch.zeros(1, dtype=torch.int64)
    rate, total = 0.0, 0
    while True:
        dist.recv(header, peer)
        started = time.perf_counter()
        size = int(header.item())
        if size == 0:
            return {"rate_bps": rate, "bytes": total}
        if not 0 < size <= limits.max_bytes:
            raise ValueError(f"rank {peer} announced a probe round of {size} bytes; this rank "
                             f"allows up to {limits.max_bytes} (--max-mib differs between ranks?)")
        payload = torch.empty(size, dtype=torch.uint8)
        for request in [dist.irecv(chunk, peer) for chunk in payload.split(CHUNK_BYTES)]:
            request.wait()
        # The whole round, not a part of it: chunks are striped over lanes that run unevenly,
        # so one chunk's completion is no clean mark of how many bytes have arrived.
        rate = size * 8 / max(time.perf_counter() - started, 1e-9)
        total += size
        dist.send(torch.tensor([rate], dtype=torch.float64), peer)


class Matrices:
    """The N x N float64 matrices one rank fills in its part of before they are summed."""

    NAMES = ("rtt_ms", "bandwidth_gbps", "retransmits", "segments", "probe_bytes", "link")

    def __init__(self, world_size: int):
        self.tensors = {name: torch.zeros(world_size, world_size, dtype=torch.float64)
                        for name in self.NAMES}

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def combine(self) -> dict[str, list[list[float]]]:
        """Every rank's parts summed (each entry was written by exactly one rank)."""
        stacked = torch.stack([self.tensors[name] for name in self.NAMES])
        dist.all_reduce(stacked)
        return {name: stacked[i].tolist() for i, name in enumerate(self.NAMES)}


def _measure_pair(rank: int, peer: int, matrices: Matrices, limits: ProbeLimits) -> None:
    leads = rank < peer
    rtt = _ping_pong(peer, leads, limits.pings)
    if leads:
        matrices["rtt_ms"][rank, peer] = matrices["rtt_ms"][peer, rank] = rtt * 1e3
    for sender in ((rank, peer) if leads else (peer, rank)):
        if sender == rank:
            counters = _send_probe(peer, rtt, limits)
            matrices["retransmits"][rank, peer] = counters["retransmits"]
            matrices["segments"][rank, peer] = counters["segments"]
        else:
            received = _receive_probe(peer, limits)
            matrices["bandwidth_gbps"][peer, rank] = received["rate_bps"] / 1e9
            matrices["probe_bytes"][peer, rank] = received["bytes"]


def _record_links(rank: int, matrices: Matrices) -> int:
    """Fills this rank's row of the link matrix from torchwan.stats(); returns its lanes."""
    from ..stats import stats

    lanes = 0
    for peer, counters in stats()["peers"].items():
        matrices["link"][rank, int(peer)] = LINK_CODES.get(counters.get("link"), -1.0)
        lanes = max(lanes, int(counters.get("lanes", 0)))
    return lanes


def _gather_hosts(world_size: int) -> list[dict[str, Any]]:
    """Every rank's host description: JSON text in a fixed-size byte tensor, all-gathered."""
    text = json.dumps(host.describe()).encode()
    if len(text) > HOST_RECORD_BYTES:
        raise ValueError(f"host description of {len(text)} bytes exceeds {HOST_RECORD_BYTES}")
    mine = torch.zeros(HOST_RECORD_BYTES, dtype=torch.uint8)
    mine[: len(text)] = torch.frombuffer(bytearray(text), dtype=torch.uint8)
    everyone = torch.zeros(world_size * HOST_RECORD_BYTES, dtype=torch.uint8)
    dist.all_gather_into_tensor(everyone, mine)
    return [parse_host(bytes(record.tolist()).rstrip(b"\0"))
            for record in everyone.split(HOST_RECORD_BYTES)]


def _regions_found_by_backend() -> dict[str, Any]:
    backend = dist.group.WORLD._get_backend(torch.device("cpu"))
    return {"regions": list(backend.regions), "source": backend.topology_source}


def measure(limits: ProbeLimits = ProbeLimits()) -> dict[str, Any]:
    """Runs the whole probe on this rank; every rank returns the same measurements."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    matrices = Matrices(world_size)
    lanes = _record_links(rank, matrices)
    hosts = _gather_hosts(world_size)
    dist.barrier()
    started = time.perf_counter()
    for pairs in schedule(world_size):
        for low, high in pairs:
            if rank in (low, high):
                _measure_pair(rank, high if rank == low else low, matrices, limits)
    dist.barrier()
    elapsed = torch.tensor([time.perf_counter() - started], dtype=torch.float64)
    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
    lanes_everywhere = torch.tensor([lanes], dtype=torch.int64)
    dist.all_reduce(lanes_everywhere, op=dist.ReduceOp.MAX)
    combined = combine_links(matrices.combine())
    return {"world_size": world_size, "lanes": int(lanes_everywhere.item()),
            "transport": _transport(), "probe_seconds": float(elapsed.item()),
            "limits": {"pings": limits.pings, "max_bytes": limits.max_bytes,
                       "max_seconds": limits.max_seconds, "chunk_bytes": CHUNK_BYTES,
                       "first_round_bytes": FIRST_ROUND_BYTES, "growth": GROWTH,
                       "rtt_budget": RTT_BUDGET},
            "backend_topology": _regions_found_by_backend(), "hosts": hosts, **combined}


def _transport() -> str:
    from ..stats import stats

    return str(stats().get("transport", ""))


def combine_links(matrices: dict[str, Any]) -> dict[str, Any]:
    """The link codes as names: "self" on the diagonal, "unknown" for anything else unnamed."""
    names = {code: name for name, code in LINK_CODES.items()}
    matrices["link"] = [["self" if i == j else names.get(int(code), "unknown")
                         for j, code in enumerate(row)] for i, row in enumerate(matrices["link"])]
    return matrices


#: The fields of a host description and their types; anything else a peer sends is dropped.
HOST_FIELDS = {"hostname": str, "netns": int, "address": str, "congestion_control": str,
               "available_congestion_control": list, "rmem_max": int, "wmem_max": int,
               "tcp_rmem_max": int, "tcp_wmem_max": int, "torchwan_congestion": str,
               "socket_buffer_bytes": int, "int8_codec_gbps": float}


def parse_host(text: bytes) -> dict[str, Any]:
    """A peer's host description, checked field by field (its bytes are data, never code)."""
    raw = json.loads(text.decode("utf-8"))
    if not isinstance(raw, dict):
        raise ValueError("a host description is not a JSON object")
    parsed = {}
    for name, kind in HOST_FIELDS.items():
        value = raw.get(name)
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"host description field {name!r} is not {kind.__name__}: {value!r}")
        if kind is list:
            value = [str(item) for item in value]
        parsed[name] = value
    return parsed
