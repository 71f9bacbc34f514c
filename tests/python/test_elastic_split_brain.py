"""No split brain under a partition (WAN lab): the active coordinator and one of four members are
cut off from the three others and the standby coordinator. The old active coordinator sees a
majority fail and stops the job on its side; its lone member, told to stop, finds no other
coordinator it can reach and stops for good. The three move to the standby, which takes the job
over with a higher epoch once its recovery grace confirms a strict majority of the last epoch.
At no time do two groups train: the lone member completes no step after the cut, and every step
of the three after it runs in an epoch above the one the partition interrupted.

Needs root and the lab's tools; skips with the reason otherwise."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from test_elastic_support import Coordinator, Worker, finish_exactly_once, job_report, wait_until
from wanlab_fixture import wanlab_fixture

SIZE = 1 << 14
SCENARIO = Path(__file__).resolve().parent / "scenarios" / "elastic4.toml"

lab = wanlab_fixture(str(SCENARIO))


def test_partitioned_active_coordinator_with_a_minority_never_runs_a_second_job(
    lab, tmp_path: Path
) -> None:
    steps, port = 400, 29_480
    # Host 0: the active coordinator and w0 (the minority). Host 3: the standby and w3.
    args = ("--min-members", "4", "--heartbeat-timeout-ms", "2000", "--recovery-grace-ms", "2000")
    (tmp_path / "primary").mkdir()
    (tmp_path / "standby").mkdir()
    primary = Coordinator(port, tmp_path / "primary", *args, host=lab.ip(0),
                          prefix=["ip", "netns", "exec", lab.ns(0)])  # fmt: skip
    standby = Coordinator(port, tmp_path / "standby", *args, "--standby", host=lab.ip(3),
                          prefix=["ip", "netns", "exec", lab.ns(3)])  # fmt: skip
    endpoints = f"{lab.ip(0)}:{port},{lab.ip(3)}:{port}"
    worker_args = (
        "--steps", str(steps), "--size", str(SIZE), "--step-delay", "0.02",
        "--heartbeat-ms", "200", "--timeout-s", "30",
    )  # fmt: skip
    workers: dict[str, Worker] = {}

    def report() -> str:
        return job_report(primary, workers) + "\n--- standby\n" + standby.log_tail()

    try:
        for index in range(4):
            name = f"w{index}"
            workers[name] = Worker(
                name, 0, tmp_path, *worker_args, host=lab.ip(index), coordinators=endpoints,
                prefix=["ip", "netns", "exec", lab.ns(index)],
            )  # fmt: skip
        wait_until(lambda: all(w.step() >= 30 for w in workers.values()), 90,
                   lambda: f"every member at step 30:\n{report()}")  # fmt: skip
        epoch_before = workers["w1"].last("step")["epoch"]
        cut_at = time.time()
        with lab.partitioned_between(0, None):
            majority = ["w1", "w2", "w3"]
            for name in majority:
                wait_until(
                    lambda n=name: (e := workers[n].last("step")) is not None
                    and e["t"] > cut_at and e["world_size"] == 3,
                    30,
                    lambda n=name: f"{n} to train on with the standby:\n{report()}",
                )
            # The lone member is stopped, by its coordinator's quorum rule, and gives up.
            try:
                code = workers["w0"].wait(timeout=30)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"w0 still runs:\n{report()}") from None
            assert code != 0 and "JobStoppedError" in workers["w0"].stderr(), report()
            assert "quorum lost" in primary.log_tail(20000), primary.log_tail()
            # A step in flight at the cut may still be recorded a moment later; nothing after.
            late = [e for e in workers["w0"].events if e["event"] == "step" and e["t"] > cut_at + 1]
            assert not late, late
        finish_exactly_once(workers, majority, steps, SIZE, report)
        for name in majority:
            after_cut = [e for e in workers[name].events if e["event"] == "step" and e["t"] > cut_at + 1]
            assert after_cut and all(e["epoch"] > epoch_before for e in after_cut), after_cut[:3]
    finally:
        for worker in workers.values():
            worker.kill()
        primary.stop()
        standby.stop()
