"""One rank of the DDP benchmark: the same ~25M-parameter model trained with DDP over "wan" and
over Gloo in the same processes (alternating, same seed, same data); rank 0 prints one JSON line
per backend with steps/s and the final parameter checksum."""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

WIDTH = 2048  # 6 layers of 2048 x 2048: 25.2M parameters, 100 MB of fp32 gradients per step


def make_model(layers: int) -> torch.nn.Module:
    torch.manual_seed(0)
    blocks: list[torch.nn.Module] = []
    for _ in range(layers):
        blocks += [torch.nn.Linear(WIDTH, WIDTH), torch.nn.ReLU()]
    return torch.nn.Sequential(*blocks[:-1])


def train(backend_group, steps: int, layers: int, batch: int, sync_group, hook=None) -> dict:
    model = DistributedDataParallel(make_model(layers), process_group=backend_group,
                                    broadcast_buffers=False)
    if hook is not None:
        model.register_comm_hook(*hook)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(dist.get_rank())
    inputs = torch.randn(batch, WIDTH, generator=generator)
    targets = torch.randn(batch, WIDTH, generator=generator)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()

    step()  # warm-up: DDP builds its buckets on the first backward
    dist.barrier(group=sync_group)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = torch.tensor([time.perf_counter() - start], dtype=torch.float64)
    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX, group=sync_group)
    checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
    parameters = sum(p.numel() for p in model.parameters())
    return {"steps_per_s": steps / float(elapsed.item()), "checksum": checksum,
            "parameters": parameters}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--backends", default="wan,wan-int8,gloo",
                        help="wan, wan-int8 (the backend's int8 compression option), "
                             "wan-int8-hook (DDP's comm hook torchwan.hooks.int8), gloo")
    args = parser.parse_args()

    import torchwan  # registers "wan"
    import torchwan.hooks

    torch.set_num_threads(1)  # ranks share the machine's cores; compute is not what is measured
    dist.init_process_group("wan", timeout=timedelta(minutes=20))
    gloo = dist.new_group(backend="gloo", timeout=timedelta(minutes=20))
    groups = {"wan": dist.group.WORLD, "wan-int8-hook": dist.group.WORLD, "gloo": gloo}
    if "wan-int8" in args.backends.split(","):
        groups["wan-int8"] = dist.new_group(backend="wan", timeout=timedelta(minutes=20),
                                            pg_options=torchwan.Options(compression="int8"))
    for backend in args.backends.split(","):
        hook = None
        if backend == "wan-int8-hook":
            hook = (torchwan.hooks.State(codec="int8"), torchwan.hooks.int8)
        result = train(groups[backend], args.steps, args.layers, args.batch, gloo, hook)
        if dist.get_rank() == 0:
            print(json.dumps({"backend": backend, "world_size": dist.get_world_size(), **result}),
                  flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
