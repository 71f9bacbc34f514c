"""Sharded data-parallel training with FSDP2 (fully_shard) on the "wan" backend, on CPU.

    torchrun --nproc-per-node=4 examples/fsdp2_train.py [--steps 40] [--replicas 2]

Every rank holds 1/N of each parameter; forward and backward all-gather the blocks they need and
reduce-scatter the gradients. With --replicas R the ranks form an R x (N/R) DeviceMesh (HSDP):
parameters are sharded within a replica and gradients all-reduced across replicas, the layout
for replicas in different places joined by a WAN.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

import torchwan  # noqa: F401  registers the "wan" backend


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        hidden = 4 * width
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


class Model(nn.Module):
    def __init__(self, features: int = 32, width: int = 64, depth: int = 4):
        super().__init__()
        self.embed = nn.Linear(features, width)
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def make_batch(step: int, rank: int, batch_size: int, features: int = 32):
    """Each rank its own samples of one fixed regression problem."""
    teacher = torch.randn(features, 1, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1 + step * 1000 + rank)
    inputs = torch.randn(batch_size, features, generator=generator)
    return inputs, torch.sin(inputs @ teacher)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32, help="per rank")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=1, help="> 1: HSDP on a 2-D mesh")
    args = parser.parse_args()

    dist.init_process_group("wan")  # rank, world size and store come from torchrun's env://
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if world_size % args.replicas:
        raise SystemExit(f"--replicas {args.replicas} does not divide the world size {world_size}")
    if args.replicas > 1:
        shape, names = (args.replicas, world_size // args.replicas), ("replicate", "shard")
    else:
        shape, names = (world_size,), ("shard",)
    # Every mesh dimension gets a "wan" group (the default backend).
    mesh = init_device_mesh("cpu", shape, mesh_dim_names=names)

    torch.manual_seed(0)  # the same full model everywhere before sharding
    model = Model()
    full_numel = sum(p.numel() for p in model.parameters())
    # One FSDP unit per block, so only one block's parameters are gathered at a time.
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    local_numel = sum(p.to_local().numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)

    first_loss = last_loss = float("nan")
    start = time.perf_counter()
    for step in range(args.steps):
        inputs, targets = make_batch(step, rank, args.batch_size)
        loss = nn.functional.mse_loss(model(inputs), targets)
        loss.backward()  # reduce-scatters (and across replicas all-reduces) each block's grads
        optimizer.step()
        optimizer.zero_grad()
        if step % args.log_every == 0 or step + 1 == args.steps:
            averaged = loss.detach().clone()
            dist.all_reduce(averaged, op=dist.ReduceOp.AVG)
            last_loss = averaged.item()
            first_loss = last_loss if step == 0 else first_loss
            if rank == 0:
                print(f"step {step:4d}  loss {last_loss:.5f}", flush=True)
    elapsed = time.perf_counter() - start

    if rank == 0:
        print(
            f"done: mesh {dict(zip(names, shape))}, {args.steps} steps in {elapsed:.2f} s, "
            f"loss {first_loss:.4f} -> {last_loss:.4f}, parameters per rank "
            f"{local_numel} of {full_numel} ({100 * local_numel / full_numel:.0f}%)",
            flush=True,
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
