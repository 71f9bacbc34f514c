"""Coordinator failover with real processes: members given an active coordinator and a standby
(`--standby`) train in-process (examples/elastic_train.py) while the active coordinator is
SIGKILLed; they move to the standby, which resumes their epoch, so no step is lost and no process
restarts; the job then still admits and removes members. With one endpoint (no standby) the same
job cannot admit anyone after the kill, which is what the test would see without failover."""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path

from test_elastic_support import (
    Coordinator,
    Worker,
    finish_exactly_once,
    free_port,
    job_report,
    wait_until,
)

SIZE = 1 << 14
COORDINATOR_ARGS = ("--min-members", "3", "--heartbeat-timeout-ms", "3000",
                    "--recovery-grace-ms", "3000")  # fmt: skip


def worker_args(steps: int) -> tuple[str, ...]:
    # Heartbeats every 250 ms: a member gives up on a silent coordinator after 2 s.
    return (
        "--steps", str(steps), "--size", str(SIZE), "--step-delay", "0.02",
        "--heartbeat-ms", "250", "--timeout-s", "30",
    )  # fmt: skip


def test_active_coordinator_killed_mid_training_costs_no_step() -> None:
    steps = 500
    with tempfile.TemporaryDirectory(prefix="torchwan-failover-") as directory:
        log_dir = Path(directory)
        primary_dir, standby_dir = log_dir / "primary", log_dir / "standby"
        primary_dir.mkdir()
        standby_dir.mkdir()
        primary = Coordinator(free_port(), primary_dir, *COORDINATOR_ARGS)
        standby = Coordinator(free_port(), standby_dir, *COORDINATOR_ARGS, "--standby")
        endpoints = f"127.0.0.1:{primary.port},127.0.0.1:{standby.port}"
        workers: dict[str, Worker] = {}

        def add(name: str) -> Worker:
            workers[name] = Worker(name, 0, log_dir, *worker_args(steps), coordinators=endpoints)
            return workers[name]

        def report() -> str:
            return job_report(primary, workers) + "\n--- standby\n" + standby.log_tail()

        try:
            founders = ["w0", "w1", "w2"]
            for name in founders:
                add(name)
            wait_until(lambda: all(workers[n].step() >= 30 for n in founders), 90,
                       lambda: f"founders at step 30:\n{report()}")  # fmt: skip
            killed_at = time.time()
            primary.kill()
            step_at_kill = max(workers[n].step() for n in founders)
            standby_log = standby_dir / "coordinator1.log"
            wait_until(lambda: "resumed epoch 1" in standby_log.read_text(errors="replace"), 20,
                       lambda: f"the standby to resume epoch 1:\n{report()}")  # fmt: skip
            resumed_at = time.time()
            # Training never needed the coordinator: it went on across the failover.
            steps_meanwhile = min(workers[n].step() for n in founders) - step_at_kill
            assert steps_meanwhile > 0, report()
            print(f"standby resumed epoch 1 {resumed_at - killed_at:.1f} s after the kill; "
                  f"{steps_meanwhile} steps ran meanwhile")

            # The job still admits a member (through the standby: the primary is dead) ...
            add("w3")
            wait_until(
                lambda: all(
                    (event := workers[n].last("step")) is not None and event["world_size"] == 4
                    for n in [*founders, "w3"]
                ),
                60,
                lambda: f"a step with 4 members:\n{report()}",
            )
            # ... and removes one.
            workers["w0"].signal(signal.SIGUSR1)
            assert workers["w0"].wait(timeout=30) == 0, workers["w0"].stderr()
            remaining = ["w1", "w2", "w3"]
            finish_exactly_once(workers, remaining, steps, SIZE, report)
            assert all(workers[n].last("step")["world_size"] == 3 for n in remaining), report()
            # No collective failed and nothing restarted because of the failover: every founder
            # started once and saw its first failure (if any) only after the join began.
            for name in founders:
                events = workers[name].events
                assert sum(e["event"] == "started" for e in events) == 1, events[:3]
                assert workers[name].first("failure", after=killed_at) is None or (
                    workers[name].first("failure", after=killed_at)["t"] > resumed_at
                ), report()
        finally:
            for worker in workers.values():
                worker.kill()
            primary.stop()
            standby.stop()
