"""A host cut off from everyone (its links to the other hosts and to the coordinator dropped by
the WAN lab's partition) while four members train in-process: the three others detect it within
the heartbeat timeout and go on as a group of three; once the partition heals, the cut-off member
registers again and is readmitted with a healthy member's state. Every member ends with the same
exact model, every step applied exactly once.

Needs root and the lab's tools; skips with the reason otherwise."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from test_elastic_support import Coordinator, Worker, expected_checksum, wait_until
from wanlab_fixture import wanlab_fixture

SIZE = 1 << 14
SCENARIO = Path(__file__).resolve().parent / "scenarios" / "elastic4.toml"

lab = wanlab_fixture(str(SCENARIO))


def test_partitioned_host_is_dropped_then_readmitted(lab, tmp_path: Path) -> None:
    steps, heartbeat_timeout_s = 400, 2.0
    port = 29_470
    coordinator = Coordinator(
        port, tmp_path, "--min-members", "3",
        "--heartbeat-timeout-ms", str(int(heartbeat_timeout_s * 1000)),
        host=lab.ip(0), prefix=["ip", "netns", "exec", lab.ns(0)],
    )  # fmt: skip
    args = (
        "--steps", str(steps), "--size", str(SIZE), "--step-delay", "0.02",
        "--heartbeat-ms", "200", "--timeout-s", "30",
    )  # fmt: skip
    workers: dict[str, Worker] = {}
    try:
        for index in range(4):
            name = f"w{index}"
            workers[name] = Worker(
                name, port, tmp_path, *args, host=lab.ip(index), coordinator_host=lab.ip(0),
                prefix=["ip", "netns", "exec", lab.ns(index)],
            )  # fmt: skip

        def steps_of() -> str:
            return ", ".join(f"{n}: step {w.step()}" for n, w in workers.items())

        wait_until(lambda: all(w.step() >= 30 for w in workers.values()), 90, steps_of())
        cut_at = time.time()
        with lab.partitioned_between(3, None):
            for name in ("w0", "w1", "w2"):
                worker = workers[name]
                wait_until(
                    lambda w=worker: w.first("recovered", after=cut_at) is not None,
                    heartbeat_timeout_s + 15,
                    f"{name} to recover ({steps_of()})",
                )
                failure = worker.first("failure", after=cut_at)
                assert failure is not None
                # Within the heartbeat timeout plus scheduling slack on a loaded 2-core machine.
                assert failure["t"] - cut_at < heartbeat_timeout_s + 1.5, failure
                assert worker.first("recovered", after=cut_at)["world_size"] == 3
            step_during_cut = workers["w0"].step()
            wait_until(lambda: workers["w0"].step() >= step_during_cut + 20, 60, steps_of())
        healed_at = time.time()
        wait_until(
            lambda: workers["w3"].first("recovered", after=healed_at) is not None,
            60,
            f"w3 to be readmitted ({steps_of()}): {workers['w3'].stderr()}",
        )
        done = []
        for name, worker in workers.items():
            try:
                code = worker.wait(120)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{name} did not finish ({steps_of()})") from None
            assert code == 0, f"{name} exited with {code}: {worker.stderr()}"
            done.append(worker.last("done"))
        assert {event["checksum"] for event in done} == {expected_checksum(steps, SIZE)}, done
        assert all(event["exactly_once"] and event["step"] == steps for event in done), done
    finally:
        for worker in workers.values():
            worker.kill()
        coordinator.stop()
