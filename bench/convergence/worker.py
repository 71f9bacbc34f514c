"""One rank of the convergence benchmark: the same MLP, data and seed trained with DDP once per
codec of torchwan.hooks and once uncompressed (over "wan" and over Gloo); rank 0 prints one JSON
line per run with its loss curve, held-out loss and accuracy, and bytes on the wire."""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

INPUTS, HIDDEN, CLASSES = 64, 256, 10


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(INPUTS, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN),
                         nn.ReLU(), nn.Linear(HIDDEN, CLASSES))


def make_task(samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels from a fixed random teacher network: learnable, but not in a few steps."""
    teacher = torch.Generator().manual_seed(1)
    w1 = torch.randn(INPUTS, 128, generator=teacher)
    w2 = torch.randn(128, CLASSES, generator=teacher)
    x = torch.randn(samples, INPUTS, generator=torch.Generator().manual_seed(seed))
    return x, (torch.tanh(x @ w1 / INPUTS**0.5) @ w2).argmax(dim=1)


def train(group, codec: Optional[str], steps: int, batch: int, sync) -> dict:
    import torchwan.hooks as hooks

    model = DistributedDataParallel(make_model(), process_group=group, broadcast_buffers=False)
    state = None
    if codec is not None:
        state = hooks.State(process_group=group, codec=codec, topk_fraction=0.01)
        model.register_comm_hook(state, hooks.compressed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = make_task(steps * batch, seed=100 + dist.get_rank())
    eval_x, eval_y = make_task(4096, seed=7)
    losses = []
    dist.barrier(group=sync)
    start = time.perf_counter()
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        rows = slice(step * batch, (step + 1) * batch)
        loss = nn.functional.cross_entropy(model(x[rows]), y[rows])
        loss.backward()
        optimizer.step()
        mean = loss.detach().reshape(1)
        dist.all_reduce(mean, group=sync)  # the loss over all ranks' batches, for the curve
        losses.append(float(mean) / dist.get_world_size())
    elapsed = time.perf_counter() - start
    with torch.no_grad():
        logits = model.module(eval_x)
        eval_loss = float(nn.functional.cross_entropy(logits, eval_y))
        accuracy = float((logits.argmax(dim=1) == eval_y).float().mean())
    return {
        "train_losses": losses,
        "eval_loss": eval_loss,
        "eval_accuracy": accuracy,
        "bytes_sent_per_rank": state.bytes_sent if state else None,
        "wire_ratio": state.bytes_dense / state.bytes_sent if state else 1.0,
        "seconds": elapsed,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--codecs", default="none,int8,fp8,fp16,bf16,sign,topk")
    args = parser.parse_args()

    import torchwan  # noqa: F401  registers "wan"

    torch.set_num_threads(1)  # the ranks share a few cores
    dist.init_process_group("wan", timeout=timedelta(minutes=10))
    gloo = dist.new_group(backend="gloo", timeout=timedelta(minutes=10))
    runs = [("gloo", gloo, None)]
    runs += [("wan", dist.group.WORLD, None if c == "none" else c) for c in args.codecs.split(",")]
    for backend, group, codec in runs:
        result = train(group, codec, args.steps, args.batch, gloo)
        if dist.get_rank() == 0:
            row = {"backend": backend, "codec": codec or "none", **result}
            print(json.dumps({"world_size": dist.get_world_size(), **row}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
