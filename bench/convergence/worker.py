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


class BackendCodecState:
    """DDP's default allreduce, over a "wan" group created with Options(compression=codec), counting
    what the backend's compressed allreduce sends (csrc/compressed_allreduce.h: shards of whole
    256-element blocks, all-to-all of this rank's encodings, allgather of the summed shard)."""

    def __init__(self, group, codec: str):
        self.group, self.codec = group, codec
        self.bytes_sent = self.bytes_dense = 0

    def count(self, n: int) -> None:
        from torchwan import compression
        from torchwan.compression import CodecConfig

        world, rank = dist.get_world_size(self.group), dist.get_rank(self.group)
        if n * 4 < 64 * 1024:  # below the backend's threshold: sent uncompressed
            self.bytes_sent += 2 * (world - 1) * n * 4 // world
        else:
            block = 256
            shard = -(-(-(-n // world)) // block) * block
            lengths = [max(0, min(n, (p + 1) * shard) - min(n, p * shard)) for p in range(world)]
            config = CodecConfig(codec=self.codec)
            size = [compression.encoded_size(length, config) for length in lengths]
            self.bytes_sent += sum(size) - size[rank] + (world - 1) * size[rank]
        self.bytes_dense += 2 * (world - 1) * n * 4 // world


def backend_codec_hook(state: BackendCodecState, bucket):
    tensor = bucket.buffer()
    state.count(tensor.numel())
    tensor.div_(dist.get_world_size(state.group))
    work = dist.all_reduce(tensor, group=state.group, async_op=True)
    return work.get_future().then(lambda future: future.value()[0])


def train(group, codec: Optional[str], steps: int, batch: int, sync) -> dict:
    import torchwan.hooks as hooks

    model = DistributedDataParallel(make_model(), process_group=group, broadcast_buffers=False)
    state = None
    if codec is not None and codec.startswith("backend-"):
        state = BackendCodecState(group, codec.removeprefix("backend-"))
        model.register_comm_hook(state, backend_codec_hook)
    elif codec is not None:
        state = hooks.State(process_group=group, codec=codec, topk_fraction=0.01)
        model.register_comm_hook(state, hooks.compressed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    # Cosine decay to zero, as real training ends: the final loss then measures where each codec
    # converged rather than the noise of its last steps.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
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
        schedule.step()
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
    parser.add_argument("--codecs", default="none,bf16,int8,fp8,sign,topk")
    # Transparent compression inside the backend (torchwan.Options(compression=...)), no hook.
    parser.add_argument("--backend-codecs", default="int8,fp8,bf16")
    args = parser.parse_args()

    import torchwan  # registers "wan"

    torch.set_num_threads(1)  # the ranks share a few cores
    dist.init_process_group("wan", timeout=timedelta(minutes=10))
    gloo = dist.new_group(backend="gloo", timeout=timedelta(minutes=10))
    runs = [("gloo", gloo, None)]
    runs += [("wan", dist.group.WORLD, None if c == "none" else c) for c in args.codecs.split(",")]
    for codec in filter(None, args.backend_codecs.split(",")):
        group = dist.new_group(backend="wan", pg_options=torchwan.Options(compression=codec),
                               timeout=timedelta(minutes=10))
        runs.append(("wan", group, f"backend-{codec}"))
    for backend, group, codec in runs:
        result = train(group, codec, args.steps, args.batch, gloo)
        if dist.get_rank() == 0:
            row = {"backend": backend, "codec": codec or "none", **result}
            print(json.dumps({"world_size": dist.get_world_size(), **row}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
