"""Data-parallel training with DDP on the "wan" backend, on CPU.

    torchrun --nproc-per-node=4 examples/ddp_train.py [--steps 60] [--powersgd]

Each rank reads its own shard of a synthetic regression data set (DistributedSampler), DDP averages
the gradients over "wan", and rank 0 prints the loss averaged over all ranks. The summary checks
that every rank ends with bit-identical parameters.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import torchwan  # noqa: F401  registers the "wan" backend


def make_dataset(samples: int = 8192, features: int = 32) -> TensorDataset:
    """The same data on every rank (fixed seed); the sampler decides who reads which rows."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(samples, features, generator=generator)
    teacher = torch.randn(features, 1, generator=generator)
    targets = torch.tanh(inputs @ teacher) + 0.05 * torch.randn(samples, 1, generator=generator)
    return TensorDataset(inputs, targets)


def make_model(features: int = 32) -> nn.Module:
    torch.manual_seed(0)  # DDP broadcasts rank 0's parameters anyway; this keeps runs repeatable
    return nn.Sequential(nn.Linear(features, 128), nn.ReLU(), nn.Linear(128, 1))


def global_mean(value: torch.Tensor) -> float:
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.AVG)
    return value.item()


def parameters_agree(model: nn.Module) -> bool:
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return all(torch.equal(flat, other) for other in gathered)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64, help="per rank")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--powersgd", action="store_true", help="compress gradients (rank 2)")
    args = parser.parse_args()

    dist.init_process_group("wan")  # rank, world size and store come from torchrun's env://
    rank, world_size = dist.get_rank(), dist.get_world_size()

    dataset = make_dataset()
    sampler = DistributedSampler(dataset, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    # The model has no buffers, so DDP has nothing to re-broadcast each forward (which on a WAN
    # would cost a round trip per step).
    model = DistributedDataParallel(make_model())
    if args.powersgd:
        from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powersgd

        state = powersgd.PowerSGDState(process_group=None, matrix_approximation_rank=2,
                                       start_powerSGD_iter=10)  # fmt: skip
        model.register_comm_hook(state, powersgd.powerSGD_hook)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    step, epoch = 0, 0
    first_loss = last_loss = float("nan")
    start = time.perf_counter()
    while step < args.steps:
        sampler.set_epoch(epoch)  # a different shuffle each epoch, the same on every rank
        for inputs, targets in loader:
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(inputs), targets)
            loss.backward()  # DDP all-reduces gradient buckets while backward runs
            optimizer.step()
            if step % args.log_every == 0 or step + 1 == args.steps:
                last_loss = global_mean(loss)
                first_loss = last_loss if step == 0 else first_loss
                if rank == 0:
                    print(f"step {step:4d}  loss {last_loss:.5f}", flush=True)
            step += 1
            if step == args.steps:
                break
        epoch += 1
    elapsed = time.perf_counter() - start

    agree = parameters_agree(model)
    if rank == 0:
        samples = args.steps * args.batch_size * world_size
        print(
            f"done: {world_size} ranks, {args.steps} steps in {elapsed:.2f} s "
            f"({samples / elapsed:.0f} samples/s), loss {first_loss:.4f} -> {last_loss:.4f}, "
            f"parameters identical on all ranks: {agree}",
            flush=True,
        )
    dist.destroy_process_group()
    if not agree:
        raise SystemExit("parameters differ between ranks")


if __name__ == "__main__":
    main()
