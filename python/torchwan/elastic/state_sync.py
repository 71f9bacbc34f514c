"""Agreeing on the step after a membership change, and sending state to members that are behind.

Why the highest step wins: a rank can finish step k's all-reduce (every peer had already sent its
part) and apply it while a peer's copy of that all-reduce fails. Each step needs every member, so
steps differ by at most one; copying the state of a member at the highest step to the others
applies step k exactly once everywhere. Members that never synchronised report step -1: joiners
always receive state, and the founders of a new job all take rank 0's.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.distributed as dist

from . import state_transfer
from .state_transfer import StateDict


def gather_steps(group: dist.ProcessGroup, step: int) -> list[int]:
    """Every member's step, in rank order (one small all-gather)."""
    mine = torch.tensor([step], dtype=torch.int64)
    outputs = [torch.empty(1, dtype=torch.int64) for _ in range(group.size())]
    group.allgather([outputs], [mine]).wait()
    return [int(t.item()) for t in outputs]


def broadcast_state(
    group: dist.ProcessGroup,
    source: int,
    get_state: Callable[[], StateDict],
    set_state: Callable[[StateDict], None],
) -> None:
    """Copies the state of rank `source` to every other member, tensor by tensor without
    pickle (state_transfer.py); raises StateTransferError naming the source on failure."""
    state_transfer.send_or_receive(group, source, get_state, set_state)


def synchronize(
    group: dist.ProcessGroup,
    step: int,
    get_state: Callable[[], StateDict],
    set_state: Callable[[StateDict], None],
) -> tuple[int, bool]:
    """Brings every member to the highest step; returns (that step, whether state was sent)."""
    steps = gather_steps(group, step)
    highest = max(steps)
    if highest < 0:
        # A new job: founders may hold differently initialised models; rank 0's becomes step 0.
        broadcast_state(group, 0, get_state, set_state)
        return 0, True
    if all(s == highest for s in steps):
        return highest, False
    broadcast_state(group, steps.index(highest), get_state, set_state)
    return highest, True
