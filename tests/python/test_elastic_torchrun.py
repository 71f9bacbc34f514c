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
                "--rdzv-conf=last_call_timeout=3", "--max-restarts=2", "--monitor-interval=0.2",
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
