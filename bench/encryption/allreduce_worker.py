"""One rank of the encryption benchmark's allreduce: times `--iterations` all_reduce calls of
`--bytes` float32 on the backend named by --backend (the wan backend reads TORCHWAN_ENCRYPTION and
TORCHWAN_SECRET_FILE from the environment). Rank 0 prints one JSON line."""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.distributed as dist


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="wan")
    parser.add_argument("--bytes", type=int, default=64 << 20)
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    if args.backend == "wan":
        import torchwan  # noqa: F401  (registers the backend)
    dist.init_process_group(args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    tensor = torch.full((args.bytes // 4,), float(rank + 1))
    dist.all_reduce(tensor)  # warm-up: connections, buffers, page faults
    seconds = []
    for _ in range(args.iterations):
        tensor.fill_(float(rank + 1))
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(tensor)
        seconds.append(time.perf_counter() - start)
    correct = bool(torch.all(tensor == world * (world + 1) / 2))
    dist.destroy_process_group()
    if rank == 0:
        print(json.dumps({"seconds": seconds, "correct": correct}), flush=True)


if __name__ == "__main__":
    main()
