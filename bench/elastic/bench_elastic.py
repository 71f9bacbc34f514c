"""Time from SIGKILL of one training process to training resumed, three ways, in one run:

1. in-process recovery (torchwan.elastic.ElasticGroup, 4 members): survivors move to the next
   epoch's group and continue from the same step;
2. torchrun restart with the ``wan`` rendezvous (2 agents x 2 workers): agents restart every
   worker into a new round;
3. torchrun restart with torch's built-in ``c10d`` rendezvous (same shape).

"Resumed" is the moment every surviving rank has completed a step again (after the kill, in the
new group). All variants use the wan backend for the training collectives, on loopback.
Writes bench/results/elastic.{json,md}.

Each way is measured --repeat times (default 5), interleaved; the results give the median and
the spread (fastest and slowest run) of each.

    python bench/elastic/bench_elastic.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "python"))
from test_elastic_support import Coordinator, ElasticJob, free_port, wait_until  # noqa: E402

RESULTS = REPO / "bench" / "results"
WORKER = Path(__file__).resolve().parent / "torchrun_worker.py"
SIZE = 1 << 16
STEP_DELAY = 0.02
WARM_STEPS = 30


def in_process_recovery() -> dict[str, float]:
    args = ("--steps", "100000", "--size", str(SIZE), "--step-delay", str(STEP_DELAY))
    with ElasticJob("--min-members", "4", worker_args=args) as job:
        names = [f"w{i}" for i in range(4)]
        for name in names:
            job.add(name)
        job.wait_for_step(WARM_STEPS, names, timeout=120)
        killed_at = job.workers["w3"].signal(signal.SIGKILL)
        survivors = [job.workers[n] for n in names[:3]]

        def resumed(worker: Any) -> float | None:
            recovered = worker.first("recovered", after=killed_at)
            if recovered is None:
                return None
            step = worker.first("step", after=recovered["t"])
            return step["t"] if step else None

        wait_until(lambda: all(resumed(w) for w in survivors), 60, "in-process recovery")
        detected = max(w.first("failure", after=killed_at)["t"] for w in survivors)
        return {
            "detected_s": detected - killed_at,
            "resumed_s": max(resumed(w) for w in survivors) - killed_at,  # type: ignore[type-var]
        }


class TorchrunAgents:
    """Two torchrun agents with two workers each; collects the workers' JSON lines."""

    def __init__(self, rdzv_args: list[list[str]], log_dir: Path) -> None:
        self.lines: list[dict[str, Any]] = []
        self.agents: list[subprocess.Popen[bytes]] = []
        env = {**os.environ, "TORCHWAN_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"}
        # With c10d's shared agent store, workers restarted through a membership change (restart
        # count unchanged) reuse the previous round's key prefix and read the dead workers'
        # addresses; a fresh worker store per round (what the wan rendezvous always does) avoids
        # that.
        env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
        for index, extra in enumerate(rdzv_args):
            command = [
                sys.executable, "-m", "torch.distributed.run", "--nnodes=2",
                "--nproc-per-node=2", "--max-restarts=3", *extra,
                str(WORKER), "100000", str(SIZE), str(STEP_DELAY),
            ]  # fmt: skip
            with open(log_dir / f"agent{index}.err", "wb") as stderr:
                agent = subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=stderr, env=env, start_new_session=True
                )
            self.agents.append(agent)
            threading.Thread(target=self._read, args=(agent,), daemon=True).start()

    def _read(self, agent: subprocess.Popen[bytes]) -> None:
        assert agent.stdout is not None
        for raw in agent.stdout:
            try:
                self.lines.append(json.loads(raw))
            except json.JSONDecodeError:
                pass

    def steps_by(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[int, dict[str, Any]]:
        """The first step line per rank among lines matching `predicate`."""
        first: dict[int, dict[str, Any]] = {}
        for line in list(self.lines):
            if predicate(line) and line["rank"] not in first:
                first[line["rank"]] = line
        return first

    def close(self) -> None:
        for agent in self.agents:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()


def torchrun_restart(variant: str, log_dir: Path) -> dict[str, float]:
    port = free_port()
    coordinator = None
    if variant == "wan":
        coordinator = Coordinator(port, log_dir)
        common = ["--rdzv-backend=wan", f"--rdzv-endpoint=127.0.0.1:{port}"]
        rdzv = [common + ["--rdzv-id=bench-wan"]] * 2
    else:
        common = ["--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=bench"]
        rdzv = [common + ["--rdzv-conf=is_host=true"], common + ["--rdzv-conf=is_host=false"]]
    agents = TorchrunAgents(rdzv, log_dir)
    try:
        wait_until(
            lambda: len(agents.steps_by(lambda l: l["step"] >= WARM_STEPS)) == 4,
            180,
            f"torchrun ({variant}) to start training",
        )
        original = {l["pid"] for l in agents.lines}
        victim = agents.steps_by(lambda l: l["rank"] == 3)[3]["pid"]
        killed_at = time.time()
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: len(agents.steps_by(lambda l: l["pid"] not in original)) == 4,
            240,
            f"torchrun ({variant}) to resume",
        )
        resumed = agents.steps_by(lambda l: l["pid"] not in original)
        return {"resumed_s": max(l["t"] for l in resumed.values()) - killed_at}
    finally:
        agents.close()
        if coordinator is not None:
            coordinator.stop()


def write_results(runs: list[dict[str, Any]]) -> None:
    def values(key: str, field: str = "resumed_s") -> list[float]:
        return sorted(run[key][field] for run in runs)

    def median(key: str, field: str = "resumed_s") -> float:
        ordered = values(key, field)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

    def spread(key: str, field: str = "resumed_s") -> dict[str, float]:
        ordered = values(key, field)
        return {"median": median(key, field), "min": ordered[0], "max": ordered[-1]}

    inproc, wan, c10d = median("in_process"), median("torchrun_wan"), median("torchrun_c10d")
    summary = {
        "runs": len(runs),
        "in_process_resumed_s": spread("in_process"),
        "in_process_detected_s": spread("in_process", "detected_s"),
        "torchrun_wan_resumed_s": spread("torchrun_wan"),
        "torchrun_c10d_resumed_s": spread("torchrun_c10d"),
        "speedup_vs_torchrun_c10d": c10d / inproc,
        "speedup_vs_torchrun_wan": wan / inproc,
        "targets": {"in_process_under_5s": inproc < 5.0, "at_least_5x_vs_c10d": c10d / inproc >= 5},
    }
    load = os.getloadavg()
    document = {
        "benchmark": "elastic recovery: SIGKILL of one of 4 training processes to training resumed",
        "setup": {
            "network": "loopback",
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "load_average": load,
            "allreduce_elements": SIZE,
            "step_delay_s": STEP_DELAY,
            "in_process": "4 members, coordinator defaults (1 s heartbeats, 10 s timeout)",
            "torchrun": "2 agents x 2 workers, --max-restarts=3, default monitor interval",
        },
        "runs": runs,
        "summary": summary,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "elastic.json").write_text(json.dumps(document, indent=2) + "\n")
    def row(label: str, key: str) -> str:
        cell = summary[key]
        return (f"| {label} | {cell['median']:.2f} | {cell['min']:.2f}–{cell['max']:.2f} | "
                f"{cell['median'] / inproc:.1f}x |")

    detected = summary["in_process_detected_s"]
    table = [
        "# Elastic recovery: SIGKILL of one of 4 training processes → training resumed",
        "",
        f"Written by `python3 bench/elastic/bench_elastic.py --repeat {len(runs)}`. Loopback, "
        f"{os.cpu_count()} CPUs (load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} over "
        f"1 / 5 / 15 min when the last run ended); {len(runs)} runs of each way, interleaved; all "
        "variants train with the wan backend.",
        "",
        "| way on | kill → resumed, median (s) | fastest–slowest (s) | median vs in-process |",
        "|---|---:|---:|---:|",
        row("in-process recovery (ElasticGroup)", "in_process_resumed_s"),
        row("torchrun restart, `wan` rendezvous", "torchrun_wan_resumed_s"),
        row("torchrun restart, `c10d` rendezvous", "torchrun_c10d_resumed_s"),
        "",
        f"In-process failure detection (kill → every survivor's collective failed): median "
        f"{detected['median']:.2f} s, {detected['min']:.2f}–{detected['max']:.2f} s.",
        "",
    ]
    (RESULTS / "elastic.md").write_text("\n".join(table))
    print("\n".join(table))


def main() -> int:
    parser = argparse.ArgumentParser(description="elastic recovery benchmark")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import tempfile

    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="torchwan-bench-elastic-") as directory:
            log_dir = Path(directory)
            run = {
                "in_process": in_process_recovery(),
                "torchrun_wan": torchrun_restart("wan", log_dir),
                "torchrun_c10d": torchrun_restart("c10d", log_dir),
            }
        print(json.dumps(run), flush=True)
        runs.append(run)
    write_results(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
