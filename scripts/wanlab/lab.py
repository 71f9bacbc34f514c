"""A running WAN lab: N network namespaces on one bridge, shaped as a scenario says.

    lab = Lab.up("smoke")                     # or Lab.up(scenario_obj, prefix="twlx1")
    lab.ip(1)                                 # '10.78.0.2'
    lab.exec(0, ["ping", "-U", "-c3", lab.ip(1)])
    proc = lab.python(1, "import os; print(os.environ['RANK'])", env={"RANK": "1"})
    lab.partition(0, 1, True); ...; lab.partition(0, 1, False)
    lab.down()

Topology: namespace "<prefix>-sw" holds bridge br0; host i is namespace "<prefix>-<name>" whose
eth0 (subnet.<i+1>/24) is a veth to switch port p<i>. The root namespace has no route into the
lab, so lab traffic never leaves it. See shaping.py for where rate, delay and loss are applied.
A host the scenario puts behind a NAT has a router namespace in front of it, which holds that
address and the shaping; the host itself has a private address (nat.py).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import build, nat, requirements, scenario, shaping, state
from .errors import LabError
from .sh import in_ns, run, run_ns

HostKey = int | str


class Lab:
    def __init__(self, sc: scenario.Scenario, prefix: str):
        self.scenario = sc
        self.prefix = state.check_prefix(prefix)

    # ---- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def up(cls, sc: str | scenario.Scenario, prefix: str | None = None,
           persistent: bool = False) -> Lab:
        """Builds the lab. persistent=False ties it to this process: if the process dies without
        calling down(), the next Lab.up() anywhere on the machine removes it."""
        if isinstance(sc, str):
            sc = scenario.load(sc)
        requirements.require()
        delayer = build.ensure_delayer()
        state.reap_stale()
        prefix = state.check_prefix(prefix or "twl" + secrets.token_hex(3))
        if state.read(prefix) is not None or state.lab_namespaces(prefix):
            raise LabError(f"lab {prefix!r} is already up (python3 -m scripts.wanlab down {prefix})")
        lab = cls(sc, prefix)
        state.write(prefix, {"prefix": prefix, "scenario": sc.raw, "created": time.time(),
                             "owner_pid": 0 if persistent else os.getpid(), "delayers": {}})
        try:
            lab._build(delayer)
        except BaseException:
            lab.down()
            raise
        return lab

    @classmethod
    def attach(cls, prefix: str) -> Lab:
        """A handle on a lab that is already up (for example one started by the CLI)."""
        data = state.read(state.check_prefix(prefix))
        if data is None:
            raise LabError(f"no lab {prefix!r} is up")
        return cls(scenario.parse(data["scenario"]), prefix)

    def down(self) -> list[str]:
        return state.teardown(self.prefix)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ---- naming --------------------------------------------------------------------------------

    @property
    def switch_ns(self) -> str:
        return f"{self.prefix}-sw"

    @property
    def hosts(self) -> tuple[scenario.Host, ...]:
        return self.scenario.hosts

    def host(self, key: HostKey) -> scenario.Host:
        return self.scenario.host(key)

    def ns(self, key: HostKey) -> str:
        return f"{self.prefix}-{self.host(key).name}"

    def edge_ns(self, key: HostKey) -> str:
        """The namespace holding the host's address on the bridge and its shaping: the host's own,
        or its NAT router's."""
        return f"{self.ns(key)}-gw" if self.host(key).nat else self.ns(key)

    def ip(self, key: HostKey) -> str:
        """The host's address as the rest of the lab sees it (its router's, behind a NAT)."""
        return self.host(key).ip

    def local_ip(self, key: HostKey) -> str:
        """The address on the host's own interface (private, behind a NAT)."""
        return nat.HOST_PRIVATE_IP if self.host(key).nat else self.host(key).ip

    @property
    def ips(self) -> list[str]:
        return [h.ip for h in self.hosts]

    # ---- building ----------------------------------------------------------------------------

    def _build(self, delayer: Path) -> None:
        sc, sw = self.scenario, self.switch_ns
        run(["ip", "netns", "add", sw])
        run(["ip", "-n", sw, "-batch", "-"], input="link set lo up\n"
            "link add br0 type bridge forward_delay 0 stp_state 0\n")
        logs = state.log_dir(self.prefix)
        logs.mkdir(parents=True, exist_ok=True)
        delayers: dict[str, int] = {}
        for h in sc.hosts:
            edge, port = self.edge_ns(h.index), f"p{h.index}"
            run(["ip", "netns", "add", edge])
            run(["ip", "link", "add", "eth0", "netns", edge, "mtu", str(sc.mtu), "type", "veth",
                 "peer", "name", port, "netns", sw, "mtu", str(sc.mtu)])
            run(["ip", "-n", sw, "link", "set", port, "master", "br0", "up"])
            run(["ip", "-n", edge, "-batch", "-"], input="link set lo up\n"
                f"addr add {h.ip}/24 dev eth0\nlink set eth0 up\n")
            if h.nat:
                self._build_behind_router(h)
            self._sysctls(self.ns(h.index))
            plan = shaping.plan(sc, h.index)
            if plan.tc:
                run(["tc", "-n", edge, "-batch", "-"], input="".join(" ".join(c) + "\n" for c in plan.tc))
            if plan.queues:
                delayers[h.name] = self._start_delayer(edge, delayer, plan.queues, logs / f"{h.name}.log")
            run_ns(edge, ["iptables-restore"], input=plan.iptables_restore)
        run(["ip", "-n", sw, "link", "set", "br0", "up"])
        data = state.read(self.prefix) or {}
        data["delayers"] = delayers
        state.write(self.prefix, data)
        self._wait_reachable()

    def _build_behind_router(self, h: scenario.Host) -> None:
        """The host's own namespace on a private network behind its router (edge_ns)."""
        ns, router, mtu = self.ns(h.index), self.edge_ns(h.index), str(self.scenario.mtu)
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", "eth0", "netns", ns, "mtu", mtu, "type", "veth",
             "peer", "name", nat.INSIDE_IFACE, "netns", router, "mtu", mtu])
        run(["ip", "-n", router, "-batch", "-"],
            input=f"addr add {nat.ROUTER_PRIVATE_IP}/24 dev {nat.INSIDE_IFACE}\n"
            f"link set {nat.INSIDE_IFACE} up\n")
        run(["ip", "-n", ns, "-batch", "-"], input="link set lo up\n"
            f"addr add {nat.HOST_PRIVATE_IP}/24 dev eth0\nlink set eth0 up\n"
            f"route add default via {nat.ROUTER_PRIVATE_IP}\n")
        run_ns(router, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        run_ns(router, ["iptables-restore"], input=nat.router_rules(self.scenario, h))

    def _sysctls(self, ns: str) -> None:
        sc = self.scenario
        # Repeated measurements between the same hosts must not inherit cached cwnd/ssthresh.
        kv = ["net.ipv4.tcp_no_metrics_save=1"]
        if sc.congestion:
            _allow_congestion_control(sc.congestion)
            kv.append(f"net.ipv4.tcp_congestion_control={sc.congestion}")
        if sc.tcp_buf_max:
            kv += [f"net.ipv4.tcp_rmem=4096 131072 {sc.tcp_buf_max}",
                   f"net.ipv4.tcp_wmem=4096 16384 {sc.tcp_buf_max}"]
        run_ns(ns, ["sysctl", "-qw", *kv])

    def _start_delayer(self, ns: str, binary: Path, queues: Sequence[shaping.DelayQueue],
                       log: Path) -> int:
        args = [str(binary), "-r"]
        for q in queues:
            args += ["-q", f"{q.num}:{q.delay_ms:g}"]
        with open(log, "wb") as f:
            # Own session: a Ctrl-C aimed at the CLI or a test must not take the delayer down.
            p = subprocess.Popen(in_ns(ns, args), stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        want = {q.num for q in queues}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise LabError(f"delayer in {ns} exited ({p.returncode}): {log.read_text().strip()}")
            if want <= _bound_queues(p.pid):
                return p.pid
            time.sleep(0.01)
        raise LabError(f"delayer in {ns} did not bind queues {sorted(want)} within 5 s")

    def _wait_reachable(self) -> None:
        first = self.hosts[0]
        for h in self.hosts[1:]:
            # From the edge: a host behind a restrictive NAT may not be allowed to ping out.
            p = run_ns(self.edge_ns(first.index), ["ping", "-U", "-q", "-c", "1", "-W", "5", h.ip],
                       check=False)
            if p.returncode != 0:
                raise LabError(f"{first.name} cannot reach {h.name} ({h.ip}) after setup")
        for h in self.hosts:
            if h.nat:
                p = self.exec(h.index, ["ping", "-q", "-c", "1", "-W", "5", nat.ROUTER_PRIVATE_IP],
                              check=False)
                if p.returncode != 0:
                    raise LabError(f"{h.name} cannot reach its NAT router after setup")

    # ---- running things inside hosts -----------------------------------------------------------

    @staticmethod
    def _env(env: Mapping[str, str] | None) -> dict[str, str] | None:
        return None if env is None else {**os.environ, **env}

    @staticmethod
    def _argv(cmd: str | Sequence[str]) -> list[str]:
        return ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)

    def exec(self, host: HostKey, cmd: str | Sequence[str], *, env: Mapping[str, str] | None = None,
             timeout: float | None = 60, check: bool = True,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Runs cmd (argv list, or a shell string) inside host and waits; env adds to os.environ."""
        argv = in_ns(self.ns(host), self._argv(cmd))
        p = subprocess.run(argv, env=self._env(env), capture_output=True, text=True,
                           timeout=timeout, input=input)
        if check and p.returncode != 0:
            raise LabError(f"{self.host(host).name}: {cmd!r} exited {p.returncode}\n{p.stderr.strip()}")
        return p

    def popen(self, host: HostKey, cmd: str | Sequence[str], *,
              env: Mapping[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[Any]:
        """Starts cmd inside host without waiting; kwargs go to subprocess.Popen."""
        return subprocess.Popen(in_ns(self.ns(host), self._argv(cmd)), env=self._env(env), **kwargs)

    def python(self, host: HostKey, code: str, *args: str, env: Mapping[str, str] | None = None,
               **kwargs: Any) -> subprocess.Popen[Any]:
        """Starts `python -c code args...` inside host with this interpreter."""
        return self.popen(host, [sys.executable, "-c", code, *args], env=env, **kwargs)

    # ---- partitions ----------------------------------------------------------------------------

    def _peers(self, b: HostKey | None, a: scenario.Host) -> list[scenario.Host]:
        if b is None or b == "*":
            return [h for h in self.hosts if h.index != a.index]
        return [self.host(b)]

    def partition(self, a: HostKey, b: HostKey | None, on: bool) -> None:
        """Cuts (on=True) or restores all traffic between a and b, both directions.
        b=None or '*' means every other host. Idempotent."""
        ha = self.host(a)
        for hb in self._peers(b, ha):
            for x, y in ((ha, hb), (hb, ha)):
                present = self.partitioned(x.index, y.index)
                if on and not present:
                    run_ns(self.edge_ns(x.index), ["iptables", *shaping.partition_rule("-A", y.ip)])
                elif not on and present:
                    run_ns(self.edge_ns(x.index), ["iptables", *shaping.partition_rule("-D", y.ip)])

    def partitioned(self, a: HostKey, b: HostKey) -> bool:
        """True when a drops what arrives from b."""
        p = run_ns(self.edge_ns(a), ["iptables", *shaping.partition_rule("-C", self.ip(b))],
                   check=False)
        return p.returncode == 0

    @contextmanager
    def partitioned_between(self, a: HostKey, b: HostKey | None) -> Iterator[None]:
        self.partition(a, b, True)
        try:
            yield
        finally:
            self.partition(a, b, False)

    # ---- health --------------------------------------------------------------------------------

    def delayers(self) -> dict[str, tuple[int, bool]]:
        """host name -> (pid, alive)."""
        data = state.read(self.prefix) or {}
        out = {}
        for name, pid in data.get("delayers", {}).items():
            out[name] = (pid, Path(f"/proc/{pid}").exists())
        return out

    def delayer_stats(self) -> dict[str, str]:
        """Asks each delayer for its counters (lateness, overflow) and returns its log tail."""
        for pid, alive in self.delayers().values():
            if alive:
                os.kill(pid, signal.SIGUSR1)
        time.sleep(0.1)
        out = {}
        for name in self.delayers():
            log = state.log_dir(self.prefix) / f"{name}.log"
            lines = log.read_text().splitlines() if log.exists() else []
            n = len(shaping.ingress_queues(self.scenario, self.host(name).index))
            out[name] = "\n".join(lines[-n:])
        return out


def _allow_congestion_control(name: str) -> None:
    """A namespace other than the initial one may only default to an algorithm on the machine's
    allowed list (the kernel answers EPERM otherwise), so add it there. This only widens what
    unprivileged programs may pick with TCP_CONGESTION; it is not undone at teardown."""
    proc = Path("/proc/sys/net/ipv4")
    available = (proc / "tcp_available_congestion_control").read_text().split()
    if name not in available:
        raise LabError(f"congestion control {name!r} is not in this kernel ({' '.join(available)})")
    allowed_file = proc / "tcp_allowed_congestion_control"
    allowed = allowed_file.read_text().split()
    if name not in allowed:
        allowed_file.write_text(" ".join([*allowed, name]))


def _bound_queues(pid: int) -> set[int]:
    """Queue numbers bound in the namespace of pid (/proc/<pid>/net is that namespace's view)."""
    try:
        text = Path(f"/proc/{pid}/net/netfilter/nfnetlink_queue").read_text()
    except OSError:
        return set()
    return {int(line.split()[0]) for line in text.splitlines() if line.strip()}
