"""The training loop the torchrun variants of the elastic benchmark run: all-reduce steps that
print a JSON line each, so the benchmark sees when training resumed after a restart."""

from __future__ import annotations

import json
import os
import sys
import time

import torch
import torch.distributed as dist

import torchwan  # noqa: F401  (registers the "wan" backend)


def main() -> int:
    steps, size, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    dist.init_process_group("wan")
    grad = torch.ones(size)
    for step in range(steps):
        time.sleep(delay)
        dist.all_reduce(grad)
        grad.fill_(1.0)
        line = {
            "event": "step",
            "t": time.time(),
            "pid": os.getpid(),
            "rank": dist.get_rank(),
            "restart": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
            "step": step,
        }
        print(json.dumps(line), flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
