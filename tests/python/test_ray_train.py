"""Ray Train on "wan" through nothing but ``TorchConfig(backend="wan")``: Ray's worker processes
get the backend from ``import torch`` (autoload). A local Ray cluster (2 workers, no dashboard)
runs an all_reduce and a short DDP training that must end with the parameters Gloo's run ends with
(same seed, same data); and a worker killed mid-training is restarted by Ray
(``FailureConfig(max_failures=1)``), which forms a new "wan" group and resumes from the checkpoint
without losing or repeating a step."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import ray
from ray.train import Checkpoint, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

HERE = Path(__file__).resolve().parent
WORKERS = 2
STEPS = 8


@pytest.fixture(scope="module")
def local_cluster():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Logical CPUs: two workers and Ray Train's controller; the host has only 2 real cores.
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            # What a multi-site job passes the same way (docs/ray.md): here, loopback addresses,
            # and this folder so the workers can import this module's training functions.
            "env_vars": {"TORCHWAN_HOST": "127.0.0.1", "PYTHONPATH": str(HERE)},
        },
    )
    try:
        yield
    finally:
        ray.shutdown()


def train_and_record(config: dict) -> None:
    """Every rank: one all_reduce, then STEPS of DDP on a small model, recorded in a JSON file."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    rank, world = dist.get_rank(), dist.get_world_size()
    t = torch.arange(4, dtype=torch.float64) * (rank + 1)
    dist.all_reduce(t)

    torch.manual_seed(0)  # the same initial model on every rank and in both runs
    model = DistributedDataParallel(
        torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)),
        broadcast_buffers=False,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = torch.Generator().manual_seed(1000 + rank)  # each rank its own shard, same per run
    for _ in range(STEPS):
        inputs = torch.randn(32, 16, generator=data)
        targets = inputs.sum(dim=1, keepdim=True).sin()
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    record = {
        "backend": dist.get_backend(),
        "world": world,
        "allreduce": t.tolist(),
        "parameters": [p.detach().flatten().tolist() for p in model.parameters()],
    }
    Path(config["out"], f"rank{rank}.json").write_text(json.dumps(record))


def run_trainer(train_fn, backend: str, tmp_path: Path, name: str, **run_options) -> None:
    trainer = TorchTrainer(
        train_fn,
        train_loop_config={"out": str(tmp_path)},
        scaling_config=ScalingConfig(
            num_workers=WORKERS, use_gpu=False, resources_per_worker={"CPU": 1}
        ),
        torch_config=TorchConfig(backend=backend, timeout_s=120),
        run_config=RunConfig(storage_path=str(tmp_path / "storage"), name=name, **run_options),
    )
    trainer.fit()


def records(directory: Path) -> list[dict]:
    return [json.loads((directory / f"rank{rank}.json").read_text()) for rank in range(WORKERS)]


def test_torch_trainer_on_wan_matches_gloo(local_cluster, tmp_path: Path) -> None:
    import torch

    results = {}
    for backend in ("wan", "gloo"):
        out = tmp_path / backend
        out.mkdir()
        run_trainer(train_and_record, backend, out, f"ddp-{backend}")
        results[backend] = records(out)
    for record in results["wan"]:
        assert record["backend"] == "wan" and record["world"] == WORKERS
        assert record["allreduce"] == [0.0, 3.0, 6.0, 9.0]  # sum of arange(4) * (rank + 1)
    wan_rank0, wan_rank1 = results["wan"]
    assert wan_rank0["parameters"] == wan_rank1["parameters"]  # DDP kept the replicas equal
    for ours, gloos in zip(wan_rank0["parameters"], results["gloo"][0]["parameters"]):
        torch.testing.assert_close(torch.tensor(ours), torch.tensor(gloos), rtol=1e-5, atol=1e-6)
    # Training moved the parameters: equal to Gloo's is not merely equal to the initial model.
    torch.manual_seed(0)
    initial = torch.nn.Linear(16, 32).weight.flatten()
    assert not torch.allclose(torch.tensor(wan_rank0["parameters"][0]), initial)


def train_resuming(config: dict) -> None:
    """A scalar trained by all_reduce, checkpointed every step; rank 1 of the first attempt dies
    hard at step 3. Each attempt appends its start step, world size and backend to
    attempts.jsonl."""
    import ray.train
    import torch
    import torch.distributed as dist

    rank = dist.get_rank()
    out = Path(config["out"])
    step, weight = 0, 0.0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            state = json.loads(Path(directory, "state.json").read_text())
        step, weight = state["step"], state["weight"]
    if rank == 0:
        with open(out / "attempts.jsonl", "a") as attempts:
            attempt = {"start": step, "world": dist.get_world_size(), "backend": dist.get_backend()}
            attempts.write(json.dumps(attempt) + "\n")
    while step < STEPS:
        if rank == 1 and step == 3 and not (out / "killed").exists():
            (out / "killed").touch()
            os._exit(1)  # a worker process lost without warning
        grad = torch.tensor([float(rank + 1)], dtype=torch.float64)
        dist.all_reduce(grad)
        weight += grad.item() / dist.get_world_size()
        step += 1
        with tempfile.TemporaryDirectory() as directory:
            Path(directory, "state.json").write_text(json.dumps({"step": step, "weight": weight}))
            ray.train.report(
                {"step": step, "weight": weight},
                checkpoint=Checkpoint.from_directory(directory) if rank == 0 else None,
            )
    if rank == 0:
        (out / "final.json").write_text(json.dumps({"step": step, "weight": weight}))


def test_killed_worker_restarts_on_wan_from_checkpoint(local_cluster, tmp_path: Path) -> None:
    run_trainer(
        train_resuming, "wan", tmp_path, "resume", failure_config=FailureConfig(max_failures=1)
    )
    assert (tmp_path / "killed").exists()
    lines = (tmp_path / "attempts.jsonl").read_text().splitlines()
    attempts = [json.loads(line) for line in lines]
    assert len(attempts) == 2, attempts
    assert attempts[0] == {"start": 0, "world": WORKERS, "backend": "wan"}
    # The second group, on wan again, resumed from a checkpoint of the first, not from scratch.
    assert 1 <= attempts[1]["start"] <= 3, attempts
    assert attempts[1]["world"] == WORKERS and attempts[1]["backend"] == "wan", attempts
    final = json.loads((tmp_path / "final.json").read_text())
    # Each step adds the mean of 1 and 2: no step lost or applied twice across the restart.
    assert final == {"step": STEPS, "weight": 1.5 * STEPS}
