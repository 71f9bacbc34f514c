"""Support for the elastic tests (no tests here): a coordinator process and worker processes
running examples/elastic_train.py, whose JSON-line events are collected as they happen so a test
can act at a given step (kill, stop, join, leave) and check times against bounds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from torchwan._local_ranks import free_port
from torchwan._native_cli import native_path

# Where the wheel installed the torchwan-coordinator executable.
COORDINATOR = native_path("torchwan-coordinator")

REPO = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO / "examples" / "elastic_train.py"


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: Union[str, Callable[[], str]]
) -> None:
    """`what` names the awaited condition; a callable is only called on timeout, so it can
    describe the processes' state at the failure rather than at the start of the wait."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {described}")
        time.sleep(0.02)


class Coordinator:
    def __init__(
        self, port: int, log_dir: Path, *args: str, host: str = "127.0.0.1",
        prefix: Sequence[str] = (),
    ) -> None:  # fmt: skip
        """`prefix` runs it elsewhere, e.g. ["ip", "netns", "exec", ns] inside a WAN-lab host."""
        self.port = port
        self.args = list(args)
        self.log_dir = log_dir
        self.host = host
        self.prefix = list(prefix)
        self.starts = 0
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.start()

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"coordinator{self.starts}.log", "wb")
        command = [*self.prefix, str(COORDINATOR), "--host", self.host, "--port", str(self.port)]
        self.process = subprocess.Popen(command + self.args, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def log_tail(self, chars: int = 4000) -> str:
        path = self.log_dir / f"coordinator{self.starts}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Worker:
    """One examples/elastic_train.py process (or `script` run with `script_args` first); `events`
    fills in from the JSON lines of its stdout."""

    def __init__(
        self, name: str, coordinator_port: int, log_dir: Path, *args: str,
        host: str = "127.0.0.1", coordinator_host: str = "127.0.0.1", prefix: Sequence[str] = (),
        script: Union[str, Path] = TRAIN_SCRIPT, script_args: Sequence[str] = (),
        coordinators: Optional[str] = None,
    ) -> None:  # fmt: skip
        """`coordinators` ("h1:p1,h2:p2": active and standbys) replaces the single coordinator."""
        self.name = name
        self.events: list[dict[str, Any]] = []
        self.stderr_path = log_dir / f"{name}.err"
        # Info level: membership changes and abandoned epochs land in the log a failure shows.
        env = {"TORCHWAN_LOG_LEVEL": "info", **os.environ, "TORCHWAN_HOST": host}
        env["PYTHONUNBUFFERED"] = "1"
        command = [*prefix, sys.executable, str(script), *script_args, "--coordinator"]
        command += [coordinators or f"{coordinator_host}:{coordinator_port}", "--name", name, *args]
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr, env=env
            )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                pass

    def last(self, event: str) -> Optional[dict[str, Any]]:
        found = [e for e in self.events if e["event"] == event]
        return found[-1] if found else None

    def first(self, event: str, after: float = 0.0) -> Optional[dict[str, Any]]:
        found = [e for e in self.events if e["event"] == event and e["t"] >= after]
        return found[0] if found else None

    def step(self) -> int:
        steps = [e["step"] for e in self.events if "step" in e]
        return max(steps) if steps else -1

    def signal(self, number: int) -> float:
        """Sends a signal; returns the wall-clock time it was sent (events use wall clock)."""
        sent = time.time()
        self.process.send_signal(number)
        return sent

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stderr(self, chars: int = 3000) -> str:
        return self.stderr_path.read_text(errors="replace")[-chars:]

    def report(self) -> str:
        """What a failed test needs to know about this worker: where it is, whether it still
        runs, its last events and the end of its log."""
        code = self.process.poll()
        state = "running" if code is None else f"exited with {code}"
        events = "\n".join(f"    {json.dumps(e)[:300]}" for e in self.events[-4:])
        return f"--- {self.name}: step {self.step()}, {state}\n{events}\n{self.stderr(2000)}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()


class ElasticJob:
    """A coordinator plus workers; everything started is killed on exit."""

    def __init__(self, *coordinator_args: str, worker_args: tuple[str, ...] = ()) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="torchwan-elastic-")
        self.log_dir = Path(self._dir.name)
        self.port = free_port()
        self.coordinator = Coordinator(self.port, self.log_dir, *coordinator_args)
        self.worker_args = worker_args
        self.workers: dict[str, Worker] = {}

    def add(self, name: str, *extra: str) -> Worker:
        worker = Worker(name, self.port, self.log_dir, *self.worker_args, *extra)
        self.workers[name] = worker
        return worker

    def wait_for_step(self, step: int, names: list[str], timeout: float) -> None:
        wait_until(
            lambda: all(self.workers[n].step() >= step for n in names),
            timeout,
            lambda: f"{names} to reach step {step}:\n{self.diagnostics()}",
        )

    def finish(self, names: list[str], timeout: float) -> list[dict[str, Any]]:
        """Waits for the named workers to exit cleanly; returns their 'done' events."""
        return finish_workers(self.workers, names, timeout, self.diagnostics)

    def diagnostics(self) -> str:
        return job_report(self.coordinator, self.workers)

    def __enter__(self) -> "ElasticJob":
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers.values():
            worker.kill()
        self.coordinator.stop()
        self._dir.cleanup()


def job_report(coordinator: Coordinator, workers: dict[str, Worker]) -> str:
    """Every process's state and log tail, for an assertion message: an elastic failure is
    rarely explained by one process's view."""
    parts = [worker.report() for worker in workers.values()]
    parts.append(f"--- coordinator\n{coordinator.log_tail()}")
    return "\n".join(parts)


def finish_workers(
    workers: dict[str, Worker], names: list[str], timeout: float, report: Callable[[], str]
) -> list[dict[str, Any]]:
    """Waits for the named workers to exit cleanly; returns their 'done' events. `report` says
    what a failed wait needs to know."""
    done = []
    for name in names:
        worker = workers[name]
        try:
            code = worker.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{name} did not finish:\n{report()}") from None
        assert code == 0, f"{name} exited with {code}:\n{report()}"
        event = worker.last("done")
        assert event is not None, f"{name} has no 'done' event:\n{report()}"
        done.append(event)
    return done


def expected_checksum(steps: int, size: int) -> float:
    """What AllReduceModel in examples/elastic_train.py holds after `steps` steps."""
    return float(size * steps * (steps + 1) // 2)


def assert_each_ran_exactly_once(done: list[dict[str, Any]], steps: int, size: int) -> None:
    """Every 'done' event says all `steps` steps ran exactly once and holds the checksum an
    AllReduceModel of `size` elements has after them."""
    assert {event["checksum"] for event in done} == {expected_checksum(steps, size)}, done
    assert all(event["exactly_once"] and event["step"] == steps for event in done), done


def finish_exactly_once(
    workers: dict[str, Worker], names: list[str], steps: int, size: int, report: Callable[[], str]
) -> None:
    """The end of a job that must lose nothing: the named workers exit cleanly (within 120 s
    each) and each ran every one of `steps` steps exactly once."""
    assert_each_ran_exactly_once(finish_workers(workers, names, 120, report), steps, size)
