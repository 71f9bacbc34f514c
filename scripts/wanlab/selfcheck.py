"""Measures what a lab really delivers and compares it with its scenario.

RTT: `ping -U` (user-to-user time; plain ping uses a kernel RX timestamp taken *before* the
ingress delay and under-reports by half) and the time of a TCP connect (SYN -> SYN-ACK).
Rate: iperf3 inside the namespaces. The expected goodput is the shaped rate times the share of
each wire frame that is TCP payload, (mtu - 52) / (mtu + 14) with timestamps on, because tbf and
htb count whole Ethernet frames. The check asks iperf3 for BBR and several streams by default so
it measures the link, not the host's TCP tuning.
"""

from __future__ import annotations

import itertools
import json
import re
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field

from .errors import LabError
from .lab import HostKey, Lab
from .scenario import format_rate

IPERF_PORT = 5201
TCP_RTT_PORT = 5301
RTT_FLOOR_MS = 0.25


def payload_share(mtu: int) -> float:
    return (mtu - 52) / (mtu + 14)


@dataclass
class RttResult:
    src: str
    dst: str
    expected_ms: float
    ping_ms: float  # median of ping -U samples (robust to a scheduling hiccup on a busy box)
    ping_min_ms: float
    ping_max_ms: float
    tcp_ms: float  # median TCP connect time
    ok: bool = False


@dataclass
class RateResult:
    src: str
    dst: str
    streams: int
    congestion: str
    expected_bps: float  # goodput the shaped rate allows
    measured_bps: float
    retransmits: int
    ok: bool = False


@dataclass
class Report:
    scenario: str
    rtt: list[RttResult] = field(default_factory=list)
    rate: list[RateResult] = field(default_factory=list)
    rtt_tolerance: float = 0.10
    rate_tolerance: float = 0.15

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rtt) and all(r.ok for r in self.rate)

    def to_json(self) -> str:
        return json.dumps({"scenario": self.scenario, "ok": self.ok, **asdict(self)}, indent=1)

    def table(self) -> str:
        out = [f"scenario {self.scenario}: RTT within {self.rtt_tolerance:.0%}, "
               f"rate within {self.rate_tolerance:.0%}"]
        out.append(f"{'pair':<12}{'expect ms':>10}{'ping -U':>9}{'min':>8}{'max':>8}"
                   f"{'tcp':>8}  ok")
        for r in self.rtt:
            out.append(f"{r.src + '-' + r.dst:<12}{r.expected_ms:>10.2f}{r.ping_ms:>9.2f}"
                       f"{r.ping_min_ms:>8.2f}{r.ping_max_ms:>8.2f}{r.tcp_ms:>8.2f}"
                       f"  {'yes' if r.ok else 'NO'}")
        if self.rate:
            out.append(f"{'flow':<12}{'P':>3}{'cc':>7}{'expect':>16}{'measured':>16}{'retr':>7}  ok")
        for q in self.rate:
            out.append(f"{q.src + '>' + q.dst:<12}{q.streams:>3}{q.congestion:>7}"
                       f"{format_rate(q.expected_bps):>16}{format_rate(q.measured_bps):>16}"
                       f"{q.retransmits:>7}  {'yes' if q.ok else 'NO'}")
        out.append("PASS" if self.ok else "FAIL")
        return "\n".join(out)


def ping_rtt(lab: Lab, a: HostKey, b: HostKey, count: int = 10,
             interval: float = 0.05) -> list[float]:
    """Round-trip samples in ms of ping -U from a to b (empty if nothing came back)."""
    p = lab.exec(a, ["ping", "-U", "-n", "-c", str(count), "-i", str(interval), "-W", "2",
                     lab.ip(b)], check=False, timeout=count * interval + 10)
    return [float(t) for t in re.findall(r"time=([\d.]+) ms", p.stdout)]


_LISTEN = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(128); print("ready", flush=True)
time.sleep(float(sys.argv[2]))
"""
_CONNECT = """
import socket, statistics, sys, time
ts = []
addr = (sys.argv[1], int(sys.argv[2]))
for _ in range(int(sys.argv[3])):
    s = socket.socket()
    t = time.perf_counter()
    s.connect(addr)  # returns once the SYN-ACK is in: one round trip
    ts.append(time.perf_counter() - t)
    s.close()
print(statistics.median(ts) * 1e3)
"""


def tcp_rtt(lab: Lab, a: HostKey, b: HostKey, count: int = 9) -> float:
    """Median TCP connect time a -> b in ms (one SYN/SYN-ACK round trip)."""
    server = lab.python(b, _LISTEN, str(TCP_RTT_PORT), "30", stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        server.stdout.readline()
        p = lab.python(a, _CONNECT, lab.ip(b), str(TCP_RTT_PORT), str(count),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=30)
        if p.returncode != 0:
            raise LabError(f"TCP RTT probe failed: {err.strip()}")
        return float(out)
    finally:
        server.kill()
        server.wait()


def wait_listening(pid: int, port: int, timeout: float = 5) -> None:
    """Waits until the namespace of pid has a TCP listener on port (iperf3 listens on IPv6 ::)."""
    pattern = re.compile(rf":{port:04X} [0:]+:0000 0A ")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = "".join(open(f"/proc/{pid}/net/{f}").read() for f in ("tcp", "tcp6"))
        except OSError:
            break
        if pattern.search(text):
            return
        time.sleep(0.02)
    raise LabError(f"nothing listens on port {port} after {timeout} s")


def iperf3(lab: Lab, src: HostKey, dst: HostKey, seconds: float = 3, streams: int = 4,
           congestion: str | None = "bbr", omit: float = 1,
           extra: list[str] | None = None) -> dict[str, float]:
    """Runs iperf3 src -> dst; returns received bit/s, retransmits and the sender's mean RTT."""
    server = lab.popen(dst, ["iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        argv = ["iperf3", "-c", lab.ip(dst), "-p", str(IPERF_PORT), "-J", "-t", str(seconds),
                "-O", str(omit), "-P", str(streams), *(extra or [])]
        if congestion:
            argv += ["-C", congestion]
        wait_listening(server.pid, IPERF_PORT)
        p = lab.exec(src, argv, check=False, timeout=seconds + omit + 30)
        try:
            end = json.loads(p.stdout)["end"]
            end["sum_received"]
        except (ValueError, KeyError) as e:
            raise LabError(f"iperf3 {lab.host(src).name}->{lab.host(dst).name} failed "
                           f"({p.returncode}): {(p.stdout + p.stderr)[-400:]}") from e
        rtts = [s["sender"].get("mean_rtt", 0) for s in end.get("streams", [])]
        return {"bps": end["sum_received"]["bits_per_second"],
                "retransmits": end["sum_sent"].get("retransmits", 0),
                "mean_rtt_ms": statistics.mean(rtts) / 1000 if rtts else float("nan")}
    finally:
        try:
            server.wait(timeout=2)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def check_rtt(lab: Lab, a: int, b: int, tolerance: float) -> RttResult:
    expected = lab.scenario.rtt_ms(a, b)
    samples = ping_rtt(lab, a, b) or [float("nan")]
    ping = statistics.median(samples)
    tcp = tcp_rtt(lab, a, b)
    # The floor covers what the path costs with no delay at all (veth, bridge, two trips through
    # user space, the measuring process): about 0.1-0.2 ms here, which a 1 ms scenario would
    # otherwise fail on.
    ok = all(abs(x - expected) <= max(tolerance * expected, RTT_FLOOR_MS) for x in (ping, tcp))
    return RttResult(lab.hosts[a].name, lab.hosts[b].name, expected, ping, min(samples),
                     max(samples), tcp, ok)


def check_rate(lab: Lab, src: int, dst: int, tolerance: float, seconds: float = 3,
               streams: int = 4, congestion: str = "bbr") -> RateResult:
    shaped = lab.scenario.effective_rate_bps(src, dst)
    expected = shaped * payload_share(lab.scenario.mtu)
    r = iperf3(lab, src, dst, seconds=seconds, streams=streams, congestion=congestion)
    ok = shaped == 0 or abs(r["bps"] - expected) <= tolerance * expected
    return RateResult(lab.hosts[src].name, lab.hosts[dst].name, streams, congestion, expected,
                      r["bps"], int(r["retransmits"]), ok)


def representative_flows(lab: Lab) -> list[tuple[int, int]]:
    """One ordered pair per distinct (rate, RTT) class: enough to cover a scenario quickly."""
    seen: dict[tuple[int, float], tuple[int, int]] = {}
    sc = lab.scenario
    for a, b in itertools.permutations(range(len(sc.hosts)), 2):
        seen.setdefault((sc.effective_rate_bps(a, b), sc.rtt_ms(a, b)), (a, b))
    return list(seen.values())


def run(lab: Lab, rtt_tolerance: float = 0.10, rate_tolerance: float = 0.15,
        seconds: float = 3, streams: int = 4, all_flows: bool = False,
        rate: bool = True) -> Report:
    rep = Report(lab.scenario.name, rtt_tolerance=rtt_tolerance, rate_tolerance=rate_tolerance)
    for a, b in itertools.combinations(range(len(lab.hosts)), 2):
        rep.rtt.append(check_rtt(lab, a, b, rtt_tolerance))
    if rate:
        flows = (list(itertools.permutations(range(len(lab.hosts)), 2)) if all_flows
                 else representative_flows(lab))
        for a, b in flows:
            rep.rate.append(check_rate(lab, a, b, rate_tolerance, seconds, streams))
    return rep
