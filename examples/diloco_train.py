"""A small GPT-style character language model trained with torchwan.DiLoCo, on CPU.

    torchrun --nproc-per-node=2 examples/diloco_train.py [--steps 60] [--sync-every 10]
        [--fragments 1] [--delay 0] [--codec none|fp16|bf16|int8|fp8|sign|topk] [--backend wan]

Every rank trains on its own sample of a text generated here (sentences from a tiny grammar, so
nothing is downloaded) and talks to the others only every --sync-every steps. Rank 0 prints the
training loss averaged over ranks, the held-out loss of the synced model and the bytes each rank
sent per inner step.
"""

from __future__ import annotations

import argparse
import math
import random
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

import torchwan

SUBJECTS = ["the cat", "a dog", "my friend", "the old man", "every child", "the bird", "she", "he"]
VERBS = ["sees", "likes", "follows", "finds", "draws", "remembers", "carries", "watches"]
OBJECTS = ["the moon", "a red ball", "the river", "two apples", "the small house", "a song",
           "the garden", "an open door"]
ENDINGS = ["today", "at night", "in the rain", "again", "slowly", "with joy", "", ""]


def make_text(sentences: int, seed: int) -> str:
    """Sentences from a fixed grammar: enough structure that the loss falls well below that of
    guessing letters by frequency within a few dozen steps."""
    rng = random.Random(seed)
    parts = []
    for _ in range(sentences):
        words = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(ENDINGS)]
        parts.append(" ".join(w for w in words if w) + ". ")
    return "".join(parts)


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a 4x MLP."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, length, width))
        return x + self.mlp(self.norm2(x))


class CharGPT(nn.Module):
    def __init__(self, vocab: int, context: int, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(context, width)
        self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.tokens(ids) + self.positions(positions)
        return self.head(self.norm(self.blocks(x)))


def batches(data: torch.Tensor, context: int, size: int, seed: int):
    """Endless random windows of the text; the seed differs per rank, so ranks see different
    data, as DiLoCo's workers do."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        starts = torch.randint(0, data.numel() - context - 1, (size,), generator=generator)
        window = torch.stack([data[s:s + context + 1] for s in starts.tolist()])
        yield window[:, :-1], window[:, 1:]


def loss_of(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = model(inputs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def global_mean(value: float) -> float:
    tensor = torch.tensor([value])
    dist.all_reduce(tensor)
    return tensor.item() / dist.get_world_size()


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The batch, the model's shape and the two learning rates; bench/diloco/worker.py trains
    this model with the same options."""
    parser.add_argument("--batch-size", type=int, default=16, help="per rank")
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--inner-lr", type=float, default=3e-3)
    parser.add_argument("--outer-lr", type=float, default=0.7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="inner steps per rank")
    parser.add_argument("--sync-every", type=int, default=10, help="H: inner steps per sync")
    parser.add_argument("--fragments", type=int, default=1, help="Streaming DiLoCo fragments")
    parser.add_argument("--delay", type=int, default=0, help="steps a sync overlaps with")
    parser.add_argument("--codec", default="none", choices=torchwan.diloco.CODECS)
    parser.add_argument("--backend", default="wan")
    add_model_arguments(parser)
    parser.add_argument("--log-every", type=int, default=10)
    args = parser.parse_args()

    dist.init_process_group(args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)

    text = make_text(4000, seed=0)
    alphabet = sorted(set(text))
    encoded = torch.tensor([alphabet.index(c) for c in text])
    split = int(0.9 * encoded.numel())
    train_data, held_out = encoded[:split], encoded[split:]

    torch.manual_seed(0)
    model = CharGPT(len(alphabet), args.context, args.width, args.layers, heads=4)
    inner = torch.optim.AdamW(model.parameters(), lr=args.inner_lr, weight_decay=0.1)
    outer = torch.optim.SGD(model.parameters(), lr=args.outer_lr, momentum=0.9, nesterov=True)
    diloco = torchwan.DiLoCo(model, inner, outer, sync_every=args.sync_every,
                             fragments=args.fragments, codec=args.codec, delay=args.delay)
    if rank == 0:
        count = sum(p.numel() for p in model.parameters())
        print(f"{world} ranks over {args.backend}, {count} parameters, H={args.sync_every}, "
              f"fragments={args.fragments}, delay={args.delay}, codec={args.codec}, "
              f"uniform-guess loss {math.log(len(alphabet)):.3f}", flush=True)

    evaluation = next(batches(held_out, args.context, 64, seed=12345))
    start = time.perf_counter()
    stream = batches(train_data, args.context, args.batch_size, seed=1 + rank)
    for step in range(1, args.steps + 1):
        inputs, targets = next(stream)
        loss = loss_of(model, inputs, targets)
        loss.backward()
        diloco.step()
        if step % args.log_every == 0 or step == args.steps:
            mean = global_mean(loss.item())
            if rank == 0:
                print(f"step {step:4d}  train loss {mean:.4f}  syncs {diloco.syncs}", flush=True)
    diloco.flush()
    elapsed = time.perf_counter() - start

    with torch.no_grad():
        held_out_loss = global_mean(loss_of(model, *evaluation).item())
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    copies = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(copies, flat)
    identical = all(torch.equal(flat, other) for other in copies)
    if rank == 0:
        tokens = args.steps * args.batch_size * args.context * world
        print(f"held-out loss {held_out_loss:.4f} after {tokens} tokens in {elapsed:.1f} s; "
              f"{diloco.bytes_sent / args.steps:.0f} bytes sent per inner step per rank; "
              f"parameters identical on every rank: {identical}"
              + ("" if identical else " (some were trained after their last sync)"), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
