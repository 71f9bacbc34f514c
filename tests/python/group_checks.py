"""Checks a rank function makes on its group inside run_ranks."""

from __future__ import annotations

import torch
import torch.distributed as dist


def group_still_works(world: int) -> bool:
    """Whether an all_reduce of ones on the default group sums to `world`: the calls that were
    rejected or failed before it left the group usable and every rank in step."""
    check = torch.ones(3)
    dist.all_reduce(check)
    return torch.equal(check, torch.full((3,), float(world)))
