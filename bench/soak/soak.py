"""Soak: random collectives with random sizes on 4 elastic members while faults are injected at
random times; every result is checked, memory and file descriptors must stay flat, nothing may hang.

A real torchwan-coordinator and 4 members (bench/soak/soak_worker.py, torchwan.elastic.ElasticGroup)
run on loopback. Each step every member runs the same randomly drawn collective (all_reduce SUM or
MAX, broadcast, all_gather_into_tensor, reduce_scatter_tensor, all_to_all_single, even or uneven)
on 1 element to 4 MiB (its largest buffer) of float32, float64, int64 or bfloat16, and checks the
result exactly against values it computes itself. The driver injects, one at a time and at
seeded random times after a warm-up:

* kill: SIGKILL of a member, and a replacement process started at once, which must join (any
  member while more than two of the founders are left, then only replacements);
* stop: SIGSTOP of a member until the coordinator's heartbeat timeout has removed it (the others
  carry on without it), then SIGCONT; it must notice and rejoin.

After each fault the job must be whole again (4 members stepping in a newer epoch) within a
deadline. At the end all members stop at one step; the run passes when every live member exits 0,
each member's hash chain shows every step checked and applied exactly once, and, for the members
that lived through the whole run, RSS grew by less than 64 MiB and the open file descriptors by at
most 16 between the first sample after warm-up and the last (RSS: after malloc_trim, the lowest of
5 samples at either end, see growth_of).

Members run with MALLOC_ARENA_MAX=1 by default: each epoch's group starts new transport threads,
and the malloc arenas glibc gives them keep memory after the threads end. On 2 CPUs with zmq, 63
epochs of SIGSTOP faults grew RSS by 27-36 MiB with glibc's default (levelling off; up to 8 arenas
per core, so more on bigger machines) and by 3-4 MiB with one arena; without faults, 6-7 MiB over
2,400 steps. `--malloc-arena-max 0` measures the default.

tests/python/test_soak.py runs a CI-sized version (~45 s per transport, one fault of each kind).
The long version, both transports, writing bench/results/soak.{json,md}:

    python3 bench/soak/soak.py --minutes 10            # fault window per transport
    python3 bench/soak/soak.py --minutes 1.5 --transports zmq --seed 7 --no-write

Logs (coordinator, each member's events as JSON lines and stderr) stay in --log-dir. Exit status
1 when a property is violated (the reasons are printed and recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "python"))
from test_elastic_support import Coordinator, Worker, free_port, wait_until  # noqa: E402

RESULTS = REPO / "bench" / "results"
WORKER_SCRIPT = Path(__file__).resolve().parent / "soak_worker.py"
MIB = 1 << 20


@dataclass
class SoakConfig:
    transport: str = "zmq"
    duration_s: float = 40.0  # fault injection window after warm-up
    seed: int = 0
    members: int = 4
    max_faults: Optional[int] = None  # None: as many as fit the duration
    fault_gap_s: tuple[float, float] = (2.0, 8.0)  # random quiet time before each fault
    heartbeat_ms: int = 100
    heartbeat_timeout_ms: int = 1500
    stop_hold_s: float = 2.5  # a SIGSTOPped member stays frozen at least this long
    warmup_steps: int = 40
    sample_every: int = 20
    whole_again_s: float = 60.0  # deadline for 4 members stepping again after a fault
    finish_s: float = 120.0  # deadline for every member to reach the stop step and exit
    rss_bound: int = 64 * MIB
    fd_bound: int = 16
    # Every epoch's process group starts new transport threads, and glibc gives threads their own
    # malloc arenas (up to 8 per core); what those keep after the threads end spreads RSS by tens
    # of MiB over the first dozens of epochs before it levels off. One arena keeps RSS a measure
    # of live memory, so a leak shows. None: glibc's default.
    malloc_arena_max: Optional[int] = 1


class SoakWorker(Worker):
    """A Worker (test_elastic_support) running soak_worker.py under a chosen transport; keeps the
    latest event of each kind, and not every step event, so polling stays cheap for long runs."""

    def __init__(
        self, name: str, port: int, log_dir: Path, transport: str, *args: str,
        env: Optional[dict[str, str]] = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.events: list[dict[str, Any]] = []
        self.latest: dict[str, dict[str, Any]] = {}
        self.started_at = time.time()
        self.stderr_path = log_dir / f"{name}.err"
        self.events_path = log_dir / f"{name}.jsonl"  # every event, for looking into a failure
        env = {
            **os.environ,
            "TORCHWAN_HOST": "127.0.0.1",
            "TORCHWAN_TRANSPORT": transport,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        command = [sys.executable, str(WORKER_SCRIPT), "--coordinator", f"127.0.0.1:{port}"]
        command += ["--name", name, *args]
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with open(self.events_path, "wb") as log:
            for line in self.process.stdout:
                log.write(line)
                self._parse(line)

    def _parse(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return
        self.latest[event["event"]] = event
        if event["event"] != "step":
            self.events.append(event)

    def step(self) -> int:
        event = self.latest.get("step")
        return event["step"] if event else -1

    def samples(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == "sample"]


class SoakError(AssertionError):
    pass


class Soak:
    def __init__(self, config: SoakConfig, log_dir: Path) -> None:
        self.config = config
        self.log_dir = log_dir
        self.rng = random.Random(config.seed)
        self.port = free_port()
        self.stop_file = log_dir / "stop-step"
        self.workers: dict[str, SoakWorker] = {}
        self.gone: set[str] = set()  # killed on purpose
        self.faults: list[dict[str, Any]] = []
        self.next_index = 0
        self.coordinator: Optional[Coordinator] = None

    # ----------------------------------------------------------------------------- members
    def add(self) -> SoakWorker:
        name = f"w{self.next_index}"
        self.next_index += 1
        c = self.config
        worker = SoakWorker(
            name, self.port, self.log_dir, c.transport, "--seed", str(c.seed), "--stop-file",
            str(self.stop_file), "--sample-every", str(c.sample_every), "--heartbeat-ms",
            str(c.heartbeat_ms), env=self.worker_env(),
        )  # fmt: skip
        self.workers[name] = worker
        return worker

    def worker_env(self) -> dict[str, str]:
        arenas = self.config.malloc_arena_max
        return {"MALLOC_ARENA_MAX": str(arenas)} if arenas else {}

    def live(self) -> list[SoakWorker]:
        return [w for n, w in self.workers.items() if n not in self.gone]

    def check_alive(self) -> None:
        """Fails at once when a member exits that was not killed on purpose."""
        for worker in self.live():
            code = worker.process.poll()
            if code is not None:
                raise SoakError(
                    f"{worker.name} exited with {code} mid-run; last events "
                    f"{worker.events[-3:]}; stderr: {worker.stderr()}"
                )

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        def healthy_and_done() -> bool:
            self.check_alive()
            return bool(predicate())

        wait_until(healthy_and_done, timeout, f"{what} ({self.diagnostics()})")

    def epoch(self) -> int:
        steps = [w.latest["step"] for w in self.live() if "step" in w.latest]
        return max((step["epoch"] for step in steps), default=0)

    def whole_after(self, epoch: int) -> bool:
        """Every live member has stepped with all members in an epoch newer than `epoch`."""
        members = self.live()
        return len(members) == self.config.members and all(
            "step" in w.latest
            and w.latest["step"]["epoch"] > epoch
            and w.latest["step"]["world_size"] == self.config.members
            for w in members
        )

    def diagnostics(self) -> str:
        return ", ".join(
            f"{n}: step {w.step()}{' (gone)' if n in self.gone else ''}"
            for n, w in self.workers.items()
        )

    # ----------------------------------------------------------------------------- faults
    def kill_and_replace(self, victim: SoakWorker) -> dict[str, Any]:
        at = victim.signal(signal.SIGKILL)
        victim.process.wait()
        self.gone.add(victim.name)
        replacement = self.add()
        return {"kind": "kill", "victim": victim.name, "replacement": replacement.name, "t": at}

    def stop_and_continue(self, victim: SoakWorker) -> dict[str, Any]:
        others = [w for w in self.live() if w is not victim]
        at = victim.signal(signal.SIGSTOP)
        try:
            # Removed by the heartbeat timeout: the others step without it.
            self.wait(
                lambda: all(
                    "step" in w.latest
                    and w.latest["step"]["t"] > at
                    and w.latest["step"]["world_size"] == self.config.members - 1
                    for w in others
                ),
                self.config.heartbeat_timeout_ms / 1000 + 15,
                f"the others to drop the stopped {victim.name}",
            )
            removed = time.time() - at
            remaining = self.config.stop_hold_s - removed
            if remaining > 0:
                time.sleep(remaining)
        finally:
            victim.signal(signal.SIGCONT)
        return {"kind": "stop", "victim": victim.name, "t": at, "removed_s": round(removed, 3)}

    def inject(self, kind: str) -> None:
        candidates = self.live()
        if kind == "kill":
            # Any member, rank 0 included, until only two founders are left: those are then only
            # stopped, so some members always live through the run for the memory check.
            founders = [w for w in candidates if w.name not in self.replacements()]
            if len(founders) <= 2:
                candidates = [w for w in candidates if w not in founders]
        victim = self.rng.choice(candidates)
        epoch = self.epoch()
        fault = (self.kill_and_replace if kind == "kill" else self.stop_and_continue)(victim)
        self.wait(lambda: self.whole_after(epoch), self.config.whole_again_s, f"whole: {fault}")
        fault["whole_s"] = round(time.time() - fault["t"], 3)
        self.faults.append(fault)

    # ----------------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        c = self.config
        started = time.time()
        self.coordinator = Coordinator(
            self.port, self.log_dir, "--min-members", str(c.members),
            "--heartbeat-timeout-ms", str(c.heartbeat_timeout_ms),
        )  # fmt: skip
        try:
            founders = [self.add() for _ in range(c.members)]
            # Warm-up: every founder has a sample at or after warmup_steps before any fault, so
            # the baseline sees the steady state and no fault has happened yet.
            self.wait(
                lambda: all(
                    any(s["step"] >= c.warmup_steps for s in w.samples()) for w in founders
                ),
                120,
                "warm-up",
            )
            kinds: list[str] = []
            window_end = time.monotonic() + c.duration_s
            while c.max_faults is None or len(self.faults) < c.max_faults:
                if not kinds:
                    kinds = ["kill", "stop"]
                    self.rng.shuffle(kinds)
                quiet_until = time.monotonic() + self.rng.uniform(*c.fault_gap_s)
                if quiet_until > window_end:
                    break
                self.wait(lambda: time.monotonic() >= quiet_until, c.fault_gap_s[1] + 1, "quiet")
                self.inject(kinds.pop())
            self.wait(lambda: time.monotonic() >= window_end, c.duration_s + 1, "the window end")
            return self.finish(started)
        finally:
            for worker in self.workers.values():
                worker.kill()
            self.coordinator.stop()

    def finish(self, started: float) -> dict[str, Any]:
        c = self.config
        # Members are within one step of each other; a margin of 20 lets all read the file first.
        stop_step = max(w.step() for w in self.live()) + 20
        temporary = self.stop_file.with_suffix(".tmp")
        temporary.write_text(str(stop_step))
        temporary.rename(self.stop_file)
        done: dict[str, dict[str, Any]] = {}
        codes: dict[str, int] = {}
        deadline = time.monotonic() + c.finish_s
        for worker in self.live():
            try:
                codes[worker.name] = worker.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise SoakError(f"{worker.name} did not finish (hang?): {self.diagnostics()}")
            event = worker.last("done")
            if event is not None:
                done[worker.name] = event
        return self.summarize(started, stop_step, codes, done)

    def summarize(
        self, started: float, stop_step: int, codes: dict[str, int], done: dict[str, Any]
    ) -> dict[str, Any]:
        c = self.config
        replaced = self.replacements()
        whole_run = [n for n in self.workers if n in codes and n not in replaced]
        growth = {
            name: grown
            for name in whole_run
            if (grown := growth_of(self.workers[name].samples(), c.warmup_steps)) is not None
        }
        events = [e for w in self.workers.values() for e in w.events]
        kinds: dict[str, int] = {}
        dtypes: dict[str, int] = {}
        for event in done.values():
            for key, count in event["kinds"].items():
                kinds[key] = kinds.get(key, 0) + count
            for key, count in event["dtypes"].items():
                dtypes[key] = dtypes.get(key, 0) + count
        return {
            "config": asdict(c),
            "duration_s": round(time.time() - started, 1),
            "steps": stop_step,
            "final_epoch": max((e.get("epoch", 0) for e in events), default=0),
            "faults": self.faults,
            "failures_seen": sum(e["event"] == "failure" for e in events),
            "recoveries": sum(e["event"] == "recovered" for e in events),
            "exit_codes": codes,
            "done": done,
            "whole_run_members": whole_run,
            "growth": growth,
            "checked_per_kind": kinds,
            "checked_per_dtype": dtypes,
            "mismatches": [e for e in events if e["event"] in ("mismatch", "regression")],
            "violations": [],
        }

    def replacements(self) -> set[str]:
        return {f["replacement"] for f in self.faults if f["kind"] == "kill"}


def growth_of(
    samples: list[dict[str, Any]], warmup_steps: int, window: int = 5
) -> Optional[dict[str, int]]:
    """RSS and fd growth from the first sample at or after warm-up to the last one. RSS compares
    the lowest of `window` samples at each end, so a passing spike does not count; the UCX
    transport's caches still put a group's RSS anywhere in a band about 30 MiB wide (measured on
    loopback over 63 epochs, with no trend), which the bound leaves room for."""
    after = [s for s in samples if s["step"] >= warmup_steps]
    if not after:
        return None
    base, last = after[0], samples[-1]
    floor_base = min(s["rss"] for s in after[:window])
    return {
        "baseline_step": base["step"],
        "last_step": last["step"],
        "rss_baseline": floor_base,
        "rss_growth": min(s["rss"] for s in after[-window:]) - floor_base,
        "rss_peak_growth": max(s["rss"] for s in after) - floor_base,
        "fd_baseline": base["fds"],
        "fd_growth": last["fds"] - base["fds"],
        "fd_peak_growth": max(s["fds"] for s in after) - base["fds"],
    }


def violations(summary: dict[str, Any]) -> list[str]:
    """Every property of the soak that does not hold (empty when the run passed)."""
    c = summary["config"]
    found: list[str] = []
    steps = summary["steps"]
    for name, code in summary["exit_codes"].items():
        if code != 0:
            found.append(f"{name} exited with {code}")
    for name in summary["exit_codes"]:
        event = summary["done"].get(name)
        if event is None:
            found.append(f"{name} has no done event")
            continue
        if event["step"] != steps or not event["exactly_once"]:
            found.append(f"{name}: step {event['step']} of {steps}, exactly once: "
                         f"{event['exactly_once']}")  # fmt: skip
        if event["checked"] + event["adopted"] != steps:
            found.append(f"{name}: checked {event['checked']} + adopted {event['adopted']} "
                         f"!= {steps}")  # fmt: skip
    if summary["mismatches"]:
        found.append(f"wrong results: {summary['mismatches'][:3]}")
    if not summary["whole_run_members"]:
        found.append("no member lived through the whole run")
    for name in summary["whole_run_members"]:
        grown = summary["growth"].get(name)
        if grown is None:
            found.append(f"{name}: no samples after warm-up")
            continue
        if grown["rss_growth"] >= c["rss_bound"]:
            found.append(f"{name}: RSS grew by {grown['rss_growth'] / MIB:.1f} MiB")
        if grown["fd_growth"] > c["fd_bound"]:
            found.append(f"{name}: open fds grew by {grown['fd_growth']}")
    return found


def run_soak(config: SoakConfig, log_dir: Path) -> dict[str, Any]:
    """Runs one soak; the summary's "violations" lists what failed (empty: passed)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    summary = Soak(config, log_dir).run()
    summary["violations"] = violations(summary)
    return summary


# --------------------------------------------------------------------------------- benchmark
def markdown(runs: list[dict[str, Any]]) -> str:
    lines = [
        "# Soak: random collectives on 4 elastic members under injected faults",
        "",
        f"Loopback, {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}), "
        f"{platform.python_version()}; written by `python3 bench/soak/soak.py`. Faults: SIGKILL + "
        "replacement joining (kill), SIGSTOP until the heartbeat timeout removes the member, then "
        "SIGCONT and rejoin (stop). Growth: first sample after warm-up to the last, worst member "
        "that lived the whole run (RSS after malloc_trim, lowest of 5 samples at each end; "
        "MALLOC_ARENA_MAX "
        f"{runs[0]['config'].get('malloc_arena_max') or 'default'}).",
        "",
        "| transport | duration (s) | steps | faults (kill/stop) | recoveries | final epoch | "
        "max RSS growth (MiB) | max fd growth | passed |",
        "|---|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        faults = run["faults"]
        kills = sum(f["kind"] == "kill" for f in faults)
        stops = len(faults) - kills
        growth = run["growth"].values()
        rss = max((g["rss_growth"] for g in growth), default=0) / MIB
        fds = max((g["fd_growth"] for g in growth), default=0)
        lines.append(
            f"| {run['config']['transport']} | {run['duration_s']:.0f} | {run['steps']} | "
            f"{len(faults)} ({kills}/{stops}) | {run['recoveries']} | {run['final_epoch']} | "
            f"{rss:.1f} | {fds} | {'yes' if not run['violations'] else 'NO'} |"
        )
    for run in runs:
        if run["violations"]:
            lines += ["", f"Violations ({run['config']['transport']}):", ""]
            lines += [f"* {v}" for v in run["violations"]]
    worst_whole = max((f["whole_s"] for run in runs for f in run["faults"]), default=0.0)
    lines += ["", f"Slowest fault to a whole 4-member job again: {worst_whole:.1f} s.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="fault window per transport")
    parser.add_argument("--transports", default="ucx,zmq")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--malloc-arena-max", type=int, default=1, help="0: glibc's default")
    parser.add_argument("--log-dir", default=None, help="default: a fresh folder under /tmp")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results")
    args = parser.parse_args()
    log_root = Path(args.log_dir or tempfile.mkdtemp(prefix="torchwan-soak-"))
    runs = []
    for index, transport in enumerate(args.transports.split(",")):
        config = SoakConfig(
            transport=transport,
            duration_s=args.minutes * 60,
            seed=args.seed + index,
            malloc_arena_max=args.malloc_arena_max or None,
        )
        print(f"soak: {transport}, {args.minutes} min, logs in {log_root / transport}", flush=True)
        try:
            summary = run_soak(config, log_root / transport)
        except AssertionError as error:  # a hang or a member dying mid-run
            summary = {"config": asdict(config), "duration_s": 0, "steps": 0, "faults": [],
                       "recoveries": 0, "final_epoch": 0, "growth": {},
                       "violations": [str(error)[:2000]]}  # fmt: skip
        runs.append(summary)
        print(json.dumps({k: summary[k] for k in ("steps", "faults", "violations")}), flush=True)
    report = markdown(runs)
    print(report)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "soak.json").write_text(json.dumps(runs, indent=1) + "\n")
        (RESULTS / "soak.md").write_text(report)
    return 1 if any(run["violations"] for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
