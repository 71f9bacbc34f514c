"""torchrun with ``--rdzv-backend=wan`` (the torchrun.handlers entry point): two agents on
loopback meet through torchwan-coordinator and run a script to the end, including a round in
which one worker crashes and both agents restart their workers (``--max-restarts``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

from test_elastic_support import Coordinator, free_port

SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch, torch.distributed as dist
    import torchwan  # noqa: F401

    marker = sys.argv[1]
    dist.init_process_group("wan")
    if dist.get_rank() == 1 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)  # a worker crash in the first round
    t = torch.full((4,), float(dist.get_rank() + 1))
    dist.all_reduce(t)
    restarts = os.environ["TORCHELASTIC_RESTART_COUNT"]
    print(f"RESULT rank={dist.get_rank()} world={dist.get_world_size()} sum={t[0].item()} "
          f"restarts={restarts}", flush=True)
    dist.destroy_process_group()
    """
)


def test_entry_point_creates_the_wan_handler() -> None:
    assert "wan" in [ep.name for ep in entry_points(group="torchrun.handlers")]
    # Importing the registry loads out-of-tree handlers from the entry points.
    from torch.distributed.elastic.rendezvous import (
        RendezvousParameters,
        rendezvous_handler_registry,
    )

    params = RendezvousParameters("wan", f"127.0.0.1:{free_port()}", "job", 1, 2)
    handler = rendezvous_handler_registry.create_handler(params)
    assert handler.get_backend() == "wan"
    assert handler.num_nodes_waiting() == 0 and not handler.is_closed()
    assert handler.shutdown() and handler.is_closed()


def test_endpoint_list_moves_past_a_dead_coordinator(tmp_path: Path) -> None:
    """--rdzv-endpoint=h1:p1,h2:p2 reaches the handler as one string (torchrun passes it through):
    the agent tries the first coordinator, finds it silent and meets at the second."""
    import pytest
    from torch.distributed.elastic.rendezvous import (
        RendezvousParameters,
        rendezvous_handler_registry,
    )

    live, dead = free_port(), free_port()
    coordinator = Coordinator(live, tmp_path)
    try:
        params = RendezvousParameters(
            "wan", f"127.0.0.1:{dead},127.0.0.1:{live}", "list-job", 1, 1,
            heartbeat_interval_ms=200, coordinator_timeout_ms=1000, last_call_timeout=0,
            local_addr="127.0.0.1",
        )  # fmt: skip
        handler = rendezvous_handler_registry.create_handler(params)
        info = handler.next_rendezvous()
        assert (info.rank, info.world_size) == (0, 1)
        assert handler.shutdown()
    finally:
        coordinator.stop()
    assert "list-job" in coordinator.log_tail()
    for bad in (f"127.0.0.1:{live},", f"127.0.0.1:{live},127.0.0.1:{live}"):
        with pytest.raises(ValueError, match="coordinator list"):
            rendezvous_handler_registry.create_handler(
                RendezvousParameters("wan", bad, "list-job", 1, 1)
            )


def test_torchrun_two_agents_survive_a_worker_crash(tmp_path: Path) -> None:
    script = tmp_path / "tiny.py"
    script.write_text(SCRIPT)
    port = free_port()
    coordinator = Coordinator(port, tmp_path)
    agents = []
    try:
        for index in range(2):
            command = [
                sys.executable, "-m", "torch.distributed.run",
                "--nnodes=1:2", "--nproc-per-node=1", "--rdzv-backend=wan",
                f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=torchrun-test",
                # A round closes at once when both agents are in; the long last call only keeps
                # a slow-starting second agent (a loaded machine) from missing the first round,
                # which would leave it waiting alone once the first agent's one-node job ends.
                "--rdzv-conf=last_call_timeout=20", "--max-restarts=2", "--monitor-interval=0.2",
                str(script), str(tmp_path / "crashed"),
            ]  # fmt: skip
            log = open(tmp_path / f"agent{index}.log", "wb")
            env = {**os.environ, "TORCHWAN_HOST": "127.0.0.1"}
            agents.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
            log.close()
        codes = [agent.wait(timeout=150) for agent in agents]
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()
        coordinator.stop()
    logs = [(tmp_path / f"agent{i}.log").read_text(errors="replace") for i in range(2)]
    assert codes == [0, 0], "\n\n".join(log[-3000:] for log in logs)
    results = sorted(line for log in logs for line in log.splitlines() if "RESULT" in line)
    # Both ranks finished in one final two-node round, after the crash cost a restart.
    assert len(results) == 2, results
    assert all("world=2 sum=3.0" in line for line in results), results
    assert {line.split()[1] for line in results} == {"rank=0", "rank=1"}
    assert (tmp_path / "crashed").exists()


SCALING_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import torch, torch.distributed as dist
    import torchwan  # noqa: F401

    checkpoint, finish = sys.argv[1], sys.argv[2]
    dist.init_process_group("wan")
    rank, world = dist.get_rank(), dist.get_world_size()
    state = {"step": 0, "weight": 0.0}
    if rank == 0 and os.path.exists(checkpoint):
        with open(checkpoint) as f:
            state = json.load(f)
    # Every round resumes from rank 0's checkpoint, so no step is lost or applied twice.
    start = torch.tensor([state["step"], state["weight"]], dtype=torch.float64)
    dist.broadcast(start, 0)
    step, weight = int(start[0]), float(start[1])
    while True:
        grad = torch.ones(1, dtype=torch.float64)
        dist.all_reduce(grad)
        weight += grad.item() / world  # one unit per step, whatever the world size
        step += 1
        if rank == 0:
            with open(checkpoint + ".tmp", "w") as f:
                json.dump({"step": step, "weight": weight, "world": world}, f)
            os.replace(checkpoint + ".tmp", checkpoint)
        stop = torch.tensor([float(os.path.exists(finish))])
        dist.all_reduce(stop, op=dist.ReduceOp.MAX)
        if stop.item():
            break
        time.sleep(0.05)
    print(f"RESULT rank={rank} world={world} step={step} weight={weight}", flush=True)
    dist.destroy_process_group()
    """
)


def test_torchrun_scales_two_to_four_to_three_nodes(tmp_path: Path) -> None:
    """Two agents start a 2:4 job, two more arrive (the running workers restart into a round of
    four), then one node dies with all its processes (a lost host) and the other three finish."""
    import json
    import signal
    import time

    from test_elastic_support import wait_until

    script = tmp_path / "scaling.py"
    script.write_text(SCALING_SCRIPT)
    checkpoint, finish = tmp_path / "checkpoint.json", tmp_path / "finish"
    port = free_port()
    coordinator = Coordinator(port, tmp_path, "--heartbeat-timeout-ms", "3000")
    agents: list[subprocess.Popen[bytes]] = []

    def start_agent() -> None:
        index = len(agents)
        command = [
            sys.executable, "-m", "torch.distributed.run",
            "--nnodes=2:4", "--nproc-per-node=1", "--rdzv-backend=wan",
            f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=scaling-test",
            "--rdzv-conf=last_call_timeout=2,heartbeat_interval_ms=500,coordinator_timeout_ms=3000",
            "--max-restarts=3", "--monitor-interval=0.2",
            str(script), str(checkpoint), str(finish),
        ]  # fmt: skip
        with open(tmp_path / f"agent{index}.log", "wb") as log:
            env = {**os.environ, "TORCHWAN_HOST": "127.0.0.1", "TORCHWAN_PEER_TIMEOUT_MS": "3000"}
            # Its own session: killing the group takes the agent and its workers, like a host.
            agents.append(
                subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            )

    def progress() -> dict:
        try:
            return json.loads(checkpoint.read_text())
        except (OSError, ValueError):
            return {"step": 0, "world": 0}

    def reaches(world: int, steps_beyond: int, timeout: float) -> int:
        baseline = progress()["step"]
        wait_until(
            lambda: progress()["world"] == world and progress()["step"] >= baseline + steps_beyond,
            timeout,
            f"{steps_beyond} steps in a round of {world} nodes",
        )
        return progress()["step"]

    def logs() -> str:
        return "\n\n".join(
            (tmp_path / f"agent{i}.log").read_text(errors="replace")[-3000:]
            for i in range(len(agents))
        )

    try:
        start_agent()
        start_agent()
        try:
            reaches(2, 3, 90)
            start_agent()
            start_agent()
            reaches(4, 3, 90)
            killed = agents[2]
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait()
            killed_at = time.monotonic()
            reaches(3, 3, 90)
            recovered_in = time.monotonic() - killed_at
            finish.touch()
            codes = [agents[i].wait(timeout=60) for i in (0, 1, 3)]
        except (AssertionError, subprocess.TimeoutExpired) as error:
            raise AssertionError(f"{error}\n{logs()}") from error
    finally:
        for agent in agents:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
        coordinator.stop()
    assert codes == [0, 0, 0], logs()
    text = logs()
    results = [line for line in text.splitlines() if "RESULT" in line]
    assert len(results) == 3 and all("world=3" in line for line in results), results
    final = progress()
    # Every step was applied exactly once across the three rounds.
    assert final["weight"] == float(final["step"]), final
    assert all(f"step={final['step']} " in line for line in results), (final, results)
    print(f"2 -> 4 -> 3 nodes: host loss to training resumed in {recovered_in:.1f} s")
