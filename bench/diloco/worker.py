"""One rank of the DiLoCo benchmark: the character GPT of examples/diloco_train.py trained for
the same number of inner steps (the same tokens) by DDP over Gloo, DDP over "wan", DDP over "wan"
with the int8 hook, DiLoCo and Streaming DiLoCo, one after another in the same processes, from the
same initial model and the same per-rank data. Rank 0 prints one JSON line per run.

Timing: every rank evaluates the same held-out batch at the same inner steps; that time is
excluded from the run's clock, so the validation curve is loss against training time.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "examples"))
import diloco_train as example  # noqa: E402  (the model, the text and the batches)

import torchwan  # noqa: E402  (registers "wan")


def parse_run(spec: str) -> dict:
    """``local`` (no communication), ``ddp-gloo``, ``ddp-wan``, ``ddp-wan-int8`` or
    ``diloco-H<h>-<codec>[-F<f>-d<delay>]``."""
    if spec == "local":
        return {"name": spec, "kind": "local"}
    if spec.startswith("ddp-"):
        return {"name": spec, "kind": "ddp"}
    parts = spec.split("-")
    run = {"name": spec, "kind": "diloco", "H": int(parts[1][1:]), "codec": parts[2],
           "F": 1, "delay": 0}
    for part in parts[3:]:
        if part.startswith("F"):
            run["F"] = int(part[1:])
        elif part.startswith("d"):
            run["delay"] = int(part[1:])
    return run


def train(run: dict, args: argparse.Namespace, data: dict, groups: dict) -> dict:
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = example.CharGPT(data["vocab"], args.context, args.width, args.layers, heads=4)
    parameters = sum(p.numel() for p in model.parameters())
    inner = None
    hook_state = None
    diloco = None
    if run["kind"] == "ddp":
        group = groups["gloo" if run["name"] == "ddp-gloo" else "wan"]
        model = DistributedDataParallel(model, process_group=group, broadcast_buffers=False)
        if run["name"] == "ddp-wan-int8":
            hook_state = torchwan.hooks.State(process_group=group, codec="int8")
            model.register_comm_hook(hook_state, torchwan.hooks.int8)
        inner = torch.optim.AdamW(model.parameters(), lr=args.inner_lr, weight_decay=0.1)
    elif run["kind"] == "local":
        inner = torch.optim.AdamW(model.parameters(), lr=args.inner_lr, weight_decay=0.1)
    else:
        inner = torch.optim.AdamW(model.parameters(), lr=args.inner_lr, weight_decay=0.1)
        outer = torch.optim.SGD(model.parameters(), lr=args.outer_lr, momentum=0.9,
                                nesterov=True)
        diloco = torchwan.DiLoCo(model, inner, outer, sync_every=run["H"], fragments=run["F"],
                                 codec=run["codec"], delay=run["delay"], group=groups["wan"])

    stream = example.batches(data["train"], args.context, args.batch_size, seed=1 + rank)
    evaluation = data["eval"]

    def evaluate(batches) -> float:
        with torch.no_grad():
            return sum(example.loss_of(model, x, y).item() for x, y in batches) / len(batches)

    dist.barrier(group=groups["gloo"])
    curve = []  # (inner step, training seconds, validation loss)
    burst = 0  # the most bytes this rank sent at one inner step
    clock = 0.0
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        inputs, targets = next(stream)
        example.loss_of(model, inputs, targets).backward()
        if diloco is not None:
            before = diloco.bytes_sent
            diloco.step()
            burst = max(burst, diloco.bytes_sent - before)
        else:
            inner.step()
            inner.zero_grad()
        if step % args.eval_every == 0 or step == args.steps:
            clock += time.perf_counter() - started
            curve.append((step, clock, evaluate(evaluation[:1])))
            started = time.perf_counter()
    if diloco is not None:
        diloco.flush()
    clock += time.perf_counter() - started
    # The slowest rank's clock: the run is done when every rank is.
    slowest = torch.tensor([clock], dtype=torch.float64)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX, group=groups["gloo"])
    clock = float(slowest.item())
    final = evaluate(evaluation)
    curve.append((args.steps, clock, final))

    dense = 2 * (world - 1) * parameters * 4 // world  # a ring allreduce of fp32 gradients
    if diloco is not None:
        sent = diloco.bytes_sent
    elif hook_state is not None:
        sent = hook_state.bytes_sent
        burst = sent // args.steps
    elif run["kind"] == "local":
        sent = burst = 0
    else:
        sent = dense * args.steps
        burst = dense
    tokens = args.steps * args.batch_size * args.context * world
    return {
        **run, "world_size": world, "parameters": parameters, "steps": args.steps,
        "tokens": tokens, "seconds": clock, "tokens_per_s": tokens / clock,
        "bytes_per_step": sent / args.steps, "burst_bytes": burst,
        "final_val_loss": final, "curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", required=True, help="comma-separated, see parse_run")
    parser.add_argument("--steps", type=int, default=300)
    example.add_model_arguments(parser)
    parser.add_argument("--eval-every", type=int, default=10)
    args = parser.parse_args()

    torch.set_num_threads(1)  # the ranks share the machine's cores
    dist.init_process_group("wan", timeout=timedelta(minutes=10))
    groups = {"wan": dist.group.WORLD,
              "gloo": dist.new_group(backend="gloo", timeout=timedelta(minutes=10))}
    text = example.make_text(4000, seed=0)
    alphabet = sorted(set(text))
    encoded = torch.tensor([alphabet.index(c) for c in text])
    split = int(0.9 * encoded.numel())
    held_out = encoded[split:]
    windows = example.batches(held_out, args.context, 32, seed=12345)
    data = {"vocab": len(alphabet), "train": encoded[:split],
            "eval": [next(windows) for _ in range(4)], "uniform_loss": math.log(len(alphabet))}
    for spec in args.runs.split(","):
        row = train(parse_run(spec), args, data, groups)
        if dist.get_rank() == 0:
            print(json.dumps({**row, "uniform_loss": data["uniform_loss"]}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
