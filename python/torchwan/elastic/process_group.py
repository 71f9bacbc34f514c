"""Builds a torch ProcessGroup backed by a fresh ProcessGroupWan, without init_process_group.

Each membership epoch needs its own group over a different member list; dist.new_group cannot
do that (it is collective over the original world), so the backend is constructed directly and
wrapped the way distributed_c10d does it for registered backends.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist

from .. import _C
from ..options import Options


def build_process_group(
    store: dist.Store,
    rank: int,
    world_size: int,
    timeout: timedelta,
    options: Optional[Options] = None,
    name: str = "",
    job_id: Optional[str] = None,
    epoch: Optional[int] = None,
) -> dist.ProcessGroup:
    """Connects `world_size` ranks through `store` (blocks until every rank arrives or the
    transport's connect timeout passes) and returns the group. `job_id` and `epoch` bind its data
    connections: with a job secret, a connection of another job or epoch cannot authenticate."""
    fields = (options or Options()).transport_fields()
    if job_id is not None:
        fields["job_id"] = job_id
    if epoch is not None:
        fields["epoch"] = str(epoch)
    backend = _C.ProcessGroupWan(store, rank, world_size, timeout, fields, name)
    group = dist.ProcessGroup(store, rank, world_size)
    backend_type = dist.ProcessGroup.BackendType.CUSTOM
    group._set_default_backend(backend_type)
    devices = ["cpu", "cuda"] if _C.built_with_cuda else ["cpu"]
    for device in devices:
        group._register_backend(torch.device(device), backend_type, backend)
    if name:
        group._set_group_name(name)
    return group


def abort_quietly(group: Optional[dist.ProcessGroup]) -> None:
    """Fails the group's pending work at once; errors from an already broken group are moot."""
    if group is None:
        return
    try:
        group.abort()
    except Exception:  # noqa: BLE001  (the group is being discarded either way)
        pass
