"""Group creation that waits for a late rank says so: with TORCHWAN_LOG_LEVEL=info, a rank whose
peer has not started yet logs, every few seconds, a progress line naming the rank it waits for,
and the group still forms and all-reduces correctly once that rank arrives. Real processes, each
started on its own, over a FileStore."""

from __future__ import annotations

import os
import subprocess
import sys

RANK_SCRIPT = """
import os, sys, time
from datetime import timedelta
import torch, torch.distributed as dist
import torchwan  # noqa: F401
rank, world = int(sys.argv[1]), int(sys.argv[2])
time.sleep(float(sys.argv[4]))
print("initializing", flush=True)
store = dist.FileStore(sys.argv[3], world)
dist.init_process_group("wan", store=store, rank=rank, world_size=world,
                        timeout=timedelta(seconds=60))
t = torch.full((8,), float(rank + 1))
dist.all_reduce(t)
assert torch.all(t == world * (world + 1) / 2), t
print("sum ok", flush=True)
dist.destroy_process_group()
"""


def start_rank(rank: int, world: int, store_path: str, delay_s: float, stderr_path: str):
    env = {**os.environ, "TORCHWAN_LOG_LEVEL": "info", "TORCHWAN_HOST": "127.0.0.1"}
    with open(stderr_path, "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-c", RANK_SCRIPT, str(rank), str(world), store_path, str(delay_s)],
            env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)


def test_a_late_rank_is_named_while_the_others_wait(tmp_path):
    world, late = 3, 2
    store = str(tmp_path / "store")
    logs = [str(tmp_path / f"rank{r}.err") for r in range(world)]
    processes = [start_rank(r, world, store, 0, logs[r]) for r in range(world - 1)]
    try:
        # The late rank starts only once rank 0 is creating its group, and then waits a while
        # longer than the progress interval (3 s) before it publishes anything.
        assert processes[0].stdout.readline().strip() == "initializing"
        processes.append(start_rank(late, world, store, 5.0, logs[late]))
        outputs = [p.communicate(timeout=120)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    errors = [open(path).read() for path in logs]
    assert [p.returncode for p in processes] == [0] * world, errors
    assert all("sum ok" in out for out in outputs), (outputs, errors)
    progress = [line for line in errors[0].splitlines() if "connecting:" in line]
    assert progress, errors[0]
    assert any(f"waiting for rank(s) [{late}]" in line and "[info]" in line
               for line in progress), progress
    # The rank that arrived last found everyone there: it had nothing to report.
    assert "connecting:" not in errors[late], errors[late]
