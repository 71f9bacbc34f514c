"""In-process recovery with real processes (examples/elastic_train.py over a real coordinator):
a member killed mid-all-reduce, a frozen member, a coordinator restart, a joiner and two members
leaving at once. Every scenario checks that all members end with the same, exact model and that
every step was applied exactly once on each (the model records the steps it applied)."""

from __future__ import annotations

import signal
import time

from test_elastic_support import ElasticJob, assert_each_ran_exactly_once, wait_until

SIZE = 1 << 16
# Detection and recovery bound for a killed member on loopback (the target).
RECOVERY_BOUND_S = 5.0


def worker_args(steps: int, heartbeat_ms: int = 250) -> tuple[str, ...]:
    return (
        "--steps", str(steps), "--size", str(SIZE), "--step-delay", "0.02",
        "--heartbeat-ms", str(heartbeat_ms), "--timeout-s", "30",
    )  # fmt: skip


def test_sigkill_one_of_four_mid_allreduce() -> None:
    steps = 220
    with ElasticJob(
        "--min-members", "4", "--heartbeat-timeout-ms", "3000", worker_args=worker_args(steps)
    ) as job:
        names = [f"w{i}" for i in range(4)]
        for name in names:
            job.add(name)
        job.wait_for_step(30, names, timeout=90)
        killed_rank = job.workers["w3"].first("started")["rank"]
        killed_at = job.workers["w3"].signal(signal.SIGKILL)
        survivors = names[:3]
        done = job.finish(survivors, timeout=90)
        assert_each_ran_exactly_once(done, steps, SIZE)
        failures = []
        for name in survivors:
            worker = job.workers[name]
            failure = worker.first("failure", after=killed_at)
            recovered = worker.first("recovered", after=killed_at)
            assert failure is not None and recovered is not None, worker.events[-5:]
            assert failure["t"] - killed_at < RECOVERY_BOUND_S
            assert recovered["t"] - killed_at < RECOVERY_BOUND_S, recovered
            assert recovered["world_size"] == 3
            failures.append(failure)
        # The ranks that talked to the killed one learn which rank they lost from the error.
        blamed = {(failure["kind"], failure["peer"]) for failure in failures}
        assert ("WanPeerLostError", killed_rank) in blamed, failures


def test_sigstop_detected_within_heartbeat_timeout_then_rejoins_with_ddp() -> None:
    """A frozen member holds no connection open for its peers to notice: the coordinator's
    heartbeat timeout finds it. Resumed, it registers again and is readmitted with the model and
    optimizer state of a healthy member (DDP rebuilt on every new group)."""
    steps, heartbeat_timeout_s = 260, 1.5
    with ElasticJob(
        "--min-members", "3", "--heartbeat-timeout-ms", str(int(heartbeat_timeout_s * 1000)),
        worker_args=(*worker_args(steps, heartbeat_ms=100), "--model", "ddp"),
    ) as job:  # fmt: skip
        names = ["w0", "w1", "w2"]
        for name in names:
            job.add(name)
        job.wait_for_step(30, names, timeout=90)
        stopped_at = job.workers["w2"].signal(signal.SIGSTOP)
        for name in names[:2]:
            worker = job.workers[name]
            job_step = worker.step()
            wait_until_recovered(job, name, stopped_at, timeout=heartbeat_timeout_s + 10)
            failure = worker.first("failure", after=stopped_at)
            assert failure is not None and failure["step"] >= job_step
            # Detected within the heartbeat timeout (after the last heartbeat, so at most that
            # long after the stop) plus scheduling slack on a loaded machine.
            assert failure["t"] - stopped_at < heartbeat_timeout_s + 1.0, failure
        job.workers["w2"].signal(signal.SIGCONT)
        done = job.finish(names, timeout=120)
        assert len({event["checksum"] for event in done}) == 1, done
        assert all(event["exactly_once"] and event["step"] == steps for event in done), done
        rejoined = job.workers["w2"].first("recovered", after=stopped_at)
        assert rejoined is not None and rejoined["world_size"] == 3, job.workers["w2"].events[-5:]


def test_coordinator_killed_and_restarted_job_goes_on() -> None:
    steps = 300
    with ElasticJob(
        "--min-members", "3", "--heartbeat-timeout-ms", "3000", "--recovery-grace-ms", "3000",
        worker_args=worker_args(steps),
    ) as job:  # fmt: skip
        names = ["w0", "w1", "w2"]
        for name in names:
            job.add(name)
        job.wait_for_step(30, names, timeout=90)
        job.coordinator.kill()
        step_at_kill = max(job.workers[n].step() for n in names)
        time.sleep(0.5)
        job.coordinator.start()
        # Training does not need the coordinator: it went on meanwhile, and the restarted
        # coordinator rebuilds epoch 1 from the members' registrations.
        log = job.log_dir / "coordinator2.log"
        deadline = time.monotonic() + 15
        while "resumed epoch 1" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)
        done = job.finish(names, timeout=90)
        assert_each_ran_exactly_once(done, steps, SIZE)
        for name in names:
            assert job.workers[name].first("failure") is None, job.workers[name].events[-5:]
        assert step_at_kill < steps


def test_join_three_to_four_then_two_leave_at_once() -> None:
    steps = 400
    with ElasticJob(
        "--min-members", "3", "--heartbeat-timeout-ms", "3000", worker_args=worker_args(steps)
    ) as job:
        founders = ["w0", "w1", "w2"]
        for name in founders:
            job.add(name)
        job.wait_for_step(20, founders, timeout=90)
        joiner = job.add("w3")
        wait_until(
            lambda: all(
                job.workers[n].last("step") and job.workers[n].last("step")["world_size"] == 4
                for n in founders + ["w3"]
            ),
            60,
            lambda: f"a step with 4 members:\n{job.diagnostics()}",
        )
        started = joiner.first("started")
        assert started is not None and started["step"] > 20, started  # it received state
        # Two members leave at the same moment (each at its next step boundary).
        for name in ["w0", "w1"]:
            job.workers[name].signal(signal.SIGUSR1)
        for name in ["w0", "w1"]:
            assert job.workers[name].wait(timeout=30) == 0, job.workers[name].stderr()
            assert job.workers[name].last("leaving") is not None
        done = job.finish(["w2", "w3"], timeout=90)
        assert_each_ran_exactly_once(done, steps, SIZE)
        for name in ["w2", "w3"]:
            assert job.workers[name].last("step")["world_size"] == 2


def wait_until_recovered(job: ElasticJob, name: str, after: float, timeout: float) -> None:
    wait_until(
        lambda: job.workers[name].first("recovered", after=after) is not None,
        timeout,
        lambda: f"{name} to recover:\n{job.diagnostics()}",
    )
