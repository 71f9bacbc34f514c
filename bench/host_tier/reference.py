"""The check's input and its allreduce, computed without any communication: the independent
reference every group's result must equal exactly."""

from __future__ import annotations

import torch


def rank_input(numel: int, rank: int) -> torch.Tensor:
    # Small whole numbers: their sums are exact in float32 whatever order a reduction adds them.
    return (torch.arange(numel) % 97 + rank).float()


def expected_allreduce(numel: int, world: int) -> torch.Tensor:
    """The sum over ranks 0..world-1 of rank_input."""
    return (world * (torch.arange(numel) % 97) + world * (world - 1) // 2).float()
