"""Command line: python3 -m scripts.wanlab COMMAND ...  (or scripts/wanlab/wanlab.py COMMAND ...)

  up SCENARIO [--prefix P]         bring a lab up and leave it running
  down [PREFIX ...] [--all]        tear labs down (idempotent; --all: every twl* lab)
  list                             labs that are up
  show [PREFIX]                    hosts, addresses, expected RTT/rate, delayer health
  exec [--prefix P] HOST CMD...    run CMD inside HOST (name or 0-based index)
  partition [--prefix P] A B on|off   cut/restore A<->B (B may be '*': every other host)
  check [PREFIX] [--seconds S] [--streams N] [--all-flows] [--json FILE]
                                   measure RTT and rate and compare with the scenario
  doctor                           say what this machine lacks to run the lab
PREFIX may be omitted whenever exactly one lab is up.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import requirements, scenario, selfcheck, state
from .errors import LabError, LabUnavailable
from .lab import Lab


def _only_prefix(given: str | None) -> str:
    if given:
        return given
    up = sorted(p for p in state.known_prefixes() if state.read(p) is not None)
    if len(up) == 1:
        return up[0]
    raise LabError("no lab is up" if not up else f"several labs are up ({', '.join(up)}): name one")


def cmd_up(a: argparse.Namespace) -> int:
    lab = Lab.up(a.scenario, prefix=a.prefix, persistent=True)
    print(f"lab {lab.prefix} up: scenario {lab.scenario.name}")
    for h in lab.hosts:
        print(f"  {h.index} {h.name:<8} {h.ip:<12} ns={lab.ns(h.index)}")
    return 0


def cmd_down(a: argparse.Namespace) -> int:
    if a.all:
        prefixes = sorted(state.known_prefixes())
    else:
        up = sorted(p for p in state.known_prefixes() if state.read(p) is not None)
        prefixes = a.prefixes or (up if len(up) == 1 else [])
        if not prefixes and up:
            raise LabError(f"several labs are up ({', '.join(up)}): name one, or use --all")
    if not prefixes:
        print("down: no lab is up")
    for p in prefixes:
        removed = state.teardown(p)
        print(f"down {p}: removed {len(removed)} namespaces")
    return 0


def cmd_list(a: argparse.Namespace) -> int:
    for p in sorted(state.known_prefixes()):
        data = state.read(p)
        name = data["scenario"].get("name", "?") if data else "(no state: stale)"
        print(f"{p}\t{name}\tnamespaces={len(state.lab_namespaces(p))}")
    return 0


def cmd_show(a: argparse.Namespace) -> int:
    lab = Lab.attach(_only_prefix(a.prefix))
    sc = lab.scenario
    print(f"lab {lab.prefix}: {sc.name} - {sc.description}  (mtu {sc.mtu})")
    for h in lab.hosts:
        pid, alive = lab.delayers().get(h.name, (0, False))
        health = f"delayer pid {pid} {'alive' if alive else 'DEAD'}" if pid else "no delayer"
        print(f"  {h.index} {h.name:<8} {h.ip:<12} uplink {scenario.format_rate(h.rate_bps)}  {health}")
    for i, j in ((i, j) for i in range(len(lab.hosts)) for j in range(len(lab.hosts)) if i != j):
        part = "  PARTITIONED" if lab.partitioned(j, i) else ""
        print(f"  {lab.hosts[i].name}->{lab.hosts[j].name}: rtt {sc.rtt_ms(i, j):g} ms, "
              f"rate {scenario.format_rate(sc.effective_rate_bps(i, j))}, "
              f"loss {sc.path(i, j).loss_pct:g} %{part}")
    return 0


def cmd_exec(a: argparse.Namespace) -> int:
    lab = Lab.attach(_only_prefix(a.prefix))
    os.execvp("ip", ["ip", "netns", "exec", lab.ns(a.host), *a.cmd])


def cmd_partition(a: argparse.Namespace) -> int:
    lab = Lab.attach(_only_prefix(a.prefix))
    lab.partition(a.a, a.b, a.state == "on")
    print(f"partition {a.a} <-> {a.b}: {a.state}")
    return 0


def cmd_check(a: argparse.Namespace) -> int:
    requirements.require(need_iperf3=not a.no_rate)
    lab = Lab.attach(_only_prefix(a.prefix))
    rep = selfcheck.run(lab, a.rtt_tol, a.rate_tol, a.seconds, a.streams, a.all_flows,
                        rate=not a.no_rate)
    print(rep.table())
    for name, line in lab.delayer_stats().items():
        print(f"  {name}: {line}")
    if a.json:
        Path(a.json).write_text(rep.to_json())
    return 0 if rep.ok else 1


def cmd_doctor(a: argparse.Namespace) -> int:
    reasons = requirements.missing(need_iperf3=True)
    for r in reasons:
        print(f"missing: {r}")
    print("ok: this machine can run the WAN lab" if not reasons else "the WAN lab cannot run here")
    return 0 if not reasons else 1


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="wanlab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up")
    p.add_argument("scenario", help="bundled name (smoke, wan-a, wan-lossy, regions) or a file")
    p.add_argument("--prefix", default="twl", help="namespace prefix (default twl)")
    p.set_defaults(fn=cmd_up)
    p = sub.add_parser("down")
    p.add_argument("prefixes", nargs="*")
    p.add_argument("--all", action="store_true")
    p.set_defaults(fn=cmd_down)
    sub.add_parser("list").set_defaults(fn=cmd_list)
    p = sub.add_parser("show")
    p.add_argument("prefix", nargs="?")
    p.set_defaults(fn=cmd_show)
    p = sub.add_parser("exec")
    p.add_argument("--prefix")
    p.add_argument("host")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_exec)
    p = sub.add_parser("partition")
    p.add_argument("--prefix")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("state", choices=["on", "off"])
    p.set_defaults(fn=cmd_partition)
    p = sub.add_parser("check")
    p.add_argument("prefix", nargs="?")
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--rtt-tol", type=float, default=0.10)
    p.add_argument("--rate-tol", type=float, default=0.15)
    p.add_argument("--all-flows", action="store_true", help="every ordered pair, not one per class")
    p.add_argument("--no-rate", action="store_true", help="RTT only (no iperf3)")
    p.add_argument("--json", help="also write the report here")
    p.set_defaults(fn=cmd_check)
    sub.add_parser("doctor").set_defaults(fn=cmd_doctor)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        rc: int = args.fn(args)
        return rc
    except BrokenPipeError:  # output piped into head and the like
        return 0
    except LabUnavailable as e:
        print(f"wanlab: {e}", file=sys.stderr)
        return 3
    except (LabError, ValueError) as e:  # ScenarioError is a ValueError
        print(f"wanlab: {e}", file=sys.stderr)
        return 2
